use graven::aws::ec2::{Subnet, Vpc};
use graven::prelude::*;

#[derive(Stack)]
struct Network(Vpc, Subnet);

fn main() {}
