//! The command line of a stack program: `cargo run -- plan | apply | destroy | graph | state |
//! history`.
//!
//! A stack program's `main` hands its stack to [`main`]:
//!
//! ```no_run
//! use graven::prelude::*;
//! use graven::aws::ec2::Vpc;
//!
//! #[derive(Stack)]
//! struct Net {
//!     vpc: Vpc,
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     graven::cli::main(|env| {
//!         let cidr = env.release()?.get_or("cidr", "10.0.0.0/16").parse()?;
//!         Ok(Net { vpc: Vpc::new(cidr) })
//!     })
//!     .await
//! }
//! ```
//!
//! Stack inputs come from `--var name=value` (or `GRAVEN_VAR_name`); the target from
//! `--target local|aws` (or `GRAVEN_TARGET`). Exit codes: 0 success, 1 error, and with
//! `plan --detailed-exitcode` 2 when there are changes.

mod args;
mod progress;

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::sync::{mpsc, watch};

use args::{Cli, Command, GraphFormat, StateCommand, Target};
use progress::{colour, paint};

use crate::engine::{Engine, Options};
use crate::error::{Error, Result};
use crate::graph::DeploymentGraph;
use crate::plan::{self, Plan};
use crate::provider::Provider;
use crate::release::{ImageRecord, Release};
use crate::stack::Stack;
use crate::state::{LocalStore, State, Store};

/// What a stack program's builder gets: the stack inputs and the target's images.
#[derive(Debug, Clone)]
pub struct Env {
    vars: BTreeMap<String, String>,
    images: Vec<ImageRecord>,
    target: &'static str,
}

impl Env {
    /// The release: the stack inputs and the target's image catalog.
    ///
    /// # Errors
    /// None today; kept fallible so that catalogs read lazily can fail.
    pub fn release(&self) -> Result<Release> {
        let mut r = Release::new(self.images.clone());
        for (k, v) in &self.vars {
            r = r.var(k.clone(), v.clone());
        }
        Ok(r)
    }

    /// Stack input `name`, if given.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The target's name (`local`, `aws`).
    pub fn target(&self) -> &str {
        self.target
    }
}

/// Runs the command line for the stack that `build` makes.
///
/// Parses the arguments, builds the stack, and runs the command; prints errors with what to do
/// and returns the exit code.
pub async fn main<S, F>(build: F) -> ExitCode
where
    S: Stack,
    F: Fn(&Env) -> Result<S>,
{
    main_from(std::env::args_os(), build).await
}

/// As [`main`], with the arguments given (the first is the program's name): for tests that
/// drive a stack program's command line in-process.
///
/// ```no_run
/// # use graven::prelude::*;
/// # #[derive(Stack)] struct Net { vpc: graven::aws::ec2::Vpc }
/// # async fn run() {
/// let code = graven::cli::main_from(["net", "apply", "--auto-approve", "--root", "/tmp/x"], |_env| {
///     Ok(Net { vpc: graven::aws::ec2::Vpc::new("10.0.0.0/16".parse()?) })
/// })
/// .await;
/// # }
/// ```
pub async fn main_from<I, T, S, F>(args: I, build: F) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
    S: Stack,
    F: Fn(&Env) -> Result<S>,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    init_tracing(cli.global.verbose);
    match run(cli, &build).await {
        Ok(code) => code,
        Err(e) => {
            let mut msg = format!("{} {e}", paint("error:", "1;31", colour()));
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!("\n  caused by: {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRAVEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .try_init();
}

fn parse_vars(given: &[String]) -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for (k, v) in std::env::vars() {
        if let Some(name) = k.strip_prefix("GRAVEN_VAR_") {
            vars.insert(name.to_owned(), v);
        }
    }
    for g in given {
        let Some((k, v)) = g.split_once('=') else {
            return Err(Error::Var {
                name: g.clone(),
                message: format!("`--var {g}` has no `=`; write `--var {g}=VALUE`"),
            });
        };
        if k.is_empty() {
            return Err(Error::Var {
                name: String::new(),
                message: format!("`--var {g}` has no name; write `--var NAME={v}`"),
            });
        }
        vars.insert(k.to_owned(), v.to_owned());
    }
    Ok(vars)
}

/// The provider and the store for the command line's target.
struct Target_ {
    provider: Arc<dyn Provider>,
    store: Arc<dyn Store>,
    name: &'static str,
}

async fn target(cli: &Cli) -> Result<Target_> {
    let root = &cli.global.root;
    let (provider, name): (Arc<dyn Provider>, &'static str) = match cli.global.target {
        Target::Local => (Arc::new(crate::local::LocalCloud::open(root)?), "local"),
        Target::Aws => (aws_provider().await?, "aws"),
    };
    let store: Arc<dyn Store> = match cli.global.state.as_deref() {
        Some(url) if url.starts_with("s3://") => s3_store(url).await?,
        Some(dir) => Arc::new(LocalStore::new(dir)),
        None => Arc::new(LocalStore::new(root)),
    };
    Ok(Target_ { provider, store, name })
}

#[cfg(feature = "aws")]
async fn aws_provider() -> Result<Arc<dyn Provider>> {
    Ok(Arc::new(crate::aws::provider::AwsProvider::from_env().await?))
}

#[cfg(not(feature = "aws"))]
async fn aws_provider() -> Result<Arc<dyn Provider>> {
    Err(Error::Plan(
        "this program was built without Graven's `aws` feature; build it with the feature on (for the examples: `cargo run -p web --features aws -- ...`)".into(),
    ))
}

#[cfg(feature = "aws")]
async fn s3_store(url: &str) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(crate::aws::s3_state::S3Store::from_url(url).await?))
}

#[cfg(not(feature = "aws"))]
async fn s3_store(url: &str) -> Result<Arc<dyn Store>> {
    Err(Error::Plan(format!(
        "`--state {url}` needs Graven's `aws` feature; build the program with it, or keep state locally"
    )))
}

async fn run<S, F>(cli: Cli, build: &F) -> Result<ExitCode>
where
    S: Stack,
    F: Fn(&Env) -> Result<S>,
{
    let vars = parse_vars(&cli.global.vars)?;
    let t = target(&cli).await?;
    let images = t.provider.images().await.map_err(|e| Error::Provider {
        resource: "images".into(),
        call: e.call.clone(),
        message: format!("{}: {}", e.code, e.message),
    })?;
    let env = Env { vars: vars.clone(), images: images.clone(), target: t.name };
    let stack = build(&env)?;
    let graph = stack.graph()?;
    let name = graph.stack();
    let used_images = used_images(&graph, &images);
    let options = plan::Options::new().images(images.clone());
    let engine_options = engine_options(&cli, vars);

    match cli.command {
        Command::Graph { format } => {
            print!(
                "{}",
                match format {
                    GraphFormat::Dot => graph.to_dot(),
                    GraphFormat::Mermaid => graph.to_mermaid(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { out, json, detailed_exitcode } => {
            let state = t.store.load(name).await?.unwrap_or_else(|| State::new(name));
            if !state.pending.is_empty() {
                eprintln!(
                    "note: {} create(s) were left pending by an interrupted run; `apply` looks them up and adopts them",
                    state.pending.len()
                );
            }
            let plan = plan::plan_graph(&graph, &state, &options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan.to_json()).unwrap_or_default());
            } else {
                print!("{}", plan.render());
            }
            if let Some(path) = out {
                let text = serde_json::to_string_pretty(&plan.to_json()).unwrap_or_default();
                std::fs::write(&path, text)
                    .map_err(|e| Error::io("cannot write the plan to", &path, e))?;
                eprintln!(
                    "saved the plan to {}; apply it with `apply {}`",
                    path.display(),
                    path.display()
                );
            }
            Ok(if detailed_exitcode && !plan.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Apply { plan: saved, auto_approve } => {
            let saved = match saved {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| Error::io("cannot read the plan", &path, e))?;
                    Some(Plan::from_json(&text)?)
                }
                None => None,
            };
            let engine_options = engine_options.release_info(env.vars.clone(), used_images);
            execute(&t, name, engine_options, auto_approve, "apply", |state| match &saved {
                Some(p) => Ok(p.clone()),
                None => plan::plan_graph(&graph, state, &options),
            })
            .await
        }
        Command::Destroy { auto_approve } => {
            let engine_options = engine_options.release_info(env.vars.clone(), BTreeMap::new());
            execute(&t, name, engine_options, auto_approve, "destroy", plan::destroy).await
        }
        Command::State { command } => state_command(&t, name, command).await,
        Command::History => {
            let state = t.store.load(name).await?.unwrap_or_else(|| State::new(name));
            if state.releases.is_empty() {
                println!("stack `{name}` has no releases yet");
            }
            for r in &state.releases {
                let summary: Vec<String> =
                    r.summary.iter().map(|(k, v)| format!("{v} {k}")).collect();
                let images: Vec<String> =
                    r.images.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!(
                    "#{:<4} {} {:<8} {:<11} {}{}{}",
                    r.number,
                    r.started_at,
                    r.operation,
                    format!("{:?}", r.outcome).to_lowercase(),
                    summary.join(", "),
                    if images.is_empty() {
                        String::new()
                    } else {
                        format!("  [{}]", images.join(", "))
                    },
                    r.error.as_ref().map(|e| format!("  error: {e}")).unwrap_or_default(),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn used_images(graph: &DeploymentGraph, images: &[ImageRecord]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in graph.nodes() {
        if let Some(id) = n.inputs.get("image_id").and_then(serde_json::Value::as_str) {
            if let Some(i) = images.iter().find(|i| i.id == id) {
                out.insert(i.name.clone(), format!("{} ({})", i.version, i.id));
            }
        }
    }
    out
}

fn engine_options(cli: &Cli, vars: BTreeMap<String, String>) -> Options {
    let poll = if cli.global.target == Target::Aws { 5000 } else { 100 };
    Options::default()
        .parallelism(cli.global.parallelism)
        .poll_interval(std::time::Duration::from_millis(poll))
        .release_info(vars, BTreeMap::new())
}

/// Lock, load, adopt pending creates, plan, confirm, apply, save, unlock.
async fn execute(
    t: &Target_,
    stack: &str,
    options: Options,
    auto_approve: bool,
    operation: &str,
    make_plan: impl FnOnce(&State) -> Result<Plan>,
) -> Result<ExitCode> {
    let lock = t.store.lock(stack, operation).await?;
    let result = execute_locked(t, stack, options, auto_approve, make_plan).await;
    let unlocked = t.store.unlock(stack, &lock).await;
    let code = result?;
    unlocked?;
    Ok(code)
}

async fn execute_locked(
    t: &Target_,
    stack: &str,
    options: Options,
    auto_approve: bool,
    make_plan: impl FnOnce(&State) -> Result<Plan>,
) -> Result<ExitCode> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let options = options.events(tx).interrupt(stop_rx);
    let engine = Engine::with_options(t.provider.clone(), t.store.clone(), options);
    let mut state = t.store.load(stack).await?.unwrap_or_else(|| State::new(stack));
    let adopted = engine.reconcile(&mut state).await?;
    for id in &adopted {
        eprintln!("adopted `{id}`, created by an interrupted run");
    }
    let plan = make_plan(&state)?;
    print!("{}", plan.render());
    if plan.is_empty() {
        if !adopted.is_empty() || !state.pending.is_empty() {
            t.store.save(&state).await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !auto_approve {
        confirm(&plan)?;
    }
    let signal = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: letting the steps in flight finish, then saving state (Ctrl-C again to abandon them)"
            );
            let _ = stop_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let total = plan.steps.len();
    let painter = tokio::spawn(progress::render(rx, total));
    let result = engine.apply(&plan, state).await;
    drop(engine);
    let _ = painter.await;
    signal.abort();
    let report = result?;
    let done: Vec<String> =
        report.summary.iter().map(|(k, v)| format!("{v} {}", k.replace('_', " "))).collect();
    println!(
        "\n{} release #{} of stack `{stack}`: {}.",
        paint("Applied", "1;32", colour()),
        report.release,
        if done.is_empty() { "nothing to do".to_owned() } else { done.join(", ") }
    );
    Ok(ExitCode::SUCCESS)
}

fn confirm(plan: &Plan) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Plan(
            "refusing to change the cloud without confirmation: stdin is not a terminal; pass `--auto-approve`".into(),
        ));
    }
    let verb = match plan.operation {
        plan::Operation::Apply => "apply",
        plan::Operation::Destroy => "destroy",
    };
    eprint!("\nDo you want to {verb} these changes? Only `yes` goes ahead: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::io("cannot read the answer from", "stdin", e))?;
    if answer.trim() != "yes" {
        return Err(Error::Plan(format!("{verb} cancelled: nothing was changed")));
    }
    Ok(())
}

async fn state_command(t: &Target_, stack: &str, command: StateCommand) -> Result<ExitCode> {
    match command {
        StateCommand::List => {
            let Some(state) = t.store.load(stack).await? else {
                println!("stack `{stack}` has no state yet ({})", t.store.describe(stack));
                return Ok(ExitCode::SUCCESS);
            };
            for r in state.resources.values() {
                let deposed = if r.deposed.is_empty() {
                    String::new()
                } else {
                    format!("  (+{} old)", r.deposed.len())
                };
                println!("{:<30} {:<36} {}{deposed}", r.id, r.kind, r.physical_id);
            }
            for p in state.pending.values() {
                println!("{:<30} {:<36} (pending create, token {})", p.id, p.kind, p.token);
            }
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Show { id } => {
            let state = t.store.load(stack).await?.unwrap_or_else(|| State::new(stack));
            let Some(r) = state.resources.get(&id) else {
                let known: Vec<&str> = state.resources.keys().map(String::as_str).collect();
                return Err(Error::Plan(format!(
                    "no resource `{id}` in the state of `{stack}`; it records {}",
                    known.join(", ")
                )));
            };
            println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        StateCommand::Unlock { force } => {
            match t.store.lock_info(stack).await? {
                None => println!("stack `{stack}` is not locked"),
                Some(info) if force => {
                    t.store.force_unlock(stack).await?;
                    println!("removed the lock of `{stack}` held by {info}");
                }
                Some(info) => {
                    return Err(Error::Locked {
                        stack: stack.to_owned(),
                        holder: format!("{info} (pass `--force` to remove it)"),
                    });
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
