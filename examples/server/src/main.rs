//! `cargo run -p server -- apply`: deploys one immutable server to the local cloud.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    graven::cli::main(|env| server::Server::new(&env.release()?)).await
}
