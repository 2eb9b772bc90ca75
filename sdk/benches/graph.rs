//! Graph-building benchmark: `DeploymentGraph::build` on a generated stack of 10,000 and of
//! 100,000 resources, a 10-layer DAG where each resource references up to two resources of the
//! layer before.
//!
//! `cargo bench -p graven --bench graph` (release; `-- 100000` runs one size). Each size runs in
//! a child process of this binary, so the peak memory (`VmHWM`) it reports is that size's alone:
//! the stack value plus the graph. Reports the best and the median of several builds.
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

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Builds the graph of a stack of `total` resources `runs` times; prints one line.
fn measure(total: usize, runs: usize) {
    let stack = dag(total);
    let stack_peak = peak_mb();
    let mut times = Vec::with_capacity(runs);
    let mut edges = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let graph = DeploymentGraph::build(&stack).expect("the generated stack is valid");
        times.push(start.elapsed());
        assert_eq!(graph.len(), total);
        edges = graph.nodes().iter().map(|n| n.dependencies.len()).sum::<usize>();
        drop(graph);
    }
    times.sort();
    let (best, median) = (times[0], times[times.len() / 2]);
    let peak = peak_mb();
    let verdict = if total >= 100_000 {
        if best <= TARGET && peak <= TARGET_MB { "  [meets target]" } else { "  [MISSES target]" }
    } else {
        ""
    };
    println!(
        "graph build {total:>7} resources, {edges:>6} edges: best {:>9}, median {:>9} ({runs} runs); \
         peak {peak:.0} MB (stack alone {stack_peak:.0} MB){verdict}",
        ms(best),
        ms(median),
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
