//! Apply benchmarks on the local target (release build): `cargo bench -p graven --bench apply`.
//!
//! 1. From scratch, 10,000 resources (a VPC and a 10-layer DAG of security groups, each
//!    referencing up to two groups of the layer before through ingress rules), no injected
//!    latency: the whole run (lock, load, reconcile, plan, apply with its journals, save,
//!    unlock). Target: <= 2 s. Best and median of 5 runs, each in a fresh directory.
//! 2. The same shape with 1,000 resources, 50 ms of injected latency per call and the default
//!    parallelism (10): wall time against the bound max(critical path, calls x latency /
//!    parallelism). Target: <= 1.1 x the bound.
//!
//! `--quick` runs each once (for a smoke run); `--only-scratch` and `--only-latency` run one part;
//! `--breakdown` prints where the time of each run goes.

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};

use graven::aws::ec2::{Rule, SecurityGroup, Vpc};
use graven::engine::{Engine, Options};
use graven::local::{Faults, LocalCloud};
use graven::plan::{self, plan_graph};
use graven::prelude::*;
use graven::provider::{self, Create, Instance, Observed, Provider};
use graven::state::{Entry, LocalStore, LockInfo, State, Store};

/// Nanoseconds spent in provider calls and in store calls (`--breakdown`).
static IN_PROVIDER: AtomicU64 = AtomicU64::new(0);
static IN_STORE: AtomicU64 = AtomicU64::new(0);

fn timed<T>(counter: &AtomicU64, started: Instant, out: T) -> T {
    counter.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

/// A provider that times the calls of another.
struct TimedProvider(Arc<LocalCloud>);

#[async_trait::async_trait]
impl Provider for TimedProvider {
    fn name(&self) -> &'static str {
        "local"
    }
    async fn create(&self, request: &Create<'_>) -> provider::Result<Observed> {
        let t = Instant::now();
        let out = self.0.create(request).await;
        timed(&IN_PROVIDER, t, out)
    }
    async fn read(&self, kind: &str, ids: &[String]) -> provider::Result<Vec<Option<Observed>>> {
        self.0.read(kind, ids).await
    }
    async fn find_by_token(&self, kind: &str, token: &str) -> provider::Result<Option<Observed>> {
        self.0.find_by_token(kind, token).await
    }
    async fn update(
        &self,
        kind: &str,
        id: &str,
        inputs: &Map<String, Json>,
        changed: &[String],
    ) -> provider::Result<Observed> {
        self.0.update(kind, id, inputs, changed).await
    }
    async fn delete(&self, kind: &str, id: &str) -> provider::Result<()> {
        self.0.delete(kind, id).await
    }
    async fn fleet_instances(&self, group: &str) -> provider::Result<Vec<Instance>> {
        self.0.fleet_instances(group).await
    }
    async fn set_capacity(
        &self,
        group: &str,
        min: u32,
        desired: u32,
        max: u32,
    ) -> provider::Result<()> {
        self.0.set_capacity(group, min, desired, max).await
    }
    async fn terminate_instances(
        &self,
        group: &str,
        ids: &[String],
        decrement: bool,
    ) -> provider::Result<()> {
        self.0.terminate_instances(group, ids, decrement).await
    }
    fn category(&self, call: &str) -> provider::Category {
        self.0.category(call)
    }
}

/// A store that times the calls of another.
struct TimedStore(Arc<LocalStore>);

#[async_trait::async_trait]
impl Store for TimedStore {
    fn describe(&self, stack: &str) -> String {
        self.0.describe(stack)
    }
    async fn load(&self, stack: &str) -> graven::Result<Option<State>> {
        self.0.load(stack).await
    }
    async fn save(&self, state: &State) -> graven::Result<State> {
        let t = Instant::now();
        let out = self.0.save(state).await;
        timed(&IN_STORE, t, out)
    }
    async fn record(&self, stack: &str, entry: &Entry) -> graven::Result<()> {
        let t = Instant::now();
        let out = self.0.record(stack, entry).await;
        timed(&IN_STORE, t, out)
    }
    async fn lock(&self, stack: &str, operation: &str) -> graven::Result<LockInfo> {
        self.0.lock(stack, operation).await
    }
    async fn unlock(&self, stack: &str, lock: &LockInfo) -> graven::Result<()> {
        self.0.unlock(stack, lock).await
    }
    async fn lock_info(&self, stack: &str) -> graven::Result<Option<LockInfo>> {
        self.0.lock_info(stack).await
    }
    async fn force_unlock(&self, stack: &str) -> graven::Result<Option<LockInfo>> {
        self.0.force_unlock(stack).await
    }
    async fn backups(&self, stack: &str) -> graven::Result<Vec<u64>> {
        self.0.backups(stack).await
    }
}

#[derive(Stack)]
#[graven(name = "bench")]
struct Dag {
    vpc: Vpc,
    layers: Vec<Vec<SecurityGroup>>,
}

const LAYERS: usize = 10;

/// A VPC and `total - 1` security groups in 10 layers; a group of layer `l > 0` admits traffic
/// from groups `i` and `i + 1` of layer `l - 1`.
fn dag(total: usize) -> Dag {
    let r = Dag::refs();
    let groups = total - 1;
    let layers = (0..LAYERS)
        .map(|l| {
            let per = groups / LAYERS + usize::from(l < groups % LAYERS);
            let prev_len =
                if l == 0 { 0 } else { (groups / LAYERS) + usize::from(l - 1 < groups % LAYERS) };
            (0..per)
                .map(|i| {
                    let sg = SecurityGroup::new(r.vpc.id(), "bench");
                    if l == 0 {
                        return sg.ingress(Rule::tcp(80, "10.0.0.0/8".parse().expect("cidr")));
                    }
                    let prev = r.layers.at(l - 1);
                    let sg = sg.ingress(Rule::tcp_from_group(80, prev.at(i % prev_len).id()));
                    if i + 1 < prev_len {
                        sg.ingress(Rule::tcp_from_group(443, prev.at(i + 1).id()))
                    } else {
                        sg
                    }
                })
                .collect()
        })
        .collect();
    Dag { vpc: Vpc::new("10.0.0.0/16".parse().expect("cidr")), layers }
}

struct Run {
    wall: Duration,
    cpu: Duration,
    calls: u64,
    created: u64,
}

/// Applies `stack` from scratch in a fresh directory, as the CLI does, and times it.
async fn apply_once(stack: &Dag, latency: Duration, parallelism: usize) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = Arc::new(LocalCloud::open(dir.path()).expect("local cloud"));
    cloud.set_faults(Faults::default().latency(latency)).expect("faults");
    let store = Arc::new(LocalStore::new(dir.path()));
    let graph = stack.graph().expect("graph");
    let name = graph.stack();
    let cpu = cpu_time();
    let started = Instant::now();
    let lock = store.lock(name, "apply").await.expect("lock");
    let options = Options::default().parallelism(parallelism);
    let breakdown = std::env::args().any(|a| a == "--breakdown");
    let engine = if breakdown {
        IN_PROVIDER.store(0, Ordering::Relaxed);
        IN_STORE.store(0, Ordering::Relaxed);
        let provider: Arc<dyn Provider> = Arc::new(TimedProvider(cloud.clone()));
        Engine::with_options(provider, Arc::new(TimedStore(store.clone())), options)
    } else {
        Engine::with_options(cloud.clone(), store.clone(), options)
    };
    let mut state = store.load(name).await.expect("load").unwrap_or_else(|| State::new(name));
    engine.reconcile(&mut state).await.expect("reconcile");
    let t_plan = Instant::now();
    let plan = plan_graph(&graph, &state, &plan::Options::new()).expect("plan");
    let t_apply = Instant::now();
    let report = engine.apply(&plan, state).await.expect("apply");
    let t_done = Instant::now();
    store.unlock(name, &lock).await.expect("unlock");
    let wall = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    if breakdown {
        println!(
            "  breakdown: before the plan {:.0} ms, plan {:.0} ms, apply {:.0} ms (summed over tasks: in provider calls {:.0} ms, in store calls {:.0} ms), after {:.0} ms",
            ms(t_plan - started),
            ms(t_apply - t_plan),
            ms(t_done - t_apply),
            ms(Duration::from_nanos(IN_PROVIDER.load(Ordering::Relaxed))),
            ms(Duration::from_nanos(IN_STORE.load(Ordering::Relaxed))),
            ms(started + wall - t_done)
        );
    }
    assert_eq!(report.state.resources.len(), graph.len(), "every resource is recorded");
    Run {
        wall,
        cpu,
        calls: cloud.api_calls(),
        created: report.summary.get("create").copied().unwrap_or(0),
    }
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux; zero
/// elsewhere). The machines these run on are shared, so wall time alone can mislead.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which is in parentheses and may hold spaces): utime is the
    // 12th and stime the 13th of them, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn best_median(mut runs: Vec<Duration>) -> (Duration, Duration) {
    runs.sort();
    (runs[0], runs[runs.len() / 2])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` runs nothing here.
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut failed = false;

    let only = |part: &str| {
        !args.iter().any(|a| a.starts_with("--only")) || args.iter().any(|a| a == part)
    };

    // 1. 10,000 resources, no latency.
    if only("--only-scratch") {
        let stack = dag(10_000);
        let runs: Vec<Run> = (0..if quick { 1 } else { 5 })
            .map(|_| rt.block_on(apply_once(&stack, Duration::ZERO, 10)))
            .collect();
        let created = runs[0].created;
        let (best, median) = best_median(runs.iter().map(|r| r.wall).collect());
        let ok = best <= Duration::from_secs(2);
        failed |= !ok;
        println!(
            "apply 10,000 resources from scratch (local, no latency): best {:.0} ms, median {:.0} ms over {} runs ({created} creates, {} calls; CPU time of the best run {:.0} ms) | target <= 2000 ms: {}",
            ms(best),
            ms(median),
            runs.len(),
            runs[0].calls,
            ms(runs.iter().min_by_key(|r| r.wall).map_or(Duration::ZERO, |r| r.cpu)),
            if ok { "met" } else { "MISSED" }
        );
    }

    // 2. 1,000 resources in 10 layers, 50 ms per call, parallelism 10.
    if only("--only-latency") {
        let latency = Duration::from_millis(50);
        let parallelism = 10;
        let stack = dag(1_000);
        let runs: Vec<Run> = (0..if quick { 1 } else { 3 })
            .map(|_| rt.block_on(apply_once(&stack, latency, parallelism)))
            .collect();
        let calls = runs[0].calls;
        // The longest chain: the VPC, then one group per layer, one call each.
        let critical = latency * (1 + LAYERS as u32);
        let throughput = latency * calls as u32 / parallelism as u32;
        let bound = critical.max(throughput);
        let (best, median) = best_median(runs.iter().map(|r| r.wall).collect());
        let ratio = best.as_secs_f64() / bound.as_secs_f64();
        let ok = ratio <= 1.1;
        failed |= !ok;
        println!(
            "apply 1,000 resources, 10 layers, 50 ms per call, parallelism {parallelism}: best {:.0} ms, median {:.0} ms over {} runs | bound max(critical path {:.0} ms, {calls} calls x 50 ms / {parallelism} = {:.0} ms) = {:.0} ms | ratio {ratio:.3} (median {:.3}) | target <= 1.1: {}",
            ms(best),
            ms(median),
            runs.len(),
            ms(critical),
            ms(throughput),
            ms(bound),
            median.as_secs_f64() / bound.as_secs_f64(),
            if ok { "met" } else { "MISSED" }
        );
    }
    if failed {
        std::process::exit(1);
    }
}
