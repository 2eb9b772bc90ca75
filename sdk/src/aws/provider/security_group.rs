//! Security groups: rules are diffed into authorize, revoke and description updates.
//!
//! AWS stores a group's rules as permissions (protocol and port range) with sources (CIDR
//! blocks, groups). Graven compares them one source at a time: a rule with two CIDR blocks is
//! two of these, and the observed inputs report one rule per port range and source, sorted.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, UserIdGroupPair};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::ec2::{Found, id_filters, required, retag, tag_map, tag_spec, while_dependencies_go};
use super::kinds::SECURITY_GROUP;
use super::{AwsProvider, create_tags, decode, generated_name, object, observed};
use crate::provider::{self, Create, ErrorKind, Observed};

#[derive(Debug, Clone, Deserialize)]
struct RuleIn {
    protocol: String,
    from_port: i32,
    to_port: i32,
    #[serde(default)]
    cidr_blocks: Vec<String>,
    source_security_group_id: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct GroupIn {
    vpc_id: String,
    name: Option<String>,
    description: String,
    #[serde(default)]
    ingress: Vec<RuleIn>,
    #[serde(default)]
    egress: Vec<RuleIn>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Where traffic of a rule comes from (or goes to).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Cidr(String),
    Group(String),
}

/// What identifies one rule in AWS: protocol, ports, one source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    protocol: String,
    from: i32,
    to: i32,
    source: Source,
}

/// Rules one source at a time, with their descriptions.
type Atoms = BTreeMap<Key, Option<String>>;

/// `tcp`, `udp`, `icmp` and `-1` as AWS reports them (it reports names for 6, 17 and 1).
fn protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "all" | "-1" => "-1".into(),
        other => other.to_owned(),
    }
}

fn key(protocol_name: &str, from: i32, to: i32, source: Source) -> Key {
    let protocol = protocol(protocol_name);
    let (from, to) = if protocol == "-1" { (-1, -1) } else { (from, to) };
    Key { protocol, from, to, source }
}

fn atoms_of_inputs(rules: &[RuleIn]) -> Atoms {
    let mut out = Atoms::new();
    for r in rules {
        for c in &r.cidr_blocks {
            out.insert(
                key(&r.protocol, r.from_port, r.to_port, Source::Cidr(c.clone())),
                r.description.clone(),
            );
        }
        if let Some(g) = &r.source_security_group_id {
            out.insert(
                key(&r.protocol, r.from_port, r.to_port, Source::Group(g.clone())),
                r.description.clone(),
            );
        }
    }
    out
}

fn atoms_of_permissions(perms: &[IpPermission]) -> Atoms {
    let mut out = Atoms::new();
    for p in perms {
        let proto = p.ip_protocol().unwrap_or("-1");
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.insert(
                    key(proto, from, to, Source::Cidr(c.to_owned())),
                    r.description().map(str::to_owned),
                );
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.insert(
                    key(proto, from, to, Source::Group(id.to_owned())),
                    g.description().map(str::to_owned),
                );
            }
        }
    }
    out
}

/// The observed rules: one per port range and source.
fn rules_json(atoms: &Atoms) -> Json {
    Json::Array(
        atoms
            .iter()
            .map(|(k, d)| {
                let (cidrs, group) = match &k.source {
                    Source::Cidr(c) => (vec![c.clone()], None),
                    Source::Group(g) => (vec![], Some(g.clone())),
                };
                json!({
                    "protocol": k.protocol,
                    "from_port": k.from,
                    "to_port": k.to,
                    "cidr_blocks": cidrs,
                    "source_security_group_id": group,
                    "description": d,
                })
            })
            .collect(),
    )
}

/// One permission per atom (AWS accepts several; one each keeps descriptions apart).
fn permission(k: &Key, description: Option<&String>) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(&k.protocol);
    if k.protocol != "-1" {
        b = b.from_port(k.from).to_port(k.to);
    }
    match &k.source {
        Source::Cidr(c) => {
            b.ip_ranges(IpRange::builder().cidr_ip(c).set_description(description.cloned()).build())
        }
        Source::Group(g) => b.user_id_group_pairs(
            UserIdGroupPair::builder().group_id(g).set_description(description.cloned()).build(),
        ),
    }
    .build()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// Brings the rules of one direction from `now` to `desired`: revoke what goes, authorize what
/// comes, update descriptions that changed.
#[allow(clippy::too_many_lines)] // three symmetric pairs of calls, long only by their builders
async fn apply_rules(
    p: &AwsProvider,
    group: &str,
    dir: Direction,
    now: &Atoms,
    desired: &Atoms,
) -> provider::Result<()> {
    let revoke: Vec<IpPermission> =
        now.keys().filter(|k| !desired.contains_key(*k)).map(|k| permission(k, None)).collect();
    let authorize: Vec<IpPermission> = desired
        .iter()
        .filter(|(k, _)| !now.contains_key(*k))
        .map(|(k, d)| permission(k, d.as_ref()))
        .collect();
    let redescribe: Vec<IpPermission> = desired
        .iter()
        .filter(|(k, d)| now.get(*k).is_some_and(|n| n != *d))
        .map(|(k, d)| permission(k, d.as_ref()))
        .collect();
    if !revoke.is_empty() {
        let result = match dir {
            Direction::Ingress => p
                .call(
                    "RevokeSecurityGroupIngress",
                    p.ec2
                        .revoke_security_group_ingress()
                        .group_id(group)
                        .set_ip_permissions(Some(revoke))
                        .send(),
                )
                .await
                .map(drop),
            Direction::Egress => p
                .call(
                    "RevokeSecurityGroupEgress",
                    p.ec2
                        .revoke_security_group_egress()
                        .group_id(group)
                        .set_ip_permissions(Some(revoke))
                        .send(),
                )
                .await
                .map(drop),
        };
        match result {
            // A retried call that had gone through.
            Err(e) if e.code == "InvalidPermission.NotFound" => {}
            other => other?,
        }
    }
    if !authorize.is_empty() {
        let result = match dir {
            Direction::Ingress => p
                .call(
                    "AuthorizeSecurityGroupIngress",
                    p.ec2
                        .authorize_security_group_ingress()
                        .group_id(group)
                        .set_ip_permissions(Some(authorize))
                        .send(),
                )
                .await
                .map(drop),
            Direction::Egress => p
                .call(
                    "AuthorizeSecurityGroupEgress",
                    p.ec2
                        .authorize_security_group_egress()
                        .group_id(group)
                        .set_ip_permissions(Some(authorize))
                        .send(),
                )
                .await
                .map(drop),
        };
        match result {
            // A retried call that had gone through.
            Err(e) if e.code == "InvalidPermission.Duplicate" => {}
            other => other?,
        }
    }
    if !redescribe.is_empty() {
        match dir {
            Direction::Ingress => p
                .call(
                    "UpdateSecurityGroupRuleDescriptionsIngress",
                    p.ec2
                        .update_security_group_rule_descriptions_ingress()
                        .group_id(group)
                        .set_ip_permissions(Some(redescribe))
                        .send(),
                )
                .await
                .map(drop)?,
            Direction::Egress => p
                .call(
                    "UpdateSecurityGroupRuleDescriptionsEgress",
                    p.ec2
                        .update_security_group_rule_descriptions_egress()
                        .group_id(group)
                        .set_ip_permissions(Some(redescribe))
                        .send(),
                )
                .await
                .map(drop)?,
        }
    }
    Ok(())
}

pub(super) async fn create(p: &AwsProvider, request: &Create<'_>) -> provider::Result<Observed> {
    let input: GroupIn = decode(SECURITY_GROUP, request.inputs)?;
    let all = create_tags(request, &input.tags);
    let name = input.name.clone().unwrap_or_else(|| generated_name(request, 255));
    let out = p
        .call(
            "CreateSecurityGroup",
            p.ec2
                .create_security_group()
                .group_name(&name)
                .description(&input.description)
                .vpc_id(&input.vpc_id)
                .tag_specifications(tag_spec(ResourceType::SecurityGroup, &all))
                .send(),
        )
        .await?;
    let id = required("CreateSecurityGroup", "group id", out.group_id())?.to_owned();
    let ingress = atoms_of_inputs(&input.ingress);
    let egress = atoms_of_inputs(&input.egress);
    let steps = async {
        // AWS gives a new group one egress rule (all traffic to 0.0.0.0/0): start from what is there.
        let group = p
            .persist(|| async {
                let groups = describe(p, std::slice::from_ref(&id), None).await?;
                groups.into_iter().next().ok_or_else(|| {
                    provider::Error::new(
                        ErrorKind::NotFound,
                        "DescribeSecurityGroups",
                        "InvalidGroup.NotFound",
                        format!("`{id}` is not visible yet"),
                    )
                })
            })
            .await?;
        let (now_in, now_out) = (
            atoms_of_permissions(group.ip_permissions()),
            atoms_of_permissions(group.ip_permissions_egress()),
        );
        p.persist(|| apply_rules(p, &id, Direction::Egress, &now_out, &egress)).await?;
        p.persist(|| apply_rules(p, &id, Direction::Ingress, &now_in, &ingress)).await
    };
    if let Err(e) = steps.await {
        return Err(p.undo_create(SECURITY_GROUP, &id, e).await);
    }
    let inputs = object([
        ("vpc_id", json!(input.vpc_id)),
        ("name", json!(name)),
        ("description", json!(input.description)),
        ("ingress", rules_json(&ingress)),
        ("egress", rules_json(&egress)),
    ]);
    Ok(observed(&id, object([("id", json!(id))]), inputs, all))
}

async fn describe(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Vec<aws_sdk_ec2::types::SecurityGroup>> {
    let mut all = Vec::new();
    for filters in id_filters("group-id", ids, token) {
        let mut next = None;
        loop {
            let out = p
                .call(
                    "DescribeSecurityGroups",
                    p.ec2
                        .describe_security_groups()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(next.take())
                        .send(),
                )
                .await?;
            all.extend(out.security_groups().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(all)
}

pub(super) async fn read(
    p: &AwsProvider,
    ids: &[String],
    token: Option<&str>,
) -> provider::Result<Found> {
    let mut found = Found::new();
    for g in describe(p, ids, token).await? {
        let Some(id) = g.group_id() else { continue };
        let inputs = object([
            ("vpc_id", json!(g.vpc_id())),
            ("name", json!(g.group_name())),
            ("description", json!(g.description())),
            ("ingress", rules_json(&atoms_of_permissions(g.ip_permissions()))),
            ("egress", rules_json(&atoms_of_permissions(g.ip_permissions_egress()))),
        ]);
        found.insert(
            id.to_owned(),
            observed(id, object([("id", json!(id))]), inputs, tag_map(g.tags())),
        );
    }
    Ok(found)
}

pub(super) async fn update(
    p: &AwsProvider,
    id: &str,
    inputs: &Map<String, Json>,
    changed: &[String],
) -> provider::Result<()> {
    let input: GroupIn = decode(SECURITY_GROUP, inputs)?;
    let groups = describe(p, &[id.to_owned()], None).await?;
    let Some(g) = groups.first() else {
        return Err(provider::Error::new(
            ErrorKind::NotFound,
            "update aws:ec2:SecurityGroup",
            "InvalidGroup.NotFound",
            format!("`{id}` does not exist"),
        ));
    };
    if changed.iter().any(|c| c == "egress") {
        apply_rules(
            p,
            id,
            Direction::Egress,
            &atoms_of_permissions(g.ip_permissions_egress()),
            &atoms_of_inputs(&input.egress),
        )
        .await?;
    }
    if changed.iter().any(|c| c == "ingress") {
        apply_rules(
            p,
            id,
            Direction::Ingress,
            &atoms_of_permissions(g.ip_permissions()),
            &atoms_of_inputs(&input.ingress),
        )
        .await?;
    }
    if changed.iter().any(|c| c == "tags") {
        retag(p, id, &tag_map(g.tags()), &input.tags).await?;
    }
    Ok(())
}

pub(super) async fn delete(p: &AwsProvider, id: &str) -> provider::Result<()> {
    // Instances that just terminated hold the group through their network interfaces a while.
    while_dependencies_go(p, || async {
        p.call("DeleteSecurityGroup", p.ec2.delete_security_group().group_id(id).send())
            .await
            .map(drop)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: i32, to: i32, cidrs: &[&str]) -> RuleIn {
        RuleIn {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidr_blocks: cidrs.iter().map(|c| (*c).to_owned()).collect(),
            source_security_group_id: None,
            description: None,
        }
    }

    #[test]
    fn inputs_and_permissions_meet_one_source_at_a_time() {
        let inputs = atoms_of_inputs(&[
            rule("tcp", 80, 80, &["10.0.0.0/8", "0.0.0.0/0"]),
            rule("-1", 0, 0, &["0.0.0.0/0"]),
        ]);
        assert_eq!(inputs.len(), 3);
        let perms = [
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(80)
                .to_port(80)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
                .build(),
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        ];
        assert_eq!(atoms_of_permissions(&perms), inputs, "`-1` ignores ports on both sides");
    }

    #[test]
    fn observed_rules_have_the_input_shape() {
        let atoms = atoms_of_inputs(&[rule("6", 22, 22, &["10.0.0.0/8"])]);
        assert_eq!(
            rules_json(&atoms),
            json!([{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"], "source_security_group_id": null, "description": null}])
        );
    }
}
