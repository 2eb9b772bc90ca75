//! The local store: a stack's state in files under `<root>/.graven/state/`.
//!
//! | File | What |
//! |---|---|
//! | `<stack>.json` | the state (see [`encode`](super::encode)) |
//! | `<stack>.journal` | steps recorded since the last save (see the journal) |
//! | `<stack>.<serial>.json.bak` | the state file as it was at `serial`, before it was replaced; the last 10 are kept |
//! | `<stack>.lock` | the lock, while a run holds it |

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::Store;
use super::disk;
use super::file;
use super::journal::{self, Header, Relation, Writer};
use super::lock::{self, LockInfo};
use super::model::{Entry, FORMAT_VERSION, State};
use crate::error::{Error, Result};

/// How many backups of old serials a save keeps.
pub const KEEP_BACKUPS: usize = 10;

/// A [`Store`] that keeps state in local files, under `<root>/.graven/state/`.
///
/// - Saving writes the whole state to `<stack>.json.tmp`, syncs it, renames it over
///   `<stack>.json` and syncs the directory: the file is always either the old state or the
///   new one, never a mix. The old file is kept first as `<stack>.<serial>.json.bak`.
/// - A save refuses to replace a file whose serial or lineage is not the one the state was
///   loaded with (another run saved meanwhile), or a file that cannot be read (it is left for
///   the user to repair). After a failed [`load`](Store::load), this store also refuses to
///   save or record for that stack.
/// - [`record`](Store::record) appends one line to `<stack>.journal` with one `write` call on a
///   file kept open. A line survives the process being killed (SIGKILL) as soon as `record`
///   returns. To also survive a power loss or a kernel crash, turn on
///   [`durable`](LocalStore::durable): every line is then synced to disk, which costs a disk
///   flush per step (milliseconds on most disks), so it is off by default.
///
/// ```
/// use graven::state::{Entry, LocalStore, State, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> graven::Result<()> {
/// # let root = tempfile::tempdir().unwrap();
/// let store = LocalStore::new(root.path());
/// let lock = store.lock("web", "apply").await?;
/// let mut state = store.load("web").await?.unwrap_or_else(|| State::new("web"));
///
/// let step = Entry::Settle { id: "vpc".to_owned() };
/// store.record("web", &step).await?; // as each step completes
/// state.apply(&step);
///
/// let state = store.save(&state).await?; // at the end: serial 0 -> 1, journal cleared
/// assert_eq!(state.serial, 1);
/// store.unlock("web", &lock).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    dir: PathBuf,
    durable: bool,
    inner: Mutex<Inner>,
}

/// What the store remembers per stack.
#[derive(Debug, Default)]
struct Inner {
    /// Open journals.
    journals: HashMap<String, Writer>,
    /// The state file each stack's journal goes on top of, as last loaded or saved.
    bases: HashMap<String, Header>,
    /// Stacks whose last load failed, and why: saving and recording refuse for them.
    damaged: HashMap<String, String>,
}

impl LocalStore {
    /// A store for the project at `root`: its files go to `<root>/.graven/state/`, which is
    /// created when first needed.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let dir = root.join(".graven").join("state");
        LocalStore { root, dir, durable: false, inner: Mutex::new(Inner::default()) }
    }

    /// Whether to sync every journal line to disk (off by default; see the type's docs).
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file of `stack`.
    pub fn state_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!("{stack}.json"))
    }

    /// The journal of `stack`.
    pub fn journal_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!("{stack}.journal"))
    }

    /// The backup of `stack` at `serial`.
    pub fn backup_path(&self, stack: &str, serial: u64) -> PathBuf {
        self.dir.join(disk::backup_name(stack, serial))
    }

    /// The lock file of `stack`.
    pub fn lock_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!("{stack}.lock"))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_stack(&self, stack: &str) -> Result<()> {
        disk::check_stack(&self.dir, stack)
    }

    fn decode(&self, stack: &str, path: &Path, bytes: &[u8]) -> Result<State> {
        let state = file::decode_checked(bytes).map_err(|damage| {
            let serials = disk::backup_serials(&self.dir, stack).unwrap_or_default();
            let newest = serials.last().map(|serial| self.backup_path(stack, *serial));
            let remedy = damage.remedy(newest.as_deref());
            Error::State { path: path.to_owned(), message: format!("{damage}{remedy}") }
        })?;
        if state.stack != stack {
            return Err(Error::State {
                path: path.to_owned(),
                message: format!(
                    "the file holds the state of stack `{}`, not `{stack}`: it was renamed or copied; \
                     put it back under its own name",
                    state.stack
                ),
            });
        }
        Ok(state)
    }

    /// The serial and lineage of the state file of `stack` (serial 0 if there is none).
    fn read_base(&self, stack: &str) -> Result<Header> {
        let path = self.state_path(stack);
        Ok(match disk::read_optional(&path)? {
            Some(bytes) => {
                let state = self.decode(stack, &path, &bytes)?;
                Header::new(stack, state.serial, Some(state.lineage))
            }
            None => Header::new(stack, 0, None),
        })
    }

    fn load_now(&self, stack: &str) -> Result<Option<State>> {
        self.check_stack(stack)?;
        let result = self.read_state(stack);
        let mut inner = self.inner();
        match result {
            Ok((state, base)) => {
                inner.damaged.remove(stack);
                inner.bases.insert(stack.to_owned(), base);
                Ok(state)
            }
            Err(e) => {
                inner.damaged.insert(stack.to_owned(), e.to_string());
                Err(e)
            }
        }
    }

    /// Reads the state file and replays the journal on it.
    fn read_state(&self, stack: &str) -> Result<(Option<State>, Header)> {
        let path = self.state_path(stack);
        let mut state = match disk::read_optional(&path)? {
            Some(bytes) => Some(self.decode(stack, &path, &bytes)?),
            None => None,
        };
        let base = match &state {
            Some(s) => Header::new(stack, s.serial, Some(s.lineage.clone())),
            None => Header::new(stack, 0, None),
        };
        let journal_path = self.journal_path(stack);
        let Some(bytes) = disk::read_optional(&journal_path)? else {
            return Ok((state, base));
        };
        let parsed = journal::parse(&bytes).map_err(|bad| Error::State {
            path: journal_path.clone(),
            message: format!(
                "line {} of the journal is damaged ({}), and good lines follow it, so it is not a write cut short \
                 by a crash: the journal was edited or damaged. Fix or delete that line; the state file itself is \
                 intact, but deleting the journal forgets the steps of an unfinished run that are recorded only there",
                bad.line, bad.error
            ),
        })?;
        let relation = parsed.header.as_ref().map_or(Relation::Current, |h| h.relation(&base));
        match relation {
            Relation::Current => {
                if let Some((line, len)) = parsed.torn {
                    tracing::warn!(
                        journal = %journal_path.display(),
                        "ignoring a torn journal tail ({len} bytes from line {line}): a run was killed while writing it"
                    );
                }
                if !parsed.entries.is_empty() {
                    tracing::info!(
                        journal = %journal_path.display(),
                        "replaying {} steps recorded by a run that did not save",
                        parsed.entries.len()
                    );
                    let state = state.get_or_insert_with(|| State::new(stack));
                    parsed.entries.into_iter().for_each(|entry| state.apply_owned(entry));
                }
            }
            Relation::Stale => tracing::warn!(
                journal = %journal_path.display(),
                "ignoring a journal whose steps are already in the state file (a save stopped before deleting it)"
            ),
            Relation::Foreign => {
                let header = parsed.header.unwrap_or_else(|| base.clone());
                return Err(Error::State {
                    path: journal_path,
                    message: format!(
                        "the journal holds steps recorded on top of serial {} (lineage {}), but the state file has \
                         serial {} (lineage {}): the state file was replaced or deleted since (a backup restored, a file \
                         copied), and those steps are not in it. If that was on purpose, move the journal aside \
                         (it lists what that run did, for you to reconcile) and run again",
                        header.serial,
                        header.lineage.as_deref().unwrap_or("none"),
                        base.serial,
                        base.lineage.as_deref().unwrap_or("none"),
                    ),
                });
            }
        }
        Ok((state, base))
    }

    fn save_now(&self, state: &State) -> Result<State> {
        let stack = state.stack.as_str();
        self.check_stack(stack)?;
        let path = self.state_path(stack);
        // Held to the end: no record slips in between writing the state and clearing the journal.
        let mut inner = self.inner();
        if let Some(reason) = inner.damaged.get(stack) {
            return Err(Error::State {
                path,
                message: format!(
                    "refusing to save: loading this state failed ({reason}); the file and its backups are left \
                     untouched: repair or restore it, then run again"
                ),
            });
        }
        fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("cannot create the state directory", &self.dir, e))?;
        let on_disk = match disk::read_optional(&path)? {
            Some(bytes) => Some(self.decode(stack, &path, &bytes).map_err(|e| match e {
                Error::State { path, message } => Error::State {
                    path,
                    message: format!(
                        "refusing to overwrite a state file that cannot be read: {message}"
                    ),
                },
                e => e,
            })?),
            None => None,
        };
        match &on_disk {
            None if state.serial != 0 => {
                return Err(Error::State {
                    path,
                    message: format!(
                        "state changed since it was read: this run read serial {}, and the file is gone \
                         (deleted or moved); nothing was written: put it back or restore the newest backup, then \
                         run again",
                        state.serial
                    ),
                });
            }
            Some(current) if current.serial != state.serial || current.lineage != state.lineage => {
                return Err(Error::State {
                    path,
                    message: format!(
                        "state changed since it was read: this run read serial {} (lineage {}), the file now has \
                         serial {} (lineage {}); another run saved it meanwhile (was its lock forced?). Nothing \
                         was written: run again to start from the current state",
                        state.serial, state.lineage, current.serial, current.lineage
                    ),
                });
            }
            _ => {}
        }
        let mut saved = state.clone();
        saved.serial += 1;
        saved.format_version = FORMAT_VERSION;
        let bytes = file::encode(&saved)?;
        if let Some(current) = &on_disk {
            disk::keep_backup(&path, &self.backup_path(stack, current.serial))?;
        }
        disk::replace(&path, &self.dir.join(format!("{stack}.json.tmp")), &bytes)?;
        // The journal's steps are in the state file now. If removing it fails, the next load
        // sees from its header that it is stale and ignores it.
        inner.journals.remove(stack);
        let journal_path = self.journal_path(stack);
        match fs::remove_file(&journal_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(journal = %journal_path.display(), "cannot remove the journal after a save: {e}");
            }
        }
        inner.bases.insert(
            stack.to_owned(),
            Header::new(stack, saved.serial, Some(saved.lineage.clone())),
        );
        drop(inner);
        disk::prune_backups(&self.dir, stack, KEEP_BACKUPS);
        Ok(saved)
    }

    fn record_now(&self, stack: &str, entry: &Entry) -> Result<()> {
        let line = journal::line(entry)?;
        let mut inner = self.inner();
        if let Some(reason) = inner.damaged.get(stack) {
            return Err(Error::State {
                path: self.journal_path(stack),
                message: format!("refusing to record: loading this state failed ({reason})"),
            });
        }
        if let Some(writer) = inner.journals.get_mut(stack) {
            return writer.append(&line);
        }
        self.check_stack(stack)?;
        fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("cannot create the state directory", &self.dir, e))?;
        let base = match inner.bases.get(stack) {
            Some(base) => base.clone(),
            None => self.read_base(stack)?,
        };
        let writer = Writer::open(&self.journal_path(stack), &base, self.durable)?;
        inner.bases.insert(stack.to_owned(), base);
        inner.journals.entry(stack.to_owned()).or_insert(writer).append(&line)
    }

    fn lock_dir(&self, stack: &str) -> Result<PathBuf> {
        self.check_stack(stack)?;
        fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("cannot create the state directory", &self.dir, e))?;
        Ok(self.lock_path(stack))
    }
}

#[async_trait]
impl Store for LocalStore {
    fn describe(&self, stack: &str) -> String {
        let here = self.root.as_os_str().is_empty() || self.root == Path::new(".");
        let path = if here {
            Path::new(".graven/state").join(format!("{stack}.json"))
        } else {
            self.state_path(stack)
        };
        format!("`{}`", path.display())
    }

    async fn load(&self, stack: &str) -> Result<Option<State>> {
        self.load_now(stack)
    }

    async fn save(&self, state: &State) -> Result<State> {
        self.save_now(state)
    }

    async fn record(&self, stack: &str, entry: &Entry) -> Result<()> {
        self.record_now(stack, entry)
    }

    async fn lock(&self, stack: &str, operation: &str) -> Result<LockInfo> {
        lock::acquire(&self.lock_dir(stack)?, stack, operation)
    }

    async fn unlock(&self, stack: &str, lock: &LockInfo) -> Result<()> {
        lock::release(&self.lock_dir(stack)?, stack, lock)
    }

    async fn lock_info(&self, stack: &str) -> Result<Option<LockInfo>> {
        self.check_stack(stack)?;
        lock::read(&self.lock_path(stack))
    }

    async fn force_unlock(&self, stack: &str) -> Result<Option<LockInfo>> {
        self.check_stack(stack)?;
        lock::force_release(&self.lock_path(stack))
    }

    async fn backups(&self, stack: &str) -> Result<Vec<u64>> {
        self.check_stack(stack)?;
        disk::backup_serials(&self.dir, stack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::Outcome;
    use crate::state::model::tests::{intent, release, resource};

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        (dir, store)
    }

    fn put(id: &str) -> Entry {
        Entry::Put(resource(id, 1))
    }

    /// A saved state with one resource, at serial 1.
    async fn saved(store: &LocalStore) -> State {
        let mut state = State::new("web");
        state.apply(&put("vpc"));
        store.save(&state).await.unwrap()
    }

    #[tokio::test]
    async fn round_trip() {
        let (_dir, store) = store();
        assert_eq!(store.load("web").await.unwrap(), None);
        let mut state = State::new("web");
        state.apply(&put("vpc"));
        state.apply(&Entry::Release(release(1, Outcome::Succeeded)));
        let saved = store.save(&state).await.unwrap();
        assert_eq!(saved.serial, 1);
        assert_eq!(saved.lineage, state.lineage);
        let loaded = store.load("web").await.unwrap().unwrap();
        assert_eq!(loaded, saved);
        // A second instance (another process) reads the same.
        let other = LocalStore::new(store.root.clone());
        assert_eq!(other.load("web").await.unwrap().unwrap(), saved);
        assert!(!store.dir().join("web.json.tmp").exists());
        let backups = store.backups("web").await.unwrap();
        assert!(backups.is_empty(), "nothing to back up on the first save");
    }

    #[tokio::test]
    async fn serial_increments_and_backups_are_kept_and_pruned() {
        let (_dir, store) = store();
        let mut state = saved(&store).await;
        let first = fs::read(store.state_path("web")).unwrap();
        for _ in 0..14 {
            state = store.save(&state).await.unwrap();
        }
        assert_eq!(state.serial, 15);
        assert_eq!(store.load("web").await.unwrap().unwrap().serial, 15);
        let backups = store.backups("web").await.unwrap();
        assert_eq!(backups, (5..=14).collect::<Vec<u64>>());
        assert!(!store.backup_path("web", 1).exists(), "pruned");
        // A backup is the state file of its serial, byte for byte: loadable as is.
        let backup = fs::read(store.backup_path("web", 14)).unwrap();
        assert_eq!(file::decode_checked(&backup).unwrap().serial, 14);
        assert_ne!(backup, first);
        let other = LocalStore::new(store.root.clone());
        assert!(
            other.backups("web.prod").await.unwrap().is_empty(),
            "other stacks' backups are not listed"
        );
    }

    #[tokio::test]
    async fn journal_is_replayed_after_a_crash() {
        let (dir, store) = store();
        let state = saved(&store).await;
        let entries = [
            Entry::Release(release(2, Outcome::InProgress)),
            Entry::Intent(intent("subnet", 2)),
            put("subnet"),
            Entry::Settle { id: "subnet".to_owned() },
            Entry::Remove { id: "vpc".to_owned() },
            Entry::Intent(intent("sg", 2)),
        ];
        let mut expected = state.clone();
        for entry in &entries {
            store.record("web", entry).await.unwrap();
            expected.apply(entry);
        }
        drop(store); // the process dies without saving

        let store = LocalStore::new(dir.path());
        let loaded = store.load("web").await.unwrap().unwrap();
        assert_eq!(loaded, expected);
        assert_eq!(loaded.serial, 1, "replay does not bump the serial");
        assert!(loaded.pending.contains_key("sg"), "the create in flight is remembered");
        assert!(loaded.resource("vpc").is_none());

        // The next run carries on in the same journal, then saves and clears it.
        store.record("web", &Entry::Settle { id: "sg".to_owned() }).await.unwrap();
        let mut state = loaded;
        state.apply(&Entry::Settle { id: "sg".to_owned() });
        let saved = store.save(&state).await.unwrap();
        assert!(!store.journal_path("web").exists());
        let reloaded = LocalStore::new(dir.path()).load("web").await.unwrap().unwrap();
        assert_eq!(reloaded, saved);
        assert!(reloaded.pending.is_empty());
    }

    #[tokio::test]
    async fn journal_of_a_first_run_that_never_saved_is_replayed() {
        let (dir, store) = store();
        store.record("web", &put("vpc")).await.unwrap();
        drop(store);
        let store = LocalStore::new(dir.path());
        let state = store.load("web").await.unwrap().unwrap();
        assert_eq!(state.serial, 0);
        assert!(state.resource("vpc").is_some());
        assert_eq!(store.save(&state).await.unwrap().serial, 1);
    }

    #[tokio::test]
    async fn torn_last_journal_line_is_ignored() {
        let (dir, store) = store();
        saved(&store).await;
        store.record("web", &put("a")).await.unwrap();
        store.record("web", &put("b")).await.unwrap();
        let path = store.journal_path("web");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 20]).unwrap(); // killed mid-write of "b"
        let store = LocalStore::new(dir.path());
        let state = store.load("web").await.unwrap().unwrap();
        assert!(state.resource("a").is_some());
        assert!(state.resource("b").is_none());
        // Recording again cuts the torn tail off first, so the journal stays readable.
        store.record("web", &put("c")).await.unwrap();
        let state = LocalStore::new(dir.path()).load("web").await.unwrap().unwrap();
        assert!(state.resource("c").is_some());
    }

    #[tokio::test]
    async fn corrupt_middle_journal_line_is_an_error() {
        let (dir, store) = store();
        let state = saved(&store).await;
        for id in ["a", "b", "c"] {
            store.record("web", &put(id)).await.unwrap();
        }
        let path = store.journal_path("web");
        let text = fs::read_to_string(&path).unwrap();
        let damaged = text.replacen("\"id\":\"b\"", "\"id\":\"b\"!", 1);
        assert_ne!(damaged, text);
        fs::write(&path, &damaged).unwrap();
        let store = LocalStore::new(dir.path());
        let err = store.load("web").await.unwrap_err();
        let Error::State { path: at, message } = &err else { panic!("{err}") };
        assert_eq!(at, &path);
        assert!(message.contains("line 3"), "{message}");
        let err = store.save(&state).await.unwrap_err();
        assert!(err.to_string().contains("refusing to save"), "{err}");
        assert!(store.record("web", &put("d")).await.is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), damaged, "the journal is untouched");
    }

    #[tokio::test]
    async fn stale_journal_is_ignored_and_foreign_journal_refused() {
        let (dir, store) = store();
        let state = saved(&store).await;
        store.record("web", &put("a")).await.unwrap();
        let journal = fs::read(store.journal_path("web")).unwrap();
        let mut with_a = state.clone();
        with_a.apply(&put("a"));
        let state2 = store.save(&with_a).await.unwrap();
        // A save that stopped before deleting the journal: its steps are in the file already.
        fs::write(store.journal_path("web"), &journal).unwrap();
        let fresh = LocalStore::new(dir.path());
        assert_eq!(fresh.load("web").await.unwrap().unwrap(), state2);
        // Recording restarts the stale journal rather than appending to it.
        fresh.record("web", &put("b")).await.unwrap();
        let loaded = LocalStore::new(dir.path()).load("web").await.unwrap().unwrap();
        assert!(loaded.resource("b").is_some());

        // Restoring the serial-1 backup while a journal on serial 2 exists.
        fs::copy(store.backup_path("web", 1), store.state_path("web")).unwrap();
        let err = LocalStore::new(dir.path()).load("web").await.unwrap_err();
        assert!(err.to_string().contains("on top of serial 2"), "{err}");
    }

    /// Damages the state file with `damage`, then checks that loading fails with a message
    /// containing `expected`, that saving refuses, and that the file is left byte for byte.
    async fn damaged_file_is_kept(damage: impl Fn(&str) -> String, expected: &[&str]) {
        let (dir, store) = store();
        let state = saved(&store).await;
        let state = store.save(&state).await.unwrap(); // serial 2, backup of 1
        let path = store.state_path("web");
        let text = fs::read_to_string(&path).unwrap();
        let damaged = damage(&text);
        assert_ne!(damaged, text);
        fs::write(&path, &damaged).unwrap();

        let store = LocalStore::new(dir.path());
        let err = store.load("web").await.unwrap_err();
        let message = err.to_string();
        for e in expected {
            assert!(message.contains(e), "{message:?} should contain {e:?}");
        }
        let refused = store.save(&state).await.unwrap_err();
        assert!(refused.to_string().contains("refusing to save"), "{refused}");
        // Another instance, that never loaded, refuses too: it checks the file before replacing it.
        let other = LocalStore::new(dir.path());
        let refused = other.save(&state).await.unwrap_err();
        assert!(refused.to_string().contains("refusing to overwrite"), "{refused}");
        let fresh = other.save(&State::new("web")).await.unwrap_err();
        assert!(fresh.to_string().contains("refusing to overwrite"), "{fresh}");
        assert_eq!(fs::read_to_string(&path).unwrap(), damaged, "the damaged file is untouched");
        assert_eq!(store.backups("web").await.unwrap(), [1]);
        assert!(store.backup_path("web", 1).exists());
    }

    #[tokio::test]
    async fn truncated_state_file() {
        damaged_file_is_kept(|t| t[..t.len() / 2].to_owned(), &["truncated", "web.1.json.bak"])
            .await;
    }

    #[tokio::test]
    async fn edited_state_file() {
        damaged_file_is_kept(
            |t| t.replacen("vpc-vpc", "vpc-abc", 1),
            &["checksum mismatch", "web.1.json.bak", "delete its `checksum` line"],
        )
        .await;
    }

    #[tokio::test]
    async fn newer_format_version() {
        damaged_file_is_kept(
            |t| t.replacen("\"format_version\": 1", "\"format_version\": 3", 1),
            &["newer Graven (format 3, this one reads up to 1)", "upgrade Graven"],
        )
        .await;
    }

    #[tokio::test]
    async fn saving_over_a_changed_state_is_refused() {
        let (dir, store) = store();
        let state = saved(&store).await;
        let other = LocalStore::new(dir.path());
        let theirs = other.load("web").await.unwrap().unwrap();
        other.save(&theirs).await.unwrap(); // serial 2
        let before = fs::read(store.state_path("web")).unwrap();
        let err = store.save(&state).await.unwrap_err();
        assert!(err.to_string().contains("state changed since it was read"), "{err}");
        assert!(err.to_string().contains("serial 2"), "{err}");
        let err = store.save(&State::new("web")).await.unwrap_err();
        assert!(err.to_string().contains("lineage"), "{err}");
        assert_eq!(fs::read(store.state_path("web")).unwrap(), before);
        fs::remove_file(store.state_path("web")).unwrap();
        let err = store.save(&state).await.unwrap_err();
        assert!(err.to_string().contains("the file is gone"), "{err}");
    }

    #[tokio::test]
    async fn a_state_file_of_another_stack_is_refused() {
        let (_dir, store) = store();
        saved(&store).await;
        fs::copy(store.state_path("web"), store.state_path("db")).unwrap();
        let err = store.load("db").await.unwrap_err();
        assert!(err.to_string().contains("holds the state of stack `web`"), "{err}");
    }

    #[tokio::test]
    async fn bad_stack_names_are_refused() {
        let (_dir, store) = store();
        assert!(store.load("../web").await.is_err());
        assert!(store.record("a/b", &put("vpc")).await.is_err());
        assert!(store.lock(".hidden", "apply").await.is_err());
        assert!(store.save(&State::new("")).await.is_err());
        assert!(!store.dir().exists(), "nothing was written");
    }

    #[tokio::test]
    async fn locks() {
        let (_dir, store) = store();
        assert_eq!(store.lock_info("web").await.unwrap(), None);
        let lock = store.lock("web", "apply").await.unwrap();
        assert_eq!(store.lock_info("web").await.unwrap(), Some(lock.clone()));
        let err = store.lock("web", "destroy").await.unwrap_err();
        assert!(matches!(&err, Error::Locked { holder, .. } if holder.contains(&lock.id)), "{err}");
        let other_stack = store.lock("db", "apply").await.unwrap();
        assert!(store.unlock("web", &other_stack).await.is_err(), "wrong id");
        assert_eq!(store.force_unlock("web").await.unwrap(), Some(lock.clone()));
        assert!(store.unlock("web", &lock).await.is_err(), "no longer held");
        let again = store.lock("web", "apply").await.unwrap();
        store.unlock("web", &again).await.unwrap();
        assert_eq!(store.lock_info("web").await.unwrap(), None);
    }

    #[test]
    fn describe_names_the_file() {
        let here = LocalStore::new(".").describe("web");
        assert_eq!(here, "`.graven/state/web.json`");
        let there = LocalStore::new("/srv/app").describe("web");
        assert_eq!(there, "`/srv/app/.graven/state/web.json`");
    }
}
