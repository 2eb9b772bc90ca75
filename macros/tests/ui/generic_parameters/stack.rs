use graven::prelude::*;

#[derive(Stack)]
struct Pair<R> {
    first: R,
    second: R,
}

fn main() {}
