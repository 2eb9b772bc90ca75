use graven::prelude::*;

#[derive(Resource)]
#[graven(outputs = RecordOutputs)]
enum Record {
    A(String),
    Cname(String),
}

#[derive(Outputs)]
struct RecordOutputs {
    fqdn: String,
}

fn main() {}
