//! A flaky cloud: a fifth of the calls fail with retryable errors and a tenth are throttled.
//! Applies converge, nothing is lost or made twice. In-process, on tokio's paused clock, so the
//! backoffs and the fleets' boots take no real time.

use std::collections::BTreeMap;
use std::sync::Arc;

use graven::engine::{Event, Options};
use graven::local::{Faults, LocalCloud, Settings};
use tokio::sync::mpsc;

use crate::apply_support::{apply, check_converged, crash_graph, plan_in};

#[tokio::test(start_paused = true)]
async fn with_a_fifth_of_calls_failing_and_throttling_applies_converge() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Arc::new(LocalCloud::open(dir.path()).unwrap());
    cloud
        .set_settings(
            Settings::default()
                .faults(Faults::default().error_rate(0.2).throttle_rate(0.1).seed(20)),
        )
        .unwrap();
    let mut retried: BTreeMap<String, u32> = BTreeMap::new();
    // Round 0 creates everything; round 1 replaces the instances, updates the groups and the
    // templates, and rolls the fleets; round 2 also adds an instance.
    for round in 0..3 {
        let graph = crash_graph(round);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let report = apply(dir.path(), &cloud, &graph, Options::default().events(tx))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(report.state.resources.len(), graph.len());
        while let Ok(e) = rx.try_recv() {
            if let Event::Retrying { error, .. } = e {
                let code = error.split(':').next().unwrap_or_default().to_owned();
                *retried.entry(code).or_default() += 1;
            }
        }
        let seen = check_converged(dir.path(), &graph);
        eprintln!(
            "round {round}: {:?}, {} fleet instances; retries so far {retried:?}",
            seen.objects, seen.fleet_instances
        );
        let again = plan_in(dir.path(), &graph).await;
        assert!(
            again.is_empty(),
            "round {round}: a second plan changes something:\n{}",
            again.render()
        );
    }
    assert!(
        retried.get("InternalError").is_some_and(|n| *n > 20),
        "retries by error code: {retried:?}"
    );
    assert!(
        retried.get("RequestLimitExceeded").is_some_and(|n| *n > 10),
        "retries by error code: {retried:?}"
    );
    let calls = cloud.api_calls_by_name();
    assert!(calls["CreateVpc"] >= 1 && calls.values().sum::<u64>() > 300, "{calls:?}");
}
