//! The stack of the crash-consistency tests: about 50 resources of every kind a rollout needs.
//!
//! A VPC, 6 subnets, 8 security groups (each admitting the one before), 4 launch templates, 4
//! Auto Scaling groups of one instance, and 25 to 27 standalone instances. The stack input
//! `round` (`--var round=N`) changes it from one round to the next, so that every apply has
//! work to do: the groups' `round` tag (updates in place), the image of the launch templates
//! (`web` 1.4.0 or 1.5.0: the fleets roll), the image of the instances (`server` 1.0.0 or
//! 1.1.0: every instance is replaced, create before destroy), and the number of instances
//! (25 + round % 3: creates and deletes).
//!
//! Shared by the test binary (`mod apply_stack`) and the `crash_stack` program
//! (`bin/crash_stack.rs`), which the tests run as a child process.

// The handle type the derive generates (`CrashRefs`) has a field per member, and not every
// member is referred to.
#![allow(dead_code)]

use graven::aws::autoscaling::{AutoScalingGroup, HealthCheck};
use graven::aws::ec2::{Instance, LaunchTemplate, Rule, SecurityGroup, Subnet, Vpc};
use graven::prelude::*;

/// The stack's name.
pub const NAME: &str = "crash";

/// The crash test's stack.
#[derive(Stack)]
#[graven(name = "crash")]
pub struct Crash {
    /// The network.
    pub vpc: Vpc,
    /// Six /24 subnets, in two zones.
    pub subnets: Vec<Subnet>,
    /// A chain of security groups.
    pub groups: Vec<SecurityGroup>,
    /// What the fleets launch from.
    pub templates: Vec<LaunchTemplate>,
    /// Small fleets, rolled when their template changes.
    pub fleets: Vec<AutoScalingGroup>,
    /// Standalone, immutable instances.
    pub instances: Vec<Instance>,
}

impl Crash {
    /// The stack of round `round` (the stack input `round`, default 0).
    pub fn new(release: &Release) -> Result<Crash> {
        let round: u32 = release.get_or("round", "0").parse().map_err(|e| Error::Var {
            name: "round".into(),
            message: format!("{e}; write `--var round=3`"),
        })?;
        let r = Crash::refs();
        let even = round % 2 == 0;
        let web = release.image("web", if even { "=1.4.0" } else { "=1.5.0" })?;
        let server = release.image("server", if even { "=1.0.0" } else { "=1.1.0" })?;
        let subnets = (0..6)
            .map(|i| {
                let zone = if i % 2 == 0 { "local-1a" } else { "local-1b" };
                Ok(Subnet::new(r.vpc.id(), format!("10.42.{i}.0/24").parse()?, zone))
            })
            .collect::<Result<Vec<_>>>()?;
        let groups = (0..8)
            .map(|i| {
                let sg = SecurityGroup::new(r.vpc.id(), &format!("tier {i}"))
                    .tag("round", round.to_string());
                if i == 0 {
                    sg.ingress(Rule::tcp(80, "0.0.0.0/0".parse().expect("a CIDR block")))
                } else {
                    sg.ingress(Rule::tcp_from_group(8000 + i as u16, r.groups.at(i - 1).id()))
                }
            })
            .collect();
        let templates = (0..4)
            .map(|i| LaunchTemplate::new(web.clone()).security_groups([r.groups.at(i).id()]))
            .collect();
        let fleets = (0..4)
            .map(|i| {
                AutoScalingGroup::new(r.templates.at(i).latest_version())
                    .capacity(1, 1, 2)
                    .subnets([r.subnets.at(i).id(), r.subnets.at(i + 1).id()])
                    .health_check(HealthCheck::Ec2, 0)
                    // Instances are healthy in well under a second here: fail fast if they are not.
                    .rollout(Rollout::rolling().health_timeout(std::time::Duration::from_secs(30)))
            })
            .collect();
        let instances = (0..25 + (round % 3) as usize)
            .map(|i| {
                Instance::new(server.clone(), r.subnets.at(i % 6).id())
                    .security_groups([r.groups.at(i % 8).id()])
            })
            .collect();
        Ok(Crash {
            vpc: Vpc::new("10.42.0.0/16".parse()?),
            subnets,
            groups,
            templates,
            fleets,
            instances,
        })
    }
}
