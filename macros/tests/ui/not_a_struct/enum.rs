use graven::aws::ec2::Vpc;
use graven::prelude::*;

#[derive(Stack)]
enum Network {
    Small(Vpc),
    Large(Vpc),
}

fn main() {}
