//! A damaged state file: every command that reads it fails with an error that says what is
//! wrong and which backup to restore; nothing is overwritten, the backups are kept, the cloud
//! is left alone.

use std::time::Duration;

use graven::local::{LocalCloud, Settings};
use graven::state::{LocalStore, Store};

use crate::apply_support::{Program, Project, block_on, tagged};

#[test]
fn a_truncated_or_corrupt_state_file_is_refused_and_left_as_it_is() {
    let project = Project::new(Program::Web);
    project.set_settings(
        Settings::default()
            .boot_time(Duration::from_millis(50))
            .health_delay(Duration::from_millis(50)),
    );
    project.run(&["apply", "--auto-approve"]).expect_code(0);
    project.run(&["apply", "--auto-approve", "--var", "version=1.5.0"]).expect_code(0);

    let store = LocalStore::new(project.root());
    let path = project.state_path();
    let backup = store.backup_path("web", 1);
    let good = std::fs::read(&path).unwrap();
    let backup_bytes =
        std::fs::read(&backup).expect("the save of serial 2 kept serial 1 as a backup");
    let backups = block_on(store.backups("web")).unwrap();
    let cloud_before = tagged(&LocalCloud::open(project.root()).unwrap(), "web");
    let text = String::from_utf8(good.clone()).unwrap();
    let edited = text.replacen("\"vpc-", "\"vpx-", 1).into_bytes();
    assert_ne!(edited, good);

    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", good[..good.len() / 2].to_vec(), "the file is truncated"),
        ("empty", Vec::new(), "the file is truncated"),
        ("edited", edited, "checksum mismatch"),
        ("garbage", b"\x00\x00\x00 not json \xff".to_vec(), "not valid JSON"),
    ];
    let commands: [&[&str]; 5] = [
        &["plan"],
        &["apply", "--auto-approve"],
        &["apply", "--auto-approve", "--var", "version=1.4.0"],
        &["destroy", "--auto-approve"],
        &["state", "list"],
    ];
    for (case, damaged, says) in cases {
        std::fs::write(&path, &damaged).unwrap();
        for args in commands {
            let run = project.run(args);
            let what = format!("{case} state, `{}`", args.join(" "));
            assert_eq!(run.code, Some(1), "{what}: exit code\n{}", run.stderr);
            assert!(
                run.stderr.contains(&format!("state `{}`", path.display())),
                "{what}: names the file: {}",
                run.stderr
            );
            assert!(run.stderr.contains(says), "{what}: says what is wrong: {}", run.stderr);
            assert!(
                run.stderr.contains(&backup.display().to_string()),
                "{what}: names the backup to restore: {}",
                run.stderr
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                damaged,
                "{what}: the damaged file is left as it is"
            );
            assert_eq!(std::fs::read(&backup).unwrap(), backup_bytes, "{what}: the backup is kept");
            assert_eq!(
                block_on(store.backups("web")).unwrap(),
                backups,
                "{what}: no backup added or pruned"
            );
            assert!(!store.lock_path("web").exists(), "{what}: the lock is released");
            assert!(!run.stdout.contains("Applied"), "{what}: {}", run.stdout);
        }
    }
    assert_eq!(
        tagged(&LocalCloud::open(project.root()).unwrap(), "web"),
        cloud_before,
        "the cloud was not touched"
    );

    // Put the good file back: everything is as it was.
    std::fs::write(&path, &good).unwrap();
    project.run(&["plan", "--detailed-exitcode", "--var", "version=1.5.0"]).expect_code(0);
}
