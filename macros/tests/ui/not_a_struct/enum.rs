use graven::aws::ec2::Vpc;
use graven::prelude::*;

#[derive(Stack)]
enum Network {
    Small(Vpc),
    Large(Vpc),
}

fn main() {
    // Stub impls keep the uses of the type quiet: the enum is the one error.
    let _ = Network::refs();
}
