//! The command line end to end on the `web` example (issue #4's "done when"): the first apply
//! deploys, the second changes nothing, a new version rolls the fleet, `destroy` removes
//! everything; confirmation, saved plans and `--detailed-exitcode`.

use std::time::Duration;

use graven::local::{LocalCloud, Settings};
use graven::provider::InstanceState;

use crate::apply_support::{Program, Project, check_converged, image, tagged, web_graph};

/// A `web` project whose instances boot and pass their checks quickly (rolls take real time).
fn web() -> Project {
    let project = Project::new(Program::Web);
    project.set_settings(
        Settings::default()
            .boot_time(Duration::from_millis(50))
            .health_delay(Duration::from_millis(50)),
    );
    project
}

/// The group's live instances: (launch template version, image).
fn fleet(project: &Project) -> Vec<(Option<u64>, String)> {
    LocalCloud::open(project.root())
        .unwrap()
        .instances()
        .into_iter()
        .filter(|i| i.group.is_some() && i.state != InstanceState::Terminated)
        .map(|i| (i.launch_template_version, i.image_id))
        .collect()
}

#[test]
fn web_deploys_then_changes_nothing_then_rolls_then_is_destroyed() {
    let project = web();
    let plan = project.run(&["plan", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(plan.stdout.contains("Plan: 6 to create"), "{}", plan.stdout);

    let first = project.run(&["apply", "--auto-approve"]);
    first.expect_code(0);
    assert!(
        first.stdout.contains("Applied release #1 of stack `web`: 6 create."),
        "{}",
        first.stdout
    );
    check_converged(project.root(), &web_graph(&[]));
    assert_eq!(fleet(&project), vec![(Some(1), image("web", "1.4.0")); 3]);

    let state = std::fs::read(project.state_path()).unwrap();
    let objects = tagged(&LocalCloud::open(project.root()).unwrap(), "web");
    let second = project.run(&["apply", "--auto-approve"]);
    second.expect_code(0);
    assert!(second.stdout.contains("No changes"), "{}", second.stdout);
    assert_eq!(std::fs::read(project.state_path()).unwrap(), state, "the state is not rewritten");
    assert_eq!(
        tagged(&LocalCloud::open(project.root()).unwrap(), "web"),
        objects,
        "the cloud is not touched"
    );
    project.run(&["plan", "--detailed-exitcode"]).expect_code(0);

    let roll = project.run(&["apply", "--auto-approve", "--var", "version=1.5.0"]);
    roll.expect_code(0);
    assert!(roll.stdout.contains("1 roll, 1 update"), "{}", roll.stdout);
    check_converged(project.root(), &web_graph(&[("version", "1.5.0")]));
    assert_eq!(
        fleet(&project),
        vec![(Some(2), image("web", "1.5.0")); 3],
        "the fleet ends on the new version and image"
    );
    let old: Vec<_> = LocalCloud::open(project.root())
        .unwrap()
        .instances()
        .into_iter()
        .filter(|i| i.launch_template_version == Some(1))
        .collect();
    assert_eq!(old.len(), 3);
    assert!(old.iter().all(|i| i.state == InstanceState::Terminated), "{old:?}");
    project.run(&["plan", "--detailed-exitcode", "--var", "version=1.5.0"]).expect_code(0);
    let history = project.run(&["history"]);
    history.expect_code(0);
    assert!(history.stdout.contains("web 1.5.0"), "{}", history.stdout);

    let destroy = project.run(&["destroy", "--auto-approve"]);
    destroy.expect_code(0);
    assert!(destroy.stdout.contains("6 delete"), "{}", destroy.stdout);
    let cloud = LocalCloud::open(project.root()).unwrap();
    let left: Vec<_> =
        tagged(&cloud, "web").into_iter().filter(|(_, objects)| !objects.is_empty()).collect();
    assert!(left.is_empty(), "the stack's objects are gone: {left:?}");
    assert!(
        cloud.instances().iter().all(|i| i.state == InstanceState::Terminated),
        "no instance runs"
    );
    assert!(project.state().unwrap().resources.is_empty());
    project.run(&["plan", "--detailed-exitcode"]).expect_code(2);
}

#[test]
fn apply_and_destroy_refuse_without_confirmation_when_stdin_is_not_a_terminal() {
    let project = web();
    let apply = project.run(&["apply"]);
    apply.expect_code(1);
    assert!(
        apply.stderr.contains("stdin is not a terminal; pass `--auto-approve`"),
        "{}",
        apply.stderr
    );
    assert!(project.state().is_none_or(|s| s.resources.is_empty()), "nothing was applied");
    let cloud = LocalCloud::open(project.root()).unwrap();
    assert!(tagged(&cloud, "web").values().all(Vec::is_empty), "the cloud is untouched");

    project.run(&["apply", "--auto-approve"]).expect_code(0);
    let destroy = project.run(&["destroy"]);
    destroy.expect_code(1);
    assert!(destroy.stderr.contains("--auto-approve"), "{}", destroy.stderr);
    check_converged(project.root(), &web_graph(&[]));
    assert!(!project.root().join(".graven/state/web.lock").exists(), "the lock is released");
}

#[test]
fn a_saved_plan_applies_and_is_refused_once_the_state_moved() {
    let project = web();
    let first = project.root().join("first.json");
    let roll = project.root().join("roll.json");
    let saved = project.run(&["plan", "--out", first.to_str().unwrap()]);
    saved.expect_code(0);
    assert!(saved.stderr.contains("saved the plan to"), "{}", saved.stderr);
    project.run(&["apply", first.to_str().unwrap(), "--auto-approve"]).expect_code(0);
    check_converged(project.root(), &web_graph(&[]));

    project
        .run(&["plan", "--var", "version=1.5.0", "--out", roll.to_str().unwrap()])
        .expect_code(0);
    project.run(&["apply", "--auto-approve", "--var", "capacity=4"]).expect_code(0); // the state moves
    let state = std::fs::read(project.state_path()).unwrap();
    for stale in [&roll, &first] {
        let refused = project.run(&["apply", stale.to_str().unwrap(), "--auto-approve"]);
        refused.expect_code(1);
        assert!(
            refused.stderr.contains("the state moved since the plan was made (serial"),
            "{}",
            refused.stderr
        );
        assert_eq!(
            std::fs::read(project.state_path()).unwrap(),
            state,
            "the state is left as it was"
        );
    }
    check_converged(project.root(), &web_graph(&[("capacity", "4")]));
    assert_eq!(
        fleet(&project),
        vec![(Some(1), image("web", "1.4.0")); 4],
        "the refused plan did not roll the fleet"
    );
}

#[test]
fn detailed_exitcode_is_2_with_changes_0_without_and_1_on_error() {
    let project = web();
    project.run(&["plan", "--detailed-exitcode"]).expect_code(2);
    project.run(&["plan"]).expect_code(0);
    project.run(&["apply", "--auto-approve"]).expect_code(0);
    project.run(&["plan", "--detailed-exitcode"]).expect_code(0);
    project.run(&["plan", "--detailed-exitcode", "--var", "capacity=5"]).expect_code(2);
    let bad = project.run(&["plan", "--detailed-exitcode", "--var", "capacity=lots"]);
    bad.expect_code(1);
    assert!(bad.stderr.contains("capacity"), "{}", bad.stderr);
    let missing = project.run(&["plan", "--detailed-exitcode", "--var", "version=9.9.9"]);
    missing.expect_code(1);
    assert!(missing.stderr.contains("9.9.9"), "{}", missing.stderr);
}
