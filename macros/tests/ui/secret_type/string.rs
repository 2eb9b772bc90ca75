use graven::prelude::*;

#[derive(Resource)]
#[graven(kind = "db:Database", outputs = DatabaseOutputs)]
struct Database {
    name: String,
    #[graven(secret)]
    password: String,
}

#[derive(Outputs)]
struct DatabaseOutputs {
    endpoint: String,
}

fn main() {}
