//! Security groups and their rules.

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::aws::{Tags, validate_ports, validate_tags};
use crate::error::Problem;
use crate::id::{SecurityGroupId, VpcId};
use crate::resource::problem;
use crate::value::{RefTarget, Refs, Value};
use crate::{Outputs, Resource};

/// One ingress or egress rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp`, or `-1` for all.
    pub protocol: String,
    /// First port (or ICMP type).
    pub from_port: i32,
    /// Last port (or ICMP code).
    pub to_port: i32,
    /// Allowed address ranges.
    pub cidr_blocks: Vec<Ipv4Net>,
    /// Allowed source (or destination) security group.
    pub source_security_group_id: Option<Value<SecurityGroupId>>,
    /// What the rule is for.
    pub description: Option<String>,
}

impl Rule {
    /// TCP on one port from `cidr`.
    pub fn tcp(port: u16, cidr: Ipv4Net) -> Rule {
        Rule::tcp_range(port, port, cidr)
    }

    /// TCP on ports `from..=to` from `cidr`.
    pub fn tcp_range(from: u16, to: u16, cidr: Ipv4Net) -> Rule {
        Rule {
            protocol: "tcp".into(),
            from_port: i32::from(from),
            to_port: i32::from(to),
            cidr_blocks: vec![cidr],
            source_security_group_id: None,
            description: None,
        }
    }

    /// TCP on one port from the members of another security group.
    pub fn tcp_from_group(port: u16, group: impl Into<Value<SecurityGroupId>>) -> Rule {
        Rule {
            protocol: "tcp".into(),
            from_port: i32::from(port),
            to_port: i32::from(port),
            cidr_blocks: Vec::new(),
            source_security_group_id: Some(group.into()),
            description: None,
        }
    }

    /// All traffic to or from `cidr`.
    pub fn all(cidr: Ipv4Net) -> Rule {
        Rule {
            protocol: "-1".into(),
            from_port: -1,
            to_port: -1,
            cidr_blocks: vec![cidr],
            source_security_group_id: None,
            description: None,
        }
    }

    /// A rule with any protocol and port range (checked when the graph is built).
    pub fn new(protocol: &str, from_port: i32, to_port: i32, cidr_blocks: Vec<Ipv4Net>) -> Rule {
        Rule {
            protocol: protocol.into(),
            from_port,
            to_port,
            cidr_blocks,
            source_security_group_id: None,
            description: None,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn describe(mut self, description: &str) -> Rule {
        self.description = Some(description.into());
        self
    }

    fn check(&self, field: &str, out: &mut Vec<Problem>) {
        validate_ports(field, &self.protocol, self.from_port, self.to_port, out);
        if self.cidr_blocks.is_empty() && self.source_security_group_id.is_none() {
            out.push(problem(field, "a rule needs a CIDR block or a source security group"));
        }
        if let Some(d) = &self.description {
            if d.len() > 255 {
                out.push(problem(field, "a rule description is limited to 255 characters"));
            }
        }
    }
}

impl Refs for Rule {
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>)) {
        self.source_security_group_id.visit_refs(f);
    }
}

/// A security group of one VPC. Rules update in place; the VPC, name and description force
/// replacement.
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:ec2:SecurityGroup", outputs = SecurityGroupOutputs, validate = SecurityGroup::check)]
pub struct SecurityGroup {
    vpc_id: Value<VpcId>,
    name: Option<String>,
    description: String,
    #[graven(update)]
    ingress: Vec<Rule>,
    #[graven(update)]
    egress: Vec<Rule>,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of a [`SecurityGroup`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct SecurityGroupOutputs {
    /// The group's id.
    pub id: SecurityGroupId,
}

impl SecurityGroup {
    /// A group in `vpc_id` with no ingress and all egress allowed (as AWS makes it).
    pub fn new(vpc_id: impl Into<Value<VpcId>>, description: &str) -> SecurityGroup {
        SecurityGroup {
            vpc_id: vpc_id.into(),
            name: None,
            description: description.into(),
            ingress: Vec::new(),
            egress: vec![Rule::all(Ipv4Net::default())],
            tags: Tags::new(),
        }
    }

    /// Sets the group's name (default: generated from the stack and the logical id, so that a
    /// replacement can exist beside the old group).
    #[must_use]
    pub fn name(mut self, name: &str) -> SecurityGroup {
        self.name = Some(name.into());
        self
    }

    /// Adds an ingress rule.
    #[must_use]
    pub fn ingress(mut self, rule: Rule) -> SecurityGroup {
        self.ingress.push(rule);
        self
    }

    /// Replaces the egress rules (default: all traffic anywhere).
    #[must_use]
    pub fn egress(mut self, rules: Vec<Rule>) -> SecurityGroup {
        self.egress = rules;
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> SecurityGroup {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The ingress rules.
    pub fn ingress_rules(&self) -> &[Rule] {
        &self.ingress
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.description.is_empty() || self.description.len() > 255 {
            out.push(problem("description", "a description of 1 to 255 characters is required"));
        }
        if let Some(n) = &self.name {
            if n.is_empty() || n.len() > 255 || n.starts_with("sg-") {
                out.push(problem(
                    "name",
                    format!(
                        "`{n}`: a group name has 1 to 255 characters and does not start with `sg-`"
                    ),
                ));
            }
        }
        for (i, r) in self.ingress.iter().enumerate() {
            r.check(&format!("ingress[{i}]"), &mut out);
        }
        for (i, r) in self.egress.iter().enumerate() {
            r.check(&format!("egress[{i}]"), &mut out);
        }
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_checked() {
        let sg = SecurityGroup::new(VpcId::from("vpc-1"), "web")
            .ingress(Rule::new("tcp", 80, 70000, vec!["0.0.0.0/0".parse().unwrap()]))
            .ingress(Rule::new("tcp", 443, 80, vec!["0.0.0.0/0".parse().unwrap()]))
            .ingress(Rule::new("sctp", 1, 2, vec!["0.0.0.0/0".parse().unwrap()]));
        let p = sg.check();
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[0].field, "ingress[0]");
        assert!(p[1].message.contains("reversed"));
        assert!(p[2].message.contains("unknown protocol"));
    }
}
