//! The S3 state store against moto_server: conditional writes, locks, leases, backups.
//!
//! moto 5.2.1 honours `If-None-Match: *` and `If-Match` on `PutObject`, and `If-Match` on
//! `DeleteObject`, which is all the store relies on.

use std::time::Duration;

use graven::Error;
use graven::aws::s3_state::S3Store;
use graven::state::{Entry, Intent, State, Store};

use crate::support::moto;

/// A store in this run's bucket `base` ([`moto::bucket_name`]).
async fn store(region: &str, base: &str) -> S3Store {
    let bucket = moto::bucket_name(base);
    S3Store::from_url_with(&format!("s3://{bucket}/teams/web/"), &moto::config(region))
        .await
        .expect("a store")
}

/// Creates this run's bucket `base`.
async fn bucket(region: &str, base: &str) {
    let name = moto::bucket_name(base);
    let s3 = moto::s3(region).await;
    let config = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
        .build();
    s3.create_bucket()
        .bucket(&name)
        .create_bucket_configuration(config)
        .send()
        .await
        .expect("CreateBucket");
}

fn intent(id: &str) -> Entry {
    // Through serde, so fields the model gains later take their defaults.
    let intent: Intent = serde_json::from_value(serde_json::json!({
        "id": id, "kind": "aws:ec2:Vpc", "token": format!("tok-{id}"), "started_at": graven::state::now(), "release": 1,
    }))
    .expect("an intent");
    Entry::Intent(intent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_round_trips_with_conditional_writes() {
    let region = moto::region();
    bucket(region, "graven-state-rt").await;
    let a = store(region, "graven-state-rt").await;
    let b = store(region, "graven-state-rt").await;
    assert_eq!(
        a.describe("web"),
        format!("`s3://{}/teams/web/web.json`", moto::bucket_name("graven-state-rt"))
    );

    assert!(a.load("web").await.unwrap().is_none());
    let mut state = State::new("web");
    a.record("web", &intent("vpc")).await.unwrap();
    state.apply(&intent("vpc"));
    // A recorded step is in S3 at once: another run (after a crash) sees it.
    let seen = b.load("web").await.unwrap().expect("recorded");
    assert!(seen.pending.contains_key("vpc"));
    assert_eq!(seen.serial, 0);

    let saved = a.save(&state).await.unwrap();
    assert_eq!(saved.serial, 1);
    let loaded = b.load("web").await.unwrap().unwrap();
    assert_eq!(loaded, saved);

    // b saves on top of serial 1; a's next write is over a version it did not read: refused.
    let by_b = b.save(&loaded).await.unwrap();
    assert_eq!(by_b.serial, 2);
    let err = a.save(&saved).await.unwrap_err();
    assert!(matches!(err, Error::State { .. }), "{err}");
    assert!(err.to_string().contains("changed since it was read"), "{err}");
    let err = a.record("web", &intent("subnet")).await.unwrap_err();
    assert!(err.to_string().contains("changed since it was read"), "{err}");
    // Nothing was overwritten.
    assert_eq!(b.load("web").await.unwrap().unwrap(), by_b);

    // Backups: the previous serials, the newest 10.
    let mut current = by_b;
    for _ in 0..11 {
        current = b.save(&current).await.unwrap();
    }
    assert_eq!(current.serial, 13);
    let backups = b.backups("web").await.unwrap();
    assert_eq!(backups, (3..=12).collect::<Vec<u64>>());

    // The object is the local store's format: checksummed and decodable.
    let s3 = moto::s3(region).await;
    let object = s3
        .get_object()
        .bucket(moto::bucket_name("graven-state-rt"))
        .key("teams/web/web.json")
        .send()
        .await
        .unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes();
    let decoded = graven::state::decode(&bytes, std::path::Path::new("web.json")).unwrap();
    assert_eq!(decoded.serial, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_holds_the_lock() {
    let region = moto::region();
    bucket(region, "graven-state-lock").await;
    let a = store(region, "graven-state-lock").await;
    let b = store(region, "graven-state-lock").await;

    let lock = a.lock("web", "apply").await.unwrap();
    assert_eq!(lock.operation, "apply");
    let err = b.lock("web", "destroy").await.unwrap_err();
    match &err {
        Error::Locked { stack, holder } => {
            assert_eq!(stack, "web");
            assert!(holder.contains(&lock.id), "{holder}");
            assert!(holder.contains("lease until"), "{holder}");
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert_eq!(b.lock_info("web").await.unwrap().map(|l| l.id), Some(lock.id.clone()));
    // Another stack is not affected.
    let other = b.lock("api", "apply").await.unwrap();
    b.unlock("api", &other).await.unwrap();

    // b cannot unlock a's lock with its own.
    let fake = graven::state::LockInfo::new("apply");
    assert!(b.unlock("web", &fake).await.is_err());
    assert!(b.lock_info("web").await.unwrap().is_some(), "a's lock stays");

    a.unlock("web", &lock).await.unwrap();
    assert!(a.lock_info("web").await.unwrap().is_none());
    let again = b.lock("web", "destroy").await.unwrap();

    // Forced unlock removes whoever holds it, and the holder learns when it unlocks.
    let removed = a.force_unlock("web").await.unwrap();
    assert_eq!(removed.map(|l| l.id), Some(again.id.clone()));
    let err = b.unlock("web", &again).await.unwrap_err();
    assert!(err.to_string().contains("force-unlocked"), "{err}");
    assert!(a.force_unlock("web").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_broken() {
    let region = moto::region();
    bucket(region, "graven-state-lease").await;
    let dead = store(region, "graven-state-lease").await.lease(Duration::from_secs(2)); // recorded to the second: at least 1 s left
    let next = store(region, "graven-state-lease").await;
    let old = dead.lock("web", "apply").await.unwrap();
    assert!(
        matches!(next.lock("web", "apply").await, Err(Error::Locked { .. })),
        "the lease still runs"
    );
    // The lease runs out on the wall clock (recorded to the second): try until it is broken,
    // however slow or fast the machine, and never before the lease's second is over.
    let asked = std::time::Instant::now();
    let taken = loop {
        match next.lock("web", "apply").await {
            Ok(taken) => break taken,
            Err(Error::Locked { .. }) if asked.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the expired lease was not broken within 60 s: {e}"),
        }
    };
    assert_ne!(taken.id, old.id);
    // The run that lost its lease finds out when it next writes or unlocks.
    let err = dead.record("web", &intent("vpc")).await.unwrap_err();
    assert!(err.to_string().contains("lost the lock"), "{err}");
    assert!(dead.unlock("web", &old).await.is_err());
    next.unlock("web", &taken).await.unwrap();
}
