//! Fleets: instances, Auto Scaling groups, and the lazy reconciliation that moves them.
//!
//! Nothing runs in the background. Every call first advances the simulation to "now": it takes
//! the timed events that are due (an instance finishes booting, its health checks report, an
//! unhealthy instance's grace period ends, a group's launch backoff ends) in time order, and
//! within one instant instances in id order and then groups in name order, so a run is
//! deterministic. A group then keeps `desired_capacity` instances: it launches the missing ones
//! from its launch template version, in its subnets round-robin, and terminates the surplus.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::provider::{self, Health, InstanceState};

use super::faults::{ImageFault, Settings};
use super::model::{Kind, Model, Reject, Resource, Spec};

/// How long a terminated instance stays visible (to [`super::LocalCloud::instances`]).
const KEEP_TERMINATED_MS: u64 = 3_600_000;
/// A group whose launches fail (no template, no address) retries after at least this long.
const LAUNCH_RETRY_MS: u64 = 10_000;
/// The longest backoff between launches of a group whose instances keep failing.
const MAX_BACKOFF_MS: u64 = 60_000;
/// A bound on the events one advance processes, against a misconfigured loop.
const MAX_STEPS: u32 = 1_000_000;

/// An EC2 instance, standalone or launched by a group.
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

    fn terminate(&mut self, at: u64, reason: &str) {
        self.state = InstanceState::Terminated;
        self.terminated_at = Some(at);
        self.replace_at = None;
        self.reason = Some(reason.to_owned());
    }
}

/// An Auto Scaling group (its physical id is its name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Group {
    pub(crate) launch_template_id: String,
    pub(crate) launch_template_version: u64,
    pub(crate) min_size: u32,
    pub(crate) desired_capacity: u32,
    pub(crate) max_size: u32,
    pub(crate) subnet_ids: Vec<String>,
    pub(crate) health_check_type: String,
    /// Seconds.
    pub(crate) health_check_grace_period: u64,
    pub(crate) arn: String,
    /// Instances launched so far (picks the next subnet, round-robin).
    #[serde(default)]
    pub(crate) launches: u64,
    /// Failures in a row (failed boots, unhealthy replacements, failed launches).
    #[serde(default)]
    pub(crate) failures: u32,
    /// No launch before this time (backoff after failures).
    #[serde(default)]
    pub(crate) retry_at: Option<u64>,
    /// The last failure, for the curious.
    #[serde(default)]
    pub(crate) last_error: Option<String>,
}

/// What a timed event is about. Instances sort before groups, each by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    Instance(String),
    Group(String),
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

/// The next timed event of a resource, if it has one.
pub(crate) fn next_event(r: &Resource) -> Option<(u64, Target)> {
    match &r.spec {
        Spec::Instance(i) => {
            let at = match (i.state, i.health) {
                (InstanceState::Pending, _) => i.boots_at,
                (InstanceState::Running, Health::Initializing) => i.checks_at?,
                (InstanceState::Running, Health::Unhealthy) => i.replace_at?,
                (InstanceState::Terminated, _) => i.terminated_at? + KEEP_TERMINATED_MS,
                _ => return None,
            };
            Some((at, Target::Instance(r.id.clone())))
        }
        Spec::AutoScalingGroup(g) => g.retry_at.map(|at| (at, Target::Group(r.id.clone()))),
        _ => None,
    }
}

/// The wait before a group launches again after `failures` failures in a row: none after the
/// first, then 1 s, 2 s, 4 s ... up to a minute.
fn backoff(failures: u32) -> u64 {
    if failures <= 1 { 0 } else { (1000u64 << (failures - 2).min(16)).min(MAX_BACKOFF_MS) }
}

impl Model {
    /// Advances the simulation to `now` (never backwards).
    pub(crate) fn advance(&mut self, now: u64, settings: &Settings) {
        let now = now.max(self.clock_ms);
        let mut steps = 0;
        while let Some(t) = self.events.first().map(|(t, _)| *t).filter(|t| *t <= now) {
            self.clock_ms = self.clock_ms.max(t);
            let mut groups = BTreeSet::new();
            while let Some((_, target)) = self.events.pop_first_if(t) {
                match target {
                    Target::Instance(id) => groups.extend(self.step_instance(&id, t, settings)),
                    Target::Group(name) => {
                        groups.insert(name);
                    }
                }
            }
            for name in groups {
                self.reconcile(&name, settings);
            }
            steps += 1;
            if steps > MAX_STEPS {
                tracing::warn!("local cloud: more than {MAX_STEPS} fleet events due; skipping ahead");
                break;
            }
        }
        self.clock_ms = now;
    }

    fn instance(&self, id: &str) -> Option<&Instance> {
        match &self.get(Kind::Instance, id)?.spec {
            Spec::Instance(i) => Some(i),
            _ => None,
        }
    }

    /// The group named `name`.
    pub(crate) fn group(&self, name: &str) -> Option<&Group> {
        match &self.get(Kind::AutoScalingGroup, name)?.spec {
            Spec::AutoScalingGroup(g) => Some(g),
            _ => None,
        }
    }

    /// Changes instance `id` with `f`.
    fn modify_instance<T>(&mut self, id: &str, f: impl FnOnce(&mut Instance) -> T) -> Option<T> {
        let mut r = self.take(Kind::Instance, id)?;
        let out = match &mut r.spec {
            Spec::Instance(i) => Some(f(i)),
            _ => None,
        };
        self.insert(r);
        out
    }

    /// Changes group `name` with `f`.
    pub(crate) fn modify_group<T>(&mut self, name: &str, f: impl FnOnce(&mut Group) -> T) -> Option<T> {
        let mut r = self.take(Kind::AutoScalingGroup, name)?;
        let out = match &mut r.spec {
            Spec::AutoScalingGroup(g) => Some(f(g)),
            _ => None,
        };
        self.insert(r);
        out
    }

    /// Takes the due event of instance `id`; returns its group if the group must reconcile.
    fn step_instance(&mut self, id: &str, t: u64, settings: &Settings) -> Option<String> {
        let r = self.get(Kind::Instance, id)?;
        if next_event(r).map(|(at, _)| at) != Some(t) {
            return None; // stale: the instance changed since the event was scheduled
        }
        let i = self.instance(id)?;
        let group = i.group.clone();
        let grace_ms = group.as_deref().and_then(|g| self.group(g)).map_or(0, |g| g.health_check_grace_period * 1000);
        let fault = settings.image_fault(&i.image_id);
        let health_ms = settings.health_ms();
        let at = self.clock_ms;
        match (i.state, i.health) {
            (InstanceState::Terminated, _) => {
                self.take(Kind::Instance, id);
                None
            }
            (InstanceState::Pending, _) => {
                if fault == Some(ImageFault::FailBoot) {
                    self.modify_instance(id, |i| {
                        i.terminate(at, "Server.InternalError: the instance failed to boot (image fault `fail_boot`)");
                    });
                    self.group_failed(group.as_deref(), "an instance failed to boot", false);
                } else {
                    self.modify_instance(id, |i| {
                        i.state = InstanceState::Running;
                        i.checks_at = Some(at + health_ms);
                    });
                }
                group
            }
            (InstanceState::Running, Health::Initializing) => {
                if fault == Some(ImageFault::NeverHealthy) {
                    self.modify_instance(id, |i| {
                        i.health = Health::Unhealthy;
                        i.replace_at = i.group.as_ref().map(|_| at.max(i.launched_at + grace_ms));
                    });
                } else {
                    self.modify_instance(id, |i| i.health = Health::Healthy);
                    if let Some(name) = &group {
                        self.modify_group(name, |g| {
                            g.failures = 0;
                            g.last_error = None;
                        });
                    }
                }
                None
            }
            (InstanceState::Running, Health::Unhealthy) => {
                self.modify_instance(id, |i| i.terminate(at, "unhealthy: replaced by its Auto Scaling group"));
                self.group_failed(group.as_deref(), "an instance was unhealthy", false);
                group
            }
            _ => None,
        }
    }

    /// Records a failure of group `name` and backs its launches off.
    fn group_failed(&mut self, name: Option<&str>, why: &str, launch: bool) {
        let Some(name) = name else { return };
        let at = self.clock_ms;
        self.modify_group(name, |g| {
            g.failures += 1;
            let mut wait = backoff(g.failures);
            if launch {
                wait = wait.max(LAUNCH_RETRY_MS);
            }
            g.retry_at = (wait > 0).then_some(at + wait);
            g.last_error = Some(why.to_owned());
        });
    }

    /// The ids of group `name`'s instances that are not terminated, in id order.
    fn live_instances(&self, name: &str) -> Vec<String> {
        self.dependents(Kind::AutoScalingGroup, name)
            .into_iter()
            .filter(|(k, _)| *k == Kind::Instance)
            .map(|(_, id)| id)
            .collect()
    }

    /// Brings group `name` to its desired capacity, now.
    pub(crate) fn reconcile(&mut self, name: &str, settings: &Settings) {
        let Some(group) = self.group(name) else { return };
        let desired = group.desired_capacity as usize;
        let current = (group.launch_template_id.clone(), group.launch_template_version);
        let at = self.clock_ms;
        let live = self.live_instances(name);
        if live.len() > desired {
            let mut ranked: Vec<_> = live
                .iter()
                .filter_map(|id| {
                    let i = self.instance(id)?;
                    let is_current = i.launch_template_id.as_ref() == Some(&current.0)
                        && i.launch_template_version == Some(current.1);
                    Some(((i.health != Health::Unhealthy, is_current, i.launch_template_version, i.launched_at), id))
                })
                .collect();
            ranked.sort();
            let victims: Vec<String> = ranked.iter().take(live.len() - desired).map(|(_, id)| (*id).clone()).collect();
            for id in victims {
                self.terminate_instance(&id, "scaled in by its Auto Scaling group");
            }
        } else if live.len() < desired {
            if let Some(retry) = group.retry_at {
                if retry > at {
                    self.events.insert((retry, Target::Group(name.to_owned())));
                    return;
                }
                self.modify_group(name, |g| g.retry_at = None);
            }
            for _ in live.len()..desired {
                if let Err(e) = self.launch_for_group(name, settings) {
                    tracing::debug!("local cloud: group `{name}` cannot launch: {}", e.message);
                    self.group_failed(Some(name), &format!("{}: {}", e.code, e.message), true);
                    break;
                }
            }
        }
    }

    fn launch_for_group(&mut self, name: &str, settings: &Settings) -> Result<String, Reject> {
        let group = self.group(name).ok_or_else(|| Reject::not_found("ValidationError", "no such group"))?;
        let lt_id = group.launch_template_id.clone();
        let version = group.launch_template_version;
        let subnet_id = match group.subnet_ids.len() {
            0 => return Err(Reject::terminal("ValidationError", "the group has no subnets")),
            n => group.subnet_ids[usize::try_from(group.launches % n as u64).unwrap_or(0)].clone(),
        };
        let mut tags = super::model::user_tags(&self.get(Kind::AutoScalingGroup, name).map(|r| r.tags.clone()).unwrap_or_default());
        let template = match self.get(Kind::LaunchTemplate, &lt_id).map(|r| &r.spec) {
            Some(Spec::LaunchTemplate(t)) => t,
            _ => {
                return Err(Reject::terminal(
                    "InvalidLaunchTemplateId.NotFound",
                    format!("launch template `{lt_id}` does not exist"),
                ));
            }
        };
        let v = template.version(version).ok_or_else(|| {
            Reject::terminal(
                "InvalidLaunchTemplateId.VersionNotFound",
                format!("launch template `{lt_id}` has no version {version}"),
            )
        })?;
        for (k, val) in &v.tags {
            tags.entry(k.clone()).or_insert_with(|| val.clone());
        }
        tags.insert("aws:autoscaling:groupName".to_owned(), name.to_owned());
        let launch = Launch {
            image_id: v.image_id.clone(),
            instance_type: v.instance_type.clone(),
            subnet_id,
            security_group_ids: v.security_group_ids.clone(),
            user_data: v.user_data.clone(),
            group: Some(name.to_owned()),
            launch_template: Some((lt_id, version)),
            tags,
        };
        let id = self.launch(launch, settings)?;
        self.modify_group(name, |g| g.launches += 1);
        Ok(id)
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
            return Err(Reject::terminal("InvalidSubnetID.NotFound", format!("`{subnet_id}` does not exist")));
        };
        let base = u32::from(subnet.cidr_block.network()) + 4;
        let count = (1u32 << (32 - subnet.cidr_block.prefix_len())).saturating_sub(5).max(1);
        let start = subnet.next_host % count;
        let used: BTreeSet<Ipv4Addr> = self
            .dependents(Kind::Subnet, subnet_id)
            .iter()
            .filter(|(k, _)| *k == Kind::Instance)
            .filter_map(|(_, id)| self.instance(id).map(|i| i.private_ip))
            .collect();
        let free = (0..count).map(|k| (start + k) % count).find(|k| !used.contains(&Ipv4Addr::from(base + k)));
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

    /// Deletes group `name` and terminates its instances.
    pub(crate) fn delete_group(&mut self, name: &str) {
        for id in self.live_instances(name) {
            self.terminate_instance(&id, "its Auto Scaling group was deleted");
        }
        self.take(Kind::AutoScalingGroup, name);
    }

    fn group_or_not_found(&self, name: &str) -> Result<&Group, Reject> {
        self.group(name).ok_or_else(|| {
            Reject::not_found("ValidationError", format!("AutoScalingGroup name not found: `{name}`"))
        })
    }

    /// The live instances of group `name`.
    pub(crate) fn fleet_instances(&self, name: &str) -> Result<Vec<provider::Instance>, Reject> {
        self.group_or_not_found(name)?;
        Ok(self
            .live_instances(name)
            .iter()
            .filter_map(|id| {
                let i = self.instance(id)?;
                Some(provider::Instance {
                    id: id.clone(),
                    launch_template_version: i.launch_template_version.unwrap_or(0),
                    image_id: i.image_id.clone(),
                    state: i.state,
                    health: i.health,
                })
            })
            .collect())
    }

    /// Sets the capacity of group `name` and reconciles it.
    pub(crate) fn set_capacity(
        &mut self,
        name: &str,
        (min, desired, max): (u32, u32, u32),
        settings: &Settings,
    ) -> Result<(), Reject> {
        self.group_or_not_found(name)?;
        check_capacity(min, desired, max)?;
        self.modify_group(name, |g| {
            g.min_size = min;
            g.desired_capacity = desired;
            g.max_size = max;
        });
        self.reconcile(name, settings);
        Ok(())
    }

    /// Terminates instances of group `name`; with `decrement` the desired capacity goes down
    /// by as many, else the group launches replacements. Instances already gone are skipped.
    pub(crate) fn terminate_in_group(
        &mut self,
        name: &str,
        ids: &[String],
        decrement: bool,
        settings: &Settings,
    ) -> Result<(), Reject> {
        let group = self.group_or_not_found(name)?;
        let (min, desired) = (group.min_size, group.desired_capacity);
        let mut victims = BTreeSet::new();
        for id in ids {
            let Some(i) = self.instance(id).filter(|i| !i.is_terminated()) else { continue };
            if i.group.as_deref() != Some(name) {
                return Err(Reject::terminal(
                    "ValidationError",
                    format!("instance `{id}` is not part of Auto Scaling group `{name}`"),
                ));
            }
            victims.insert(id.clone());
        }
        let count = u32::try_from(victims.len()).unwrap_or(u32::MAX);
        if decrement && desired.saturating_sub(count) < min {
            return Err(Reject::terminal(
                "ValidationError",
                format!(
                    "terminating {count} instance(s) without replacement would take group `{name}` \
                     below its min size ({min}); lower `min_size` first"
                ),
            ));
        }
        for id in &victims {
            self.terminate_instance(id, "terminated through TerminateInstanceInAutoScalingGroup");
        }
        if decrement {
            self.modify_group(name, |g| g.desired_capacity -= count);
        }
        self.reconcile(name, settings);
        Ok(())
    }

    /// Sets the health of running instance `id` (out of band, for tests).
    pub(crate) fn set_health(&mut self, id: &str, health: Health) -> Result<(), Reject> {
        let i = self.instance(id).filter(|i| i.state == InstanceState::Running).ok_or_else(|| {
            Reject::not_found("InvalidInstanceID.NotFound", format!("no running instance `{id}`"))
        })?;
        let grace_ms = i.group.as_deref().and_then(|g| self.group(g)).map_or(0, |g| g.health_check_grace_period * 1000);
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

/// `min <= desired <= max`.
pub(crate) fn check_capacity(min: u32, desired: u32, max: u32) -> Result<(), Reject> {
    if min <= desired && desired <= max {
        Ok(())
    } else {
        Err(Reject::terminal(
            "ValidationError",
            format!("desired capacity {desired} must lie between min size {min} and max size {max}"),
        ))
    }
}

/// `pop_first` of the events due exactly at `t`.
trait PopDue {
    fn pop_first_if(&mut self, t: u64) -> Option<(u64, Target)>;
}

impl PopDue for BTreeSet<(u64, Target)> {
    fn pop_first_if(&mut self, t: u64) -> Option<(u64, Target)> {
        if self.first().is_some_and(|(at, _)| *at == t) { self.pop_first() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tokio::time::advance;

    use crate::provider::{Health, InstanceState, Provider};

    use super::super::testing::{fleet, map, network, web};
    use super::super::{Faults, ImageFault, LocalCloud};

    fn states(instances: &[crate::provider::Instance]) -> Vec<(InstanceState, Health)> {
        instances.iter().map(|i| (i.state, i.health)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn instances_boot_then_become_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        fleet(&cloud, &net, &web("1.4.0"), 2, 0).await;
        let fleet = cloud.fleet_instances("web").await.unwrap();
        assert_eq!(states(&fleet), vec![(InstanceState::Pending, Health::Initializing); 2]);
        assert!(fleet.iter().all(|i| i.launch_template_version == 1 && i.image_id == web("1.4.0")));
        advance(Duration::from_millis(400)).await;
        let fleet = cloud.fleet_instances("web").await.unwrap();
        assert_eq!(states(&fleet), vec![(InstanceState::Running, Health::Initializing); 2]);
        advance(Duration::from_millis(300)).await;
        let fleet = cloud.fleet_instances("web").await.unwrap();
        assert_eq!(states(&fleet), vec![(InstanceState::Running, Health::Healthy); 2]);
        let subnets: Vec<String> = cloud.instances().into_iter().map(|i| i.subnet_id).collect();
        assert_eq!(subnets, net.subnets, "launched round-robin across the subnets");
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_keeps_its_capacity_and_replaces_the_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        fleet(&cloud, &net, &web("1.4.0"), 3, 60).await;
        advance(Duration::from_secs(1)).await;
        let before = cloud.fleet_instances("web").await.unwrap();
        let sick = before[1].id.clone();
        cloud.set_instance_health(&sick, Health::Unhealthy).unwrap();
        advance(Duration::from_secs(30)).await;
        let during = cloud.fleet_instances("web").await.unwrap();
        assert!(during.iter().any(|i| i.id == sick), "kept during the grace period");
        advance(Duration::from_secs(30)).await;
        let after = cloud.fleet_instances("web").await.unwrap();
        assert_eq!(after.len(), 3);
        assert!(after.iter().all(|i| i.id != sick), "replaced after the grace period");
        let gone = cloud.instances().into_iter().find(|i| i.id == sick).unwrap();
        assert_eq!(gone.state, InstanceState::Terminated);
        assert!(gone.state_reason.unwrap().contains("unhealthy"));

        // Terminating without decrement launches a replacement; with decrement it does not.
        cloud.terminate_instances("web", &[after[0].id.clone()], false).await.unwrap();
        assert_eq!(cloud.fleet_instances("web").await.unwrap().len(), 3);
        cloud.terminate_instances("web", &[after[1].id.clone()], true).await.unwrap();
        assert_eq!(cloud.fleet_instances("web").await.unwrap().len(), 2);
        assert_eq!(cloud.resources("aws:autoscaling:AutoScalingGroup")[0].inputs["desired_capacity"], 2);
        cloud.delete("aws:autoscaling:AutoScalingGroup", "web").await.unwrap();
        assert!(cloud.instances().iter().all(|i| i.state == InstanceState::Terminated));
    }

    #[tokio::test(start_paused = true)]
    async fn a_never_healthy_image_runs_unhealthy_and_is_replaced_with_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        cloud.set_faults(Faults::default().image(web("1.4.1"), ImageFault::NeverHealthy)).unwrap();
        let net = network(&cloud).await;
        fleet(&cloud, &net, &web("1.4.1"), 1, 60).await;
        advance(Duration::from_millis(700)).await;
        let fleet = cloud.fleet_instances("web").await.unwrap();
        assert_eq!(states(&fleet), vec![(InstanceState::Running, Health::Unhealthy)]);
        advance(Duration::from_secs(600)).await;
        let launched = cloud.instances().len();
        assert!((5..100).contains(&launched), "replaced again and again, with backoff: {launched}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fail_boot_image_terminates_instead_of_running() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        cloud.set_faults(Faults::default().image(web("1.5.0"), ImageFault::FailBoot)).unwrap();
        let net = network(&cloud).await;
        let run = map(json!({"image_id": web("1.5.0"), "instance_type": "t3.micro", "subnet_id": net.subnets[0]}));
        let i = super::super::testing::create(&cloud, "i", "aws:ec2:Instance", serde_json::Value::Object(run))
            .await
            .unwrap();
        advance(Duration::from_millis(400)).await;
        let read = cloud.read("aws:ec2:Instance", &[i.physical_id.clone()]).await.unwrap();
        assert!(read[0].is_none(), "a terminated instance reads as gone");
        let details = cloud.instances();
        assert_eq!(details[0].state, InstanceState::Terminated);
        assert!(details[0].state_reason.as_deref().unwrap().contains("fail_boot"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollout_launches_the_new_version_and_retires_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let lt = fleet(&cloud, &net, &web("1.4.0"), 2, 0).await;
        advance(Duration::from_secs(1)).await;
        let old: Vec<String> = cloud.fleet_instances("web").await.unwrap().into_iter().map(|i| i.id).collect();
        let new = map(json!({"image_id": web("1.5.0")}));
        cloud.update("aws:ec2:LaunchTemplate", &lt, &new, &["image_id".to_owned()]).await.unwrap();
        let group = map(json!({"launch_template_version": 2}));
        cloud.update("aws:autoscaling:AutoScalingGroup", "web", &group, &["launch_template_version".to_owned()])
            .await
            .unwrap();
        assert_eq!(cloud.fleet_instances("web").await.unwrap().len(), 2, "an update does not replace instances");
        cloud.set_capacity("web", 0, 4, 10).await.unwrap();
        advance(Duration::from_secs(1)).await;
        cloud.terminate_instances("web", &old, true).await.unwrap();
        let fleet = cloud.fleet_instances("web").await.unwrap();
        assert_eq!(fleet.len(), 2);
        assert!(fleet.iter().all(|i| i.launch_template_version == 2 && i.image_id == web("1.5.0")));
        assert!(fleet.iter().all(|i| i.health == Health::Healthy));
        // Scaling in retires older versions first.
        cloud.set_capacity("web", 0, 1, 10).await.unwrap();
        assert_eq!(cloud.fleet_instances("web").await.unwrap().len(), 1);
    }
}
