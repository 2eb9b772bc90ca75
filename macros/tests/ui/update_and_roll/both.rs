use graven::prelude::*;

#[derive(Resource)]
#[graven(kind = "app:Fleet", outputs = FleetOutputs)]
struct Fleet {
    #[graven(update, roll)]
    version: u64,
}

#[derive(Outputs)]
struct FleetOutputs {
    name: String,
}

fn main() {}
