use graven::aws::ec2::Vpc;
use graven::prelude::*;

#[derive(Stack)]
struct Network {
    vpc: Vpc,
    count: u32,
}

fn main() {}
