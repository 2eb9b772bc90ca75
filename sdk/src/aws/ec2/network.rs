//! VPCs, subnets, internet gateways and route tables.

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::aws::{Tags, validate_tags};
use crate::error::Problem;
use crate::id::{InternetGatewayId, RouteTableId, SubnetId, VpcId};
use crate::resource::problem;
use crate::value::{RefTarget, Refs, Value};
use crate::{Outputs, Resource};

/// A VPC. Its CIDR block forces replacement; tags update in place.
///
/// ```
/// # use graven::aws::ec2::Vpc;
/// # fn main() -> graven::Result<()> {
/// let vpc = Vpc::new("10.0.0.0/16".parse()?).tag("team", "web");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:ec2:Vpc", outputs = VpcOutputs, validate = Vpc::check)]
pub struct Vpc {
    cidr_block: Ipv4Net,
    #[graven(update)]
    enable_dns_hostnames: bool,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of a [`Vpc`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct VpcOutputs {
    /// The VPC's id.
    pub id: VpcId,
}

impl Vpc {
    /// A VPC with the given IPv4 CIDR block (a /16 to a /28, as AWS allows).
    pub fn new(cidr_block: Ipv4Net) -> Vpc {
        Vpc { cidr_block, enable_dns_hostnames: true, tags: Tags::new() }
    }

    /// Enables or disables DNS host names.
    #[must_use]
    pub fn dns_hostnames(mut self, enable: bool) -> Vpc {
        self.enable_dns_hostnames = enable;
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Vpc {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The CIDR block.
    pub fn cidr_block(&self) -> Ipv4Net {
        self.cidr_block
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_prefix("cidr_block", self.cidr_block, &mut out);
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}

fn check_prefix(field: &str, net: Ipv4Net, out: &mut Vec<Problem>) {
    if !(16..=28).contains(&net.prefix_len()) {
        out.push(problem(
            field,
            format!("{net} has a /{} prefix; AWS allows /16 to /28", net.prefix_len()),
        ));
    }
    if net.trunc() != net {
        out.push(problem(field, format!("{net} has host bits set; write {}", net.trunc())));
    }
}

/// A subnet of a VPC, in one availability zone. Everything but tags and the public-IP setting
/// forces replacement.
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:ec2:Subnet", outputs = SubnetOutputs, validate = Subnet::check)]
pub struct Subnet {
    vpc_id: Value<VpcId>,
    cidr_block: Ipv4Net,
    availability_zone: String,
    #[graven(update)]
    map_public_ip_on_launch: bool,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of a [`Subnet`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct SubnetOutputs {
    /// The subnet's id.
    pub id: SubnetId,
}

impl Subnet {
    /// A subnet of `vpc_id` with `cidr_block` (inside the VPC's) in `availability_zone`.
    pub fn new(
        vpc_id: impl Into<Value<VpcId>>,
        cidr_block: Ipv4Net,
        availability_zone: &str,
    ) -> Subnet {
        Subnet {
            vpc_id: vpc_id.into(),
            cidr_block,
            availability_zone: availability_zone.to_owned(),
            map_public_ip_on_launch: false,
            tags: Tags::new(),
        }
    }

    /// Gives instances launched here a public IP address.
    #[must_use]
    pub fn public(mut self, yes: bool) -> Subnet {
        self.map_public_ip_on_launch = yes;
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Subnet {
        self.tags.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        check_prefix("cidr_block", self.cidr_block, &mut out);
        if self.availability_zone.is_empty()
            || !self.availability_zone.chars().last().is_some_and(|c| c.is_ascii_lowercase())
        {
            out.push(problem(
                "availability_zone",
                format!(
                    "`{}` is not an availability zone; write one like `eu-west-2a`",
                    self.availability_zone
                ),
            ));
        }
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}

/// An internet gateway attached to a VPC.
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:ec2:InternetGateway", outputs = InternetGatewayOutputs, validate = InternetGateway::check)]
pub struct InternetGateway {
    vpc_id: Value<VpcId>,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of an [`InternetGateway`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct InternetGatewayOutputs {
    /// The gateway's id.
    pub id: InternetGatewayId,
}

impl InternetGateway {
    /// A gateway attached to `vpc_id`.
    pub fn new(vpc_id: impl Into<Value<VpcId>>) -> InternetGateway {
        InternetGateway { vpc_id: vpc_id.into(), tags: Tags::new() }
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> InternetGateway {
        self.tags.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}

/// One route of a [`RouteTable`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// The destination (`0.0.0.0/0`).
    pub destination: Ipv4Net,
    /// The gateway traffic goes to.
    pub gateway_id: Value<InternetGatewayId>,
}

impl Refs for Route {
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>)) {
        self.gateway_id.visit_refs(f);
    }
}

/// A route table of a VPC, with its routes and the subnets it serves (both update in place).
#[derive(Debug, Clone, Resource)]
#[graven(crate = "crate", kind = "aws:ec2:RouteTable", outputs = RouteTableOutputs, validate = RouteTable::check)]
pub struct RouteTable {
    vpc_id: Value<VpcId>,
    #[graven(update)]
    routes: Vec<Route>,
    #[graven(update)]
    subnet_ids: Vec<Value<SubnetId>>,
    #[graven(update)]
    tags: Tags,
}

/// The outputs of a [`RouteTable`].
#[derive(Debug, Clone, Outputs)]
#[graven(crate = "crate")]
pub struct RouteTableOutputs {
    /// The route table's id.
    pub id: RouteTableId,
}

impl RouteTable {
    /// An empty route table of `vpc_id`.
    pub fn new(vpc_id: impl Into<Value<VpcId>>) -> RouteTable {
        RouteTable {
            vpc_id: vpc_id.into(),
            routes: Vec::new(),
            subnet_ids: Vec::new(),
            tags: Tags::new(),
        }
    }

    /// Adds a route to `destination` through an internet gateway.
    #[must_use]
    pub fn route(
        mut self,
        destination: Ipv4Net,
        gateway_id: impl Into<Value<InternetGatewayId>>,
    ) -> RouteTable {
        self.routes.push(Route { destination, gateway_id: gateway_id.into() });
        self
    }

    /// Associates subnets.
    #[must_use]
    pub fn subnets<S: Into<Value<SubnetId>>>(
        mut self,
        subnets: impl IntoIterator<Item = S>,
    ) -> RouteTable {
        self.subnet_ids.extend(subnets.into_iter().map(Into::into));
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> RouteTable {
        self.tags.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if self.routes[..i].iter().any(|o| o.destination == r.destination) {
                out.push(problem("routes", format!("two routes to {}; keep one", r.destination)));
            }
        }
        validate_tags("tags", &self.tags, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpc_prefix_limits() {
        let p = Vpc::new("10.0.0.0/8".parse().unwrap()).check();
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("/16 to /28"), "{}", p[0].message);
        assert!(Vpc::new("10.0.0.0/16".parse().unwrap()).check().is_empty());
    }

    #[test]
    fn tags_respect_aws_limits() {
        let p = Vpc::new("10.0.0.0/16".parse().unwrap())
            .tag("aws:owner", "x")
            .tag("k".repeat(129), "v")
            .tag("ok", "v".repeat(257))
            .check();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().all(|p| p.field == "tags"));
    }
}
