//! The web tier: a VPC, two subnets, a security group, a launch template and an Auto Scaling
//! group whose image version comes from the stack input `version` (`--var version=1.5.0`).

use graven::aws::autoscaling::AutoScalingGroup;
use graven::aws::ec2::{LaunchTemplate, Rule, SecurityGroup, Subnet, Vpc};
use graven::prelude::*;
use ipnet::Ipv4Net;

/// The web tier.
#[derive(Stack)]
#[graven(name = "web")]
pub struct Web {
    /// The network.
    pub vpc: Vpc,
    /// The first subnet, in zone a.
    pub subnet_a: Subnet,
    /// The second subnet, in zone b.
    pub subnet_b: Subnet,
    /// HTTP from anywhere.
    pub web_sg: SecurityGroup,
    /// What the fleet's instances launch from.
    pub template: LaunchTemplate,
    /// The fleet: 3 instances, rolled batch by batch.
    pub fleet: AutoScalingGroup,
}

impl Web {
    /// The stack for a release. Stack inputs (`--var name=value`):
    /// - `version`: the `web` image version to run (default `1.4.0`);
    /// - `cidr`: the VPC's CIDR block (default `10.0.0.0/16`); the subnets are its 2nd and 3rd /24;
    /// - `capacity`: the fleet's desired capacity (default 3).
    pub fn new(release: &Release) -> Result<Self> {
        let r = Web::refs();
        let version = release.get_or("version", "1.4.0");
        let cidr: Ipv4Net = parse(release, "cidr", "10.0.0.0/16")?;
        let desired: u32 = parse(release, "capacity", "3")?;
        let mut blocks = cidr.subnets(24).map_err(|_| Error::Var {
            name: "cidr".into(),
            message: format!("{cidr} is too small for two /24 subnets; use a /16 to /23"),
        })?;
        let (Some(_), Some(a), Some(b)) = (blocks.next(), blocks.next(), blocks.next()) else {
            return Err(Error::Var {
                name: "cidr".into(),
                message: format!("{cidr} holds fewer than three /24 blocks; use a /16 to /22"),
            });
        };
        Ok(Web {
            vpc: Vpc::new(cidr).tag("tier", "web"),
            subnet_a: Subnet::new(r.vpc.id(), a, "eu-west-2a"),
            subnet_b: Subnet::new(r.vpc.id(), b, "eu-west-2b"),
            web_sg: SecurityGroup::new(r.vpc.id(), "web servers")
                .ingress(Rule::tcp(80, Ipv4Net::default()).describe("http")),
            template: LaunchTemplate::new(release.image("web", &format!("={version}"))?)
                .instance_type("t3.small")
                .security_groups([r.web_sg.id()]),
            fleet: AutoScalingGroup::new(r.template.latest_version())
                .capacity(desired.min(2), desired, desired * 2)
                .subnets([r.subnet_a.id(), r.subnet_b.id()])
                .rollout(Rollout::rolling().min_healthy_percent(90).max_healthy_percent(120)),
        })
    }
}

fn parse<T: std::str::FromStr>(release: &Release, name: &str, default: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let text = release.get_or(name, default);
    text.parse().map_err(|e| Error::Var { name: name.into(), message: format!("`{text}`: {e}") })
}
