//! Instances: launching one, its address, its life-cycle fields, and listing them.
//!
//! An instance is launched `Pending`; [`super::fleet`] moves it on as time passes (to
//! `Running`, or to `Terminated` when its image has the `fail_boot` fault) and reports its
//! health. An instance holds an address of its subnet until it is terminated.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::provider::{Health, InstanceState};

use super::faults::Settings;
use super::model::{Kind, Model, Reject, Resource, Spec};

/// An EC2 instance, standalone or launched by a group.
// Fields are named as the inputs and AWS name them (`instance_type`).
#[allow(clippy::struct_field_names)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Instance {
    pub(crate) image_id: String,
    pub(crate) instance_type: String,
    pub(crate) subnet_id: String,
    pub(crate) security_group_ids: Vec<String>,
    pub(crate) user_data: Option<String>,
    pub(crate) private_ip: Ipv4Addr,
    /// The group that launched it.
    pub(crate) group: Option<String>,
    /// The launch template and version it was launched from.
    pub(crate) launch_template_id: Option<String>,
    pub(crate) launch_template_version: Option<u64>,
    pub(crate) state: InstanceState,
    pub(crate) health: Health,
    pub(crate) launched_at: u64,
    /// When it stops pending.
    pub(crate) boots_at: u64,
    /// When its health checks report.
    pub(crate) checks_at: Option<u64>,
    /// When its group replaces it (unhealthy, past the grace period).
    pub(crate) replace_at: Option<u64>,
    pub(crate) terminated_at: Option<u64>,
    /// Why it was terminated.
    pub(crate) reason: Option<String>,
}

impl Instance {
    /// Whether it is gone.
    pub(crate) fn is_terminated(&self) -> bool {
        self.state == InstanceState::Terminated
    }

    /// Terminates it at `at` for `reason`.
    pub(crate) fn terminate(&mut self, at: u64, reason: &str) {
        self.state = InstanceState::Terminated;
        self.terminated_at = Some(at);
        self.replace_at = None;
        self.reason = Some(reason.to_owned());
    }
}

/// An instance as [`super::LocalCloud::instances`] lists it, terminated ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InstanceDetails {
    /// The instance id.
    pub id: String,
    /// The Auto Scaling group that launched it, if any.
    pub group: Option<String>,
    /// The image it runs.
    pub image_id: String,
    /// The launch template it was launched from, if any.
    pub launch_template_id: Option<String>,
    /// The version of that launch template.
    pub launch_template_version: Option<u64>,
    /// Its subnet.
    pub subnet_id: String,
    /// Its private address.
    pub private_ip: String,
    /// Its state.
    pub state: InstanceState,
    /// Its health.
    pub health: Health,
    /// When it was launched, in milliseconds since the Unix epoch.
    pub launched_at: u64,
    /// Why it was terminated.
    pub state_reason: Option<String>,
}

/// What to launch.
#[allow(clippy::struct_field_names)] // as in `Instance`
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) image_id: String,
    pub(crate) instance_type: String,
    pub(crate) subnet_id: String,
    pub(crate) security_group_ids: Vec<String>,
    pub(crate) user_data: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) launch_template: Option<(String, u64)>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl Model {
    /// Instance `id`.
    pub(crate) fn instance(&self, id: &str) -> Option<&Instance> {
        match &self.get(Kind::Instance, id)?.spec {
            Spec::Instance(i) => Some(i),
            _ => None,
        }
    }

    /// Changes instance `id` with `f`.
    pub(crate) fn modify_instance<T>(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut Instance) -> T,
    ) -> Option<T> {
        let mut r = self.take(Kind::Instance, id)?;
        let out = match &mut r.spec {
            Spec::Instance(i) => Some(f(i)),
            _ => None,
        };
        self.insert(r);
        out
    }

    /// Launches an instance, now; checks every reference first and changes nothing on error.
    pub(crate) fn launch(&mut self, l: Launch, settings: &Settings) -> Result<String, Reject> {
        if self.get(Kind::Image, &l.image_id).is_none() {
            return Err(Reject::terminal(
                "InvalidAMIID.NotFound",
                format!("the image id `{}` does not exist", l.image_id),
            ));
        }
        if !l.instance_type.contains('.') {
            return Err(Reject::terminal(
                "InvalidParameterValue",
                format!("`{}` is not an instance type (like `t3.micro`)", l.instance_type),
            ));
        }
        let vpc = match self.get(Kind::Subnet, &l.subnet_id).map(|r| &r.spec) {
            Some(Spec::Subnet(s)) => s.vpc_id.clone(),
            _ => {
                return Err(Reject::terminal(
                    "InvalidSubnetID.NotFound",
                    format!("the subnet id `{}` does not exist", l.subnet_id),
                ));
            }
        };
        for sg in &l.security_group_ids {
            match self.get(Kind::SecurityGroup, sg).map(|r| &r.spec) {
                Some(Spec::SecurityGroup(g)) if g.vpc_id == vpc => {}
                Some(Spec::SecurityGroup(g)) => {
                    return Err(Reject::terminal(
                        "InvalidParameter",
                        format!(
                            "security group `{sg}` (in `{}`) and subnet `{}` (in `{vpc}`) belong to different networks",
                            g.vpc_id, l.subnet_id
                        ),
                    ));
                }
                _ => {
                    return Err(Reject::terminal(
                        "InvalidGroup.NotFound",
                        format!("the security group `{sg}` does not exist"),
                    ));
                }
            }
        }
        let private_ip = self.allocate_ip(&l.subnet_id)?;
        let at = self.clock_ms;
        let id = self.allocate(Kind::Instance);
        let (launch_template_id, launch_template_version) = l.launch_template.unzip();
        self.insert(Resource {
            id: id.clone(),
            tags: l.tags,
            created_at: at,
            spec: Spec::Instance(Box::new(Instance {
                image_id: l.image_id,
                instance_type: l.instance_type,
                subnet_id: l.subnet_id,
                security_group_ids: l.security_group_ids,
                user_data: l.user_data,
                private_ip,
                group: l.group,
                launch_template_id,
                launch_template_version,
                state: InstanceState::Pending,
                health: Health::Initializing,
                launched_at: at,
                boots_at: at + settings.boot_ms(),
                checks_at: None,
                replace_at: None,
                terminated_at: None,
                reason: None,
            })),
        });
        Ok(id)
    }

    /// A free address in subnet `subnet_id` (AWS reserves the first four and the last).
    fn allocate_ip(&mut self, subnet_id: &str) -> Result<Ipv4Addr, Reject> {
        let Some(Spec::Subnet(subnet)) = self.get(Kind::Subnet, subnet_id).map(|r| &r.spec) else {
            return Err(Reject::terminal(
                "InvalidSubnetID.NotFound",
                format!("`{subnet_id}` does not exist"),
            ));
        };
        let base = u32::from(subnet.cidr_block.network()) + 4;
        let count = (1u32 << (32 - subnet.cidr_block.prefix_len())).saturating_sub(5).max(1);
        let start = subnet.next_host % count;
        let free = (0..count)
            .map(|k| (start + k) % count)
            .find(|k| !self.address_used(subnet_id, base + k));
        let Some(k) = free else {
            return Err(Reject::terminal(
                "InsufficientFreeAddressesInSubnet",
                format!("subnet `{subnet_id}` has no free address left"),
            ));
        };
        let mut r = self.take(Kind::Subnet, subnet_id).expect("checked above");
        if let Spec::Subnet(s) = &mut r.spec {
            s.next_host = k + 1;
        }
        self.insert(r);
        Ok(Ipv4Addr::from(base + k))
    }

    /// Terminates instance `id` now; a no-op if it is gone.
    pub(crate) fn terminate_instance(&mut self, id: &str, reason: &str) {
        let at = self.clock_ms;
        if self.instance(id).is_some_and(|i| !i.is_terminated()) {
            self.modify_instance(id, |i| i.terminate(at, reason));
        }
    }

    /// Sets the health of running instance `id` (out of band, for tests).
    pub(crate) fn set_health(&mut self, id: &str, health: Health) -> Result<(), Reject> {
        let i =
            self.instance(id).filter(|i| i.state == InstanceState::Running).ok_or_else(|| {
                Reject::not_found(
                    "InvalidInstanceID.NotFound",
                    format!("no running instance `{id}`"),
                )
            })?;
        let grace_ms = i
            .group
            .as_deref()
            .and_then(|g| self.group(g))
            .map_or(0, |g| g.health_check_grace_period * 1000);
        let at = self.clock_ms;
        self.modify_instance(id, |i| {
            i.health = health;
            i.replace_at = match health {
                Health::Unhealthy => i.group.as_ref().map(|_| at.max(i.launched_at + grace_ms)),
                _ => None,
            };
        });
        Ok(())
    }

    /// Every instance, terminated ones included.
    pub(crate) fn instance_details(&self) -> Vec<InstanceDetails> {
        self.all(Kind::Instance)
            .filter_map(|r| {
                let Spec::Instance(i) = &r.spec else { return None };
                Some(InstanceDetails {
                    id: r.id.clone(),
                    group: i.group.clone(),
                    image_id: i.image_id.clone(),
                    launch_template_id: i.launch_template_id.clone(),
                    launch_template_version: i.launch_template_version,
                    subnet_id: i.subnet_id.clone(),
                    private_ip: i.private_ip.to_string(),
                    state: i.state,
                    health: i.health,
                    launched_at: i.launched_at,
                    state_reason: i.reason.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::provider::Provider;

    use super::super::LocalCloud;
    use super::super::testing::{create, network, web};

    #[tokio::test]
    async fn addresses_are_unique_in_their_subnet_and_freed_on_termination() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let small = create(&cloud, "small", "aws:ec2:Subnet",
            json!({"vpc_id": net.vpc, "cidr_block": "10.0.3.0/28", "availability_zone": "local-1a"}))
            .await
            .unwrap()
            .physical_id;
        let run = json!({"image_id": web("1.0.0"), "instance_type": "t3.nano", "subnet_id": small});
        let mut launched = Vec::new();
        for n in 0..11 {
            launched.push(
                create(&cloud, &format!("i{n}"), "aws:ec2:Instance", run.clone()).await.unwrap(),
            );
        }
        let ips: Vec<&str> =
            launched.iter().map(|i| i.outputs["private_ip"].as_str().unwrap()).collect();
        assert_eq!(ips[0], "10.0.3.4", "the first four addresses are reserved");
        assert_eq!(ips[10], "10.0.3.14", "and the last one");
        let e = create(&cloud, "i11", "aws:ec2:Instance", run.clone()).await.unwrap_err();
        assert_eq!(e.code, "InsufficientFreeAddressesInSubnet");
        cloud.delete("aws:ec2:Instance", &launched[0].physical_id).await.unwrap();
        let again = create(&cloud, "i12", "aws:ec2:Instance", run).await.unwrap();
        assert_eq!(again.outputs["private_ip"], "10.0.3.4");
    }
}
