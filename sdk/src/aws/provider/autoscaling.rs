//! Auto Scaling groups: the physical id is the group's name.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::{AutoScalingGroup, Filter, LaunchTemplateSpecification, Tag};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::ec2::{Found, wait_terminated};
use super::kinds::AUTO_SCALING_GROUP;
use super::{AwsProvider, chunks, create_tags, decode, generated_name, object, observed, tag_diff};
use crate::provider::{self, Create, ErrorKind, Observed, tags};

/// The most names (and records) one `DescribeAutoScalingGroups` call returns.
const NAMES_PER_CALL: usize = 100;

#[derive(Deserialize)]
pub(super) struct GroupIn {
    name: Option<String>,
    launch_template_id: String,
    launch_template_version: u64,
    min_size: u32,
    desired_capacity: u32,
    max_size: u32,
    #[serde(default)]
    subnet_ids: Vec<String>,
    health_check_type: String,
    health_check_grace_period: u32,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn template(input: &GroupIn) -> LaunchTemplateSpecification {
    LaunchTemplateSpecification::builder()
        .launch_template_id(&input.launch_template_id)
        .version(input.launch_template_version.to_string())
        .build()
}

fn group_tags(group: &str, tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                .propagate_at_launch(true)
                .build()
        })
        .collect()
}

/// Auto Scaling reports a missing group as `ValidationError` with "not found" in the message.
pub(super) fn not_found_is_not_found(mut e: provider::Error) -> provider::Error {
    if e.code == "ValidationError" && e.message.to_ascii_lowercase().contains("not found") {
        e.kind = ErrorKind::NotFound;
    }
    e
}

pub(super) async fn create(p: &AwsProvider, request: &Create<'_>) -> provider::Result<Observed> {
    let input: GroupIn = decode(AUTO_SCALING_GROUP, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let name = input.name.clone().unwrap_or_else(|| generated_name(request, 255));
    p.call(
        "CreateAutoScalingGroup",
        p.asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .launch_template(template(&input))
            .min_size(to_i32(input.min_size))
            .max_size(to_i32(input.max_size))
            .desired_capacity(to_i32(input.desired_capacity))
            .vpc_zone_identifier(input.subnet_ids.join(","))
            .health_check_type(&input.health_check_type)
            .health_check_grace_period(to_i32(input.health_check_grace_period))
            .set_tags(Some(group_tags(&name, &all)))
            .send(),
    )
    .await?;
    let names = [name.clone()];
    let found = p
        .persist(|| async {
            describe(p, &names, None).await?.into_iter().next().ok_or_else(|| {
                provider::Error::new(
                    ErrorKind::NotFound,
                    "DescribeAutoScalingGroups",
                    "NotFound",
                    format!("group `{name}` is not visible yet"),
                )
            })
        })
        .await;
    let group = match found {
        Ok(g) => g,
        Err(e) => return Err(p.undo_create(AUTO_SCALING_GROUP, &name, e).await),
    };
    let outputs = object([("name", json!(name)), ("arn", json!(group.auto_scaling_group_arn()))]);
    let inputs = object([
        ("name", json!(name)),
        ("launch_template_id", json!(input.launch_template_id)),
        ("launch_template_version", json!(input.launch_template_version)),
        ("min_size", json!(input.min_size)),
        ("desired_capacity", json!(input.desired_capacity)),
        ("max_size", json!(input.max_size)),
        ("subnet_ids", json!(input.subnet_ids)),
        ("health_check_type", json!(input.health_check_type)),
        ("health_check_grace_period", json!(input.health_check_grace_period)),
    ]);
    Ok(observed(&name, outputs, inputs, all))
}

/// Groups by name (100 a call, paginated), or the one tagged with `token`.
pub(super) async fn describe(
    p: &AwsProvider,
    names: &[String],
    token: Option<&str>,
) -> provider::Result<Vec<AutoScalingGroup>> {
    let requests: Vec<_> = match token {
        Some(t) => vec![
            p.asg
                .describe_auto_scaling_groups()
                .filters(Filter::builder().name(format!("tag:{}", tags::TOKEN)).values(t).build()),
        ],
        None => chunks(names, NAMES_PER_CALL)
            .map(|c| {
                p.asg.describe_auto_scaling_groups().set_auto_scaling_group_names(Some(c.to_vec()))
            })
            .collect(),
    };
    let mut all = Vec::new();
    for request in requests {
        let mut next = None;
        loop {
            let out = p
                .call(
                    "DescribeAutoScalingGroups",
                    request
                        .clone()
                        .max_records(to_i32(NAMES_PER_CALL as u32))
                        .set_next_token(next.take())
                        .send(),
                )
                .await
                .map_err(not_found_is_not_found)?;
            all.extend(out.auto_scaling_groups().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(all)
}

/// Whether a group is being deleted (it is gone as far as Graven cares).
fn deleting(g: &AutoScalingGroup) -> bool {
    g.status().is_some_and(|s| s.to_ascii_lowercase().contains("delete"))
}

pub(super) async fn read(
    p: &AwsProvider,
    names: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let mut found = Found::new();
    for g in describe(p, names, token).await? {
        let Some(name) = g.auto_scaling_group_name() else {
            continue;
        };
        if deleting(&g) {
            continue;
        }
        let all: BTreeMap<String, String> = g
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
            .collect();
        let lt = g.launch_template();
        let version = lt.and_then(|t| t.version()).and_then(|v| v.parse::<u64>().ok());
        let subnets: Vec<&str> = g
            .vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let inputs = object([
            ("name", json!(name)),
            ("launch_template_id", json!(lt.and_then(|t| t.launch_template_id()))),
            ("launch_template_version", json!(version)),
            ("min_size", json!(g.min_size())),
            ("desired_capacity", json!(g.desired_capacity())),
            ("max_size", json!(g.max_size())),
            ("subnet_ids", json!(subnets)),
            ("health_check_type", json!(g.health_check_type())),
            ("health_check_grace_period", json!(g.health_check_grace_period())),
        ]);
        let outputs = object([("name", json!(name)), ("arn", json!(g.auto_scaling_group_arn()))]);
        found.insert(name.to_owned(), observed(name, outputs, inputs, all));
    }
    Ok(found)
}

pub(super) async fn update(
    p: &AwsProvider,
    name: &str,
    inputs: &Map<String, Json>,
    changed: &[String],
) -> provider::Result<()> {
    let input: GroupIn = decode(AUTO_SCALING_GROUP, inputs)?;
    let has = |f: &str| changed.iter().any(|c| c == f);
    let mut request = p.asg.update_auto_scaling_group().auto_scaling_group_name(name);
    let mut any = false;
    if has("launch_template_id") || has("launch_template_version") {
        request = request.launch_template(template(&input));
        any = true;
    }
    // Only what changed: a rollout may hold the desired capacity above the stack's while it
    // surges, and an update of another field must not undo that.
    for (field, set) in [
        ("min_size", input.min_size),
        ("desired_capacity", input.desired_capacity),
        ("max_size", input.max_size),
    ] {
        if has(field) {
            request = match field {
                "min_size" => request.min_size(to_i32(set)),
                "max_size" => request.max_size(to_i32(set)),
                _ => request.desired_capacity(to_i32(set)),
            };
            any = true;
        }
    }
    if has("subnet_ids") {
        request = request.vpc_zone_identifier(input.subnet_ids.join(","));
        any = true;
    }
    if has("health_check_type") || has("health_check_grace_period") {
        request = request
            .health_check_type(&input.health_check_type)
            .health_check_grace_period(to_i32(input.health_check_grace_period));
        any = true;
    }
    if any {
        p.call("UpdateAutoScalingGroup", request.send()).await.map_err(not_found_is_not_found)?;
    }
    if has("tags") {
        let groups = describe(p, &[name.to_owned()], None).await?;
        let current: BTreeMap<String, String> = groups
            .iter()
            .flat_map(AutoScalingGroup::tags)
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
            .collect();
        let (set, remove) = tag_diff(&current, &input.tags);
        if !set.is_empty() {
            p.call(
                "CreateOrUpdateTags",
                p.asg.create_or_update_tags().set_tags(Some(group_tags(name, &set))).send(),
            )
            .await?;
        }
        if !remove.is_empty() {
            let keys = remove
                .iter()
                .map(|k| {
                    Tag::builder()
                        .resource_id(name)
                        .resource_type("auto-scaling-group")
                        .key(k)
                        .build()
                })
                .collect();
            p.call("DeleteTags", p.asg.delete_tags().set_tags(Some(keys)).send()).await?;
        }
    }
    Ok(())
}

/// Deletes the group with its instances (`ForceDelete`) and waits until both are gone, so that
/// the subnets, security groups and launch template it used can go next.
pub(super) async fn delete(p: &AwsProvider, name: &str) -> provider::Result<()> {
    let names = [name.to_owned()];
    let groups = describe(p, &names, None).await?;
    let Some(group) = groups.first() else {
        return Ok(());
    };
    let instances: Vec<String> =
        group.instances().iter().filter_map(|i| i.instance_id().map(str::to_owned)).collect();
    if !deleting(group) {
        match p
            .call(
                "DeleteAutoScalingGroup",
                p.asg
                    .delete_auto_scaling_group()
                    .auto_scaling_group_name(name)
                    .force_delete(true)
                    .send(),
            )
            .await
            .map_err(not_found_is_not_found)
        {
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            // Already being deleted (by an earlier, interrupted run).
            Err(e) if e.code == "ResourceInUse" || e.code == "ScalingActivityInProgress" => {}
            other => other.map(drop)?,
        }
    }
    p.wait_until("DeleteAutoScalingGroup", &format!("group {name} to be deleted"), || async {
        Ok(describe(p, &names, None).await?.is_empty())
    })
    .await?;
    wait_terminated(p, &instances).await
}
