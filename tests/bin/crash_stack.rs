//! The stack program the `apply_` tests run as a child process, and kill with SIGKILL.
//!
//! `crash_stack --root DIR apply --auto-approve --var round=N` applies the crash test's stack
//! (`apply_stack.rs`, about 50 resources). With `GRAVEN_TEST_STACK=web` it is the `web`
//! example instead, exactly as `examples/web/src/main.rs` runs it, so that the end-to-end tests
//! of the command line have a binary of the example without building another package.

#[path = "../apply_stack.rs"]
#[allow(unreachable_pub)] // shared with the test binary, where its items are used
mod apply_stack;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::var("GRAVEN_TEST_STACK").is_ok_and(|s| s == "web") {
        graven::cli::main(|env| web::Web::new(&env.release()?)).await
    } else {
        graven::cli::main(|env| apply_stack::Crash::new(&env.release()?)).await
    }
}
