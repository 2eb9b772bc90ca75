//! State: what Graven remembers about a stack between runs, and where it keeps it.
//!
//! - The model ([`State`], [`ResourceState`], [`ReleaseRecord`], ...) is pure data: every
//!   resource Graven created for the stack with the inputs it applied and the outputs it got,
//!   the creates still in flight ([`Intent`]), and the history of releases.
//! - As it applies a plan, the engine records each completed step as an [`Entry`] with
//!   [`Store::record`], and saves the whole state with [`Store::save`] at the end.
//!   [`Store::load`] replays the recorded entries on top of the last saved state, so a run
//!   killed halfway loses nothing it completed.
//! - A [`Store`] keeps states, their journals, backups and locks. [`LocalStore`] keeps them in
//!   files under `.graven/state/`; an S3 store implements the same trait.
//! - The state file format ([`encode`], [`decode`]) wraps the state in a checksummed envelope
//!   with a [`FORMAT_VERSION`].
//!
//! The book's "State" chapter describes the files and how to recover from each error.

mod disk;
mod file;
mod journal;
mod local;
mod lock;
mod model;

pub use file::{decode, encode};
pub use local::{KEEP_BACKUPS, LocalStore};
pub use lock::LockInfo;
pub use model::{
    Deposed, Entry, FORMAT_VERSION, Intent, Outcome, ReleaseRecord, ResourceState, State, now,
    timestamp,
};

use crate::error::Result;

/// Where states are kept: a stack's state, its journal, its backups and its lock.
///
/// A run takes the lock, loads, records each step as it completes, saves, and unlocks.
/// Implementations do their own I/O; none holds a lock across an `.await`.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Where the state of `stack` is, for messages (`` `.graven/state/web.json` ``).
    fn describe(&self, stack: &str) -> String;

    /// The state of `stack` with the journal replayed on it; `None` if the stack has never
    /// been applied.
    ///
    /// # Errors
    /// [`Error::State`](crate::Error::State) if the state or its journal is damaged, from a
    /// newer Graven, or does not belong together; the message says what to do. After such an
    /// error, the store refuses to save or record for the stack.
    async fn load(&self, stack: &str) -> Result<Option<State>>;

    /// Saves `state` (as loaded, plus its changes) with the serial bumped, and returns what
    /// was saved. The journal's entries are in the saved state, so the journal is cleared.
    ///
    /// # Errors
    /// [`Error::State`](crate::Error::State) if the stored state changed since `state` was
    /// loaded (another serial or lineage), or cannot be read: nothing is overwritten.
    async fn save(&self, state: &State) -> Result<State>;

    /// Appends `entry` to the journal of `stack`.
    ///
    /// # Errors
    /// An I/O error, or [`Error::State`](crate::Error::State) if the last load failed.
    async fn record(&self, stack: &str, entry: &Entry) -> Result<()>;

    /// Takes the lock of `stack` for `operation`, breaking it first if its holder is known to
    /// be dead.
    ///
    /// # Errors
    /// [`Error::Locked`](crate::Error::Locked), naming the holder, if another run holds it.
    async fn lock(&self, stack: &str, operation: &str) -> Result<LockInfo>;

    /// Releases `lock`.
    ///
    /// # Errors
    /// [`Error::State`](crate::Error::State) if `stack` is not locked by `lock` (it was
    /// force-unlocked); another run's lock is left in place.
    async fn unlock(&self, stack: &str, lock: &LockInfo) -> Result<()>;

    /// Who holds the lock of `stack`, if anyone.
    async fn lock_info(&self, stack: &str) -> Result<Option<LockInfo>>;

    /// Removes the lock of `stack`, whoever holds it (`state unlock --force`); returns what it
    /// removed.
    async fn force_unlock(&self, stack: &str) -> Result<Option<LockInfo>>;

    /// The serials of `stack` that have a backup, oldest first.
    async fn backups(&self, stack: &str) -> Result<Vec<u64>>;
}
