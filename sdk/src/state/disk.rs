//! File operations of the local store that keep a state file safe: atomic replacement, and
//! backups of the serials it replaces.

use std::fs::{self, File};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The contents of `path`, or `None` if there is no such file.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// Replaces `path` with `bytes` atomically and durably: write `tmp`, sync it, rename it over
/// `path`, sync the directory. A crash at any point leaves either the old file or the new one.
pub(crate) fn replace(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<()> {
    let written = File::create(tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(tmp);
        return Err(Error::io("cannot write", tmp, e));
    }
    if let Err(e) = fs::rename(tmp, path) {
        let _ = fs::remove_file(tmp);
        return Err(Error::io("cannot rename the new state over", path, e));
    }
    sync_dir(path)
}

/// Makes the creation, rename or removal of `path` durable by syncing its directory.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot sync the directory", dir, e))
}

/// Checks that `stack` is a safe file name stem (files of `dir`, named in the error, are named
/// after it): up to 128 ASCII letters, digits, `-`, `_` and `.`, starting with a letter or a
/// digit. No `/`, no `..`, no hidden files.
pub(crate) fn check_stack(dir: &Path, stack: &str) -> Result<()> {
    let ok = stack.len() <= 128
        && stack.starts_with(|c: char| c.is_ascii_alphanumeric())
        && stack.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(());
    }
    Err(Error::State {
        path: dir.to_owned(),
        message: format!(
            "invalid stack name `{stack}`: a stack name is up to 128 ASCII letters, digits, `-`, `_` \
             and `.`, starting with a letter or digit"
        ),
    })
}

/// The file name of the backup of `stack` at `serial`.
pub(crate) fn backup_name(stack: &str, serial: u64) -> String {
    format!("{stack}.{serial}.json.bak")
}

/// Keeps the file at `path` as `backup`, replacing any older file of that name: a hard link
/// (no copy, and the content is already on disk), or a synced copy where links fail. Either
/// way the backup appears whole or not at all.
pub(crate) fn keep_backup(path: &Path, backup: &Path) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", backup.display()));
    let _ = fs::remove_file(&tmp);
    let kept = fs::hard_link(path, &tmp).or_else(|_| {
        let bytes = fs::read(path)?;
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()
    });
    kept.and_then(|()| fs::rename(&tmp, backup)).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot back up the state file to", backup, e)
    })
}

/// The serials of `stack` with a backup in `dir`, oldest first.
pub(crate) fn backup_serials(dir: &Path, stack: &str) -> Result<Vec<u64>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list the state directory", dir, e)),
    };
    let prefix = format!("{stack}.");
    let mut serials: Vec<u64> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let serial = name.to_str()?.strip_prefix(&prefix)?.strip_suffix(".json.bak")?;
            let digits = !serial.is_empty() && serial.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| serial.parse().ok())?
        })
        .collect();
    serials.sort_unstable();
    Ok(serials)
}

/// Deletes all but the newest `keep` backups of `stack` in `dir`. Failures are warnings: an
/// extra backup does no harm.
pub(crate) fn prune_backups(dir: &Path, stack: &str, keep: usize) {
    let serials = match backup_serials(dir, stack) {
        Ok(serials) => serials,
        Err(e) => {
            tracing::warn!("cannot prune old backups: {e}");
            return;
        }
    };
    let excess = serials.len().saturating_sub(keep);
    for serial in &serials[..excess] {
        let path = dir.join(backup_name(stack, *serial));
        if let Err(e) = fs::remove_file(&path) {
            tracing::warn!(backup = %path.display(), "cannot delete an old backup: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_safe_file_names() {
        let dir = Path::new("/x");
        for bad in ["", "../web", "a/b", ".hidden", "web json", "wéb", &"a".repeat(129)] {
            let err = check_stack(dir, bad).unwrap_err();
            assert!(err.to_string().contains("invalid stack name"), "{bad:?}: {err}");
        }
        for good in ["web", "web-prod_2.eu", "1st"] {
            check_stack(dir, good).unwrap();
        }
    }

    #[test]
    fn replace_swaps_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.json");
        let tmp = dir.path().join("web.json.tmp");
        replace(&path, &tmp, b"one").unwrap();
        replace(&path, &tmp, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!tmp.exists());
        assert_eq!(read_optional(&dir.path().join("none.json")).unwrap(), None);
    }

    #[test]
    fn a_backup_keeps_the_old_content_after_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.json");
        let tmp = dir.path().join("web.json.tmp");
        let backup = dir.path().join(backup_name("web", 1));
        replace(&path, &tmp, b"serial 1").unwrap();
        fs::write(&backup, b"an older serial 1").unwrap();
        keep_backup(&path, &backup).unwrap();
        replace(&path, &tmp, b"serial 2").unwrap();
        assert_eq!(fs::read(&backup).unwrap(), b"serial 1");
        assert_eq!(fs::read(&path).unwrap(), b"serial 2");
        assert!(!dir.path().join("web.1.json.bak.tmp").exists());
    }

    #[test]
    fn backups_are_listed_per_stack_and_pruned_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for serial in [3, 1, 12, 2, 10] {
            fs::write(dir.path().join(backup_name("web", serial)), b"{}").unwrap();
        }
        for other in [
            "web.prod.4.json.bak",
            "web.json",
            "web..json.bak",
            "web.x1.json.bak",
            "web.5.json.bak.tmp",
        ] {
            fs::write(dir.path().join(other), b"{}").unwrap();
        }
        assert_eq!(backup_serials(dir.path(), "web").unwrap(), [1, 2, 3, 10, 12]);
        assert_eq!(backup_serials(dir.path(), "web.prod").unwrap(), [4]);
        prune_backups(dir.path(), "web", 3);
        assert_eq!(backup_serials(dir.path(), "web").unwrap(), [3, 10, 12]);
        assert_eq!(backup_serials(dir.path(), "web.prod").unwrap(), [4]);
        assert!(backup_serials(&dir.path().join("missing"), "web").unwrap().is_empty());
    }
}
