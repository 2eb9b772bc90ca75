//! The AWS resource catalog as typed models: [`ec2`] and [`autoscaling`].
//!
//! These are plain values: building them makes no cloud call. Their inputs are checked when the
//! stack's graph is built (CIDRs, ports, tags, capacities, a subnet inside its VPC), and every
//! problem names the resource and the field.

pub mod autoscaling;
pub mod ec2;
#[cfg(feature = "aws")]
pub mod provider;
#[cfg(feature = "aws")]
pub mod s3_state;

use std::collections::BTreeMap;

use crate::error::Problem;
use crate::graph::Node;
use crate::resource::{Resource, problem};
use crate::value::as_reference;

/// Tags of a resource: at most 50, keys up to 128 characters, values up to 256, no `aws:`
/// prefix (AWS's limits). Graven adds its own `graven:*` tags at apply time.
pub type Tags = BTreeMap<String, String>;

/// Checks tags against AWS's limits; `field` names the input holding them.
pub fn validate_tags(field: &str, tags: &Tags, out: &mut Vec<Problem>) {
    if tags.len() > 50 - 4 {
        out.push(problem(
            field,
            format!(
                "{} tags; AWS allows 50 per resource and Graven adds 4, so use at most 46",
                tags.len()
            ),
        ));
    }
    for (k, v) in tags {
        if k.is_empty() {
            out.push(problem(field, "a tag key is empty; tag keys need 1 to 128 characters"));
        }
        if k.chars().count() > 128 {
            out.push(problem(
                field,
                format!(
                    "tag key `{}...` has {} characters; the limit is 128",
                    k.chars().take(20).collect::<String>(),
                    k.chars().count()
                ),
            ));
        }
        if v.chars().count() > 256 {
            out.push(problem(
                field,
                format!(
                    "the value of tag `{k}` has {} characters; the limit is 256",
                    v.chars().count()
                ),
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            out.push(problem(
                field,
                format!("tag key `{k}` starts with `aws:`, which AWS reserves; rename it"),
            ));
        }
        if k.starts_with("graven:") {
            out.push(problem(
                field,
                format!("tag key `{k}` starts with `graven:`, which Graven sets itself; rename it"),
            ));
        }
    }
}

/// Checks that `from..=to` is a valid port range for `protocol`.
pub(crate) fn validate_ports(
    field: &str,
    protocol: &str,
    from: i32,
    to: i32,
    out: &mut Vec<Problem>,
) {
    match protocol {
        "-1" => {}
        "icmp" => {
            if !(-1..=255).contains(&from) || !(-1..=255).contains(&to) {
                out.push(problem(
                    field,
                    format!("ICMP type/code {from}/{to} out of range -1..=255"),
                ));
            }
        }
        "tcp" | "udp" => {
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) {
                out.push(problem(field, format!("port range {from}-{to} is out of 0..=65535")));
            } else if from > to {
                out.push(problem(
                    field,
                    format!("port range {from}-{to} is reversed; write {to}-{from}"),
                ));
            }
        }
        other => out.push(problem(
            field,
            format!("unknown protocol `{other}`; use `tcp`, `udp`, `icmp` or `-1` (all)"),
        )),
    }
}

/// Checks across resources that the catalog needs: a subnet's literal CIDR lies inside its
/// VPC's literal CIDR, and sibling subnets of one VPC do not overlap.
pub(crate) fn check_graph(nodes: &[Node], out: &mut Vec<Problem>) {
    let mut vpc_of: Vec<(usize, usize, ipnet::Ipv4Net)> = Vec::new();
    let by_id = || -> std::collections::HashMap<&str, usize> {
        nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind() == <ec2::Vpc as Resource>::KIND)
            .map(|(i, n)| (n.id.as_str(), i))
            .collect()
    };
    let mut vpcs = None;
    for (i, n) in nodes.iter().enumerate() {
        if n.kind() != <ec2::Subnet as Resource>::KIND {
            continue;
        }
        let Some((vpc, _)) = n.inputs.get("vpc_id").and_then(as_reference) else { continue };
        let vpcs = vpcs.get_or_insert_with(by_id);
        let Some(&v) = vpcs.get(vpc) else { continue };
        let parse = |node: &Node| {
            node.inputs
                .get("cidr_block")
                .and_then(|c| c.as_str())
                .and_then(|c| c.parse::<ipnet::Ipv4Net>().ok())
        };
        let (Some(subnet), Some(vpc_net)) = (parse(n), parse(&nodes[v])) else { continue };
        if !vpc_net.contains(&subnet) {
            out.push(Problem {
                resource: n.id.clone(),
                field: "cidr_block".into(),
                message: format!(
                    "{subnet} is not inside the CIDR {vpc_net} of VPC `{}`; pick a block inside it",
                    nodes[v].id
                ),
            });
            continue;
        }
        for (j, w, other) in &vpc_of {
            if *w == v && (other.contains(&subnet.network()) || subnet.contains(&other.network())) {
                out.push(Problem {
                    resource: n.id.clone(),
                    field: "cidr_block".into(),
                    message: format!("{subnet} overlaps {other} of subnet `{}` in the same VPC; subnets of a VPC must not overlap", nodes[*j].id),
                });
            }
        }
        vpc_of.push((i, v, subnet));
    }
}
