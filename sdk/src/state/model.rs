//! The state model: what Graven remembers about a stack between runs.
//!
//! Pure data, no I/O. Every map is a `BTreeMap` (or a `serde_json::Map`), so a state
//! serializes the same way every time and two states compare field by field.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// The version of the state format this Graven writes, and the newest it reads.
///
/// It changes when the meaning or the shape of the state changes in a way older versions cannot
/// read (a field added, renamed or removed). A file with a newer version is refused, never
/// rewritten.
pub const FORMAT_VERSION: u32 = 1;

/// The recorded state of one stack: every resource Graven created for it, the creates still in
/// flight, and the history of its releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The version of the format ([`FORMAT_VERSION`] when written by this Graven).
    pub format_version: u32,
    /// A random id (UUID v4) made with the state; it never changes afterwards. Two states with
    /// different lineages describe different deployments, even under the same stack name.
    pub lineage: String,
    /// Incremented by every save; a store refuses to save over a serial it did not read.
    pub serial: u64,
    /// The stack's name.
    pub stack: String,
    /// The resources, by logical id.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceState>,
    /// Creates that were sent (or about to be) but whose outcome is not yet recorded, by
    /// logical id. The next run looks each one up by its token and adopts or abandons it.
    #[serde(default)]
    pub pending: BTreeMap<String, Intent>,
    /// The releases, oldest first.
    #[serde(default)]
    pub releases: Vec<ReleaseRecord>,
    /// Tokens of pending creates that the next run did not find, by logical id: the next
    /// create of the resource sends the same token again, so that a create still in flight at
    /// the cloud when its run died (found by nobody yet) is adopted or refused as a duplicate,
    /// never made twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retry_tokens: BTreeMap<String, String>,
}

/// One resource as it was last applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceState {
    /// The logical id (`network.vpc`).
    pub id: String,
    /// The kind (`aws:ec2:Vpc`).
    pub kind: String,
    /// The cloud's id of the object (`vpc-0abc...`).
    pub physical_id: String,
    /// The inputs as applied, references resolved. Secrets stay symbolic (`{"$secret": name}`):
    /// a state never holds a secret's value.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// The outputs the cloud reported.
    #[serde(default)]
    pub outputs: Map<String, Json>,
    /// The logical ids this resource depends on; a destroy goes in the reverse order.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// A protected resource is never destroyed by a plan.
    #[serde(default)]
    pub protect: bool,
    /// Replacements delete the old object before creating the new one.
    #[serde(default)]
    pub destroy_before_create: bool,
    /// The idempotency token of the create that made the object.
    pub token: String,
    /// When the object was created (RFC 3339, see [`timestamp`]).
    pub created_at: String,
    /// When it was last changed (RFC 3339).
    pub updated_at: String,
    /// The number of the release that last changed it.
    pub release: u64,
    /// Old objects of a create-before-destroy replacement that are not destroyed yet.
    #[serde(default)]
    pub deposed: Vec<Deposed>,
}

/// An old object replaced by a create-before-destroy replacement, waiting to be destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deposed {
    /// The cloud's id of the old object.
    pub physical_id: String,
    /// Its inputs as applied.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// Its outputs.
    #[serde(default)]
    pub outputs: Map<String, Json>,
    /// The idempotency token of the create that made it.
    pub token: String,
}

/// A create about to be sent: recorded (with its token) before the call, so that a run killed
/// during the call leaves a trace the next run can resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// The logical id of the resource being created.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// The idempotency token sent with the create (and tagged on the object).
    pub token: String,
    /// When the create started (RFC 3339).
    pub started_at: String,
    /// The release the create belongs to.
    pub release: u64,
    /// The inputs it is created with (resolved; secrets symbolic), recorded as the adopted
    /// resource's inputs when the next run finds the object.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// The logical ids it depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// How a release ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Running, or the run died without recording its end.
    InProgress,
    /// Every step succeeded.
    Succeeded,
    /// A step failed; the state records the steps that completed.
    Failed,
    /// The run was stopped (Ctrl-C); the state records the steps that completed.
    Interrupted,
}

/// One release: one run of `apply`, `destroy` or `rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRecord {
    /// The release's number, from 1, in order (see [`State::next_release_number`]).
    pub number: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended, if it did.
    pub finished_at: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// `apply`, `destroy` or `rollback`.
    pub operation: String,
    /// The stack inputs of this release. Never secrets.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The images it used: image name to `"version (ami-...)"`.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// How many steps of each action it ran (`"create": 3`).
    #[serde(default)]
    pub summary: BTreeMap<String, u64>,
    /// The error it ended with, if any.
    pub error: Option<String>,
}

/// One completed step, as the engine records it in the journal while it applies.
///
/// Replaying a state's journal entries in order with [`State::apply`] gives the state the run
/// had in memory. Each entry is idempotent: applying it twice is the same as once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entry {
    /// A resource was created, updated or replaced: insert or replace it by id.
    Put(ResourceState),
    /// A resource was deleted from the cloud: forget it.
    Remove {
        /// Its logical id.
        id: String,
    },
    /// A create is about to be sent: remember its token until it is settled.
    Intent(Intent),
    /// A pending create is resolved (created, adopted, or abandoned): forget the intent.
    Settle {
        /// The logical id of the resource.
        id: String,
    },
    /// A release started, progressed or ended: insert or replace it by number.
    Release(ReleaseRecord),
    /// A pending create was not found: forget the intent, and keep its token for the next
    /// create of the resource (see [`State::retry_tokens`]).
    Abandon {
        /// The logical id of the resource.
        id: String,
        /// The token of the create that was not found.
        token: String,
    },
}

impl State {
    /// An empty state for `stack`: a fresh lineage, serial 0, no resources.
    pub fn new(stack: impl Into<String>) -> Self {
        State {
            format_version: FORMAT_VERSION,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            stack: stack.into(),
            resources: BTreeMap::new(),
            pending: BTreeMap::new(),
            releases: Vec::new(),
            retry_tokens: BTreeMap::new(),
        }
    }

    /// The number the next release gets: one more than the highest number the state knows of
    /// (in its releases, its resources and its pending creates), 1 for a new state.
    pub fn next_release_number(&self) -> u64 {
        let releases = self.releases.iter().map(|r| r.number);
        let resources = self.resources.values().map(|r| r.release);
        let pending = self.pending.values().map(|i| i.release);
        releases.chain(resources).chain(pending).max().unwrap_or(0) + 1
    }

    /// The resource with logical id `id`.
    pub fn resource(&self, id: &str) -> Option<&ResourceState> {
        self.resources.get(id)
    }

    /// The release numbered `number`.
    pub fn release(&self, number: u64) -> Option<&ReleaseRecord> {
        self.releases.iter().find(|r| r.number == number)
    }

    /// The newest release.
    pub fn last_release(&self) -> Option<&ReleaseRecord> {
        self.releases.last()
    }

    /// Whether the state has no resources and no pending creates (a destroyed stack's state
    /// still has its release history).
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.pending.is_empty()
    }

    /// Applies one journal entry. Pure; applying the same entry twice is the same as once.
    pub fn apply(&mut self, entry: &Entry) {
        self.apply_owned(entry.clone());
    }

    /// [`apply`](State::apply), taking the entry by value (no copy of what it carries).
    pub fn apply_owned(&mut self, entry: Entry) {
        match entry {
            Entry::Put(resource) => {
                self.retry_tokens.remove(&resource.id);
                self.resources.insert(resource.id.clone(), resource);
            }
            Entry::Remove { id } => {
                self.resources.remove(&id);
            }
            Entry::Intent(intent) => {
                self.pending.insert(intent.id.clone(), intent);
            }
            Entry::Settle { id } => {
                self.pending.remove(&id);
            }
            Entry::Abandon { id, token } => {
                self.pending.remove(&id);
                self.retry_tokens.insert(id, token);
            }
            Entry::Release(record) => {
                match self.releases.binary_search_by_key(&record.number, |r| r.number) {
                    Ok(i) => self.releases[i] = record,
                    Err(i) => self.releases.insert(i, record),
                }
            }
        }
    }

    /// Applies entries in order.
    pub fn replay<'a>(&mut self, entries: impl IntoIterator<Item = &'a Entry>) {
        for entry in entries {
            self.apply(entry);
        }
    }
}

/// A time as Graven writes it in state: RFC 3339 in UTC, to the second
/// (`2025-03-01T12:00:00Z`).
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The current time, as [`timestamp`] writes it.
pub fn now() -> String {
    timestamp(SystemTime::now())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A resource with plausible fields, for tests of the whole module.
    pub(crate) fn resource(id: &str, release: u64) -> ResourceState {
        ResourceState {
            id: id.to_owned(),
            kind: "aws:ec2:Vpc".to_owned(),
            physical_id: format!("vpc-{id}"),
            inputs: json!({"cidr_block": "10.0.0.0/16", "password": {"$secret": "db"}})
                .as_object()
                .cloned()
                .unwrap(),
            outputs: json!({"id": format!("vpc-{id}")}).as_object().cloned().unwrap(),
            dependencies: vec![],
            protect: false,
            destroy_before_create: false,
            token: format!("tok-{id}"),
            created_at: "2025-03-01T12:00:00Z".to_owned(),
            updated_at: "2025-03-01T12:00:00Z".to_owned(),
            release,
            deposed: vec![],
        }
    }

    pub(crate) fn release(number: u64, outcome: Outcome) -> ReleaseRecord {
        ReleaseRecord {
            number,
            started_at: "2025-03-01T12:00:00Z".to_owned(),
            finished_at: None,
            outcome,
            operation: "apply".to_owned(),
            vars: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
            images: BTreeMap::new(),
            summary: BTreeMap::from([("create".to_owned(), 3)]),
            error: None,
        }
    }

    pub(crate) fn intent(id: &str, release: u64) -> Intent {
        Intent {
            id: id.to_owned(),
            kind: "aws:ec2:Vpc".to_owned(),
            token: format!("tok-{id}"),
            started_at: "2025-03-01T12:00:00Z".to_owned(),
            release,
            inputs: Map::new(),
            dependencies: Vec::new(),
        }
    }

    #[test]
    fn new_state_has_fresh_lineage_and_serial_zero() {
        let a = State::new("web");
        let b = State::new("web");
        assert_eq!(a.serial, 0);
        assert_eq!(a.format_version, FORMAT_VERSION);
        assert_ne!(a.lineage, b.lineage);
        assert_eq!(uuid::Uuid::parse_str(&a.lineage).unwrap().get_version_num(), 4);
        assert_eq!(a.next_release_number(), 1);
        assert!(a.is_empty());
    }

    #[test]
    fn entries_apply_in_order_and_idempotently() {
        let mut state = State::new("web");
        let entries = [
            Entry::Release(release(1, Outcome::InProgress)),
            Entry::Intent(intent("vpc", 1)),
            Entry::Put(resource("vpc", 1)),
            Entry::Settle { id: "vpc".to_owned() },
            Entry::Put(resource("subnet", 1)),
            Entry::Remove { id: "subnet".to_owned() },
            Entry::Release(release(1, Outcome::Succeeded)),
        ];
        state.replay(&entries);
        let once = state.clone();
        state.replay(&entries);
        assert_eq!(state, once);
        assert_eq!(state.resources.keys().collect::<Vec<_>>(), ["vpc"]);
        assert!(state.pending.is_empty());
        assert_eq!(state.releases.len(), 1);
        assert_eq!(state.releases[0].outcome, Outcome::Succeeded);
        assert_eq!(state.next_release_number(), 2);
        assert_eq!(state.resource("vpc").unwrap().physical_id, "vpc-vpc");
    }

    #[test]
    fn releases_stay_sorted_by_number() {
        let mut state = State::new("web");
        for n in [3, 1, 2, 1] {
            state.apply(&Entry::Release(release(n, Outcome::Failed)));
        }
        let numbers: Vec<u64> = state.releases.iter().map(|r| r.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(state.last_release().unwrap().number, 3);
        assert!(state.release(2).is_some());
    }

    #[test]
    fn next_release_number_counts_pending_creates() {
        let mut state = State::new("web");
        state.apply(&Entry::Intent(intent("vpc", 4)));
        assert_eq!(state.next_release_number(), 5);
    }

    #[test]
    fn entries_are_tagged_by_op() {
        let json = serde_json::to_value(Entry::Remove { id: "vpc".to_owned() }).unwrap();
        assert_eq!(json, json!({"op": "remove", "id": "vpc"}));
        let put = serde_json::to_value(Entry::Put(resource("vpc", 1))).unwrap();
        assert_eq!(put["op"], "put");
        assert_eq!(put["physical_id"], "vpc-vpc");
        let back: Entry = serde_json::from_value(put).unwrap();
        assert_eq!(back, Entry::Put(resource("vpc", 1)));
        let outcome = serde_json::to_value(Outcome::InProgress).unwrap();
        assert_eq!(outcome, json!("in_progress"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut put = serde_json::to_value(Entry::Put(resource("vpc", 1))).unwrap();
        put["protcet"] = json!(true);
        let err = serde_json::from_value::<Entry>(put).unwrap_err();
        assert!(err.to_string().contains("protcet"), "{err}");
    }

    #[test]
    fn serialization_is_deterministic() {
        let mut a = State::new("web");
        a.apply(&Entry::Put(resource("b", 1)));
        a.apply(&Entry::Put(resource("a", 1)));
        let mut b = a.clone();
        b.resources = a.resources.clone().into_iter().rev().collect();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.find("\"a\":").unwrap() < text.find("\"b\":").unwrap());
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_500);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20Z");
    }
}
