//! `cargo run -p web -- apply`: deploys the web tier to the local cloud (or `--target aws`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    graven::cli::main(|env| web::Web::new(&env.release()?)).await
}
