//! The engine on the local cloud, in-process on tokio's paused clock: a rollout onto an image
//! that never becomes healthy rolls back, Ctrl-C lets the steps in flight finish, a roll cut
//! short by a crash resumes, applies cut short at random converge, and the old object of a
//! replacement cut short is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use graven::engine::{Event, Options};
use graven::local::{Faults, ImageFault, LocalCloud, Settings};
use graven::plan::StepAction;
use graven::provider::{Create, Health, InstanceState, Provider};
use graven::state::{Deposed, Entry, LocalStore, Outcome, ResourceState, Store};
use graven::{DeploymentGraph, Error};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::apply_support::{apply, check_converged, crash_graph, image, plan_in, web_graph};

/// Applies `graph` with the default options: it succeeds and records every resource.
async fn apply_all(dir: &tempfile::TempDir, cloud: &Arc<LocalCloud>, graph: &DeploymentGraph) {
    let report =
        apply(dir.path(), cloud, graph, Options::default()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.state.resources.len(), graph.len());
}

fn cloud(dir: &tempfile::TempDir) -> Arc<LocalCloud> {
    Arc::new(LocalCloud::open(dir.path()).unwrap())
}

/// The live instances of the group of `web`'s `fleet`: (version, image, health).
async fn fleet(dir: &tempfile::TempDir, cloud: &LocalCloud) -> Vec<(u64, String, Health)> {
    let state = LocalStore::new(dir.path()).load("web").await.unwrap().unwrap();
    let group = &state.resources["fleet"].physical_id;
    let mut out: Vec<_> = cloud
        .fleet_instances(group)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .map(|i| (i.launch_template_version, i.image_id, i.health))
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

#[tokio::test(start_paused = true)]
async fn a_roll_onto_an_image_that_never_becomes_healthy_fails_naming_the_group_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = cloud(&dir);
    cloud
        .set_faults(Faults::default().image(image("web", "1.5.0"), ImageFault::NeverHealthy))
        .unwrap();
    apply_all(&dir, &cloud, &web_graph(&[])).await;
    let healthy_old = vec![(1, image("web", "1.4.0"), Health::Healthy); 3];
    assert_eq!(fleet(&dir, &cloud).await, healthy_old);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let e = apply(
        dir.path(),
        &cloud,
        &web_graph(&[("version", "1.5.0")]),
        Options::default().events(tx),
    )
    .await
    .unwrap_err();
    let Error::Provider { resource, call, message } = &e else { panic!("{e}") };
    assert_eq!((resource.as_str(), call.as_str()), ("fleet", "rollout"), "{e}");
    assert!(
        message.contains("instances healthy on launch template version 2 after 600s"),
        "{message}"
    );
    assert!(message.contains("rolled back to version 1"), "{message}");
    let mut rolled_back = false;
    while let Ok(event) = rx.try_recv() {
        if let Event::Fleet { id, message } = event {
            rolled_back |= id == "fleet" && message.contains("rolling back from version 2");
        }
    }
    assert!(rolled_back);

    // The group is back on version 1, and its instances too once the replacements boot.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(fleet(&dir, &cloud).await, healthy_old, "the instances end on the old version");
    let state = LocalStore::new(dir.path()).load("web").await.unwrap().unwrap();
    let group = cloud.resources("aws:autoscaling:AutoScalingGroup");
    assert_eq!(group[0].inputs["launch_template_version"], 1);
    assert_eq!(
        state.resources["fleet"].inputs["launch_template_version"], 1,
        "the state records the group as it is"
    );
    let release = state.last_release().unwrap();
    assert_eq!(release.outcome, Outcome::Failed);
    assert!(release.error.as_deref().unwrap().starts_with("fleet: rollout failed"), "{release:?}");
    // The next apply tries the roll again (the template recorded the new image).
    let again = plan_in(dir.path(), &web_graph(&[("version", "1.5.0")])).await;
    assert_eq!(again.summary.roll, 1, "{}", again.render());
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_lets_the_steps_in_flight_finish_saves_the_state_and_starts_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = cloud(&dir);
    cloud.set_faults(Faults::default().latency(Duration::from_millis(50))).unwrap();
    let graph = crash_graph(0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let run = tokio::spawn({
        let (root, cloud, graph) = (dir.path().to_owned(), cloud.clone(), graph.clone());
        async move {
            apply(&root, &cloud, &graph, Options::default().events(tx).interrupt(stop_rx)).await
        }
    });
    let mut started = BTreeSet::new();
    let mut finished = BTreeSet::new();
    while finished.len() < 12 {
        match rx.recv().await.expect("events until the interrupt") {
            Event::Started { id, .. } => {
                started.insert(id);
            }
            Event::Finished { id, action: StepAction::Create, .. } => {
                finished.insert(id);
            }
            _ => {}
        }
    }
    stop.send(true).unwrap(); // Ctrl-C
    // Everything started before the interrupt is in the channel already (one thread).
    while let Ok(event) = rx.try_recv() {
        match event {
            Event::Started { id, .. } => {
                started.insert(id);
            }
            Event::Finished { id, .. } => {
                finished.insert(id);
            }
            _ => {}
        }
    }
    let in_flight = started.len() - finished.len();
    assert!(in_flight > 0, "some steps were in flight at the interrupt");
    let e = run.await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Interrupted), "{e}");
    while let Some(event) = rx.recv().await {
        match event {
            Event::Started { id, .. } => panic!("`{id}` started after the interrupt"),
            Event::Finished { id, .. } => {
                assert!(started.contains(&id));
                finished.insert(id);
            }
            Event::Failed { id, error, .. } => panic!("`{id}` failed: {error}"),
            _ => {}
        }
    }
    assert_eq!(finished, started, "the steps in flight finished");
    let state = LocalStore::new(dir.path()).load("crash").await.unwrap().unwrap();
    let recorded: BTreeSet<String> = state.resources.keys().cloned().collect();
    assert_eq!(recorded, finished, "the state records every step that finished, and only those");
    assert!(state.pending.is_empty());
    assert_eq!(state.serial, 1, "the state was saved");
    assert_eq!(state.last_release().unwrap().outcome, Outcome::Interrupted);
    assert!(recorded.len() < graph.len());

    // The next apply finishes the job.
    apply_all(&dir, &cloud, &graph).await;
    check_converged(dir.path(), &graph);
}

#[tokio::test(start_paused = true)]
async fn a_roll_cut_short_after_raising_the_capacity_resumes_and_converges() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = cloud(&dir);
    cloud.set_settings(Settings::default()).unwrap();
    apply_all(&dir, &cloud, &web_graph(&[])).await;
    // What a roll killed in its first batch leaves: a new template version, the group on it
    // with its capacity raised by one, one instance of the new version among the old ones.
    let state = LocalStore::new(dir.path()).load("web").await.unwrap().unwrap();
    let (template, group) =
        (&state.resources["template"].physical_id, &state.resources["fleet"].physical_id);
    cloud
        .modify_out_of_band(
            "aws:ec2:LaunchTemplate",
            template,
            "image_id",
            json!(image("web", "1.5.0")),
        )
        .unwrap();
    cloud
        .modify_out_of_band(
            "aws:autoscaling:AutoScalingGroup",
            group,
            "launch_template_version",
            json!(2),
        )
        .unwrap();
    cloud
        .modify_out_of_band("aws:autoscaling:AutoScalingGroup", group, "desired_capacity", json!(4))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fleet(&dir, &cloud).await.len(), 4);

    apply_all(&dir, &cloud, &web_graph(&[("version", "1.5.0")])).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fleet(&dir, &cloud).await, vec![(3, image("web", "1.5.0"), Health::Healthy); 3]);
    check_converged(dir.path(), &web_graph(&[("version", "1.5.0")]));
}

#[tokio::test(start_paused = true)]
async fn applies_dropped_at_random_moments_converge_without_duplicates() {
    // An in-process cousin of the SIGKILL test: the apply's future is dropped (a crash, as far
    // as the state and the cloud on disk can tell) after a random time, 40 times, then applied
    // to the end. The lock of the dropped run is removed as a new process would break it.
    let dir = tempfile::tempdir().unwrap();
    let cloud = cloud(&dir);
    cloud
        .set_settings(
            Settings::default()
                .boot_time(Duration::from_millis(100))
                .health_delay(Duration::from_millis(100))
                .faults(Faults::default().latency(Duration::from_millis(40))),
        )
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(4);
    let mut cut = 0;
    for attempt in 0..40u32 {
        let graph = crash_graph(attempt / 3);
        let store = LocalStore::new(dir.path());
        let _ = store.force_unlock("crash").await.unwrap();
        let run = apply(dir.path(), &cloud, &graph, Options::default());
        match tokio::time::timeout(Duration::from_millis(rng.u64(0..1000)), run).await {
            Ok(done) => {
                let report = done.unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
                assert_eq!(report.state.resources.len(), graph.len());
            }
            Err(_) => cut += 1,
        }
    }
    assert!(cut > 20, "{cut} applies cut short");
    let graph = crash_graph(40 / 3);
    LocalStore::new(dir.path()).force_unlock("crash").await.unwrap();
    apply_all(&dir, &cloud, &graph).await;
    check_converged(dir.path(), &graph);
    assert!(plan_in(dir.path(), &graph).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_old_object_left_by_an_interrupted_replacement_is_deleted_even_if_nothing_else_changes()
{
    let dir = tempfile::tempdir().unwrap();
    let cloud = cloud(&dir);
    let graph = crash_graph(0);
    apply_all(&dir, &cloud, &graph).await;
    // What a run killed between a replacement's create and the delete of the old object
    // leaves (the next run adopts the new object): the new object recorded, the old deposed.
    let store = LocalStore::new(dir.path());
    let mut state = store.load("crash").await.unwrap().unwrap();
    let old = state.resources["instances[0]"].clone();
    let tags = BTreeMap::from([
        ("graven:stack".to_owned(), "crash".to_owned()),
        ("graven:id".to_owned(), old.id.clone()),
        ("graven:release".to_owned(), "2".to_owned()),
    ]);
    let request = Create {
        id: &old.id,
        kind: &old.kind,
        inputs: &old.inputs,
        token: "0123456789abcdef",
        tags: &tags,
    };
    let new = cloud.create(&request).await.unwrap();
    let mut replaced = ResourceState {
        physical_id: new.physical_id.clone(),
        outputs: new.outputs,
        token: request.token.to_owned(),
        ..old.clone()
    };
    replaced.deposed.push(Deposed {
        physical_id: old.physical_id.clone(),
        inputs: old.inputs.clone(),
        outputs: old.outputs.clone(),
        token: old.token.clone(),
    });
    let entry = Entry::Put(replaced);
    store.record("crash", &entry).await.unwrap();
    state.apply(&entry);
    assert_eq!(store.save(&state).await.unwrap().serial, 2);

    let plan = plan_in(dir.path(), &graph).await;
    assert!(!plan.is_empty(), "the old object is still to delete:\n{}", plan.render());
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(
        (plan.steps[0].action, plan.steps[0].physical_id.as_deref()),
        (StepAction::DeleteDeposed, Some(old.physical_id.as_str()))
    );
    assert!(
        plan.render().contains("1 old object left by an interrupted run to delete"),
        "{}",
        plan.render()
    );
    apply_all(&dir, &cloud, &graph).await;
    assert!(
        cloud.read("aws:ec2:Instance", std::slice::from_ref(&old.physical_id)).await.unwrap()[0]
            .is_none(),
        "the old instance is gone"
    );
    check_converged(dir.path(), &graph);
    assert!(plan_in(dir.path(), &graph).await.is_empty());
}
