use graven::prelude::*;

/// A field type of its own that does not say which references it holds.
#[derive(serde::Serialize)]
struct Ttl(u32);

#[derive(Resource)]
#[graven(kind = "dns:Record", outputs = RecordOutputs)]
struct Record {
    name: String,
    ttl: Ttl,
}

#[derive(Outputs)]
struct RecordOutputs {
    fqdn: String,
}

fn main() {}
