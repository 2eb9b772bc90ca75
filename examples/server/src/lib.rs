//! One immutable server: a VPC, a subnet, a security group and an instance. A new image
//! version (`--var version=1.1.0`) replaces the instance; nothing is patched in place.

use graven::aws::ec2::{Instance, Rule, SecurityGroup, Subnet, Vpc};
use graven::prelude::*;

/// One server.
#[derive(Stack)]
#[graven(name = "server")]
pub struct Server {
    /// The network.
    pub vpc: Vpc,
    /// Its only subnet.
    pub subnet: Subnet,
    /// SSH from the office, HTTPS from anywhere.
    pub sg: SecurityGroup,
    /// The server; replaced, never patched.
    pub server: Instance,
}

impl Server {
    /// The stack for a release; `version` picks the `server` image (default `1.0.0`).
    pub fn new(release: &Release) -> Result<Self> {
        let r = Server::refs();
        let version = release.get_or("version", "1.0.0");
        Ok(Server {
            vpc: Vpc::new("10.20.0.0/16".parse()?),
            subnet: Subnet::new(r.vpc.id(), "10.20.1.0/24".parse()?, "eu-west-2a"),
            sg: SecurityGroup::new(r.vpc.id(), "server")
                .ingress(Rule::tcp(22, "203.0.113.0/24".parse()?).describe("ssh from the office"))
                .ingress(Rule::tcp(443, "0.0.0.0/0".parse()?).describe("https")),
            server: Instance::new(release.image("server", &format!("={version}"))?, r.subnet.id())
                .instance_type("t3.micro")
                .security_groups([r.sg.id()])
                .tag("role", "server"),
        })
    }
}
