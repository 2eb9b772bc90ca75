//! Planning benchmark: plan 10,000 and 100,000 resources (a 10-layer DAG where each resource
//! references up to two of the layer before), with no change and with 1% of resources changed.
//!
//! `cargo bench -p graven --bench plan` (release). Each size runs in a child process of this
//! binary, so the peak memory (`VmHWM`) reported is that size's alone.
//! Targets: no-change plan of 10,000 in <= 100 ms, of 100,000 in <= 1.5 s; peak <= 500 MB.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use graven::id::SecurityGroupId;
use graven::plan::{Options, plan_graph};
use graven::prelude::*;
use graven::testing::applied_graph;

/// A small resource kind: a name, a size (updated in place) and references to the layer before.
#[derive(Clone, Resource)]
#[graven(kind = "bench:Node", outputs = NodeOutputs)]
struct Node {
    name: String,
    #[graven(update)]
    size: u32,
    deps: Vec<Value<SecurityGroupId>>,
}

#[derive(Outputs)]
struct NodeOutputs {
    #[allow(dead_code)]
    id: SecurityGroupId,
}

#[derive(Stack)]
#[graven(name = "bench")]
struct Dag {
    layers: Vec<Vec<Node>>,
}

fn dag(total: usize, changed_every: usize) -> Dag {
    let r = Dag::refs();
    let per = total / 10;
    let layers = (0..10)
        .map(|l| {
            (0..per)
                .map(|i| {
                    let deps = if l == 0 {
                        Vec::new()
                    } else {
                        let prev = r.layers.at(l - 1);
                        let mut d = vec![prev.at(i).id()];
                        if i + 1 < per {
                            d.push(prev.at(i + 1).id());
                        }
                        d
                    };
                    let n = l * per + i;
                    let size = if changed_every > 0 && n % changed_every == 0 { 2 } else { 1 };
                    Node { name: format!("n{n}"), size, deps }
                })
                .collect()
        })
        .collect();
    Dag { layers }
}

fn peak_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn measure(total: usize) {
    // The recorded state of the stack as applied; then, one at a time, the desired graph with
    // no change and with 1% of the resources changed (their `size`, updated in place).
    let graph = dag(total, 0).graph().expect("graph");
    let state = applied_graph(&graph);
    drop(graph);
    let options = Options::new();
    let mut results = Vec::new();
    for (changed_every, expect_empty) in [(0, true), (100, false)] {
        let graph = dag(total, changed_every).graph().expect("graph");
        let mut runs: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let p = plan_graph(&graph, &state, &options).expect("plan");
                let e = t.elapsed();
                assert_eq!(p.is_empty(), expect_empty);
                e
            })
            .collect();
        runs.sort();
        results.push((runs[0], runs[runs.len() / 2]));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "plan {total:>7} resources: no change best {:>8.1} ms median {:>8.1} ms | 1% changed best {:>8.1} ms median {:>8.1} ms | peak {:.0} MB",
        ms(results[0].0),
        ms(results[0].1),
        ms(results[1].0),
        ms(results[1].1),
        peak_mb()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--size") {
        let n = args.get(pos + 1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        measure(n);
        return;
    }
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` runs nothing here.
    }
    let me = std::env::current_exe().expect("bench binary path");
    for size in [10_000, 100_000] {
        let status = std::process::Command::new(&me).args(["--size", &size.to_string()]).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("the {size}-resource run failed");
            std::process::exit(1);
        }
    }
}
