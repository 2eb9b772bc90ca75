//! The simulated resources and the store that holds them.
//!
//! Every resource is a [`Resource`]: its id, its tags and a kind-specific [`Spec`]. The
//! [`Model`] keeps them in one table per kind, with derived indices (idempotency tokens, unique
//! names, and which resources depend on which) that the rules consult. Every change goes
//! through [`Model::insert`] and [`Model::take`], which keep the indices right and record the
//! change so that it can be journaled.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use crate::provider::{self, ErrorKind, Observed};
use crate::release::ImageRecord;

use super::fleet::{Group, Target};
use super::instance::Instance;

/// The kinds the local cloud simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    LaunchTemplate,
    Instance,
    Image,
    AutoScalingGroup,
}

impl Kind {
    /// Every kind.
    pub(crate) const ALL: [Kind; 9] = [
        Kind::Vpc,
        Kind::Subnet,
        Kind::InternetGateway,
        Kind::RouteTable,
        Kind::SecurityGroup,
        Kind::LaunchTemplate,
        Kind::Instance,
        Kind::Image,
        Kind::AutoScalingGroup,
    ];

    /// The kind named `name` (`aws:ec2:Vpc`).
    pub(crate) fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind's name in the catalog.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Vpc => "aws:ec2:Vpc",
            Kind::Subnet => "aws:ec2:Subnet",
            Kind::InternetGateway => "aws:ec2:InternetGateway",
            Kind::RouteTable => "aws:ec2:RouteTable",
            Kind::SecurityGroup => "aws:ec2:SecurityGroup",
            Kind::LaunchTemplate => "aws:ec2:LaunchTemplate",
            Kind::Instance => "aws:ec2:Instance",
            Kind::Image => "aws:ec2:Image",
            Kind::AutoScalingGroup => "aws:autoscaling:AutoScalingGroup",
        }
    }

    /// The prefix of the kind's physical ids (groups are named, not numbered).
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::InternetGateway => "igw",
            Kind::RouteTable => "rtb",
            Kind::SecurityGroup => "sg",
            Kind::LaunchTemplate => "lt",
            Kind::Instance => "i",
            Kind::Image => "ami",
            Kind::AutoScalingGroup => "asg",
        }
    }

    /// The API call that creates one.
    pub(crate) fn create_call(self) -> &'static str {
        match self {
            Kind::Vpc => "CreateVpc",
            Kind::Subnet => "CreateSubnet",
            Kind::InternetGateway => "CreateInternetGateway",
            Kind::RouteTable => "CreateRouteTable",
            Kind::SecurityGroup => "CreateSecurityGroup",
            Kind::LaunchTemplate => "CreateLaunchTemplate",
            Kind::Instance => "RunInstances",
            Kind::Image => "CopyImage",
            Kind::AutoScalingGroup => "CreateAutoScalingGroup",
        }
    }

    /// The API call that reads them.
    pub(crate) fn describe_call(self) -> &'static str {
        match self {
            Kind::Vpc => "DescribeVpcs",
            Kind::Subnet => "DescribeSubnets",
            Kind::InternetGateway => "DescribeInternetGateways",
            Kind::RouteTable => "DescribeRouteTables",
            Kind::SecurityGroup => "DescribeSecurityGroups",
            Kind::LaunchTemplate => "DescribeLaunchTemplates",
            Kind::Instance => "DescribeInstances",
            Kind::Image => "DescribeImages",
            Kind::AutoScalingGroup => "DescribeAutoScalingGroups",
        }
    }

    /// The API call that changes one; `tags_only` when only its tags change.
    pub(crate) fn update_call(self, tags_only: bool) -> &'static str {
        match self {
            Kind::LaunchTemplate => "CreateLaunchTemplateVersion",
            _ if tags_only => "CreateTags",
            Kind::Vpc => "ModifyVpcAttribute",
            Kind::Subnet => "ModifySubnetAttribute",
            Kind::InternetGateway => "AttachInternetGateway",
            Kind::RouteTable => "ReplaceRoute",
            Kind::SecurityGroup => "ModifySecurityGroupRules",
            Kind::Instance => "ModifyInstanceAttribute",
            Kind::Image => "ModifyImageAttribute",
            Kind::AutoScalingGroup => "UpdateAutoScalingGroup",
        }
    }

    /// The API call that deletes one.
    pub(crate) fn delete_call(self) -> &'static str {
        match self {
            Kind::Vpc => "DeleteVpc",
            Kind::Subnet => "DeleteSubnet",
            Kind::InternetGateway => "DeleteInternetGateway",
            Kind::RouteTable => "DeleteRouteTable",
            Kind::SecurityGroup => "DeleteSecurityGroup",
            Kind::LaunchTemplate => "DeleteLaunchTemplate",
            Kind::Instance => "TerminateInstances",
            Kind::Image => "DeregisterImage",
            Kind::AutoScalingGroup => "DeleteAutoScalingGroup",
        }
    }
}

/// A refused call: the class, the AWS-like code and what is wrong. It becomes a
/// [`provider::Error`] once the call's name is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) kind: ErrorKind,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Reject {
    /// A request that is wrong and must not be retried.
    pub(crate) fn terminal(code: &'static str, message: impl Into<String>) -> Reject {
        Reject { kind: ErrorKind::Terminal, code, message: message.into() }
    }

    /// The resource the call is about does not exist.
    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Reject {
        Reject { kind: ErrorKind::NotFound, code, message: message.into() }
    }

    /// The error of call `call`.
    pub(crate) fn into_error(self, call: &str) -> provider::Error {
        provider::Error::new(self.kind, call, self.code, self.message)
    }
}

/// One simulated resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Resource {
    /// The physical id (a group's name).
    pub(crate) id: String,
    /// All tags.
    pub(crate) tags: BTreeMap<String, String>,
    /// When it was created, in milliseconds since the epoch.
    pub(crate) created_at: u64,
    /// What it is.
    pub(crate) spec: Spec,
}

/// The kind-specific part of a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Spec {
    Vpc(Vpc),
    Subnet(Subnet),
    InternetGateway(Gateway),
    RouteTable(RouteTable),
    SecurityGroup(SecurityGroup),
    LaunchTemplate(LaunchTemplate),
    Instance(Box<Instance>),
    Image(Image),
    AutoScalingGroup(Box<Group>),
}

impl Spec {
    /// The kind.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Spec::Vpc(_) => Kind::Vpc,
            Spec::Subnet(_) => Kind::Subnet,
            Spec::InternetGateway(_) => Kind::InternetGateway,
            Spec::RouteTable(_) => Kind::RouteTable,
            Spec::SecurityGroup(_) => Kind::SecurityGroup,
            Spec::LaunchTemplate(_) => Kind::LaunchTemplate,
            Spec::Instance(_) => Kind::Instance,
            Spec::Image(_) => Kind::Image,
            Spec::AutoScalingGroup(_) => Kind::AutoScalingGroup,
        }
    }
}

/// A VPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Vpc {
    pub(crate) cidr_block: Ipv4Net,
    pub(crate) enable_dns_hostnames: bool,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Subnet {
    pub(crate) vpc_id: String,
    pub(crate) cidr_block: Ipv4Net,
    pub(crate) availability_zone: String,
    pub(crate) map_public_ip_on_launch: bool,
    /// Where the search for a free address starts.
    #[serde(default)]
    pub(crate) next_host: u32,
}

/// An internet gateway, attached to at most one VPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Gateway {
    pub(crate) vpc_id: Option<String>,
}

/// A route table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RouteTable {
    pub(crate) vpc_id: String,
    pub(crate) routes: Vec<Route>,
    pub(crate) subnet_ids: Vec<String>,
}

/// One route of a route table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Route {
    pub(crate) destination: Ipv4Net,
    pub(crate) gateway_id: String,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SecurityGroup {
    pub(crate) vpc_id: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) ingress: Vec<Rule>,
    pub(crate) egress: Vec<Rule>,
}

/// One rule of a security group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Rule {
    pub(crate) protocol: String,
    pub(crate) from_port: Option<i64>,
    pub(crate) to_port: Option<i64>,
    pub(crate) cidr_blocks: Vec<Ipv4Net>,
    pub(crate) source_security_group_id: Option<String>,
    pub(crate) description: Option<String>,
}

/// A launch template: its versions, oldest first (version `n` is `versions[n - 1]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LaunchTemplate {
    pub(crate) name: String,
    pub(crate) versions: Vec<TemplateVersion>,
}

impl LaunchTemplate {
    /// Version `n`.
    pub(crate) fn version(&self, n: u64) -> Option<&TemplateVersion> {
        let index = usize::try_from(n.checked_sub(1)?).ok()?;
        self.versions.get(index)
    }

    /// The latest version number.
    pub(crate) fn latest(&self) -> u64 {
        self.versions.len() as u64
    }
}

/// One immutable version of a launch template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TemplateVersion {
    pub(crate) image_id: String,
    pub(crate) instance_type: String,
    pub(crate) security_group_ids: Vec<String>,
    pub(crate) user_data: Option<String>,
    pub(crate) key_name: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl TemplateVersion {
    /// The version's fields, as inputs.
    pub(crate) fn inputs(&self, name: &str) -> Map<String, Json> {
        object(json!({
            "name": name,
            "image_id": self.image_id,
            "instance_type": self.instance_type,
            "security_group_ids": self.security_group_ids,
            "user_data": self.user_data,
            "key_name": self.key_name,
            "tags": self.tags,
        }))
    }
}

/// A machine image: built in, or registered as a copy of another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Image {
    pub(crate) name: String,
    pub(crate) version: semver::Version,
    pub(crate) source_image_id: Option<String>,
    pub(crate) digest: String,
    /// Built-in images are not persisted and cannot be deregistered.
    #[serde(default)]
    pub(crate) builtin: bool,
}

/// The tags a user sees as inputs: all but Graven's (`graven:`) and the cloud's (`aws:`).
pub(crate) fn user_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.starts_with("graven:") && !k.starts_with("aws:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn object(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

/// The simulated cloud: resources and their indices.
#[derive(Debug, Default)]
pub(crate) struct Model {
    tables: [BTreeMap<String, Resource>; 9],
    /// `(kind, token)` to id.
    tokens: HashMap<(Kind, String), String>,
    /// `(kind, scoped name)` to id, for names that must be unique.
    names: HashMap<(Kind, String), String>,
    /// A resource to the resources that depend on it.
    dependents: HashMap<(Kind, String), BTreeSet<(Kind, String)>>,
    /// The subnets of each VPC by `(vpc, first address)`: `(last address, subnet id)`.
    subnet_ranges: BTreeMap<(String, u32), (u32, String)>,
    /// The addresses live instances hold, by subnet.
    addresses: HashMap<String, BTreeSet<u32>>,
    /// Timed fleet events, in the order they are due.
    pub(crate) events: BTreeSet<(u64, Target)>,
    /// Resources changed since the last journal entry.
    dirty: BTreeSet<(Kind, String)>,
    /// The counter physical ids are made from.
    pub(crate) next: u64,
    /// The simulation's time, in milliseconds since the epoch.
    pub(crate) clock_ms: u64,
}

impl Model {
    /// A model holding the built-in images.
    pub(crate) fn new() -> Model {
        let mut model = Model { next: 1, ..Model::default() };
        for record in crate::release::builtin_images() {
            model.insert(Resource {
                id: record.id,
                tags: BTreeMap::new(),
                created_at: 0,
                spec: Spec::Image(Image {
                    name: record.name,
                    version: record.version,
                    source_image_id: None,
                    digest: record.digest,
                    builtin: true,
                }),
            });
        }
        model.dirty.clear();
        model
    }

    /// A fresh physical id for `kind`.
    pub(crate) fn allocate(&mut self, kind: Kind) -> String {
        let n = self.next;
        self.next += 1;
        format!("{}-{n:017x}", kind.prefix())
    }

    /// The resource `id` of `kind`.
    pub(crate) fn get(&self, kind: Kind, id: &str) -> Option<&Resource> {
        self.tables[kind as usize].get(id)
    }

    /// Every resource of `kind`, in id order.
    pub(crate) fn all(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.tables[kind as usize].values()
    }

    /// The id of the resource of `kind` created with `token`.
    pub(crate) fn by_token(&self, kind: Kind, token: &str) -> Option<&Resource> {
        let id = self.tokens.get(&(kind, token.to_owned()))?;
        self.get(kind, id)
    }

    /// The id of the resource of `kind` with unique name `scoped`.
    pub(crate) fn by_name(&self, kind: Kind, scoped: &str) -> Option<&str> {
        self.names.get(&(kind, scoped.to_owned())).map(String::as_str)
    }

    /// The resources that depend on `(kind, id)`.
    pub(crate) fn dependents(&self, kind: Kind, id: &str) -> Vec<(Kind, String)> {
        self.dependents
            .get(&(kind, id.to_owned()))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The ids of the resources of kind `of` that depend on `(kind, id)`, in id order.
    pub(crate) fn dependents_of(
        &self,
        kind: Kind,
        id: &str,
        of: Kind,
    ) -> impl Iterator<Item = &str> {
        self.dependents.get(&(kind, id.to_owned())).into_iter().flat_map(move |set| {
            set.range((of, String::new())..)
                .take_while(move |(k, _)| *k == of)
                .map(|(_, id)| id.as_str())
        })
    }

    /// A subnet of VPC `vpc` whose block overlaps `block`, if any.
    pub(crate) fn overlapping_subnet(&self, vpc: &str, block: Ipv4Net) -> Option<&str> {
        let (first, last) = (u32::from(block.network()), u32::from(block.broadcast()));
        // Sibling blocks are disjoint: only the last one starting at or before `last` can overlap.
        let ((_, _), (end, id)) =
            self.subnet_ranges.range((vpc.to_owned(), 0)..=(vpc.to_owned(), last)).next_back()?;
        (*end >= first).then_some(id.as_str())
    }

    /// Whether a live instance holds address `ip` in subnet `subnet`.
    pub(crate) fn address_used(&self, subnet: &str, ip: u32) -> bool {
        self.addresses.get(subnet).is_some_and(|used| used.contains(&ip))
    }

    /// Adds or replaces a resource.
    pub(crate) fn insert(&mut self, resource: Resource) {
        let kind = resource.spec.kind();
        if self.get(kind, &resource.id).is_some() {
            self.take(kind, &resource.id);
        }
        self.index(&resource, true);
        self.dirty.insert((kind, resource.id.clone()));
        self.tables[kind as usize].insert(resource.id.clone(), resource);
    }

    /// Removes a resource and returns it; to change a resource, take it and insert it again.
    pub(crate) fn take(&mut self, kind: Kind, id: &str) -> Option<Resource> {
        let resource = self.tables[kind as usize].remove(id)?;
        self.index(&resource, false);
        self.dirty.insert((kind, id.to_owned()));
        Some(resource)
    }

    /// The resources changed (added, changed or removed) since the last call.
    pub(crate) fn drain_changes(&mut self) -> Vec<(Kind, String)> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// Forgets the recorded changes (after loading from disk).
    pub(crate) fn forget_changes(&mut self) {
        self.dirty.clear();
    }

    fn index(&mut self, r: &Resource, add: bool) {
        let kind = r.spec.kind();
        let key = (kind, r.id.clone());
        let live = !matches!(&r.spec, Spec::Instance(i) if i.is_terminated());
        if let Some(token) = r.tags.get(provider::tags::TOKEN).filter(|_| live) {
            let k = (kind, token.clone());
            if add {
                self.tokens.insert(k, r.id.clone());
            } else if self.tokens.get(&k) == Some(&r.id) {
                self.tokens.remove(&k);
            }
        }
        if let Some(name) = unique_name(&r.spec) {
            let k = (kind, name);
            if add {
                self.names.insert(k, r.id.clone());
            } else if self.names.get(&k) == Some(&r.id) {
                self.names.remove(&k);
            }
        }
        for parent in dependencies(r) {
            if add {
                self.dependents.entry(parent).or_default().insert(key.clone());
            } else if let Some(set) = self.dependents.get_mut(&parent) {
                set.remove(&key);
                if set.is_empty() {
                    self.dependents.remove(&parent);
                }
            }
        }
        match &r.spec {
            Spec::Subnet(s) => {
                let k = (s.vpc_id.clone(), u32::from(s.cidr_block.network()));
                if add {
                    self.subnet_ranges
                        .insert(k, (u32::from(s.cidr_block.broadcast()), r.id.clone()));
                } else if self.subnet_ranges.get(&k).is_some_and(|(_, id)| *id == r.id) {
                    self.subnet_ranges.remove(&k);
                }
            }
            Spec::Instance(i) if live => {
                let ip = u32::from(i.private_ip);
                if add {
                    self.addresses.entry(i.subnet_id.clone()).or_default().insert(ip);
                } else if let Some(used) = self.addresses.get_mut(&i.subnet_id) {
                    used.remove(&ip);
                    if used.is_empty() {
                        self.addresses.remove(&i.subnet_id);
                    }
                }
            }
            _ => {}
        }
        if add {
            if let Some(event) = super::fleet::next_event(r) {
                self.events.insert(event);
            }
        }
    }

    /// The resource `id` of `kind` as the cloud reports it.
    pub(crate) fn observe_id(&self, kind: Kind, id: &str) -> Option<Observed> {
        observe(self.get(kind, id)?)
    }

    /// Every image as a catalog record.
    pub(crate) fn images(&self) -> Vec<ImageRecord> {
        self.all(Kind::Image)
            .filter_map(|r| match &r.spec {
                Spec::Image(i) => Some(ImageRecord {
                    name: i.name.clone(),
                    version: i.version.clone(),
                    id: r.id.clone(),
                    digest: i.digest.clone(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// The cloud's view of a resource; `None` for a terminated instance.
pub(crate) fn observe(r: &Resource) -> Option<Observed> {
    let tags = user_tags(&r.tags);
    let (outputs, inputs) = match &r.spec {
        Spec::Vpc(v) => (
            json!({"id": r.id}),
            json!({
                "cidr_block": v.cidr_block,
                "enable_dns_hostnames": v.enable_dns_hostnames,
                "tags": tags,
            }),
        ),
        Spec::Subnet(s) => (
            json!({"id": r.id}),
            json!({
                "vpc_id": s.vpc_id,
                "cidr_block": s.cidr_block,
                "availability_zone": s.availability_zone,
                "map_public_ip_on_launch": s.map_public_ip_on_launch,
                "tags": tags,
            }),
        ),
        Spec::InternetGateway(g) => {
            (json!({"id": r.id}), json!({"vpc_id": g.vpc_id, "tags": tags}))
        }
        Spec::RouteTable(t) => (
            json!({"id": r.id}),
            json!({
                "vpc_id": t.vpc_id,
                "routes": t.routes,
                "subnet_ids": t.subnet_ids,
                "tags": tags,
            }),
        ),
        Spec::SecurityGroup(g) => (
            json!({"id": r.id}),
            json!({
                "vpc_id": g.vpc_id,
                "name": g.name,
                "description": g.description,
                "ingress": g.ingress,
                "egress": g.egress,
                "tags": tags,
            }),
        ),
        Spec::LaunchTemplate(t) => {
            let latest = t.versions.last()?;
            (
                json!({"id": r.id, "latest_version": t.latest()}),
                Json::Object(latest.inputs(&t.name)),
            )
        }
        Spec::Instance(i) => {
            if i.is_terminated() {
                return None;
            }
            (
                json!({"id": r.id, "private_ip": i.private_ip.to_string()}),
                json!({
                    "image_id": i.image_id,
                    "instance_type": i.instance_type,
                    "subnet_id": i.subnet_id,
                    "security_group_ids": i.security_group_ids,
                    "user_data": i.user_data,
                    "tags": tags,
                }),
            )
        }
        Spec::Image(i) => (
            json!({"id": r.id}),
            json!({
                "name": i.name,
                "version": i.version.to_string(),
                "source_image_id": i.source_image_id,
                "tags": tags,
            }),
        ),
        Spec::AutoScalingGroup(g) => (
            json!({"name": r.id, "arn": g.arn}),
            json!({
                "name": r.id,
                "launch_template_id": g.launch_template_id,
                "launch_template_version": g.launch_template_version,
                "min_size": g.min_size,
                "desired_capacity": g.desired_capacity,
                "max_size": g.max_size,
                "subnet_ids": g.subnet_ids,
                "health_check_type": g.health_check_type,
                "health_check_grace_period": g.health_check_grace_period,
                "tags": tags,
            }),
        ),
    };
    Some(Observed {
        physical_id: r.id.clone(),
        outputs: object(outputs),
        inputs: object(inputs),
        tags: r.tags.clone(),
    })
}

/// The name that must be unique among resources of the kind, scoped as AWS scopes it.
fn unique_name(spec: &Spec) -> Option<String> {
    match spec {
        Spec::SecurityGroup(g) => Some(format!("{}/{}", g.vpc_id, g.name)),
        Spec::LaunchTemplate(t) => Some(t.name.clone()),
        Spec::Image(i) => Some(format!("{}@{}", i.name, i.version)),
        _ => None,
    }
}

/// The resources `r` depends on (that cannot go while it is there, or that it is attached to).
fn dependencies(r: &Resource) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    match &r.spec {
        Spec::Subnet(s) => out.push((Kind::Vpc, s.vpc_id.clone())),
        Spec::InternetGateway(g) => out.extend(g.vpc_id.iter().map(|v| (Kind::Vpc, v.clone()))),
        Spec::RouteTable(t) => {
            out.push((Kind::Vpc, t.vpc_id.clone()));
            out.extend(t.subnet_ids.iter().map(|s| (Kind::Subnet, s.clone())));
        }
        Spec::SecurityGroup(g) => {
            out.push((Kind::Vpc, g.vpc_id.clone()));
            for rule in g.ingress.iter().chain(&g.egress) {
                if let Some(sg) = rule.source_security_group_id.as_ref().filter(|sg| **sg != r.id) {
                    out.push((Kind::SecurityGroup, sg.clone()));
                }
            }
        }
        Spec::Instance(i) if !i.is_terminated() => {
            out.push((Kind::Subnet, i.subnet_id.clone()));
            out.extend(i.security_group_ids.iter().map(|s| (Kind::SecurityGroup, s.clone())));
            out.extend(i.group.iter().map(|g| (Kind::AutoScalingGroup, g.clone())));
        }
        _ => {}
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_ids_are_deterministic() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.name()), Some(kind));
        }
        let mut model = Model::new();
        assert_eq!(model.allocate(Kind::Vpc), "vpc-00000000000000001");
        assert_eq!(model.allocate(Kind::Subnet), "subnet-00000000000000002");
    }

    #[test]
    fn builtin_images_are_there_and_indexed() {
        let model = Model::new();
        let web = crate::release::ImageRecord::derived("web", "1.4.0").unwrap();
        assert!(model.get(Kind::Image, &web.id).is_some());
        assert_eq!(model.by_name(Kind::Image, "web@1.4.0"), Some(web.id.as_str()));
        assert_eq!(model.images().len(), crate::release::builtin_images().len());
    }

    #[test]
    fn dependents_follow_insert_and_take() {
        let mut model = Model::new();
        let vpc = Resource {
            id: "vpc-1".into(),
            tags: BTreeMap::new(),
            created_at: 0,
            spec: Spec::Vpc(Vpc {
                cidr_block: "10.0.0.0/16".parse().unwrap(),
                enable_dns_hostnames: false,
            }),
        };
        model.insert(vpc);
        let subnet = Resource {
            id: "subnet-1".into(),
            tags: BTreeMap::from([(provider::tags::TOKEN.to_owned(), "t1".to_owned())]),
            created_at: 0,
            spec: Spec::Subnet(Subnet {
                vpc_id: "vpc-1".into(),
                cidr_block: "10.0.1.0/24".parse().unwrap(),
                availability_zone: "local-1a".into(),
                map_public_ip_on_launch: false,
                next_host: 0,
            }),
        };
        model.insert(subnet);
        assert_eq!(
            model.dependents(Kind::Vpc, "vpc-1"),
            vec![(Kind::Subnet, "subnet-1".to_owned())]
        );
        assert_eq!(model.by_token(Kind::Subnet, "t1").map(|r| r.id.as_str()), Some("subnet-1"));
        model.take(Kind::Subnet, "subnet-1");
        assert!(model.dependents(Kind::Vpc, "vpc-1").is_empty());
        assert!(model.by_token(Kind::Subnet, "t1").is_none());
        assert_eq!(model.drain_changes().len(), 2);
    }
}
