//! The command line: global options and commands (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A Graven stack program: plan, apply and destroy its stack.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Where to deploy: the embedded `local` cloud or `aws`.
    #[arg(long, global = true, env = "GRAVEN_TARGET", default_value = "local")]
    pub(crate) target: Target,
    /// A stack input, `name=value` (repeatable); also `GRAVEN_VAR_<name>`.
    #[arg(long = "var", global = true, value_name = "NAME=VALUE")]
    pub(crate) vars: Vec<String>,
    /// The project directory: `.graven/` (state, local cloud) lives here.
    #[arg(long, global = true, env = "GRAVEN_ROOT", default_value = ".")]
    pub(crate) root: PathBuf,
    /// Where state is kept: a directory (default: `<root>`) or `s3://bucket/prefix` (aws feature).
    #[arg(long, global = true, env = "GRAVEN_STATE")]
    pub(crate) state: Option<String>,
    /// Steps in flight at once.
    #[arg(long, global = true, env = "GRAVEN_PARALLELISM", default_value_t = 10)]
    pub(crate) parallelism: usize,
    /// Log more (`-v`: info, `-vv`: debug, `-vvv`: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// The targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Target {
    /// The embedded simulated cloud under `.graven/local/`.
    Local,
    /// AWS, through the standard credential chain (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...).
    Aws,
}

/// Graph formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show what `apply` would do.
    Plan {
        /// Save the plan to FILE, for `apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the plan as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make the cloud match the stack.
    Apply {
        /// A plan saved by `plan --out`; refused if the state moved since.
        plan: Option<PathBuf>,
        /// Apply without asking (required when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
    },
    /// Destroy every resource of the stack.
    Destroy {
        /// Destroy without asking (required when stdin is not a terminal).
        #[arg(long)]
        auto_approve: bool,
    },
    /// Print the stack's deployment graph.
    Graph {
        /// The format.
        #[arg(long, default_value = "dot")]
        format: GraphFormat,
    },
    /// Inspect or repair the recorded state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// List the releases of the stack.
    History,
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum StateCommand {
    /// List the recorded resources.
    List,
    /// Show one recorded resource as JSON.
    Show {
        /// Its logical id.
        id: String,
    },
    /// Remove the state lock.
    Unlock {
        /// Remove it whoever holds it (a run that died on another machine).
        #[arg(long)]
        force: bool,
    },
}
