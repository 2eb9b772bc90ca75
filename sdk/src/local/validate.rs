//! Validation: a request's inputs turned into a checked spec, or refused.
//!
//! Each builder reads the inputs of one kind and checks them against the cloud: ranges (a
//! subnet inside its VPC, prefix lengths), conflicts (overlapping subnets, duplicate names, a
//! second gateway on a VPC), and references (they exist and belong together). Builders only
//! read the model, so a refused request changes nothing. `this` is the resource being updated,
//! which does not conflict with itself.

use super::fleet::{Group, check_capacity};
use super::inputs::Inputs;
use super::model::{
    Gateway, Image, Kind, Model, Reject, RouteTable, SecurityGroup, Spec, Subnet, TemplateVersion,
    Vpc,
};

pub(crate) fn terminal(code: &'static str, message: impl Into<String>) -> Reject {
    Reject::terminal(code, message)
}

pub(crate) fn not_found(kind: Kind, id: &str) -> Reject {
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
pub(crate) fn missing(kind: Kind, field: &str, id: &str) -> Reject {
    let e = not_found(kind, id);
    terminal(e.code, format!("`{field}`: {} `{id}` does not exist", kind.name()))
}

/// A VPC's spec from its inputs.
pub(crate) fn vpc(input: Inputs<'_>) -> Result<Vpc, Reject> {
    let cidr_block = input.cidr("cidr_block")?;
    if !(16..=28).contains(&cidr_block.prefix_len()) {
        return Err(terminal(
            "InvalidVpc.Range",
            format!(
                "the CIDR block `{cidr_block}` is invalid: a VPC's prefix length lies between /16 and /28"
            ),
        ));
    }
    Ok(Vpc { cidr_block, enable_dns_hostnames: input.bool("enable_dns_hostnames")? })
}

impl Model {
    pub(crate) fn spec_of(&self, kind: Kind, id: &str) -> Option<&Spec> {
        self.get(kind, id).map(|r| &r.spec)
    }

    pub(crate) fn vpc_of(&self, field: &str, vpc_id: &str) -> Result<&Vpc, Reject> {
        match self.spec_of(Kind::Vpc, vpc_id) {
            Some(Spec::Vpc(v)) => Ok(v),
            _ => Err(missing(Kind::Vpc, field, vpc_id)),
        }
    }

    pub(crate) fn subnet(&self, input: Inputs<'_>, this: Option<&str>) -> Result<Subnet, Reject> {
        let vpc_id = input.string("vpc_id")?;
        let cidr_block = input.cidr("cidr_block")?;
        let vpc = self.vpc_of("vpc_id", &vpc_id)?;
        if !(16..=28).contains(&cidr_block.prefix_len()) {
            return Err(terminal(
                "InvalidSubnet.Range",
                format!(
                    "the CIDR block `{cidr_block}` is invalid: a subnet's prefix length lies between /16 and /28"
                ),
            ));
        }
        if !vpc.cidr_block.contains(&cidr_block) {
            return Err(terminal(
                "InvalidSubnet.Range",
                format!(
                    "the CIDR block `{cidr_block}` is not inside the CIDR block `{}` of VPC `{vpc_id}`",
                    vpc.cidr_block
                ),
            ));
        }
        if let Some(sibling) =
            self.overlapping_subnet(&vpc_id, cidr_block).filter(|s| Some(*s) != this)
        {
            let theirs = match self.spec_of(Kind::Subnet, sibling) {
                Some(Spec::Subnet(s)) => s.cidr_block.to_string(),
                _ => String::new(),
            };
            return Err(terminal(
                "InvalidSubnet.Conflict",
                format!(
                    "the CIDR block `{cidr_block}` conflicts with subnet `{sibling}` ({theirs})"
                ),
            ));
        }
        Ok(Subnet {
            vpc_id,
            cidr_block,
            availability_zone: input.string("availability_zone")?,
            map_public_ip_on_launch: input.bool("map_public_ip_on_launch")?,
            next_host: 0,
        })
    }

    pub(crate) fn gateway(&self, input: Inputs<'_>, this: Option<&str>) -> Result<Gateway, Reject> {
        let vpc_id = input.opt_string("vpc_id")?;
        if let Some(vpc) = &vpc_id {
            self.vpc_of("vpc_id", vpc)?;
            let other = self
                .dependents_of(Kind::Vpc, vpc, Kind::InternetGateway)
                .find(|id| Some(*id) != this);
            if let Some(other) = other {
                return Err(terminal(
                    "Resource.AlreadyAssociated",
                    format!("VPC `{vpc}` already has internet gateway `{other}` attached"),
                ));
            }
        }
        Ok(Gateway { vpc_id })
    }

    pub(crate) fn route_table(
        &self,
        input: Inputs<'_>,
        this: Option<&str>,
    ) -> Result<RouteTable, Reject> {
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
                        format!(
                            "internet gateway `{}` is not attached to VPC `{vpc_id}`",
                            route.gateway_id
                        ),
                    ));
                }
                _ => {
                    return Err(terminal(
                        "InvalidGatewayID.NotFound",
                        format!("the gateway `{}` does not exist", route.gateway_id),
                    ));
                }
            }
        }
        let subnet_ids = input.strings("subnet_ids")?;
        for subnet in &subnet_ids {
            match self.spec_of(Kind::Subnet, subnet) {
                Some(Spec::Subnet(s)) if s.vpc_id == vpc_id => {}
                Some(Spec::Subnet(s)) => {
                    return Err(terminal(
                        "InvalidParameterValue",
                        format!(
                            "subnet `{subnet}` is in VPC `{}`, not in the route table's VPC `{vpc_id}`",
                            s.vpc_id
                        ),
                    ));
                }
                _ => return Err(missing(Kind::Subnet, "subnet_ids", subnet)),
            }
            let other = self
                .dependents_of(Kind::Subnet, subnet, Kind::RouteTable)
                .find(|id| Some(*id) != this);
            if let Some(other) = other {
                return Err(terminal(
                    "Resource.AlreadyAssociated",
                    format!("subnet `{subnet}` is already associated with route table `{other}`"),
                ));
            }
        }
        Ok(RouteTable { vpc_id, routes, subnet_ids })
    }

    pub(crate) fn security_group(
        &self,
        input: Inputs<'_>,
        name: String,
        this: Option<&str>,
    ) -> Result<SecurityGroup, Reject> {
        let vpc_id = input.string("vpc_id")?;
        self.vpc_of("vpc_id", &vpc_id)?;
        if let Some(other) = self.by_name(Kind::SecurityGroup, &format!("{vpc_id}/{name}")) {
            if Some(other) != this {
                return Err(terminal(
                    "InvalidGroup.Duplicate",
                    format!(
                        "a security group named `{name}` already exists in VPC `{vpc_id}`: `{other}`"
                    ),
                ));
            }
        }
        let ingress = input.rules("ingress")?;
        let egress = input.rules("egress")?;
        for rule in ingress.iter().chain(&egress) {
            if let Some(source) = &rule.source_security_group_id {
                if Some(source.as_str()) != this && self.get(Kind::SecurityGroup, source).is_none()
                {
                    return Err(missing(Kind::SecurityGroup, "source_security_group_id", source));
                }
            }
        }
        Ok(SecurityGroup {
            vpc_id,
            name,
            description: input.opt_string("description")?,
            ingress,
            egress,
        })
    }

    /// Checks that security groups `ids` exist and belong to VPC `vpc`.
    pub(crate) fn check_groups_in(&self, ids: &[String], vpc: &str) -> Result<(), Reject> {
        for sg in ids {
            match self.spec_of(Kind::SecurityGroup, sg) {
                Some(Spec::SecurityGroup(g)) if g.vpc_id == vpc => {}
                Some(Spec::SecurityGroup(g)) => {
                    return Err(terminal(
                        "InvalidParameter",
                        format!(
                            "security group `{sg}` belongs to VPC `{}`, not to `{vpc}`",
                            g.vpc_id
                        ),
                    ));
                }
                _ => return Err(missing(Kind::SecurityGroup, "security_group_ids", sg)),
            }
        }
        Ok(())
    }

    pub(crate) fn template_version(&self, input: Inputs<'_>) -> Result<TemplateVersion, Reject> {
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

    pub(crate) fn image(&self, input: Inputs<'_>, this: Option<&str>) -> Result<Image, Reject> {
        let name = input.string("name")?;
        let text = input.string("version")?;
        let version = semver::Version::parse(&text).map_err(|e| {
            terminal(
                "InvalidParameterValue",
                format!("`version`: `{text}` is not a semantic version ({e})"),
            )
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
        Ok(Image {
            name,
            version,
            source_image_id: Some(source),
            digest: from.digest.clone(),
            builtin: false,
        })
    }

    pub(crate) fn group_spec(&self, input: Inputs<'_>) -> Result<Group, Reject> {
        let launch_template_id = input.string("launch_template_id")?;
        let launch_template_version = input.u64("launch_template_version")?;
        let Some(Spec::LaunchTemplate(template)) =
            self.spec_of(Kind::LaunchTemplate, &launch_template_id)
        else {
            return Err(terminal(
                "ValidationError",
                format!(
                    "`launch_template_id`: launch template `{launch_template_id}` does not exist"
                ),
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
        let (min, desired, max) =
            (input.u32("min_size")?, input.u32("desired_capacity")?, input.u32("max_size")?);
        check_capacity(min, desired, max)?;
        let subnet_ids = input.strings("subnet_ids")?;
        if subnet_ids.is_empty() {
            return Err(terminal(
                "ValidationError",
                "`subnet_ids`: a group needs at least one subnet",
            ));
        }
        let mut vpc = None;
        for subnet in &subnet_ids {
            let Some(Spec::Subnet(s)) = self.spec_of(Kind::Subnet, subnet) else {
                return Err(terminal(
                    "ValidationError",
                    format!("`subnet_ids`: the subnet `{subnet}` does not exist"),
                ));
            };
            match vpc {
                Some(v) if v != s.vpc_id.as_str() => {
                    return Err(terminal(
                        "ValidationError",
                        "`subnet_ids`: the subnets must all be in one VPC",
                    ));
                }
                _ => vpc = Some(s.vpc_id.as_str()),
            }
        }
        let health_check_type =
            input.opt_string("health_check_type")?.unwrap_or_else(|| "EC2".to_owned());
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
    use super::super::testing::{create, network, web};

    #[tokio::test]
    async fn a_subnet_must_lie_inside_its_vpc_and_not_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let outside = create(&cloud, "s3", "aws:ec2:Subnet",
            json!({"vpc_id": net.vpc, "cidr_block": "10.1.0.0/24", "availability_zone": "local-1a"}))
            .await
            .unwrap_err();
        assert_eq!(
            (outside.kind, outside.code.as_str()),
            (ErrorKind::Terminal, "InvalidSubnet.Range")
        );
        assert!(outside.message.contains("not inside the CIDR block `10.0.0.0/16`"), "{outside}");
        let overlap = create(&cloud, "s4", "aws:ec2:Subnet",
            json!({"vpc_id": net.vpc, "cidr_block": "10.0.0.0/23", "availability_zone": "local-1a"}))
            .await
            .unwrap_err();
        assert_eq!(
            (overlap.kind, overlap.code.as_str()),
            (ErrorKind::Terminal, "InvalidSubnet.Conflict")
        );
        assert!(overlap.message.contains(&net.subnets[0]), "{overlap}");
        let no_vpc = create(&cloud, "s5", "aws:ec2:Subnet",
            json!({"vpc_id": "vpc-00000000000000099", "cidr_block": "10.0.9.0/24", "availability_zone": "a"}))
            .await
            .unwrap_err();
        assert_eq!(no_vpc.code, "InvalidVpcID.NotFound");
        assert_eq!(cloud.resources("aws:ec2:Subnet").len(), 2, "refused creates leave nothing");
    }

    #[tokio::test]
    async fn security_groups_must_be_in_the_instance_subnets_vpc() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let other = create(&cloud, "vpc2", "aws:ec2:Vpc", json!({"cidr_block": "10.1.0.0/16"}))
            .await
            .unwrap();
        let sg2 = create(
            &cloud,
            "sg2",
            "aws:ec2:SecurityGroup",
            json!({"vpc_id": other.physical_id, "name": "other", "egress": [], "ingress": []}),
        )
        .await
        .unwrap();
        let run = |sg: String| {
            json!({"image_id": web("1.4.0"), "instance_type": "t3.micro", "subnet_id": net.subnets[0],
                   "security_group_ids": [sg], "user_data": null, "tags": {}})
        };
        let e = create(&cloud, "i1", "aws:ec2:Instance", run(sg2.physical_id.clone()))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str(), e.call.as_str()),
            (ErrorKind::Terminal, "InvalidParameter", "RunInstances")
        );
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
    async fn group_capacities_and_references_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let lt = create(
            &cloud,
            "lt",
            "aws:ec2:LaunchTemplate",
            json!({"image_id": web("1.4.0"), "instance_type": "t3.micro"}),
        )
        .await
        .unwrap();
        let group = |desired: u32, version: u64| {
            json!({"name": null, "launch_template_id": lt.physical_id, "launch_template_version": version,
                   "min_size": 1, "desired_capacity": desired, "max_size": 3, "subnet_ids": net.subnets})
        };
        let e = create(&cloud, "asg", "aws:autoscaling:AutoScalingGroup", group(4, 1))
            .await
            .unwrap_err();
        assert_eq!((e.code.as_str(), e.kind), ("ValidationError", ErrorKind::Terminal));
        let e = create(&cloud, "asg", "aws:autoscaling:AutoScalingGroup", group(2, 2))
            .await
            .unwrap_err();
        assert!(e.message.contains("has no version 2"), "{e}");
        let asg = create(&cloud, "web.asg", "aws:autoscaling:AutoScalingGroup", group(2, 1))
            .await
            .unwrap();
        assert_eq!(asg.physical_id, "test-web-asg-tok-web.");
        let arn = asg.outputs["arn"].as_str().unwrap();
        assert!(
            arn.starts_with("arn:aws:autoscaling:local:000000000000:autoScalingGroup:"),
            "{arn}"
        );
        assert!(arn.ends_with(":autoScalingGroupName/test-web-asg-tok-web."), "{arn}");
        let e = cloud.set_capacity(&asg.physical_id, 0, 5, 4).await.unwrap_err();
        assert_eq!(e.code, "ValidationError");
        let e = cloud.set_capacity("nope", 0, 1, 1).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
    }
}
