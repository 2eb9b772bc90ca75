//! Harness of the `apply_` tests: a project directory, the stack program run as a child
//! process, applies run in-process with the engine API, and the check that the local cloud
//! holds exactly what the stack declares and the state records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use graven::DeploymentGraph;
use graven::engine::{Engine, Options, Report};
use graven::local::{LocalCloud, Settings};
use graven::plan::{self, Plan};
use graven::prelude::*;
use graven::provider::{InstanceState, tags};
use graven::state::{LocalStore, State, Store};
use serde_json::Value as Json;

use crate::apply_stack::Crash;

/// Every kind the local cloud simulates.
pub const KINDS: [&str; 9] = [
    "aws:ec2:Vpc",
    "aws:ec2:Subnet",
    "aws:ec2:InternetGateway",
    "aws:ec2:RouteTable",
    "aws:ec2:SecurityGroup",
    "aws:ec2:LaunchTemplate",
    "aws:ec2:Instance",
    "aws:ec2:Image",
    "aws:autoscaling:AutoScalingGroup",
];

/// The graph of the crash test's stack at round `round`.
pub fn crash_graph(round: u32) -> DeploymentGraph {
    let release = graven::testing::release().var("round", round.to_string());
    Crash::new(&release).expect("the crash stack builds").graph().expect("its graph builds")
}

/// The graph of the `web` example with the stack inputs `vars`.
pub fn web_graph(vars: &[(&str, &str)]) -> DeploymentGraph {
    let mut release = graven::testing::release();
    for (k, v) in vars {
        release = release.var(*k, *v);
    }
    web::Web::new(&release).expect("the web stack builds").graph().expect("its graph builds")
}

/// The id of built-in image `name` at `version`.
pub fn image(name: &str, version: &str) -> String {
    graven::release::ImageRecord::derived(name, version).expect("a version").id
}

/// Which stack the child process applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `apply_stack::Crash`.
    Crash,
    /// The `web` example.
    Web,
}

/// A project directory (`--root`) for one test; kept (and named on stderr) when the test fails.
pub struct Project {
    dir: Option<tempfile::TempDir>,
    program: Program,
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("the project of the failed test is kept in {}", dir.keep().display());
            }
        }
    }
}

/// What a child process did.
#[derive(Debug)]
pub struct Run {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Panics, showing the output, unless the run exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Project {
    /// A fresh, empty project for `program`.
    pub fn new(program: Program) -> Project {
        Project { dir: Some(tempfile::tempdir().expect("a temporary directory")), program }
    }

    /// The project's root.
    pub fn root(&self) -> &Path {
        self.dir.as_ref().expect("the project directory").path()
    }

    /// The stack's name.
    pub fn stack(&self) -> &'static str {
        match self.program {
            Program::Crash => crate::apply_stack::NAME,
            Program::Web => "web",
        }
    }

    /// The state file.
    pub fn state_path(&self) -> PathBuf {
        LocalStore::new(self.root()).state_path(self.stack())
    }

    /// Writes the local cloud's settings (`config.json`); no child may be running.
    pub fn set_settings(&self, settings: Settings) {
        LocalCloud::open(self.root())
            .expect("the local cloud opens")
            .set_settings(settings)
            .expect("settings");
    }

    /// The stack program with `args`, on this project: `--root` set, the environment cleared
    /// of `GRAVEN_*` variables, no colour, stdin not a terminal.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crash_stack"));
        for (k, _) in std::env::vars() {
            if k.starts_with("GRAVEN_") {
                cmd.env_remove(k);
            }
        }
        if self.program == Program::Web {
            cmd.env("GRAVEN_TEST_STACK", "web");
        }
        cmd.env("NO_COLOR", "1").arg("--root").arg(self.root()).args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs the stack program with `args` to its end.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("the stack program runs").into()
    }

    /// The state as a new run would load it.
    pub fn state(&self) -> Option<State> {
        let store = LocalStore::new(self.root());
        block_on(store.load(self.stack())).expect("the state loads")
    }
}

/// The output of `future`, which must be ready at once: the local store's and the local
/// cloud's methods are `async` for the trait's sake but do their work synchronously. Usable in
/// sync and async tests alike (no runtime is started).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the future was expected to complete at once"),
    }
}

/// Applies `graph` in-process as the command line does: lock, load, adopt the creates an
/// interrupted run left pending, plan, apply, unlock.
pub async fn apply(
    root: &Path,
    cloud: &Arc<LocalCloud>,
    graph: &DeploymentGraph,
    options: Options,
) -> graven::Result<Report> {
    let store = Arc::new(LocalStore::new(root));
    let name = graph.stack();
    let lock = store.lock(name, "apply").await?;
    let engine = Engine::with_options(cloud.clone(), store.clone(), options);
    let result = async {
        let mut state = store.load(name).await?.unwrap_or_else(|| State::new(name));
        engine.reconcile(&mut state).await?;
        let plan = plan::plan_graph(graph, &state, &plan::Options::new())?;
        engine.apply(&plan, state).await
    }
    .await;
    store.unlock(name, &lock).await?;
    result
}

/// The plan of `graph` against the state in `root` (as `plan` shows it).
pub async fn plan_in(root: &Path, graph: &DeploymentGraph) -> Plan {
    let state = LocalStore::new(root).load(graph.stack()).await.expect("the state loads");
    let state = state.unwrap_or_else(|| State::new(graph.stack()));
    plan::plan_graph(graph, &state, &plan::Options::new()).expect("a plan")
}

/// Objects of the cloud by kind, as (`graven:id`, physical id, observed inputs).
pub type Tagged = BTreeMap<&'static str, Vec<(String, String, serde_json::Map<String, Json>)>>;

/// The objects of the local cloud tagged with stack `stack`, by kind.
pub fn tagged(cloud: &LocalCloud, stack: &str) -> Tagged {
    KINDS
        .iter()
        .map(|kind| {
            let objects = cloud
                .resources(kind)
                .into_iter()
                .filter(|o| o.tags.get(tags::STACK).is_some_and(|s| s == stack))
                .map(|o| {
                    (o.tags.get(tags::ID).cloned().unwrap_or_default(), o.physical_id, o.inputs)
                })
                .collect();
            (*kind, objects)
        })
        .collect()
}

/// What [`check_converged`] saw.
#[derive(Debug)]
pub struct Converged {
    /// Objects of the stack in the cloud, by kind.
    pub objects: BTreeMap<&'static str, usize>,
    /// Instances of the stack's fleets.
    pub fleet_instances: usize,
}

/// Checks that the local cloud in `root` holds exactly the resources of `graph` and that the
/// state records them:
/// - per kind, as many objects tagged `graven:stack` = the stack as the graph declares, no two
///   with the same `graven:id`, each being the object the state records for that id (so no
///   orphan, no duplicate, and every recorded physical id exists);
/// - the state records exactly the graph's resources, with no pending create and no old object
///   awaiting deletion;
/// - the fields the cloud reports agree with the recorded inputs;
/// - each fleet runs its desired capacity, every instance on the group's launch template
///   version and that version's image (the fleets' own instances carry no stack tag).
#[track_caller]
pub fn check_converged(root: &Path, graph: &DeploymentGraph) -> Converged {
    let stack = graph.stack();
    let cloud = LocalCloud::open(root).expect("the local cloud opens");
    let state =
        block_on(LocalStore::new(root).load(stack)).expect("the state loads").expect("a state");
    assert!(
        state.pending.is_empty(),
        "creates left pending: {:?}",
        state.pending.keys().collect::<Vec<_>>()
    );
    let deposed: Vec<&str> =
        state.resources.values().filter(|r| !r.deposed.is_empty()).map(|r| r.id.as_str()).collect();
    assert!(deposed.is_empty(), "old objects left to delete: {deposed:?}");
    let wanted: BTreeSet<&str> = graph.nodes().iter().map(|n| n.id.as_str()).collect();
    let recorded: BTreeSet<&str> = state.resources.keys().map(String::as_str).collect();
    assert_eq!(recorded, wanted, "the state records exactly the stack's resources");

    let mut objects = BTreeMap::new();
    for (kind, found) in tagged(&cloud, stack) {
        let desired = graph.nodes().iter().filter(|n| n.kind() == kind).count();
        let ids: Vec<&str> = found.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(
            found.len(),
            desired,
            "{kind}: {} objects of the stack in the cloud, {desired} declared: {ids:?}",
            found.len()
        );
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{kind}: two objects share a `graven:id`: {ids:?}");
        for (id, physical, inputs) in &found {
            let r = state.resources.get(id).unwrap_or_else(|| {
                panic!("{kind} `{physical}` is tagged `{id}`, which the state does not know")
            });
            assert_eq!(&r.kind, kind, "`{id}`");
            assert_eq!(
                &r.physical_id, physical,
                "`{id}`: the state records another object than the cloud holds"
            );
            for (field, value) in inputs {
                let Some(applied) = r.inputs.get(field).filter(|v| !v.is_null()) else { continue };
                if field == "name" {
                    continue; // generated by the cloud when the stack leaves it out
                }
                assert!(
                    same(applied, value),
                    "`{id}`.{field}: the state records {applied}, the cloud has {value}"
                );
            }
        }
        if desired > 0 {
            objects.insert(kind, found.len());
        }
    }

    let instances = cloud.instances();
    let mut fleet_instances = 0;
    for r in state.resources.values().filter(|r| r.kind == "aws:autoscaling:AutoScalingGroup") {
        let version = r.inputs["launch_template_version"].as_u64().expect("a version");
        let desired = r.inputs["desired_capacity"].as_u64().expect("a capacity") as usize;
        let template = r.inputs["launch_template_id"].as_str().expect("a template");
        let image = cloud.launch_template_version(template, version).expect("the version exists")["image_id"].clone();
        let live: Vec<_> = instances
            .iter()
            .filter(|i| {
                i.group.as_deref() == Some(r.physical_id.as_str())
                    && i.state != InstanceState::Terminated
            })
            .collect();
        assert_eq!(
            live.len(),
            desired,
            "fleet `{}` runs {} instances, wants {desired}: {live:?}",
            r.id,
            live.len()
        );
        for i in &live {
            assert_eq!(i.launch_template_version, Some(version), "fleet `{}`: {i:?}", r.id);
            assert_eq!(Json::String(i.image_id.clone()), image, "fleet `{}`: {i:?}", r.id);
        }
        fleet_instances += live.len();
    }
    let strays: Vec<_> = instances
        .iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .filter(|i| {
            i.group.as_ref().is_some_and(|g| !state.resources.values().any(|r| &r.physical_id == g))
        })
        .collect();
    assert!(strays.is_empty(), "instances of groups the state does not know: {strays:?}");
    Converged { objects, fleet_instances }
}

/// Whether an applied input and the cloud's report of it agree (numbers as numbers, lists of
/// rules compared field by field where both sides give the field).
fn same(applied: &Json, observed: &Json) -> bool {
    match (applied, observed) {
        (Json::Object(a), Json::Object(o)) => {
            a.iter().all(|(k, v)| v.is_null() || o.get(k).is_none_or(|w| w.is_null() || same(v, w)))
        }
        (Json::Array(a), Json::Array(o)) => {
            a.len() == o.len() && a.iter().zip(o).all(|(x, y)| same(x, y))
        }
        (Json::Number(a), Json::Number(o)) => a.as_f64() == o.as_f64(),
        _ => applied == observed,
    }
}
