//! Rolling a fleet: replace its instances batch by batch behind health checks.
//!
//! Graven orchestrates the replacement itself, with the provider's fleet primitives only (list
//! instances with their version and health, set capacity, terminate with or without
//! decrement), so it waits for the outcome and works where Instance Refresh does not exist.
//! Each batch launches new instances first when the group's maximum allows (the fleet never
//! drops below its desired capacity), waits for them to be healthy (and warm), then
//! terminates as many old ones. When a batch does not become healthy in time, the group goes
//! back to the previous launch template version (when the rollout says so) and the step fails.

use serde_json::{Map, Value as Json};
use tokio::time::Instant;

use super::{Event, Shared};
use crate::error::{Error, Result};
use crate::provider::{Health, Instance, InstanceState};
use crate::rollout::Rollout;
use crate::state::ResourceState;

fn num(inputs: &Map<String, Json>, key: &str) -> u64 {
    inputs.get(key).and_then(Json::as_u64).unwrap_or(0)
}

fn healthy_on(instances: &[Instance], version: u64) -> usize {
    instances
        .iter()
        .filter(|i| {
            i.launch_template_version == version
                && i.state == InstanceState::Running
                && i.health == Health::Healthy
        })
        .count()
}

/// Rolls group `id` (whose recorded state is `previous`) onto the version in `inputs`.
pub(super) async fn roll(
    shared: &Shared,
    id: &str,
    previous: &ResourceState,
    inputs: &Map<String, Json>,
) -> Result<()> {
    let group = previous.physical_id.as_str();
    let version = num(inputs, "launch_template_version");
    let old_version = num(&previous.inputs, "launch_template_version");
    let (min, desired, max) = (
        num(inputs, "min_size") as u32,
        num(inputs, "desired_capacity") as u32,
        num(inputs, "max_size") as u32,
    );
    let rollout: Rollout = inputs
        .get("rollout")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default();
    let Rollout::Rolling(settings) = &rollout;
    let batch = rollout.batch_size(desired) as usize;
    // A roll cut short (the process killed between raising the capacity for a batch and
    // terminating the batch's old instances) leaves the group above its desired capacity. Each
    // batch below counts on the group being at it: raising it by `k` must launch `k` instances
    // of the new version. So put the group back first (scaling in retires older versions first).
    shared
        .call(id, "SetDesiredCapacity", || shared.provider.set_capacity(group, min, desired, max))
        .await?;
    let mut done_batches = 0;
    loop {
        let instances = shared
            .call(id, "DescribeAutoScalingGroups", || shared.provider.fleet_instances(group))
            .await?;
        let old: Vec<&Instance> =
            instances.iter().filter(|i| i.launch_template_version != version).collect();
        let healthy = healthy_on(&instances, version);
        if old.is_empty() {
            if healthy >= desired as usize {
                shared.emit(Event::Fleet {
                    id: id.to_owned(),
                    message: format!("{healthy}/{desired} instances healthy on version {version}"),
                });
                return Ok(());
            }
            wait_healthy(
                shared,
                id,
                group,
                version,
                desired as usize,
                settings,
                Some(previous),
                old_version,
            )
            .await?;
            continue;
        }
        let k = batch.min(old.len());
        let victims: Vec<String> = old.iter().take(k).map(|i| i.id.clone()).collect();
        done_batches += 1;
        if desired + k as u32 <= max {
            shared
                .call(id, "SetDesiredCapacity", || {
                    shared.provider.set_capacity(group, min, desired + k as u32, max)
                })
                .await?;
            wait_healthy(
                shared,
                id,
                group,
                version,
                healthy + k,
                settings,
                Some(previous),
                old_version,
            )
            .await?;
            shared
                .call(id, "TerminateInstanceInAutoScalingGroup", || {
                    shared.provider.terminate_instances(group, &victims, true)
                })
                .await?;
        } else {
            shared
                .call(id, "TerminateInstanceInAutoScalingGroup", || {
                    shared.provider.terminate_instances(group, &victims, false)
                })
                .await?;
            wait_healthy(
                shared,
                id,
                group,
                version,
                healthy + k,
                settings,
                Some(previous),
                old_version,
            )
            .await?;
        }
        shared.emit(Event::Fleet {
            id: id.to_owned(),
            message: format!(
                "batch {done_batches}: replaced {} ({} left on older versions)",
                victims.join(", "),
                old.len() - k
            ),
        });
    }
}

/// Waits until a new group `id` (physical `group`) runs its desired capacity healthy, as
/// CloudFormation's creation policy and Terraform's `wait_for_capacity_timeout` do, so that an
/// apply that returns has a working fleet.
pub(super) async fn wait_for_capacity(
    shared: &Shared,
    id: &str,
    group: &str,
    inputs: &Map<String, Json>,
) -> Result<()> {
    let version = num(inputs, "launch_template_version");
    let desired = num(inputs, "desired_capacity") as usize;
    let rollout: Rollout = inputs
        .get("rollout")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default();
    let Rollout::Rolling(settings) = &rollout;
    wait_healthy(shared, id, group, version, desired, settings, None, 0).await?;
    shared.emit(Event::Fleet {
        id: id.to_owned(),
        message: format!("{desired}/{desired} instances healthy on version {version}"),
    });
    Ok(())
}

/// Waits until `want` instances run `version` healthy (and have stayed so for the warm-up);
/// on timeout, rolls back when the rollout says so, and fails.
#[allow(clippy::too_many_arguments)]
async fn wait_healthy(
    shared: &Shared,
    id: &str,
    group: &str,
    version: u64,
    want: usize,
    settings: &crate::rollout::Rolling,
    previous: Option<&ResourceState>,
    old_version: u64,
) -> Result<()> {
    let deadline = Instant::now() + settings.health_timeout;
    let mut healthy_since: Option<Instant> = None;
    loop {
        let instances = shared
            .call(id, "DescribeAutoScalingGroups", || shared.provider.fleet_instances(group))
            .await?;
        let healthy = healthy_on(&instances, version);
        if healthy >= want {
            let since = *healthy_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= settings.warmup {
                return Ok(());
            }
        } else {
            healthy_since = None;
        }
        if Instant::now() >= deadline {
            let mut message = format!(
                "{healthy} of {want} instances healthy on launch template version {version} after {}s",
                settings.health_timeout.as_secs()
            );
            if let Some(previous) =
                previous.filter(|_| settings.rollback_on_failure && old_version > 0)
            {
                rollback(shared, id, group, previous, version).await?;
                message.push_str(&format!("; rolled back to version {old_version}"));
            }
            return Err(Error::Provider {
                resource: id.to_owned(),
                call: "rollout".to_owned(),
                message,
            });
        }
        tokio::time::sleep(shared.options.poll_interval).await;
    }
}

/// Puts the group back on its recorded inputs and replaces the instances of `bad_version`.
async fn rollback(
    shared: &Shared,
    id: &str,
    group: &str,
    previous: &ResourceState,
    bad_version: u64,
) -> Result<()> {
    shared.emit(Event::Fleet {
        id: id.to_owned(),
        message: format!("rolling back from version {bad_version}"),
    });
    let kind = previous.kind.clone();
    let changed = vec![
        "launch_template_version".to_owned(),
        "min_size".to_owned(),
        "desired_capacity".to_owned(),
        "max_size".to_owned(),
    ];
    shared
        .call(id, "UpdateAutoScalingGroup", || {
            shared.provider.update(&kind, group, &previous.inputs, &changed)
        })
        .await?;
    let instances = shared
        .call(id, "DescribeAutoScalingGroups", || shared.provider.fleet_instances(group))
        .await?;
    let bad: Vec<String> = instances
        .iter()
        .filter(|i| i.launch_template_version == bad_version)
        .map(|i| i.id.clone())
        .collect();
    let (desired, total) = (num(&previous.inputs, "desired_capacity") as usize, instances.len());
    let surplus = total.saturating_sub(desired).min(bad.len());
    if surplus > 0 {
        shared
            .call(id, "TerminateInstanceInAutoScalingGroup", || {
                shared.provider.terminate_instances(group, &bad[..surplus], true)
            })
            .await?;
    }
    if bad.len() > surplus {
        shared
            .call(id, "TerminateInstanceInAutoScalingGroup", || {
                shared.provider.terminate_instances(group, &bad[surplus..], false)
            })
            .await?;
    }
    Ok(())
}
