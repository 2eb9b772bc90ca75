//! The rules: how each kind is created, changed and deleted, and what the cloud refuses.
//!
//! Every check runs before anything changes, so a refused call has no effect. Refusals are
//! terminal errors with AWS's codes (`InvalidSubnet.Range`, `DependencyViolation`, ...) and a
//! message that says what is wrong.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::provider::{Create, Observed, tags};

use super::faults::Settings;
use super::fleet::{Group, Launch, check_capacity};
use super::inputs::Inputs;
use super::model::{
    Gateway, Image, Kind, LaunchTemplate, Model, Reject, Resource, RouteTable, SecurityGroup, Spec,
    Subnet, TemplateVersion, Vpc,
};

fn terminal(code: &'static str, message: impl Into<String>) -> Reject {
    Reject::terminal(code, message)
}

fn not_found(kind: Kind, id: &str) -> Reject {
    let code = match kind {
        Kind::Vpc => "InvalidVpcID.NotFound",
        Kind::Subnet => "InvalidSubnetID.NotFound",
        Kind::InternetGateway => "InvalidInternetGatewayID.NotFound",
        Kind::RouteTable => "InvalidRouteTableID.NotFound",
        Kind::SecurityGroup => "InvalidGroup.NotFound",
        Kind::LaunchTemplate => "InvalidLaunchTemplateId.NotFound",
        Kind::Instance => "InvalidInstanceID.NotFound",
        Kind::Image => "InvalidAMIID.NotFound",
        Kind::AutoScalingGroup => "ValidationError",
    };
    Reject::not_found(code, format!("{} `{id}` does not exist", kind.name()))
}

/// A missing reference: terminal, the request names something that is not there.
fn missing(kind: Kind, field: &str, id: &str) -> Reject {
    let e = not_found(kind, id);
    terminal(e.code, format!("`{field}`: {} `{id}` does not exist", kind.name()))
}

/// The fields that an update may change in place, per kind (others need a replacement).
fn mutable(kind: Kind, field: &str) -> bool {
    match kind {
        Kind::Vpc => matches!(field, "enable_dns_hostnames" | "tags"),
        Kind::Subnet => matches!(field, "map_public_ip_on_launch" | "tags"),
        Kind::InternetGateway => matches!(field, "vpc_id" | "tags"),
        Kind::RouteTable => matches!(field, "routes" | "subnet_ids" | "tags"),
        Kind::SecurityGroup => matches!(field, "ingress" | "egress" | "tags"),
        Kind::LaunchTemplate | Kind::AutoScalingGroup => field != "name",
        Kind::Instance => matches!(field, "instance_type" | "security_group_ids" | "user_data" | "tags"),
        Kind::Image => field == "tags",
    }
}

/// `{stack}-{logical id, non-alphanumerics as '-'}-{first 8 chars of the token}`.
pub(crate) fn generated_name(request: &Create<'_>) -> String {
    let stack = request.tags.get(tags::STACK).map_or("graven", String::as_str);
    let id: String = request.id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let token: String = request.token.chars().take(8).collect();
    format!("{stack}-{id}-{token}")
}

impl Model {
    fn spec_of(&self, kind: Kind, id: &str) -> Option<&Spec> {
        self.get(kind, id).map(|r| &r.spec)
    }

    /// Creates a resource, or returns the one created earlier with the same token.
    pub(crate) fn create(
        &mut self,
        kind: Kind,
        request: &Create<'_>,
        settings: &Settings,
    ) -> Result<Observed, Reject> {
        if let Some(existing) = self.by_token(kind, request.token) {
            if let Some(observed) = self.observe(existing) {
                return Ok(observed);
            }
        }
        let input = Inputs::new(request.inputs);
        let mut all_tags = input.tags()?;
        all_tags.extend(request.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        all_tags.insert(tags::TOKEN.to_owned(), request.token.to_owned());
        let name = || input.opt_string("name").map(|n| n.unwrap_or_else(|| generated_name(request)));
        let spec = match kind {
            Kind::Vpc => Spec::Vpc(self.vpc(input)?),
            Kind::Subnet => Spec::Subnet(self.subnet(input, None)?),
            Kind::InternetGateway => Spec::InternetGateway(self.gateway(input, None)?),
            Kind::RouteTable => Spec::RouteTable(self.route_table(input, None)?),
            Kind::SecurityGroup => Spec::SecurityGroup(self.security_group(input, name()?, None)?),
            Kind::LaunchTemplate => {
                let name = name()?;
                if self.by_name(Kind::LaunchTemplate, &name).is_some() {
                    return Err(terminal(
                        "InvalidLaunchTemplateName.AlreadyExistsException",
                        format!("a launch template named `{name}` already exists"),
                    ));
                }
                Spec::LaunchTemplate(LaunchTemplate { name, versions: vec![self.template_version(input)?] })
            }
            Kind::Image => Spec::Image(self.image(input, None)?),
            Kind::Instance => {
                let launch = Launch {
                    image_id: input.string("image_id")?,
                    instance_type: input.string("instance_type")?,
                    subnet_id: input.string("subnet_id")?,
                    security_group_ids: input.strings("security_group_ids")?,
                    user_data: input.opt_string("user_data")?,
                    group: None,
                    launch_template: None,
                    tags: all_tags,
                };
                let id = self.launch(launch, settings)?;
                return self.observe_id(kind, &id).ok_or_else(|| not_found(kind, &id));
            }
            Kind::AutoScalingGroup => {
                let name = name()?;
                if self.get(kind, &name).is_some() {
                    return Err(terminal(
                        "AlreadyExists",
                        format!("an Auto Scaling group named `{name}` already exists"),
                    ));
                }
                let mut group = self.group_spec(input)?;
                self.next += 1;
                group.arn = format!(
                    "arn:aws:autoscaling:local:000000000000:autoScalingGroup:00000000-0000-4000-8000-{:012x}:autoScalingGroupName/{name}",
                    self.next - 1
                );
                self.insert(Resource {
                    id: name.clone(),
                    tags: all_tags,
                    created_at: self.clock_ms,
                    spec: Spec::AutoScalingGroup(Box::new(group)),
                });
                self.reconcile(&name, settings);
                return self.observe_id(kind, &name).ok_or_else(|| not_found(kind, &name));
            }
        };
        let id = self.allocate(kind);
        self.insert(Resource { id: id.clone(), tags: all_tags, created_at: self.clock_ms, spec });
        self.observe_id(kind, &id).ok_or_else(|| not_found(kind, &id))
    }

    /// Changes the fields `changed` of a resource to their values in `inputs`. Fields the cloud
    /// does not know are ignored; fields that cannot change in place are refused.
    pub(crate) fn update(
        &mut self,
        kind: Kind,
        id: &str,
        inputs: &Map<String, Json>,
        changed: &[String],
        settings: &Settings,
    ) -> Result<Observed, Reject> {
        let current = self.observe_id(kind, id).ok_or_else(|| not_found(kind, id))?;
        let mut merged = current.inputs.clone();
        let mut any = false;
        for field in changed {
            if !merged.contains_key(field) {
                continue;
            }
            if !mutable(kind, field) {
                return Err(terminal(
                    "InvalidParameterValue",
                    format!("`{field}` of {} `{id}` cannot change in place; replace the resource", kind.name()),
                ));
            }
            merged.insert(field.clone(), inputs.get(field).cloned().unwrap_or(Json::Null));
            any = true;
        }
        if !any {
            return Ok(current);
        }
        let input = Inputs::new(&merged);
        let mut resource = self.get(kind, id).cloned().ok_or_else(|| not_found(kind, id))?;
        resource.tags.retain(|k, _| k.starts_with("graven:") || k.starts_with("aws:"));
        resource.tags.extend(input.tags()?);
        let mut reconcile = false;
        match &mut resource.spec {
            Spec::Vpc(v) => *v = self.vpc(input)?,
            Spec::Subnet(s) => *s = Subnet { next_host: s.next_host, ..self.subnet(input, Some(id))? },
            Spec::InternetGateway(g) => *g = self.gateway(input, Some(id))?,
            Spec::RouteTable(t) => *t = self.route_table(input, Some(id))?,
            Spec::SecurityGroup(g) => *g = self.security_group(input, g.name.clone(), Some(id))?,
            Spec::LaunchTemplate(t) => t.versions.push(self.template_version(input)?),
            Spec::Image(_) => {}
            Spec::Instance(i) => {
                let sgs = input.strings("security_group_ids")?;
                let vpc = match self.spec_of(Kind::Subnet, &i.subnet_id) {
                    Some(Spec::Subnet(s)) => s.vpc_id.clone(),
                    _ => return Err(missing(Kind::Subnet, "subnet_id", &i.subnet_id)),
                };
                self.check_groups_in(&sgs, &vpc)?;
                i.instance_type = input.string("instance_type")?;
                i.security_group_ids = sgs;
                i.user_data = input.opt_string("user_data")?;
            }
            Spec::AutoScalingGroup(g) => {
                let new = self.group_spec(input)?;
                let template_changed = new.launch_template_id != g.launch_template_id
                    || new.launch_template_version != g.launch_template_version;
                **g = Group {
                    arn: std::mem::take(&mut g.arn),
                    launches: g.launches,
                    failures: if template_changed { 0 } else { g.failures },
                    retry_at: if template_changed { None } else { g.retry_at },
                    last_error: g.last_error.take(),
                    ..new
                };
                reconcile = true;
            }
        }
        self.insert(resource);
        if reconcile {
            self.reconcile(id, settings);
        }
        self.observe_id(kind, id).ok_or_else(|| not_found(kind, id))
    }

    /// Deletes a resource; succeeds if it is already gone.
    pub(crate) fn delete(&mut self, kind: Kind, id: &str, settings: &Settings) -> Result<(), Reject> {
        let Some(resource) = self.get(kind, id) else { return Ok(()) };
        let dependents = self.dependents(kind, id);
        let blocking: Vec<&str> = dependents
            .iter()
            .filter(|(k, _)| match kind {
                Kind::Vpc => true,
                Kind::Subnet => *k == Kind::Instance,
                Kind::SecurityGroup => matches!(k, Kind::Instance | Kind::SecurityGroup),
                _ => false,
            })
            .map(|(_, id)| id.as_str())
            .collect();
        if !blocking.is_empty() {
            let mut list = blocking.iter().take(5).map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ");
            if blocking.len() > 5 {
                list.push_str(&format!(" and {} more", blocking.len() - 5));
            }
            return Err(terminal(
                "DependencyViolation",
                format!("{} `{id}` has dependencies and cannot be deleted: {list}; delete them first", kind.name()),
            ));
        }
        match &resource.spec {
            Spec::Image(i) if i.builtin => {
                return Err(terminal(
                    "InvalidAMIID.Unavailable",
                    format!("`{id}` is a built-in image of the local cloud and cannot be deregistered"),
                ));
            }
            Spec::Instance(i) => {
                let group = i.group.clone();
                self.terminate_instance(id, "terminated through TerminateInstances");
                if let Some(group) = group {
                    self.reconcile(&group, settings);
                }
                return Ok(());
            }
            Spec::AutoScalingGroup(_) => {
                self.delete_group(id);
                return Ok(());
            }
            _ => {}
        }
        if kind == Kind::Subnet {
            // Deleting a subnet removes its route table association.
            for (_, table) in dependents.iter().filter(|(k, _)| *k == Kind::RouteTable) {
                if let Some(mut r) = self.take(Kind::RouteTable, table) {
                    if let Spec::RouteTable(t) = &mut r.spec {
                        t.subnet_ids.retain(|s| s != id);
                    }
                    self.insert(r);
                }
            }
        }
        self.take(kind, id);
        Ok(())
    }

    /// Replaces every tag of a resource (out of band).
    pub(crate) fn set_tags(&mut self, kind: Kind, id: &str, tags: BTreeMap<String, String>) -> Result<(), Reject> {
        let mut r = self.take(kind, id).ok_or_else(|| not_found(kind, id))?;
        r.tags = tags;
        self.insert(r);
        Ok(())
    }

    fn vpc_of(&self, field: &str, vpc_id: &str) -> Result<&Vpc, Reject> {
        match self.spec_of(Kind::Vpc, vpc_id) {
            Some(Spec::Vpc(v)) => Ok(v),
            _ => Err(missing(Kind::Vpc, field, vpc_id)),
        }
    }

    fn vpc(&self, input: Inputs<'_>) -> Result<Vpc, Reject> {
        let cidr_block = input.cidr("cidr_block")?;
        if !(16..=28).contains(&cidr_block.prefix_len()) {
            return Err(terminal(
                "InvalidVpc.Range",
                format!("the CIDR block `{cidr_block}` is invalid: a VPC's prefix length lies between /16 and /28"),
            ));
        }
        Ok(Vpc { cidr_block, enable_dns_hostnames: input.bool("enable_dns_hostnames")? })
    }

    fn subnet(&self, input: Inputs<'_>, this: Option<&str>) -> Result<Subnet, Reject> {
        let vpc_id = input.string("vpc_id")?;
        let cidr_block = input.cidr("cidr_block")?;
        let vpc = self.vpc_of("vpc_id", &vpc_id)?;
        if !(16..=28).contains(&cidr_block.prefix_len()) {
            return Err(terminal(
                "InvalidSubnet.Range",
                format!("the CIDR block `{cidr_block}` is invalid: a subnet's prefix length lies between /16 and /28"),
            ));
        }
        if !vpc.cidr_block.contains(&cidr_block) {
            return Err(terminal(
                "InvalidSubnet.Range",
                format!("the CIDR block `{cidr_block}` is not inside the CIDR block `{}` of VPC `{vpc_id}`", vpc.cidr_block),
            ));
        }
        for (kind, sibling) in self.dependents(Kind::Vpc, &vpc_id) {
            if kind != Kind::Subnet || Some(sibling.as_str()) == this {
                continue;
            }
            if let Some(Spec::Subnet(s)) = self.spec_of(Kind::Subnet, &sibling) {
                if s.cidr_block.contains(&cidr_block.network()) || cidr_block.contains(&s.cidr_block.network()) {
                    return Err(terminal(
                        "InvalidSubnet.Conflict",
                        format!("the CIDR block `{cidr_block}` conflicts with subnet `{sibling}` ({})", s.cidr_block),
                    ));
                }
            }
        }
        Ok(Subnet {
            vpc_id,
            cidr_block,
            availability_zone: input.string("availability_zone")?,
            map_public_ip_on_launch: input.bool("map_public_ip_on_launch")?,
            next_host: 0,
        })
    }

    fn gateway(&self, input: Inputs<'_>, this: Option<&str>) -> Result<Gateway, Reject> {
        let vpc_id = input.opt_string("vpc_id")?;
        if let Some(vpc) = &vpc_id {
            self.vpc_of("vpc_id", vpc)?;
            let other = self
                .dependents(Kind::Vpc, vpc)
                .into_iter()
                .find(|(k, id)| *k == Kind::InternetGateway && Some(id.as_str()) != this);
            if let Some((_, other)) = other {
                return Err(terminal(
                    "Resource.AlreadyAssociated",
                    format!("VPC `{vpc}` already has internet gateway `{other}` attached"),
                ));
            }
        }
        Ok(Gateway { vpc_id })
    }

    fn route_table(&self, input: Inputs<'_>, this: Option<&str>) -> Result<RouteTable, Reject> {
        let vpc_id = input.string("vpc_id")?;
        self.vpc_of("vpc_id", &vpc_id)?;
        let routes = input.routes()?;
        for (n, route) in routes.iter().enumerate() {
            if routes[..n].iter().any(|r| r.destination == route.destination) {
                return Err(terminal(
                    "RouteAlreadyExists",
                    format!("two routes have the destination `{}`", route.destination),
                ));
            }
            match self.spec_of(Kind::InternetGateway, &route.gateway_id) {
                Some(Spec::InternetGateway(g)) if g.vpc_id.as_deref() == Some(vpc_id.as_str()) => {}
                Some(Spec::InternetGateway(_)) => {
                    return Err(terminal(
                        "InvalidParameterValue",
                        format!("internet gateway `{}` is not attached to VPC `{vpc_id}`", route.gateway_id),
                    ));
                }
                _ => return Err(terminal("InvalidGatewayID.NotFound", format!("the gateway `{}` does not exist", route.gateway_id))),
            }
        }
        let subnet_ids = input.strings("subnet_ids")?;
        for subnet in &subnet_ids {
            match self.spec_of(Kind::Subnet, subnet) {
                Some(Spec::Subnet(s)) if s.vpc_id == vpc_id => {}
                Some(Spec::Subnet(s)) => {
                    return Err(terminal(
                        "InvalidParameterValue",
                        format!("subnet `{subnet}` is in VPC `{}`, not in the route table's VPC `{vpc_id}`", s.vpc_id),
                    ));
                }
                _ => return Err(missing(Kind::Subnet, "subnet_ids", subnet)),
            }
            let other = self
                .dependents(Kind::Subnet, subnet)
                .into_iter()
                .find(|(k, id)| *k == Kind::RouteTable && Some(id.as_str()) != this);
            if let Some((_, other)) = other {
                return Err(terminal(
                    "Resource.AlreadyAssociated",
                    format!("subnet `{subnet}` is already associated with route table `{other}`"),
                ));
            }
        }
        Ok(RouteTable { vpc_id, routes, subnet_ids })
    }

    fn security_group(&self, input: Inputs<'_>, name: String, this: Option<&str>) -> Result<SecurityGroup, Reject> {
        let vpc_id = input.string("vpc_id")?;
        self.vpc_of("vpc_id", &vpc_id)?;
        if let Some(other) = self.by_name(Kind::SecurityGroup, &format!("{vpc_id}/{name}")) {
            if Some(other) != this {
                return Err(terminal(
                    "InvalidGroup.Duplicate",
                    format!("a security group named `{name}` already exists in VPC `{vpc_id}`: `{other}`"),
                ));
            }
        }
        let ingress = input.rules("ingress")?;
        let egress = input.rules("egress")?;
        for rule in ingress.iter().chain(&egress) {
            if let Some(source) = &rule.source_security_group_id {
                if Some(source.as_str()) != this && self.get(Kind::SecurityGroup, source).is_none() {
                    return Err(missing(Kind::SecurityGroup, "source_security_group_id", source));
                }
            }
        }
        Ok(SecurityGroup { vpc_id, name, description: input.opt_string("description")?, ingress, egress })
    }

    /// Checks that security groups `ids` exist and belong to VPC `vpc`.
    fn check_groups_in(&self, ids: &[String], vpc: &str) -> Result<(), Reject> {
        for sg in ids {
            match self.spec_of(Kind::SecurityGroup, sg) {
                Some(Spec::SecurityGroup(g)) if g.vpc_id == vpc => {}
                Some(Spec::SecurityGroup(g)) => {
                    return Err(terminal(
                        "InvalidParameter",
                        format!("security group `{sg}` belongs to VPC `{}`, not to `{vpc}`", g.vpc_id),
                    ));
                }
                _ => return Err(missing(Kind::SecurityGroup, "security_group_ids", sg)),
            }
        }
        Ok(())
    }

    fn template_version(&self, input: Inputs<'_>) -> Result<TemplateVersion, Reject> {
        let image_id = input.string("image_id")?;
        if self.get(Kind::Image, &image_id).is_none() {
            return Err(missing(Kind::Image, "image_id", &image_id));
        }
        let security_group_ids = input.strings("security_group_ids")?;
        for sg in &security_group_ids {
            if self.get(Kind::SecurityGroup, sg).is_none() {
                return Err(missing(Kind::SecurityGroup, "security_group_ids", sg));
            }
        }
        Ok(TemplateVersion {
            image_id,
            instance_type: input.string("instance_type")?,
            security_group_ids,
            user_data: input.opt_string("user_data")?,
            key_name: input.opt_string("key_name")?,
            tags: input.tags()?,
        })
    }

    fn image(&self, input: Inputs<'_>, this: Option<&str>) -> Result<Image, Reject> {
        let name = input.string("name")?;
        let text = input.string("version")?;
        let version = semver::Version::parse(&text).map_err(|e| {
            terminal("InvalidParameterValue", format!("`version`: `{text}` is not a semantic version ({e})"))
        })?;
        let source = input.string("source_image_id")?;
        let Some(Spec::Image(from)) = self.spec_of(Kind::Image, &source) else {
            return Err(missing(Kind::Image, "source_image_id", &source));
        };
        if let Some(other) = self.by_name(Kind::Image, &format!("{name}@{version}")) {
            if Some(other) != this {
                return Err(terminal(
                    "InvalidAMIName.Duplicate",
                    format!("image `{name}` version {version} is already registered as `{other}`"),
                ));
            }
        }
        Ok(Image { name, version, source_image_id: Some(source), digest: from.digest.clone(), builtin: false })
    }

    fn group_spec(&self, input: Inputs<'_>) -> Result<Group, Reject> {
        let launch_template_id = input.string("launch_template_id")?;
        let launch_template_version = input.u64("launch_template_version")?;
        let Some(Spec::LaunchTemplate(template)) = self.spec_of(Kind::LaunchTemplate, &launch_template_id) else {
            return Err(terminal(
                "ValidationError",
                format!("`launch_template_id`: launch template `{launch_template_id}` does not exist"),
            ));
        };
        if template.version(launch_template_version).is_none() {
            return Err(terminal(
                "ValidationError",
                format!(
                    "`launch_template_version`: launch template `{launch_template_id}` has no version \
                     {launch_template_version} (latest: {})",
                    template.latest()
                ),
            ));
        }
        let (min, desired, max) = (input.u32("min_size")?, input.u32("desired_capacity")?, input.u32("max_size")?);
        check_capacity(min, desired, max)?;
        let subnet_ids = input.strings("subnet_ids")?;
        if subnet_ids.is_empty() {
            return Err(terminal("ValidationError", "`subnet_ids`: a group needs at least one subnet"));
        }
        let mut vpc = None;
        for subnet in &subnet_ids {
            let Some(Spec::Subnet(s)) = self.spec_of(Kind::Subnet, subnet) else {
                return Err(terminal("ValidationError", format!("`subnet_ids`: the subnet `{subnet}` does not exist")));
            };
            match vpc {
                Some(v) if v != s.vpc_id.as_str() => {
                    return Err(terminal("ValidationError", "`subnet_ids`: the subnets must all be in one VPC"));
                }
                _ => vpc = Some(s.vpc_id.as_str()),
            }
        }
        let health_check_type = input.opt_string("health_check_type")?.unwrap_or_else(|| "EC2".to_owned());
        if !matches!(health_check_type.as_str(), "EC2" | "ELB") {
            return Err(terminal(
                "ValidationError",
                format!("`health_check_type`: `{health_check_type}` is not `EC2` or `ELB`"),
            ));
        }
        Ok(Group {
            launch_template_id,
            launch_template_version,
            min_size: min,
            desired_capacity: desired,
            max_size: max,
            subnet_ids,
            health_check_type,
            health_check_grace_period: input.opt_u64("health_check_grace_period")?.unwrap_or(0),
            arn: String::new(),
            launches: 0,
            failures: 0,
            retry_at: None,
            last_error: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::provider::{ErrorKind, Provider};

    use super::super::LocalCloud;
    use super::super::testing::{create, map, network, web};

    #[tokio::test]
    async fn a_subnet_must_lie_inside_its_vpc_and_not_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let outside = create(&cloud, "s3", "aws:ec2:Subnet",
            json!({"vpc_id": net.vpc, "cidr_block": "10.1.0.0/24", "availability_zone": "local-1a"}))
            .await
            .unwrap_err();
        assert_eq!((outside.kind, outside.code.as_str()), (ErrorKind::Terminal, "InvalidSubnet.Range"));
        assert!(outside.message.contains("not inside the CIDR block `10.0.0.0/16`"), "{outside}");
        let overlap = create(&cloud, "s4", "aws:ec2:Subnet",
            json!({"vpc_id": net.vpc, "cidr_block": "10.0.0.0/23", "availability_zone": "local-1a"}))
            .await
            .unwrap_err();
        assert_eq!((overlap.kind, overlap.code.as_str()), (ErrorKind::Terminal, "InvalidSubnet.Conflict"));
        assert!(overlap.message.contains(&net.subnets[0]), "{overlap}");
        let no_vpc = create(&cloud, "s5", "aws:ec2:Subnet",
            json!({"vpc_id": "vpc-00000000000000099", "cidr_block": "10.0.9.0/24", "availability_zone": "a"}))
            .await
            .unwrap_err();
        assert_eq!(no_vpc.code, "InvalidVpcID.NotFound");
        assert_eq!(cloud.resources("aws:ec2:Subnet").len(), 2, "refused creates leave nothing");
    }

    #[tokio::test]
    async fn a_vpc_with_subnets_cannot_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let e = cloud.delete("aws:ec2:Vpc", &net.vpc).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_str(), e.call.as_str()), (ErrorKind::Terminal, "DependencyViolation", "DeleteVpc"));
        assert!(e.message.contains(&net.subnets[0]) && e.message.contains(&net.sg), "{e}");
        for s in &net.subnets {
            cloud.delete("aws:ec2:Subnet", s).await.unwrap();
        }
        cloud.delete("aws:ec2:SecurityGroup", &net.sg).await.unwrap();
        cloud.delete("aws:ec2:Vpc", &net.vpc).await.unwrap();
        cloud.delete("aws:ec2:Vpc", &net.vpc).await.expect("deleting what is gone succeeds");
        assert!(cloud.resources("aws:ec2:Vpc").is_empty());
    }

    #[tokio::test]
    async fn security_groups_must_be_in_the_instance_subnets_vpc() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let other = create(&cloud, "vpc2", "aws:ec2:Vpc", json!({"cidr_block": "10.1.0.0/16"})).await.unwrap();
        let sg2 = create(&cloud, "sg2", "aws:ec2:SecurityGroup",
            json!({"vpc_id": other.physical_id, "name": "other", "egress": [], "ingress": []}))
            .await
            .unwrap();
        let run = |sg: String| {
            json!({"image_id": web("1.4.0"), "instance_type": "t3.micro", "subnet_id": net.subnets[0],
                   "security_group_ids": [sg], "user_data": null, "tags": {}})
        };
        let e = create(&cloud, "i1", "aws:ec2:Instance", run(sg2.physical_id.clone())).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_str(), e.call.as_str()), (ErrorKind::Terminal, "InvalidParameter", "RunInstances"));
        assert!(e.message.contains("different networks"), "{e}");
        let i = create(&cloud, "i2", "aws:ec2:Instance", run(net.sg.clone())).await.unwrap();
        let ip: std::net::Ipv4Addr = i.outputs["private_ip"].as_str().unwrap().parse().unwrap();
        assert!("10.0.1.0/24".parse::<ipnet::Ipv4Net>().unwrap().contains(&ip), "{ip}");
        let e = cloud.delete("aws:ec2:SecurityGroup", &net.sg).await.unwrap_err();
        assert_eq!(e.code, "DependencyViolation");
        let e = cloud.delete("aws:ec2:Subnet", &net.subnets[0]).await.unwrap_err();
        assert_eq!(e.code, "DependencyViolation");
        let bad_image = create(&cloud, "i3", "aws:ec2:Instance",
            json!({"image_id": "ami-00000000000000404", "instance_type": "t3.micro", "subnet_id": net.subnets[0]}))
            .await
            .unwrap_err();
        assert_eq!(bad_image.code, "InvalidAMIID.NotFound");
        cloud.delete("aws:ec2:Instance", &i.physical_id).await.unwrap();
        cloud.delete("aws:ec2:SecurityGroup", &net.sg).await.expect("no live instance uses it");
    }

    #[tokio::test]
    async fn a_launch_template_update_makes_a_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let lt = create(&cloud, "app.lt", "aws:ec2:LaunchTemplate",
            json!({"name": null, "image_id": web("1.4.0"), "instance_type": "t3.micro",
                   "security_group_ids": [net.sg], "user_data": null, "key_name": null}))
            .await
            .unwrap();
        assert_eq!(lt.outputs["latest_version"], 1);
        assert_eq!(lt.inputs["name"], "test-app-lt-tok-app.");
        let new = map(json!({"image_id": web("1.5.0"), "user_data": "echo hi"}));
        let changed = ["image_id".to_owned(), "user_data".to_owned()];
        let v2 = cloud.update("aws:ec2:LaunchTemplate", &lt.physical_id, &new, &changed).await.unwrap();
        assert_eq!(v2.outputs["latest_version"], 2);
        assert_eq!(v2.inputs["image_id"], web("1.5.0"));
        assert_eq!(v2.inputs["instance_type"], "t3.micro", "unchanged fields carry over");
        let v1 = cloud.launch_template_version(&lt.physical_id, 1).unwrap();
        assert_eq!(v1["image_id"], web("1.4.0"));
        assert!(v1["user_data"].is_null());
        assert_eq!(cloud.api_calls_by_name()["CreateLaunchTemplateVersion"], 1);
        let e = cloud
            .update("aws:ec2:LaunchTemplate", &lt.physical_id, &map(json!({"name": "x"})), &["name".to_owned()])
            .await
            .unwrap_err();
        assert!(e.message.contains("cannot change in place"), "{e}");
    }

    #[tokio::test]
    async fn a_token_names_one_resource() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let again = create(&cloud, "vpc", "aws:ec2:Vpc", json!({"cidr_block": "10.0.0.0/16"})).await.unwrap();
        assert_eq!(again.physical_id, net.vpc, "the same token returns the same VPC");
        assert_eq!(cloud.resources("aws:ec2:Vpc").len(), 1);
        let found = cloud.find_by_token("aws:ec2:Vpc", "tok-vpc-0123456789").await.unwrap().unwrap();
        assert_eq!(found.physical_id, net.vpc);
        assert_eq!(found.tags["graven:token"], "tok-vpc-0123456789");
        assert_eq!(found.tags["graven:stack"], "test");
        assert_eq!(found.tags["team"], "web");
        assert_eq!(found.inputs["tags"], json!({"team": "web"}), "inputs show the user's tags only");
        assert!(cloud.find_by_token("aws:ec2:Subnet", "tok-vpc-0123456789").await.unwrap().is_none());
        assert_eq!(net.vpc, "vpc-00000000000000001", "ids are deterministic in a fresh cloud");
    }

    #[tokio::test]
    async fn a_batched_read_is_one_call_with_none_for_the_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        cloud.delete_out_of_band("aws:ec2:Subnet", &net.subnets[1]).unwrap();
        let before = cloud.api_calls();
        let read = cloud.read("aws:ec2:Subnet", &net.subnets).await.unwrap();
        assert_eq!(cloud.api_calls(), before + 1);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].as_ref().unwrap().inputs["cidr_block"], "10.0.1.0/24");
        assert!(read[1].is_none());
    }

    #[tokio::test]
    async fn group_capacities_and_references_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let lt = create(&cloud, "lt", "aws:ec2:LaunchTemplate",
            json!({"image_id": web("1.4.0"), "instance_type": "t3.micro"}))
            .await
            .unwrap();
        let group = |desired: u32, version: u64| {
            json!({"name": null, "launch_template_id": lt.physical_id, "launch_template_version": version,
                   "min_size": 1, "desired_capacity": desired, "max_size": 3, "subnet_ids": net.subnets})
        };
        let e = create(&cloud, "asg", "aws:autoscaling:AutoScalingGroup", group(4, 1)).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.kind), ("ValidationError", ErrorKind::Terminal));
        let e = create(&cloud, "asg", "aws:autoscaling:AutoScalingGroup", group(2, 2)).await.unwrap_err();
        assert!(e.message.contains("has no version 2"), "{e}");
        let asg = create(&cloud, "web.asg", "aws:autoscaling:AutoScalingGroup", group(2, 1)).await.unwrap();
        assert_eq!(asg.physical_id, "test-web-asg-tok-web.");
        let arn = asg.outputs["arn"].as_str().unwrap();
        assert!(arn.starts_with("arn:aws:autoscaling:local:000000000000:autoScalingGroup:"), "{arn}");
        assert!(arn.ends_with(":autoScalingGroupName/test-web-asg-tok-web."), "{arn}");
        let e = cloud.set_capacity(&asg.physical_id, 0, 5, 4).await.unwrap_err();
        assert_eq!(e.code, "ValidationError");
        let e = cloud.set_capacity("nope", 0, 1, 1).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
    }
}
