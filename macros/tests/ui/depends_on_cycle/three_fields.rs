use graven::aws::ec2::{InternetGateway, Subnet, Vpc};
use graven::prelude::*;

#[derive(Stack)]
struct Network {
    #[graven(depends_on(gateway))]
    vpc: Vpc,
    #[graven(depends_on(vpc))]
    subnet: Subnet,
    #[graven(depends_on(subnet))]
    gateway: InternetGateway,
}

fn main() {}
