//! Graph-building benchmark: `DeploymentGraph::build` on a generated stack of 10,000 and of
//! 100,000 resources, a 10-layer DAG where each resource references up to two resources of the
//! layer before.
//!
//! `cargo bench -p graven --bench graph` (release; `-- 100000` runs one size). Each size runs in
//! a child process of this binary, so the peak memory (`VmHWM`) it reports is that size's alone:
//! the stack value plus the graph. Reports the first build (a fresh heap, as in a CLI run), the
//! best and the median of several, and the median CPU time, which other processes on a shared
//! machine do not inflate as they do wall time.
//! Target: 100,000 resources in <= 0.5 s, peak <= 300 MB.

#![allow(missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use graven::DeploymentGraph;
use graven::prelude::*;
use graven::stack::Indexed;

/// A small resource kind: a name, a size (updated in place) and its references.
#[derive(Clone, Resource)]
#[graven(kind = "bench:Node", outputs = NodeOutputs)]
struct Node {
    name: String,
    #[graven(update)]
    size: u32,
    upstream: Vec<Value<String>>,
}

#[derive(Outputs)]
struct NodeOutputs {
    #[allow(dead_code)]
    id: String,
}

/// Ten layers, one field each: ids `l0[0]` ... `l9[9999]`.
#[derive(Stack)]
#[graven(name = "bench")]
struct Dag {
    l0: Vec<Node>,
    l1: Vec<Node>,
    l2: Vec<Node>,
    l3: Vec<Node>,
    l4: Vec<Node>,
    l5: Vec<Node>,
    l6: Vec<Node>,
    l7: Vec<Node>,
    l8: Vec<Node>,
    l9: Vec<Node>,
}

const TARGET: Duration = Duration::from_millis(500);
const TARGET_MB: f64 = 300.0;

fn dag(total: usize) -> Dag {
    let r = Dag::refs();
    let handles: [&Indexed<Node>; 10] =
        [&r.l0, &r.l1, &r.l2, &r.l3, &r.l4, &r.l5, &r.l6, &r.l7, &r.l8, &r.l9];
    let per = total / 10;
    let mut layers = (0..10).map(|l| {
        (0..per)
            .map(|i| {
                let mut upstream = Vec::new();
                if l > 0 {
                    let prev = handles[l - 1];
                    upstream.push(prev.at(i).id());
                    let other = (i * 7 + 3) % per;
                    if other != i {
                        upstream.push(prev.at(other).id());
                    }
                }
                Node { name: format!("n{}", l * per + i), size: 1, upstream }
            })
            .collect::<Vec<_>>()
    });
    let mut next = || layers.next().unwrap_or_default();
    Dag {
        l0: next(),
        l1: next(),
        l2: next(),
        l3: next(),
        l4: next(),
        l5: next(),
        l6: next(),
        l7: next(),
        l8: next(),
        l9: next(),
    }
}

/// Peak resident set size of this process, in MB.
fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) this thread has used, from `/proc/thread-self/stat`: unlike wall
/// time, it does not count the time other processes held the CPU.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // After the command name (in parentheses) come the state, then numbers; utime and stime
    // are the 12th and 13th fields from the state, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = tick(11) + tick(12);
    Duration::from_millis(ticks * 10)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Builds the graph of a stack of `total` resources `runs` times; prints one line.
fn measure(total: usize, runs: usize) {
    let stack = dag(total);
    let stack_peak = peak_mb();
    let mut times = Vec::with_capacity(runs);
    let mut cpu_times = Vec::with_capacity(runs);
    let mut edges = 0;
    for _ in 0..runs {
        let (start, cpu) = (Instant::now(), cpu_time());
        let graph = DeploymentGraph::build(&stack).expect("the generated stack is valid");
        times.push(start.elapsed());
        cpu_times.push(cpu_time().saturating_sub(cpu));
        assert_eq!(graph.len(), total);
        edges = graph.nodes().iter().map(|n| n.dependencies.len()).sum::<usize>();
        drop(graph);
    }
    let first = times[0];
    times.sort();
    cpu_times.sort();
    let cpu_median = cpu_times[cpu_times.len() / 2];
    let (best, median) = (times[0], times[times.len() / 2]);
    let peak = peak_mb();
    let verdict = if total >= 100_000 {
        if best <= TARGET && peak <= TARGET_MB { "  [meets target]" } else { "  [MISSES target]" }
    } else {
        ""
    };
    println!(
        "graph build {total:>7} resources, {edges:>6} edges: first {:>9}, best {:>9}, median {:>9} ({runs} runs), CPU median {:>9}; \
         peak {peak:.0} MB (stack alone {stack_peak:.0} MB){verdict}",
        ms(first),
        ms(best),
        ms(median),
        ms(cpu_median),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let total: usize = args.get(i + 1).and_then(|s| s.parse().ok()).expect("a size");
        let runs = if total >= 100_000 { 7 } else { 21 };
        measure(total, runs);
        return;
    }
    let mut sizes: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000];
    }
    println!(
        "target: 100,000 resources in <= {} (best of runs), peak <= {TARGET_MB:.0} MB",
        ms(TARGET)
    );
    let exe = std::env::current_exe().expect("the bench binary's path");
    for total in sizes {
        let status = Command::new(&exe)
            .args(["--child", &total.to_string()])
            .status()
            .expect("the bench binary runs");
        assert!(status.success(), "size {total} failed");
    }
}
