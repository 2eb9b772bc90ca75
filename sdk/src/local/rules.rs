//! The rules: how each kind is created, changed and deleted, and what the cloud refuses.
//!
//! Every check runs before anything changes (the inputs are checked by [`super::validate`]), so
//! a refused call has no effect. Refusals are terminal errors with AWS's codes
//! (`InvalidSubnet.Range`, `DependencyViolation`, ...) and a message that says what is wrong.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::provider::{Create, Observed, tags};

use super::faults::Settings;
use super::fleet::Group;
use super::inputs::Inputs;
use super::instance::Launch;
use super::model::{Kind, LaunchTemplate, Model, Reject, Resource, Spec, Subnet, observe};
use super::validate::{missing, not_found, terminal, vpc};

/// The fields that an update may change in place, per kind (others need a replacement).
fn mutable(kind: Kind, field: &str) -> bool {
    match kind {
        Kind::Vpc => matches!(field, "enable_dns_hostnames" | "tags"),
        Kind::Subnet => matches!(field, "map_public_ip_on_launch" | "tags"),
        Kind::InternetGateway => matches!(field, "vpc_id" | "tags"),
        Kind::RouteTable => matches!(field, "routes" | "subnet_ids" | "tags"),
        Kind::SecurityGroup => matches!(field, "ingress" | "egress" | "tags"),
        Kind::LaunchTemplate | Kind::AutoScalingGroup => field != "name",
        Kind::Instance => {
            matches!(field, "instance_type" | "security_group_ids" | "user_data" | "tags")
        }
        Kind::Image => field == "tags",
    }
}

/// `{stack}-{logical id, non-alphanumerics as '-'}-{first 8 chars of the token}`.
pub(crate) fn generated_name(request: &Create<'_>) -> String {
    let stack = request.tags.get(tags::STACK).map_or("graven", String::as_str);
    let id: String =
        request.id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let token: String = request.token.chars().take(8).collect();
    format!("{stack}-{id}-{token}")
}

impl Model {
    /// Creates a resource, or returns the one created earlier with the same token.
    pub(crate) fn create(
        &mut self,
        kind: Kind,
        request: &Create<'_>,
        settings: &Settings,
    ) -> Result<Observed, Reject> {
        if let Some(observed) = self.by_token(kind, request.token).and_then(observe) {
            return Ok(observed);
        }
        let input = Inputs::new(request.inputs);
        let mut all_tags = input.tags()?;
        all_tags.extend(request.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        all_tags.insert(tags::TOKEN.to_owned(), request.token.to_owned());
        let name =
            || input.opt_string("name").map(|n| n.unwrap_or_else(|| generated_name(request)));
        let spec = match kind {
            Kind::Vpc => Spec::Vpc(vpc(input)?),
            Kind::Subnet => Spec::Subnet(self.subnet(input, None)?),
            Kind::InternetGateway => Spec::InternetGateway(self.gateway(input, None)?),
            Kind::RouteTable => Spec::RouteTable(self.route_table(input, None)?),
            Kind::SecurityGroup => {
                Spec::SecurityGroup(self.security_group(input, name()?, None)?)
            }
            Kind::LaunchTemplate => {
                let name = name()?;
                if self.by_name(Kind::LaunchTemplate, &name).is_some() {
                    return Err(terminal(
                        "InvalidLaunchTemplateName.AlreadyExistsException",
                        format!("a launch template named `{name}` already exists"),
                    ));
                }
                Spec::LaunchTemplate(LaunchTemplate {
                    name,
                    versions: vec![self.template_version(input)?],
                })
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
                    format!(
                        "`{field}` of {} `{id}` cannot change in place; replace the resource",
                        kind.name()
                    ),
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
            Spec::Vpc(v) => *v = vpc(input)?,
            Spec::Subnet(s) => {
                *s = Subnet { next_host: s.next_host, ..self.subnet(input, Some(id))? }
            }
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
    pub(crate) fn delete(
        &mut self,
        kind: Kind,
        id: &str,
        settings: &Settings,
    ) -> Result<(), Reject> {
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
            let mut list =
                blocking.iter().take(5).map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ");
            if blocking.len() > 5 {
                list = format!("{list} and {} more", blocking.len() - 5);
            }
            return Err(terminal(
                "DependencyViolation",
                format!(
                    "{} `{id}` has dependencies and cannot be deleted: {list}; delete them first",
                    kind.name()
                ),
            ));
        }
        match &resource.spec {
            Spec::Image(i) if i.builtin => {
                return Err(terminal(
                    "InvalidAMIID.Unavailable",
                    format!(
                        "`{id}` is a built-in image of the local cloud and cannot be deregistered"
                    ),
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
    pub(crate) fn set_tags(
        &mut self,
        kind: Kind,
        id: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), Reject> {
        let mut r = self.take(kind, id).ok_or_else(|| not_found(kind, id))?;
        r.tags = tags;
        self.insert(r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::provider::{ErrorKind, Provider};

    use super::super::LocalCloud;
    use super::super::testing::{create, map, network, web};

    #[tokio::test]
    async fn a_vpc_with_subnets_cannot_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let e = cloud.delete("aws:ec2:Vpc", &net.vpc).await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str(), e.call.as_str()),
            (ErrorKind::Terminal, "DependencyViolation", "DeleteVpc")
        );
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
    async fn a_launch_template_update_makes_a_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let lt = create(
            &cloud,
            "app.lt",
            "aws:ec2:LaunchTemplate",
            json!({"name": null, "image_id": web("1.4.0"), "instance_type": "t3.micro",
                   "security_group_ids": [net.sg], "user_data": null, "key_name": null}),
        )
        .await
        .unwrap();
        assert_eq!(lt.outputs["latest_version"], 1);
        assert_eq!(lt.inputs["name"], "test-app-lt-tok-app.");
        let new = map(json!({"image_id": web("1.5.0"), "user_data": "echo hi"}));
        let changed = ["image_id".to_owned(), "user_data".to_owned()];
        let v2 =
            cloud.update("aws:ec2:LaunchTemplate", &lt.physical_id, &new, &changed).await.unwrap();
        assert_eq!(v2.outputs["latest_version"], 2);
        assert_eq!(v2.inputs["image_id"], web("1.5.0"));
        assert_eq!(v2.inputs["instance_type"], "t3.micro", "unchanged fields carry over");
        let v1 = cloud.launch_template_version(&lt.physical_id, 1).unwrap();
        assert_eq!(v1["image_id"], web("1.4.0"));
        assert!(v1["user_data"].is_null());
        assert_eq!(cloud.api_calls_by_name()["CreateLaunchTemplateVersion"], 1);
        let e = cloud
            .update(
                "aws:ec2:LaunchTemplate",
                &lt.physical_id,
                &map(json!({"name": "x"})),
                &["name".to_owned()],
            )
            .await
            .unwrap_err();
        assert!(e.message.contains("cannot change in place"), "{e}");
    }

    #[tokio::test]
    async fn a_token_names_one_resource() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let again = create(&cloud, "vpc", "aws:ec2:Vpc", json!({"cidr_block": "10.0.0.0/16"}))
            .await
            .unwrap();
        assert_eq!(again.physical_id, net.vpc, "the same token returns the same VPC");
        assert_eq!(cloud.resources("aws:ec2:Vpc").len(), 1);
        let found =
            cloud.find_by_token("aws:ec2:Vpc", "tok-vpc-0123456789").await.unwrap().unwrap();
        assert_eq!(found.physical_id, net.vpc);
        assert_eq!(found.tags["graven:token"], "tok-vpc-0123456789");
        assert_eq!(found.tags["graven:stack"], "test");
        assert_eq!(found.tags["team"], "web");
        assert_eq!(
            found.inputs["tags"],
            json!({"team": "web"}),
            "inputs show the user's tags only"
        );
        assert!(
            cloud.find_by_token("aws:ec2:Subnet", "tok-vpc-0123456789").await.unwrap().is_none()
        );
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
}
