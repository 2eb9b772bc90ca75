//! Fleets: instances, Auto Scaling groups, and the lazy reconciliation that moves them.
//!
//! Nothing runs in the background. Every call first advances the simulation to "now": it takes
//! the timed events that are due (an instance finishes booting, its health checks report, an
//! unhealthy instance's grace period ends, a group's launch backoff ends) in time order, and
//! within one instant instances in id order and then groups in name order, so a run is
//! deterministic. A group then keeps `desired_capacity` instances: it launches the missing ones
//! from its launch template version, in its subnets round-robin, and terminates the surplus.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::provider::{self, Health, InstanceState};

use super::faults::{ImageFault, Settings};
use super::instance::Launch;
use super::model::{Kind, Model, Reject, Resource, Spec};

/// How long a terminated instance stays visible (to [`super::LocalCloud::instances`]).
const KEEP_TERMINATED_MS: u64 = 3_600_000;
/// A group whose launches fail (no template, no address) retries after at least this long.
const LAUNCH_RETRY_MS: u64 = 10_000;
/// The longest backoff between launches of a group whose instances keep failing.
const MAX_BACKOFF_MS: u64 = 60_000;
/// A bound on the events one advance processes, against a misconfigured loop.
const MAX_STEPS: u32 = 1_000_000;

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
                tracing::warn!(
                    "local cloud: more than {MAX_STEPS} fleet events due; skipping ahead"
                );
                break;
            }
        }
        self.clock_ms = now;
    }

    /// The group named `name`.
    pub(crate) fn group(&self, name: &str) -> Option<&Group> {
        match &self.get(Kind::AutoScalingGroup, name)?.spec {
            Spec::AutoScalingGroup(g) => Some(g),
            _ => None,
        }
    }

    /// Changes group `name` with `f`.
    pub(crate) fn modify_group<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Group) -> T,
    ) -> Option<T> {
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
        let grace_ms = group
            .as_deref()
            .and_then(|g| self.group(g))
            .map_or(0, |g| g.health_check_grace_period * 1000);
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
                self.modify_instance(id, |i| {
                    i.terminate(at, "unhealthy: replaced by its Auto Scaling group");
                });
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
        self.dependents_of(Kind::AutoScalingGroup, name, Kind::Instance)
            .map(str::to_owned)
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
                    Some((
                        (
                            i.health != Health::Unhealthy,
                            is_current,
                            i.launch_template_version,
                            i.launched_at,
                        ),
                        id,
                    ))
                })
                .collect();
            ranked.sort();
            let victims: Vec<String> =
                ranked.iter().take(live.len() - desired).map(|(_, id)| (*id).clone()).collect();
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
        let group = self
            .group(name)
            .ok_or_else(|| Reject::not_found("ValidationError", "no such group"))?;
        let lt_id = group.launch_template_id.clone();
        let version = group.launch_template_version;
        let subnet_id = match group.subnet_ids.len() {
            0 => return Err(Reject::terminal("ValidationError", "the group has no subnets")),
            n => group.subnet_ids[usize::try_from(group.launches % n as u64).unwrap_or(0)].clone(),
        };
        let mut tags = super::model::user_tags(
            &self.get(Kind::AutoScalingGroup, name).map(|r| r.tags.clone()).unwrap_or_default(),
        );
        let Some(Spec::LaunchTemplate(template)) =
            self.get(Kind::LaunchTemplate, &lt_id).map(|r| &r.spec)
        else {
            return Err(Reject::terminal(
                "InvalidLaunchTemplateId.NotFound",
                format!("launch template `{lt_id}` does not exist"),
            ));
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

    /// Deletes group `name` and terminates its instances.
    pub(crate) fn delete_group(&mut self, name: &str) {
        for id in self.live_instances(name) {
            self.terminate_instance(&id, "its Auto Scaling group was deleted");
        }
        self.take(Kind::AutoScalingGroup, name);
    }

    fn group_or_not_found(&self, name: &str) -> Result<&Group, Reject> {
        self.group(name).ok_or_else(|| {
            Reject::not_found(
                "ValidationError",
                format!("AutoScalingGroup name not found: `{name}`"),
            )
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
}

/// `min <= desired <= max`.
pub(crate) fn check_capacity(min: u32, desired: u32, max: u32) -> Result<(), Reject> {
    if min <= desired && desired <= max {
        Ok(())
    } else {
        Err(Reject::terminal(
            "ValidationError",
            format!(
                "desired capacity {desired} must lie between min size {min} and max size {max}"
            ),
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
        assert_eq!(
            cloud.resources("aws:autoscaling:AutoScalingGroup")[0].inputs["desired_capacity"],
            2
        );
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
        let run = map(
            json!({"image_id": web("1.5.0"), "instance_type": "t3.micro", "subnet_id": net.subnets[0]}),
        );
        let i = super::super::testing::create(
            &cloud,
            "i",
            "aws:ec2:Instance",
            serde_json::Value::Object(run),
        )
        .await
        .unwrap();
        advance(Duration::from_millis(400)).await;
        let read =
            cloud.read("aws:ec2:Instance", std::slice::from_ref(&i.physical_id)).await.unwrap();
        assert!(read[0].is_none(), "a terminated instance reads as gone");
        let details = cloud.instances();
        assert_eq!(details[0].state, InstanceState::Terminated);
        assert!(details[0].state_reason.as_deref().unwrap().contains("fail_boot"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_of_failing_instances_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let settings = cloud.settings().boot_time(Duration::ZERO).health_delay(Duration::ZERO);
        cloud
            .set_settings(
                settings.faults(Faults::default().image(web("2.0.0"), ImageFault::FailBoot)),
            )
            .unwrap();
        let net = network(&cloud).await;
        fleet(&cloud, &net, &web("2.0.0"), 2, 0).await;
        advance(Duration::from_secs(3600)).await;
        let fleet = cloud.fleet_instances("web").await.unwrap();
        assert!(
            fleet.is_empty(),
            "every instance failed; the group waits out its backoff: {fleet:?}"
        );
        let launched = cloud.instances().len();
        assert!(
            (60..400).contains(&launched),
            "at most about one launch a minute each: {launched}"
        );
        assert!(
            cloud
                .instances()
                .iter()
                .all(|i| i.state_reason.as_deref().is_none_or(|r| r.contains("fail_boot")))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollout_launches_the_new_version_and_retires_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        let lt = fleet(&cloud, &net, &web("1.4.0"), 2, 0).await;
        advance(Duration::from_secs(1)).await;
        let old: Vec<String> =
            cloud.fleet_instances("web").await.unwrap().into_iter().map(|i| i.id).collect();
        let new = map(json!({"image_id": web("1.5.0")}));
        cloud.update("aws:ec2:LaunchTemplate", &lt, &new, &["image_id".to_owned()]).await.unwrap();
        let group = map(json!({"launch_template_version": 2}));
        cloud
            .update(
                "aws:autoscaling:AutoScalingGroup",
                "web",
                &group,
                &["launch_template_version".to_owned()],
            )
            .await
            .unwrap();
        assert_eq!(
            cloud.fleet_instances("web").await.unwrap().len(),
            2,
            "an update does not replace instances"
        );
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
