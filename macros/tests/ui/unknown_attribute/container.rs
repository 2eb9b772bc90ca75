use graven::prelude::*;

#[derive(Resource)]
#[graven(kid = "dns:Record", outputs = RecordOutputs)]
struct Record {
    name: String,
}

#[derive(Outputs)]
struct RecordOutputs {
    fqdn: String,
}

fn main() {}
