//! The fleet operations rollouts are made of: list a group's instances with their launch
//! template version and health, set its capacity, terminate some of its instances.
//!
//! Graven rolls fleets itself (no Instance Refresh, no lifecycle hooks: moto has neither), so
//! these are plain reads and writes.
//!
//! ## Health
//! An instance is [`Health::Unhealthy`] when Auto Scaling marks it `Unhealthy` or when an EC2
//! status check (instance or system) reports `impaired`; [`Health::Initializing`] while it is
//! pending (in EC2 or in its group's life cycle) or its checks are `initializing` or lack data;
//! [`Health::Healthy`] when it is running, in service, and its checks pass. When the API reports
//! no status checks for a running instance (emulators such as moto do not run them) it counts
//! as healthy: the group's own health status is then the only signal.
//!
//! ## Launch template version
//! Taken from the instance's `aws:ec2launchtemplate:version` tag, which EC2 sets at launch, and
//! else from the group's record of the instance. moto reports the template's *current default*
//! version for every instance of a group, but tags each instance with the version it was
//! launched from, hence the order.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{InstanceStateName, SummaryStatus};

use super::AwsProvider;
use super::autoscaling::{describe, not_found_is_not_found};
use super::ec2::{FILTER_VALUES, describe_instances, tag_map};
use super::{chunks, ec2::filter};
use crate::provider::{self, ErrorKind, Health, Instance, InstanceState};

/// What the group says of one instance.
struct Member {
    lifecycle: String,
    health: String,
    version: Option<u64>,
}

/// The summary of an instance's status checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checks {
    /// Not reported (an emulator, or a stopped instance).
    Unreported,
    /// Both checks pass (or do not apply).
    Passed,
    /// At least one check is still running or lacks data.
    Pending,
    /// At least one check failed.
    Failed,
}

fn summary(s: Option<&SummaryStatus>) -> Checks {
    match s {
        None => Checks::Unreported,
        Some(SummaryStatus::Ok | SummaryStatus::NotApplicable) => Checks::Passed,
        Some(SummaryStatus::Impaired) => Checks::Failed,
        Some(_) => Checks::Pending,
    }
}

fn combine(a: Checks, b: Checks) -> Checks {
    use Checks::{Failed, Passed, Pending, Unreported};
    match (a, b) {
        (Failed, _) | (_, Failed) => Failed,
        (Pending, _) | (_, Pending) => Pending,
        (Unreported, Unreported) => Unreported,
        _ => Passed,
    }
}

/// The health of an instance from its EC2 state, its group's view of it and its status checks.
/// Pure, so the rules above are unit-tested.
pub(super) fn health(
    state: InstanceState,
    lifecycle: &str,
    group_health: &str,
    checks: Checks,
) -> Health {
    if group_health.eq_ignore_ascii_case("unhealthy") || checks == Checks::Failed {
        return Health::Unhealthy;
    }
    match state {
        InstanceState::Pending => Health::Initializing,
        InstanceState::ShuttingDown | InstanceState::Terminated => Health::Unhealthy,
        _ if lifecycle.starts_with("Pending") => Health::Initializing,
        _ if lifecycle.starts_with("Terminating") => Health::Unhealthy,
        _ if checks == Checks::Pending => Health::Initializing,
        _ => Health::Healthy,
    }
}

fn state(name: Option<&InstanceStateName>) -> InstanceState {
    match name {
        Some(InstanceStateName::Running) => InstanceState::Running,
        Some(InstanceStateName::Terminated) => InstanceState::Terminated,
        Some(InstanceStateName::Pending) | None => InstanceState::Pending,
        // Stopping or stopped: on its way out of the fleet (the group replaces it).
        Some(_) => InstanceState::ShuttingDown,
    }
}

pub(super) async fn instances(p: &AwsProvider, group: &str) -> provider::Result<Vec<Instance>> {
    let groups = describe(p, &[group.to_owned()], None).await?;
    let Some(g) = groups.first() else {
        return Err(provider::Error::new(
            ErrorKind::NotFound,
            "DescribeAutoScalingGroups",
            "ValidationError",
            format!("Auto Scaling group `{group}` not found"),
        ));
    };
    let group_version = g.launch_template().and_then(|t| t.version()).and_then(|v| v.parse().ok());
    let members: BTreeMap<String, Member> = g
        .instances()
        .iter()
        .filter_map(|i| {
            let m = Member {
                lifecycle: i.lifecycle_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                health: i.health_status().unwrap_or_default().to_owned(),
                version: i.launch_template().and_then(|t| t.version()).and_then(|v| v.parse().ok()),
            };
            Some((i.instance_id()?.to_owned(), m))
        })
        .collect();
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = members.keys().cloned().collect();
    let described = describe_instances(p, &ids, None).await?;
    let mut checks: BTreeMap<String, Checks> = BTreeMap::new();
    for chunk in chunks(&ids, FILTER_VALUES) {
        let mut next = None;
        loop {
            let request = p
                .ec2
                .describe_instance_status()
                .filters(filter("instance-id", chunk))
                .include_all_instances(true)
                .set_next_token(next.take());
            let out = p.call("DescribeInstanceStatus", request.send()).await?;
            for s in out.instance_statuses() {
                if let Some(id) = s.instance_id() {
                    let c = combine(
                        summary(s.instance_status().and_then(|x| x.status())),
                        summary(s.system_status().and_then(|x| x.status())),
                    );
                    checks.insert(id.to_owned(), c);
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    let mut out = Vec::new();
    for i in described {
        let Some(id) = i.instance_id() else { continue };
        let Some(member) = members.get(id) else {
            continue;
        };
        let st = state(i.state().and_then(|s| s.name()));
        if st == InstanceState::Terminated {
            continue;
        }
        let tags = tag_map(i.tags());
        let version = tags
            .get("aws:ec2launchtemplate:version")
            .and_then(|v| v.parse().ok())
            .or(member.version)
            .or(group_version)
            .unwrap_or(0);
        let c = checks.get(id).copied().unwrap_or(Checks::Unreported);
        out.push(Instance {
            id: id.to_owned(),
            launch_template_version: version,
            image_id: i.image_id().unwrap_or_default().to_owned(),
            state: st,
            health: health(st, &member.lifecycle, &member.health, c),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

pub(super) async fn set_capacity(
    p: &AwsProvider,
    group: &str,
    min: u32,
    desired: u32,
    max: u32,
) -> provider::Result<()> {
    let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let request = p
        .asg
        .update_auto_scaling_group()
        .auto_scaling_group_name(group)
        .min_size(n(min))
        .desired_capacity(n(desired))
        .max_size(n(max));
    p.call("UpdateAutoScalingGroup", request.send()).await.map_err(not_found_is_not_found).map(drop)
}

/// Terminates instances of `group`, one call each (the API takes one instance). Instances no
/// longer in the group are skipped: they are already on their way out.
pub(super) async fn terminate(
    p: &AwsProvider,
    group: &str,
    ids: &[String],
    decrement: bool,
) -> provider::Result<()> {
    let groups = describe(p, &[group.to_owned()], None).await?;
    let Some(g) = groups.first() else {
        return Err(provider::Error::new(
            ErrorKind::NotFound,
            "DescribeAutoScalingGroups",
            "ValidationError",
            format!("Auto Scaling group `{group}` not found"),
        ));
    };
    let members: Vec<&str> = g.instances().iter().filter_map(|i| i.instance_id()).collect();
    for id in ids {
        if !members.contains(&id.as_str()) {
            tracing::debug!(group, instance = %id, "not in the group any more; nothing to terminate");
            continue;
        }
        let request = p
            .asg
            .terminate_instance_in_auto_scaling_group()
            .instance_id(id)
            .should_decrement_desired_capacity(decrement);
        match p
            .call("TerminateInstanceInAutoScalingGroup", request.send())
            .await
            .map_err(not_found_is_not_found)
        {
            Err(e) if e.kind == ErrorKind::NotFound => {}
            other => other.map(drop)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_rules() {
        use Checks::{Failed, Passed, Pending, Unreported};
        let run = InstanceState::Running;
        assert_eq!(health(run, "InService", "Healthy", Passed), Health::Healthy);
        assert_eq!(
            health(run, "InService", "Healthy", Unreported),
            Health::Healthy,
            "emulators report no checks"
        );
        assert_eq!(health(run, "InService", "Healthy", Pending), Health::Initializing);
        assert_eq!(health(run, "InService", "Healthy", Failed), Health::Unhealthy);
        assert_eq!(health(run, "InService", "Unhealthy", Passed), Health::Unhealthy);
        assert_eq!(health(run, "Pending", "Healthy", Passed), Health::Initializing);
        assert_eq!(
            health(InstanceState::Pending, "InService", "Healthy", Unreported),
            Health::Initializing
        );
        assert_eq!(
            health(InstanceState::ShuttingDown, "Terminating", "Healthy", Passed),
            Health::Unhealthy
        );
    }

    #[test]
    fn checks_combine_to_the_worst() {
        assert_eq!(combine(Checks::Passed, Checks::Failed), Checks::Failed);
        assert_eq!(combine(Checks::Passed, Checks::Pending), Checks::Pending);
        assert_eq!(combine(Checks::Unreported, Checks::Unreported), Checks::Unreported);
        assert_eq!(combine(Checks::Passed, Checks::Unreported), Checks::Passed);
        assert_eq!(summary(Some(&SummaryStatus::InsufficientData)), Checks::Pending);
    }
}
