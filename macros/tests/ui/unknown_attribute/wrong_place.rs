use graven::aws::ec2::Vpc;
use graven::prelude::*;

// `update` belongs on a resource's fields, not on a stack's.
#[derive(Stack)]
struct Network {
    #[graven(update)]
    vpc: Vpc,
}

fn main() {}
