use graven::aws::ec2::Vpc;
use graven::prelude::*;

#[derive(Stack)]
#[graven(name = network)]
struct Network {
    vpc: Vpc,
}

fn main() {}
