//! Locks: one run at a time changes a stack's state.
//!
//! A lock is a file, `<stack>.lock`, created with `O_CREAT | O_EXCL` (so exactly one of two
//! racing runs creates it) and holding a [`LockInfo`] as JSON: who holds it, since when, for
//! what.
//!
//! A run killed with SIGKILL cannot remove its lock. So a lock whose holder ran on this host
//! under a pid that is no longer alive (`/proc/<pid>` is gone) is stale, and taking the lock
//! breaks it, with a warning naming the dead holder. A lock from another host is never broken
//! automatically: this host cannot tell whether that run is alive. `state unlock --force`
//! removes any lock.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::model::now;
use crate::error::{Error, Result};

/// Who holds a stack's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// A random id (UUID v4) of this lock; unlocking checks it.
    pub id: String,
    /// What the holder is doing (`apply`, `destroy`, `rollback`, `state rm`).
    pub operation: String,
    /// The holder's process id.
    pub pid: u32,
    /// The holder's host name.
    pub host: String,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// The holder's user name (`$USER`).
    pub who: String,
}

impl LockInfo {
    /// A new lock for `operation`, held by this process on this host.
    pub fn new(operation: &str) -> Self {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.to_owned(),
            pid: std::process::id(),
            host: hostname().unwrap_or("unknown").to_owned(),
            created_at: now(),
            who: std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "unknown".to_owned()),
        }
    }

    /// What a lock file at `path` that cannot be parsed is reported as: a holder with id
    /// `unknown`, the parse error as its operation and the file's modification time as its
    /// start. Such a file is left by a run that died between creating and writing it (or was
    /// edited); it is never broken automatically, and `state unlock --force` removes it.
    pub fn damaged(path: &Path, error: &str) -> Self {
        let modified = fs::metadata(path).and_then(|m| m.modified()).ok();
        LockInfo {
            id: "unknown".to_owned(),
            operation: format!("unknown: the lock file is damaged ({error})"),
            pid: 0,
            host: "unknown".to_owned(),
            created_at: modified.map_or_else(|| "unknown".to_owned(), super::model::timestamp),
            who: "unknown".to_owned(),
        }
    }

    /// Whether the holder is a process of this host that is no longer running.
    ///
    /// Only decidable on Linux (it looks for `/proc/<pid>`); elsewhere, and for locks from
    /// other hosts, always `false`. A pid reused by an unrelated process makes a dead holder
    /// look alive: the lock is then kept (the safe side) and `state unlock --force` clears it.
    pub fn is_stale(&self) -> bool {
        let Some(host) = hostname() else { return false };
        if self.host != host || !Path::new("/proc/self").exists() {
            return false;
        }
        self.pid != std::process::id() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (operation {}, user {}, pid {} on host {}, since {})",
            self.id, self.operation, self.who, self.pid, self.host, self.created_at
        )
    }
}

/// This host's name, from `/proc/sys/kernel/hostname`, `/etc/hostname` or `$HOSTNAME`.
pub(crate) fn hostname() -> Option<&'static str> {
    static HOST: OnceLock<Option<String>> = OnceLock::new();
    HOST.get_or_init(|| {
        let from_file = |path| fs::read_to_string(path).ok();
        from_file("/proc/sys/kernel/hostname")
            .or_else(|| from_file("/etc/hostname"))
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
    })
    .as_deref()
}

/// What is in a lock file.
enum Holder {
    /// No lock file.
    None,
    /// A lock.
    Lock(LockInfo),
    /// A lock file that does not parse (empty: its creator died before writing it), described
    /// by [`LockInfo::damaged`].
    Unreadable(LockInfo),
}

fn read_holder(path: &Path) -> Result<Holder> {
    match fs::read(path) {
        Ok(bytes) => Ok(match serde_json::from_slice(&bytes) {
            Ok(info) => Holder::Lock(info),
            Err(e) => Holder::Unreadable(LockInfo::damaged(path, &e.to_string())),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Holder::None),
        Err(e) => Err(Error::io("cannot read the lock", path, e)),
    }
}

/// The lock at `path`, if any; a damaged lock file is described by [`LockInfo::damaged`].
pub(crate) fn read(path: &Path) -> Result<Option<LockInfo>> {
    match read_holder(path)? {
        Holder::None => Ok(None),
        Holder::Lock(info) | Holder::Unreadable(info) => Ok(Some(info)),
    }
}

/// Takes the lock at `path` for `operation`, breaking it first if it is stale.
pub(crate) fn acquire(path: &Path, stack: &str, operation: &str) -> Result<LockInfo> {
    let info = LockInfo::new(operation);
    let body = serde_json::to_vec_pretty(&info)
        .map_err(|source| Error::Serialize { what: "the lock".to_owned(), source })?;
    // Each round either takes the lock, fails, or removes a lock that vanished or was stale;
    // a few rounds are enough unless other runs keep racing for it.
    //
    // The lock is written whole to a file of this run's own, then linked to its name: a link
    // fails if the name exists, so taking it is atomic, and nobody ever sees a lock file that
    // is still being written (an empty or half-written lock is damage, not a race).
    let fresh = PathBuf::from(format!("{}.{}.new", path.display(), info.id));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&fresh)
            .map_err(|e| Error::io("cannot create the lock", &fresh, e))?;
        if let Err(e) = file.write_all(&body).and_then(|()| file.sync_all()) {
            let _ = fs::remove_file(&fresh);
            return Err(Error::io("cannot write the lock", &fresh, e));
        }
    }
    let taken = take(path, &fresh, stack);
    let _ = fs::remove_file(&fresh);
    taken.map(|()| info)
}

/// Links the written lock `fresh` to `path`, breaking a stale lock first if need be.
fn take(path: &Path, fresh: &Path, stack: &str) -> Result<()> {
    for _ in 0..5 {
        match fs::hard_link(fresh, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("cannot create the lock", path, e)),
        }
        match read_holder(path)? {
            Holder::None => {}
            Holder::Lock(holder) if holder.is_stale() => break_stale(path, &holder)?,
            Holder::Lock(holder) | Holder::Unreadable(holder) => {
                return Err(Error::Locked { stack: stack.to_owned(), holder: holder.to_string() });
            }
        }
    }
    Err(Error::Locked {
        stack: stack.to_owned(),
        holder:
            "another run (the lock changed hands several times while this run tried to take it)"
                .to_owned(),
    })
}

/// Removes the stale lock `stale` at `path`, unless it changed in the meantime.
///
/// Two runs may find the same stale lock. The lock is first renamed to a name of this run's
/// own (a rename is atomic: one run gets it), then checked: if what was moved is not the stale
/// lock but a fresh one another run just took, it is linked back.
fn break_stale(path: &Path, stale: &LockInfo) -> Result<()> {
    let aside = PathBuf::from(format!("{}.{}.broken", path.display(), uuid::Uuid::new_v4()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot break the stale lock", path, e)),
    }
    let moved = read_holder(&aside)?;
    let is_stale = matches!(&moved, Holder::Lock(info) if info.id == stale.id);
    if is_stale {
        tracing::warn!(
            lock = %path.display(),
            "broke a stale lock: its holder {stale} is no longer running"
        );
    } else if let Err(e) = fs::hard_link(&aside, path) {
        tracing::warn!(lock = %path.display(), "could not put back a lock taken while breaking a stale one: {e}");
    }
    let _ = fs::remove_file(&aside);
    Ok(())
}

/// Removes the lock at `path` if it is `lock`.
pub(crate) fn release(path: &Path, stack: &str, lock: &LockInfo) -> Result<()> {
    let message = match read_holder(path)? {
        Holder::Lock(holder) if holder.id == lock.id => {
            return fs::remove_file(path).map_err(|e| Error::io("cannot remove the lock", path, e));
        }
        Holder::Lock(holder) => format!(
            "cannot unlock stack `{stack}`: the lock is held by {holder}, not by this run ({}); \
             this run's lock was force-unlocked and another run took it; leaving that lock in place",
            lock.id
        ),
        Holder::None => format!(
            "cannot unlock stack `{stack}`: it is not locked; this run's lock {} was force-unlocked while it ran, \
             so check the state for changes made by another run",
            lock.id
        ),
        Holder::Unreadable(holder) => format!(
            "cannot unlock stack `{stack}`: the lock is held by {holder}; remove it with `state unlock --force`"
        ),
    };
    Err(Error::State { path: path.to_owned(), message })
}

/// Removes the lock at `path`, whoever holds it; returns what it removed (a damaged lock file
/// is removed too, and described by [`LockInfo::damaged`]).
pub(crate) fn force_release(path: &Path) -> Result<Option<LockInfo>> {
    let holder = read_holder(path)?;
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot remove the lock", path, e)),
    }
    match holder {
        Holder::Lock(info) | Holder::Unreadable(info) => Ok(Some(info)),
        Holder::None => Ok(None),
    }
}

/// Writes `info` as the lock at `path` (tests simulate other runs with it).
#[cfg(test)]
pub(crate) fn write_raw(path: &Path, info: &LockInfo) {
    let mut file = fs::File::create(path).unwrap();
    file.write_all(&serde_json::to_vec(info).unwrap()).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.lock");
        (dir, path)
    }

    fn foreign(pid: u32, host: &str) -> LockInfo {
        LockInfo { pid, host: host.to_owned(), ..LockInfo::new("apply") }
    }

    #[test]
    fn lock_info_describes_its_holder() {
        let info = LockInfo { created_at: "2025-03-01T12:00:00Z".to_owned(), ..foreign(123, "h") };
        assert_eq!(
            info.to_string(),
            format!(
                "{} (operation apply, user {}, pid 123 on host h, since 2025-03-01T12:00:00Z)",
                info.id, info.who
            )
        );
        assert!(!LockInfo::new("apply").is_stale(), "this process is alive");
    }

    #[test]
    fn second_lock_fails_naming_the_holder() {
        let (_dir, path) = setup();
        let first = acquire(&path, "web", "apply").unwrap();
        let err = acquire(&path, "web", "destroy").unwrap_err();
        let Error::Locked { stack, holder } = &err else { panic!("{err}") };
        assert_eq!(stack, "web");
        assert!(holder.contains(&first.id), "{holder}");
        assert!(holder.contains("operation apply"), "{holder}");
        assert!(holder.contains(&format!("pid {}", std::process::id())), "{holder}");
        assert_eq!(read(&path).unwrap(), Some(first));
    }

    #[test]
    fn dead_holder_on_this_host_is_broken() {
        let (_dir, path) = setup();
        if hostname().is_none() || !Path::new("/proc/self").exists() {
            return; // stale detection needs /proc and a host name
        }
        let dead = foreign(999_999_999, hostname().unwrap());
        assert!(dead.is_stale());
        write_raw(&path, &dead);
        let taken = acquire(&path, "web", "apply").unwrap();
        assert_ne!(taken.id, dead.id);
        assert_eq!(read(&path).unwrap(), Some(taken));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "the broken lock is removed");
    }

    #[test]
    fn lock_from_another_host_is_kept() {
        let (_dir, path) = setup();
        let other = foreign(999_999_999, "some-other-host.invalid");
        assert!(!other.is_stale());
        write_raw(&path, &other);
        let err = acquire(&path, "web", "apply").unwrap_err();
        assert!(
            matches!(&err, Error::Locked { holder, .. } if holder.contains("some-other-host.invalid")),
            "{err}"
        );
        assert_eq!(read(&path).unwrap(), Some(other));
    }

    #[test]
    fn a_stale_lock_retaken_meanwhile_is_put_back() {
        let (_dir, path) = setup();
        let stale = foreign(999_999_999, "h");
        let fresh = LockInfo::new("apply");
        write_raw(&path, &fresh);
        break_stale(&path, &stale).unwrap();
        assert_eq!(read(&path).unwrap(), Some(fresh));
    }

    #[test]
    fn unlock_checks_the_id() {
        let (_dir, path) = setup();
        let mine = acquire(&path, "web", "apply").unwrap();
        let wrong = LockInfo::new("apply");
        let err = release(&path, "web", &wrong).unwrap_err();
        assert!(err.to_string().contains("not by this run"), "{err}");
        assert!(path.exists(), "the lock stays");
        release(&path, "web", &mine).unwrap();
        assert!(!path.exists());
        let err = release(&path, "web", &mine).unwrap_err();
        assert!(err.to_string().contains("not locked"), "{err}");
    }

    #[test]
    fn force_release_removes_any_lock() {
        let (_dir, path) = setup();
        let other = foreign(1, "some-other-host.invalid");
        write_raw(&path, &other);
        assert_eq!(force_release(&path).unwrap(), Some(other));
        assert!(!path.exists());
        assert_eq!(force_release(&path).unwrap(), None);
        fs::write(&path, b"").unwrap();
        let removed = force_release(&path).unwrap().unwrap();
        assert_eq!(removed.id, "unknown");
        assert!(!path.exists(), "a damaged lock is removed too");
    }

    #[test]
    fn an_empty_lock_file_is_not_taken_over() {
        let (_dir, path) = setup();
        fs::write(&path, b"").unwrap();
        let err = acquire(&path, "web", "apply").unwrap_err();
        assert!(
            matches!(&err, Error::Locked { holder, .. } if holder.contains("damaged")),
            "{err}"
        );
        let info = read(&path).unwrap().unwrap();
        assert!(info.operation.contains("the lock file is damaged"), "{info}");
        assert!(!info.is_stale());
        assert_eq!(fs::read(&path).unwrap(), b"", "left in place");
    }
}
