use graven::aws::ec2::Vpc;
use graven::prelude::*;

#[derive(Stack)]
struct Network {
    #[graven(protec)]
    vpc: Vpc,
}

fn main() {}
