use graven::aws::ec2::Vpc;
use graven::prelude::*;

#[derive(Stack)]
struct Network {
    #[graven(protect = true)]
    vpc: Vpc,
}

fn main() {}
