//! Two applies at once: the second fails at once, naming the run that holds the lock, and
//! changes nothing; the first finishes undisturbed.

use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

use graven::local::{Faults, Settings};
use graven::state::LocalStore;

use crate::apply_support::{Program, Project, check_converged, crash_graph};

#[test]
fn a_second_apply_fails_naming_the_lock_holder_and_the_state_stays_intact() {
    let project = Project::new(Program::Crash);
    project.set_settings(
        Settings::default()
            .boot_time(Duration::from_millis(100))
            .health_delay(Duration::from_millis(100))
            // Slow enough that the first apply is still running when the other two commands
            // below are done, however loaded the machine (calls of a second each: many
            // seconds); sped up again once they are.
            .faults(Faults::default().latency(Duration::from_secs(1))),
    );
    let lock = LocalStore::new(project.root()).lock_path(project.stack());
    let log = project.root().join("first.log");
    let mut first = project
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while !lock.exists() {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first apply ended before it took the lock"
        );
        assert!(waiting.elapsed() < Duration::from_secs(60), "the first apply never took the lock");
        std::thread::sleep(Duration::from_millis(5));
    }

    let second = project.run(&["apply", "--auto-approve"]);
    let first_still_running = first.try_wait().unwrap().is_none();
    second.expect_code(1);
    assert!(
        first_still_running,
        "the second apply waited for the first instead of failing at once"
    );
    let holder = format!("pid {} on host ", first.id());
    assert!(second.stderr.contains("state of stack `crash` is locked by"), "{}", second.stderr);
    assert!(
        second.stderr.contains(&holder),
        "the error names the holder's pid and host: {}",
        second.stderr
    );
    assert!(second.stderr.contains("operation apply"), "{}", second.stderr);
    // A destroy is refused too.
    let destroy = project.run(&["destroy", "--auto-approve"]);
    destroy.expect_code(1);
    assert!(destroy.stderr.contains(&holder), "{}", destroy.stderr);

    // The first apply, undisturbed, goes on at full speed (the local cloud rereads its
    // settings at every call).
    project.set_settings(
        Settings::default()
            .boot_time(Duration::from_millis(100))
            .health_delay(Duration::from_millis(100)),
    );
    let status = first.wait().unwrap();
    assert!(
        status.success(),
        "the first apply failed:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(!lock.exists(), "the first apply released its lock");
    let state = project.state().unwrap();
    assert_eq!(state.releases.len(), 1, "only the first apply made a release");
    assert_eq!(state.serial, 1);
    check_converged(project.root(), &crash_graph(0));
    project.run(&["plan", "--detailed-exitcode"]).expect_code(0);
}
