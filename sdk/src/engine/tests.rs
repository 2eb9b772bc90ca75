//! The engine against a scripted provider: ordering, parallelism, failures, interrupts and the
//! adoption of creates whose outcome a run did not learn.

// The handle types the derive generates (`VpcsRefs`, `NetRefs`) have a field per member, and
// not every member is referred to.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value as Json, json};
use tokio::sync::{Semaphore, mpsc, watch};

use super::{Engine, Event, Options, Retry};
use crate::aws::ec2::{Subnet, Vpc};
use crate::error::Error;
use crate::plan::{self, Plan};
use crate::provider::{self, Create, ErrorKind, Instance, Observed, Provider};
use crate::stack::Stack;
use crate::state::{Deposed, Entry, LocalStore, Outcome, State, Store};

#[derive(crate::Stack)]
#[graven(crate = "crate", name = "t")]
struct Vpcs {
    vpcs: Vec<Vpc>,
}

fn vpcs(n: u8) -> Vpcs {
    Vpcs { vpcs: (0..n).map(|i| Vpc::new(format!("10.{i}.0.0/16").parse().unwrap())).collect() }
}

#[derive(crate::Stack)]
#[graven(crate = "crate", name = "t")]
struct Net {
    vpc: Vpc,
    subnets: Vec<Subnet>,
}

fn net(n: u8) -> Net {
    let r = Net::refs();
    Net {
        vpc: Vpc::new("10.0.0.0/16".parse().unwrap()),
        subnets: (0..n)
            .map(|i| Subnet::new(r.vpc.id(), format!("10.0.{i}.0/24").parse().unwrap(), "local-1a"))
            .collect(),
    }
}

/// A semaphore with no permit to begin with.
struct Gate(Semaphore);

impl Default for Gate {
    fn default() -> Gate {
        Gate(Semaphore::new(0))
    }
}

/// A provider that records what it is asked, and can hold, fail or "lose the response of" the
/// creates of chosen resources.
#[derive(Default)]
struct Mock {
    /// Creates of these logical ids wait for a permit of `gate`.
    held: BTreeSet<String>,
    gate: Gate,
    /// Creates of these logical ids fail this way, every time, without creating anything.
    fail: BTreeMap<String, ErrorKind>,
    /// Creates of these logical ids create the object, then fail transiently (the response was
    /// lost), every time.
    lose_response: BTreeSet<String>,
    /// How long each create takes (tokio time).
    latency: Duration,
    /// What happened, in order: `start <id>`, `end <id>`.
    log: Mutex<Vec<String>>,
    /// Creates started so far.
    started: Mutex<Option<watch::Sender<usize>>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Token to (physical id, logical id, kind).
    objects: Mutex<BTreeMap<String, (String, String, String)>>,
    next: AtomicU64,
}

impl Mock {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn starts(&self) -> Vec<String> {
        self.log().into_iter().filter_map(|l| l.strip_prefix("start ").map(str::to_owned)).collect()
    }

    fn watch_starts(&self) -> watch::Receiver<usize> {
        let (tx, rx) = watch::channel(0);
        *self.started.lock().unwrap() = Some(tx);
        rx
    }

    fn observed(physical_id: &str, token: &str) -> Observed {
        let mut outputs = Map::new();
        outputs.insert("id".into(), Json::String(physical_id.to_owned()));
        Observed {
            physical_id: physical_id.to_owned(),
            outputs,
            inputs: Map::new(),
            tags: BTreeMap::from([(provider::tags::TOKEN.to_owned(), token.to_owned())]),
        }
    }

    fn object(&self, request: &Create<'_>) -> Observed {
        let mut objects = self.objects.lock().unwrap();
        let (physical, _, _) = objects.entry(request.token.to_owned()).or_insert_with(|| {
            let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
            (format!("obj-{n}"), request.id.to_owned(), request.kind.to_owned())
        });
        Mock::observed(physical, request.token)
    }
}

fn call_of(kind: &str) -> String {
    format!("Create{}", kind.rsplit(':').next().unwrap_or(kind))
}

#[async_trait]
impl Provider for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn create(&self, request: &Create<'_>) -> provider::Result<Observed> {
        self.log.lock().unwrap().push(format!("start {}", request.id));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(tx) = self.started.lock().unwrap().as_ref() {
            tx.send_modify(|n| *n += 1);
        }
        if self.held.contains(request.id) {
            self.gate.0.acquire().await.expect("gate open").forget();
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let call = call_of(request.kind);
        let result = if let Some(kind) = self.fail.get(request.id) {
            Err(provider::Error::new(*kind, call, "Scripted", "the mock fails this create"))
        } else if self.lose_response.contains(request.id) {
            self.object(request);
            Err(provider::Error::new(
                ErrorKind::Transient,
                call,
                "InternalError",
                "the response was lost",
            ))
        } else {
            Ok(self.object(request))
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(format!("end {}", request.id));
        result
    }

    async fn read(&self, _: &str, ids: &[String]) -> provider::Result<Vec<Option<Observed>>> {
        Ok(ids.iter().map(|_| None).collect())
    }

    async fn find_by_token(&self, _: &str, token: &str) -> provider::Result<Option<Observed>> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(token)
            .map(|(physical, _, _)| Mock::observed(physical, token)))
    }

    async fn update(
        &self,
        _: &str,
        id: &str,
        _: &Map<String, Json>,
        _: &[String],
    ) -> provider::Result<Observed> {
        Ok(Mock::observed(id, ""))
    }

    async fn delete(&self, _: &str, id: &str) -> provider::Result<()> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.log.lock().unwrap().push(format!("delete {id}"));
        self.objects.lock().unwrap().retain(|_, (physical, _, _)| physical != id);
        Ok(())
    }

    async fn fleet_instances(&self, _: &str) -> provider::Result<Vec<Instance>> {
        Ok(Vec::new())
    }

    async fn set_capacity(&self, _: &str, _: u32, _: u32, _: u32) -> provider::Result<()> {
        Ok(())
    }

    async fn terminate_instances(&self, _: &str, _: &[String], _: bool) -> provider::Result<()> {
        Ok(())
    }
}

fn quick_retry() -> Retry {
    Retry {
        max_attempts: 3,
        not_found_attempts: 2,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
    }
}

fn options() -> Options {
    Options::default().retry(quick_retry()).secrets(Arc::new(|_: &str| None))
}

struct Rig {
    dir: tempfile::TempDir,
    mock: Arc<Mock>,
}

impl Rig {
    fn new(mock: Mock) -> Rig {
        Rig { dir: tempfile::tempdir().unwrap(), mock: Arc::new(mock) }
    }

    /// A store as a new process would open it.
    fn store(&self) -> Arc<LocalStore> {
        Arc::new(LocalStore::new(self.dir.path()))
    }

    fn engine(&self, options: Options) -> Arc<Engine> {
        Arc::new(Engine::with_options(self.mock.clone(), self.store(), options))
    }

    /// Loads the state (or a new one), adopts pending creates, and plans `stack` against it.
    async fn prepare(&self, engine: &Engine, stack: &impl Stack) -> (State, Plan, Vec<String>) {
        let graph = stack.graph().unwrap();
        let mut state = engine
            .store()
            .load(graph.stack())
            .await
            .unwrap()
            .unwrap_or_else(|| State::new(graph.stack()));
        let adopted = engine.reconcile(&mut state).await.unwrap();
        let plan = plan::plan_graph(&graph, &state, &plan::Options::new()).unwrap();
        (state, plan, adopted)
    }

    async fn saved(&self) -> State {
        self.store().load("t").await.unwrap().unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn steps_follow_dependencies_within_the_parallelism() {
    let rig = Rig::new(Mock { latency: Duration::from_millis(10), ..Mock::default() });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let engine = rig.engine(options().parallelism(3).events(tx));
    let (state, plan, _) = rig.prepare(&engine, &net(8)).await;
    let report = engine.apply(&plan, state).await.unwrap();
    assert_eq!(report.summary["create"], 9);
    assert_eq!(
        rig.mock.max_in_flight.load(Ordering::SeqCst),
        3,
        "three subnets at a time, never more"
    );
    let log = rig.mock.log();
    let vpc_done = log.iter().position(|l| l == "end vpc").unwrap();
    assert!(log.iter().position(|l| l.starts_with("start subnets")).unwrap() > vpc_done);
    let saved = rig.saved().await;
    assert_eq!(saved, report.state);
    assert_eq!(saved.resources.len(), 9);
    assert_eq!(
        saved.resources["subnets[3]"].inputs["vpc_id"],
        json!(saved.resources["vpc"].physical_id)
    );
    assert!(saved.pending.is_empty());
    assert_eq!(saved.last_release().unwrap().outcome, Outcome::Succeeded);
    let mut started = 0;
    let mut finished = 0;
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::Started { .. } => started += 1,
            Event::Finished { .. } => finished += 1,
            _ => {}
        }
    }
    assert_eq!((started, finished), (9, 9));
}

#[tokio::test]
async fn an_interrupt_lets_the_steps_in_flight_finish_and_starts_no_new_one() {
    let held: BTreeSet<String> = (0..6).map(|i| format!("vpcs[{i}]")).collect();
    let rig = Rig::new(Mock { held, ..Mock::default() });
    let mut starts = rig.mock.watch_starts();
    let (stop_tx, stop_rx) = watch::channel(false);
    let engine = rig.engine(options().parallelism(2).interrupt(stop_rx));
    let (state, plan, _) = rig.prepare(&engine, &vpcs(6)).await;
    let run = tokio::spawn({
        let engine = engine.clone();
        async move { engine.apply(&plan, state).await }
    });
    starts.wait_for(|n| *n == 2).await.unwrap();
    stop_tx.send(true).unwrap(); // Ctrl-C while two creates are in flight
    rig.mock.gate.0.add_permits(100);
    let e = run.await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Interrupted), "{e}");
    assert_eq!(rig.mock.starts(), ["vpcs[0]", "vpcs[1]"], "no step starts after the interrupt");
    let saved = rig.saved().await;
    assert_eq!(
        saved.resources.keys().collect::<Vec<_>>(),
        ["vpcs[0]", "vpcs[1]"],
        "the steps in flight are recorded"
    );
    assert!(saved.pending.is_empty());
    let release = saved.last_release().unwrap();
    assert_eq!(release.outcome, Outcome::Interrupted);
    assert_eq!(release.summary["create"], 2);
    assert!(release.error.as_deref().unwrap().contains("interrupted"));
    assert_eq!(saved.serial, 1, "the state was saved");

    // The next run finishes the job.
    let engine = rig.engine(options());
    let (state, plan, adopted) = rig.prepare(&engine, &vpcs(6)).await;
    assert!(adopted.is_empty());
    assert_eq!(plan.summary.create, 4);
    let report = engine.apply(&plan, state).await.unwrap();
    assert_eq!(report.state.resources.len(), 6);
    assert_eq!(rig.mock.objects.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn a_failure_names_the_resource_and_the_call_and_lets_the_steps_in_flight_finish() {
    let mock = Mock {
        held: BTreeSet::from(["vpcs[0]".to_owned()]),
        fail: BTreeMap::from([("vpcs[1]".to_owned(), ErrorKind::Terminal)]),
        ..Mock::default()
    };
    let rig = Rig::new(mock);
    let engine = rig.engine(options().parallelism(2));
    let (state, plan, _) = rig.prepare(&engine, &vpcs(6)).await;
    let run = tokio::spawn({
        let engine = engine.clone();
        async move { engine.apply(&plan, state).await }
    });
    // Let `vpcs[1]` fail while `vpcs[0]` is held, then let `vpcs[0]` finish.
    while !rig.mock.log().iter().any(|l| l == "end vpcs[1]") {
        tokio::task::yield_now().await;
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    rig.mock.gate.0.add_permits(100);
    let e = run.await.unwrap().unwrap_err();
    let Error::Provider { resource, call, message } = &e else { panic!("{e}") };
    assert_eq!((resource.as_str(), call.as_str()), ("vpcs[1]", "CreateVpc"));
    assert!(message.contains("Scripted"), "{message}");
    assert!(e.to_string().starts_with("vpcs[1]: CreateVpc failed"), "{e}");
    assert_eq!(rig.mock.starts(), ["vpcs[0]", "vpcs[1]"], "no step starts after the failure");
    let saved = rig.saved().await;
    assert_eq!(
        saved.resources.keys().collect::<Vec<_>>(),
        ["vpcs[0]"],
        "the step in flight finished and is recorded"
    );
    assert!(saved.pending.is_empty(), "a terminal refusal created nothing: its intent is settled");
    assert_eq!(saved.last_release().unwrap().outcome, Outcome::Failed);
    assert!(saved.last_release().unwrap().error.as_deref().unwrap().contains("vpcs[1]"));
}

#[tokio::test]
async fn a_create_whose_response_was_lost_is_adopted_not_repeated() {
    let mock = Mock { lose_response: BTreeSet::from(["vpcs[2]".to_owned()]), ..Mock::default() };
    let rig = Rig::new(mock);
    let engine = rig.engine(options().parallelism(1));
    let (state, plan, _) = rig.prepare(&engine, &vpcs(4)).await;
    let e = engine.apply(&plan, state).await.unwrap_err();
    assert!(
        matches!(&e, Error::Provider { resource, call, .. } if resource == "vpcs[2]" && call == "CreateVpc"),
        "{e}"
    );
    assert_eq!(
        rig.mock.starts().iter().filter(|s| *s == "vpcs[2]").count(),
        3,
        "retried with the same token"
    );
    let saved = rig.saved().await;
    assert_eq!(
        saved.pending.keys().collect::<Vec<_>>(),
        ["vpcs[2]"],
        "the outcome is unknown: the intent stays"
    );
    let token = saved.pending["vpcs[2]"].token.clone();
    let physical = rig.mock.objects.lock().unwrap()[&token].0.clone();

    // The next run finds the object by its token and adopts it.
    let rig2 = Rig { dir: rig.dir, mock: Arc::new(Mock::default()) };
    *rig2.mock.objects.lock().unwrap() = rig.mock.objects.lock().unwrap().clone();
    let engine = rig2.engine(options());
    let (state, plan, adopted) = rig2.prepare(&engine, &vpcs(4)).await;
    assert_eq!(adopted, ["vpcs[2]"]);
    assert!(state.pending.is_empty());
    assert_eq!(state.resources["vpcs[2]"].physical_id, physical);
    assert_eq!(state.resources["vpcs[2]"].token, token);
    assert_eq!(
        state.resources["vpcs[2]"].inputs["cidr_block"], "10.2.0.0/16",
        "the intent's inputs are recorded"
    );
    assert_eq!(plan.summary.create, 1, "only `vpcs[3]` is left to create");
    let report = engine.apply(&plan, state).await.unwrap();
    assert_eq!(report.summary["create"], 1);
    let objects = rig2.mock.objects.lock().unwrap();
    assert_eq!(objects.len(), 4, "no duplicate: {objects:?}");
}

#[tokio::test]
async fn retryable_failures_keep_the_intent_and_the_next_run_forgets_what_never_happened() {
    let mock = Mock {
        fail: BTreeMap::from([("vpcs[1]".to_owned(), ErrorKind::Throttling)]),
        ..Mock::default()
    };
    let rig = Rig::new(mock);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let engine = rig.engine(options().parallelism(1).events(tx));
    let (state, plan, _) = rig.prepare(&engine, &vpcs(3)).await;
    let e = engine.apply(&plan, state).await.unwrap_err();
    assert!(matches!(&e, Error::Provider { resource, .. } if resource == "vpcs[1]"), "{e}");
    let mut retries = 0;
    while let Ok(event) = rx.try_recv() {
        if let Event::Retrying { id, call, .. } = event {
            assert_eq!((id.as_str(), call.as_str()), ("vpcs[1]", "CreateVpc"));
            retries += 1;
        }
    }
    assert_eq!(retries, 2, "three attempts in all");
    assert!(rig.saved().await.pending.contains_key("vpcs[1]"));

    let rig2 = Rig { dir: rig.dir, mock: Arc::new(Mock::default()) };
    let engine = rig2.engine(options());
    let (state, plan, adopted) = rig2.prepare(&engine, &vpcs(3)).await;
    assert!(adopted.is_empty(), "nothing carries the token: nothing to adopt");
    assert!(state.pending.is_empty(), "the intent is settled");
    assert_eq!(plan.summary.create, 2);
    let report = engine.apply(&plan, state).await.unwrap();
    assert_eq!(report.state.resources.len(), 3);
}

#[tokio::test]
async fn a_plan_made_against_another_serial_is_refused() {
    let rig = Rig::new(Mock::default());
    let engine = rig.engine(options());
    let (state, plan, _) = rig.prepare(&engine, &vpcs(1)).await;
    assert_eq!(engine.apply(&plan, state).await.unwrap().state.serial, 1);
    let engine = rig.engine(options());
    let state = rig.saved().await;
    let e = engine.apply(&plan, state).await.unwrap_err();
    assert!(e.to_string().contains("the state moved since the plan was made"), "{e}");
    assert_eq!(rig.mock.objects.lock().unwrap().len(), 1, "nothing was created twice");
}

#[tokio::test(start_paused = true)]
async fn old_objects_deleted_at_once_are_all_forgotten() {
    let rig = Rig::new(Mock { latency: Duration::from_millis(10), ..Mock::default() });
    let engine = rig.engine(options());
    let (state, plan, _) = rig.prepare(&engine, &vpcs(1)).await;
    let mut state = engine.apply(&plan, state).await.unwrap().state;
    // Old objects that interrupted create-before-destroy replacements of `vpcs[0]` left.
    let mut r = state.resources["vpcs[0]"].clone();
    for old in ["old-1", "old-2", "old-3"] {
        r.deposed.push(Deposed {
            physical_id: old.to_owned(),
            inputs: Map::new(),
            outputs: Map::new(),
            token: format!("tok-{old}"),
        });
    }
    let store = rig.store();
    assert!(store.load("t").await.unwrap().is_some());
    let entry = Entry::Put(r);
    store.record("t", &entry).await.unwrap();
    state.apply(&entry);
    assert_eq!(store.save(&state).await.unwrap().serial, 2);

    let engine = rig.engine(options());
    let (state, plan, _) = rig.prepare(&engine, &vpcs(1)).await;
    assert!(!plan.is_empty(), "the old objects are still to delete");
    assert_eq!(plan.steps.len(), 3);
    let report = engine.apply(&plan, state).await.unwrap();
    assert_eq!(report.summary["delete_old"], 3);
    let deletes = rig.mock.log().into_iter().filter(|l| l.starts_with("delete old-")).count();
    assert_eq!(deletes, 3);
    let saved = rig.saved().await;
    assert!(
        saved.resources["vpcs[0]"].deposed.is_empty(),
        "every delete is recorded: {:?}",
        saved.resources["vpcs[0]"].deposed
    );
    let (_, plan, _) = rig.prepare(&rig.engine(options()), &vpcs(1)).await;
    assert!(plan.is_empty(), "{}", plan.render());
}
