use graven::aws::ec2::Vpc;
use graven::prelude::*;

#[derive(Resource)]
#[graven(kind = "dns:Record")]
struct Record {
    name: String,
}

// The stack around the broken kind still compiles: one error, not a cascade.
#[derive(Stack)]
struct Site {
    vpc: Vpc,
    record: Record,
}

fn main() {
    let _ = Site::refs();
}
