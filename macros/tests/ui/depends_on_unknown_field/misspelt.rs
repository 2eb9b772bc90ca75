use graven::aws::ec2::{Subnet, Vpc};
use graven::prelude::*;

#[derive(Stack)]
struct Network {
    vpc: Vpc,
    #[graven(depends_on(vpcc))]
    subnet: Subnet,
}

fn main() {}
