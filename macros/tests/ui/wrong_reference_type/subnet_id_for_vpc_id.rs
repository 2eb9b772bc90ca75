use graven::aws::ec2::{Subnet, Vpc};
use graven::prelude::*;

#[derive(Stack)]
struct Network {
    vpc: Vpc,
    subnet: Subnet,
    other: Subnet,
}

fn network() -> graven::Result<Network> {
    let r = Network::refs();
    Ok(Network {
        vpc: Vpc::new("10.0.0.0/16".parse()?),
        subnet: Subnet::new(r.vpc.id(), "10.0.1.0/24".parse()?, "eu-west-2a"),
        other: Subnet::new(r.subnet.id(), "10.0.2.0/24".parse()?, "eu-west-2b"),
    })
}

fn main() {
    let _ = network();
}
