//! The cloud on disk: a snapshot plus a journal of changes.
//!
//! Under `<root>/.graven/local/`: `cloud.json` is a snapshot of every resource, and
//! `journal.jsonl` holds one JSON line per call that changed something (the resources it put,
//! the ones it removed, the id counter and the time). Appending a line is one `write` to a file
//! kept open, so a call is as durable as the operating system's page cache: a process killed
//! after a call returned loses nothing, and a process killed in the middle of a write leaves a
//! torn last line, which opening ignores and cuts off. Opening replays the snapshot and then the
//! journal; when the journal has grown larger than the snapshot (and past 1 MiB) it is folded
//! into a new snapshot (written to a temporary file and renamed) and emptied.
//!
//! A process that keeps a cloud open follows the journal: before each call it reads the lines
//! another process appended, and reloads everything if the journal was compacted under it.
//! Two processes changing one cloud at the same time are not supported.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::model::{Kind, Model, Resource};

/// The snapshot's file name.
pub(crate) const SNAPSHOT: &str = "cloud.json";
/// The journal's file name.
pub(crate) const JOURNAL: &str = "journal.jsonl";
/// The journal is compacted on open once it is larger than this and than the snapshot.
const COMPACT_AFTER: u64 = 1 << 20;

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: u32,
    clock_ms: u64,
    next: u64,
    resources: Vec<&'a Resource>,
}

#[derive(Deserialize)]
struct SnapshotIn {
    format: u32,
    clock_ms: u64,
    next: u64,
    resources: Vec<Resource>,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    at: u64,
    next: u64,
    ops: Vec<OpOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum OpOut<'a> {
    Put(&'a Resource),
    Remove { kind: Kind, id: &'a str },
}

#[derive(Deserialize)]
struct EntryIn {
    at: u64,
    next: u64,
    ops: Vec<OpIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpIn {
    Put(Resource),
    Remove { kind: Kind, id: String },
}

/// The journal line recording the changes of the model since the last one, if any.
pub(crate) fn entry(model: &mut Model) -> Option<Vec<u8>> {
    let changes = model.drain_changes();
    if changes.is_empty() {
        return None;
    }
    let ops = changes
        .iter()
        .map(|(kind, id)| {
            model.get(*kind, id).map_or(OpOut::Remove { kind: *kind, id }, OpOut::Put)
        })
        .collect();
    let mut line =
        serde_json::to_vec(&EntryOut { at: model.clock_ms, next: model.next, ops }).ok()?;
    line.push(b'\n');
    Some(line)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that readers see the old
/// content or the new, never a part.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(unix)]
fn identity(meta: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn identity(_: &fs::Metadata) -> u64 {
    0
}

/// The files of one cloud, and how much of the journal the model has seen.
#[derive(Debug)]
pub(crate) struct Disk {
    dir: PathBuf,
    journal: File,
    /// The journal's bytes applied to the model (always whole lines).
    offset: u64,
    /// The journal file's identity (a compaction replaces the file).
    identity: u64,
    /// The snapshot's size when loaded, for the compaction rule.
    snapshot_len: u64,
}

impl Disk {
    /// Opens the cloud in `dir` (creating it), replays it, and compacts a large journal.
    pub(crate) fn open(dir: &Path) -> Result<(Model, Disk)> {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let (mut model, mut disk) = Disk::load(dir)?;
        if disk.offset > COMPACT_AFTER && disk.offset > disk.snapshot_len {
            disk.compact(&model).map_err(|e| Error::io("compacting the local cloud in", dir, e))?;
        }
        model.forget_changes();
        Ok((model, disk))
    }

    fn load(dir: &Path) -> Result<(Model, Disk)> {
        let mut model = Model::new();
        let snapshot = dir.join(SNAPSHOT);
        let mut snapshot_len = 0;
        match fs::read(&snapshot) {
            Ok(bytes) => {
                snapshot_len = bytes.len() as u64;
                let snap: SnapshotIn = serde_json::from_slice(&bytes).map_err(|e| Error::State {
                    path: snapshot.clone(),
                    message: format!(
                        "the local cloud's snapshot is not readable ({e}); delete `{}` to start an empty cloud",
                        dir.display()
                    ),
                })?;
                if snap.format != 1 {
                    return Err(Error::State {
                        path: snapshot,
                        message: format!(
                            "snapshot format {} is not supported by this Graven",
                            snap.format
                        ),
                    });
                }
                for r in snap.resources {
                    model.insert(r);
                }
                model.next = model.next.max(snap.next);
                model.clock_ms = model.clock_ms.max(snap.clock_ms);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading", snapshot, e)),
        }
        let path = dir.join(JOURNAL);
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        let bytes = fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        let complete = apply(&mut model, &bytes);
        if complete < bytes.len() {
            tracing::warn!("local cloud: ignoring a torn last line in `{}`", path.display());
            journal.set_len(complete as u64).map_err(|e| Error::io("truncating", &path, e))?;
        }
        let identity =
            journal.metadata().map(|m| identity(&m)).map_err(|e| Error::io("reading", &path, e))?;
        model.forget_changes();
        Ok((
            model,
            Disk { dir: dir.to_owned(), journal, offset: complete as u64, identity, snapshot_len },
        ))
    }

    /// Appends a journal line.
    pub(crate) fn append(&mut self, line: &[u8]) -> io::Result<()> {
        self.journal.write_all(line)?;
        self.journal.flush()?;
        self.offset += line.len() as u64;
        Ok(())
    }

    /// Applies what other processes appended to the journal since we last looked; reloads
    /// everything when the journal was compacted under us.
    pub(crate) fn sync(&mut self, model: &mut Model) -> Result<()> {
        let path = self.dir.join(JOURNAL);
        let Ok(meta) = fs::metadata(&path) else { return Ok(()) };
        if identity(&meta) != self.identity || meta.len() < self.offset {
            let (fresh, disk) = Disk::load(&self.dir)?;
            *model = fresh;
            *self = disk;
            return Ok(());
        }
        if meta.len() > self.offset {
            let mut file = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
            let mut bytes = Vec::new();
            file.seek(SeekFrom::Start(self.offset))
                .and_then(|_| file.read_to_end(&mut bytes))
                .map_err(|e| Error::io("reading", &path, e))?;
            self.offset += apply(model, &bytes) as u64;
            model.forget_changes();
        }
        Ok(())
    }

    /// Writes a snapshot of `model` and empties the journal.
    pub(crate) fn compact(&mut self, model: &Model) -> io::Result<()> {
        let snapshot = SnapshotOut {
            format: 1,
            clock_ms: model.clock_ms,
            next: model.next,
            resources: Kind::ALL.into_iter().flat_map(|k| model.all(k)).collect(),
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(io::Error::other)?;
        write_atomically(&self.dir.join(SNAPSHOT), &bytes)?;
        let path = self.dir.join(JOURNAL);
        write_atomically(&path, b"")?;
        self.journal = OpenOptions::new().append(true).open(&path)?;
        self.identity = identity(&self.journal.metadata()?);
        self.offset = 0;
        self.snapshot_len = bytes.len() as u64;
        Ok(())
    }
}

/// Applies the whole lines of `bytes` to `model`; returns the length of those lines. A line
/// that does not parse is skipped with a warning (only a torn last line is expected).
fn apply(model: &mut Model, bytes: &[u8]) -> usize {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    for line in bytes[..complete].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<EntryIn>(line) {
            Ok(entry) => {
                for op in entry.ops {
                    match op {
                        OpIn::Put(r) => model.insert(r),
                        OpIn::Remove { kind, id } => {
                            model.take(kind, &id);
                        }
                    }
                }
                model.next = model.next.max(entry.next);
                model.clock_ms = model.clock_ms.max(entry.at);
            }
            Err(e) => {
                tracing::warn!("local cloud: skipping a journal line that does not parse: {e}");
            }
        }
    }
    complete
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::provider::{Health, Provider};

    use super::super::LocalCloud;
    use super::super::testing::{create, fleet, network, web};
    use super::*;

    fn journal(dir: &Path) -> PathBuf {
        dir.join(".graven/local").join(JOURNAL)
    }

    #[tokio::test(start_paused = true)]
    async fn reopening_replays_the_journal_and_ignores_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        fleet(&cloud, &net, &web("1.4.0"), 2, 0).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let fleet_before = cloud.fleet_instances("web").await.unwrap();
        let subnets_before = cloud.resources("aws:ec2:Subnet");
        drop(cloud);

        let mut file = OpenOptions::new().append(true).open(journal(dir.path())).unwrap();
        file.write_all(br#"{"at":1,"next":99,"ops":[{"put":{"id":"vpc-"#).unwrap();
        drop(file);

        let cloud = LocalCloud::open(dir.path()).unwrap();
        assert_eq!(cloud.fleet_instances("web").await.unwrap(), fleet_before);
        assert!(fleet_before.iter().all(|i| i.health == Health::Healthy));
        assert_eq!(cloud.resources("aws:ec2:Subnet"), subnets_before);
        assert!(
            fs::read(journal(dir.path())).unwrap().ends_with(b"\n"),
            "the torn line is cut off"
        );
        let vpc = create(&cloud, "vpc2", "aws:ec2:Vpc", json!({"cidr_block": "10.9.0.0/16"}))
            .await
            .unwrap();
        assert!(
            cloud.resources("aws:ec2:Vpc").len() == 2 && vpc.physical_id != net.vpc,
            "ids continue"
        );
        drop(cloud);
        let cloud = LocalCloud::open(dir.path()).unwrap();
        assert_eq!(cloud.resources("aws:ec2:Vpc").len(), 2);
        assert_eq!(
            cloud.find_by_token("aws:ec2:Vpc", "tok-vpc2-0123456789").await.unwrap().unwrap(),
            vpc
        );
    }

    #[tokio::test]
    async fn compaction_folds_the_journal_into_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        cloud.delete("aws:ec2:SecurityGroup", &net.sg).await.unwrap();
        let before: Vec<_> = ["aws:ec2:Vpc", "aws:ec2:Subnet", "aws:ec2:SecurityGroup"]
            .map(|k| cloud.resources(k))
            .into();
        cloud.compact().unwrap();
        assert_eq!(fs::metadata(journal(dir.path())).unwrap().len(), 0);
        assert!(dir.path().join(".graven/local").join(SNAPSHOT).exists());
        create(&cloud, "vpc2", "aws:ec2:Vpc", json!({"cidr_block": "10.9.0.0/16"})).await.unwrap();
        drop(cloud);
        let cloud = LocalCloud::open(dir.path()).unwrap();
        assert_eq!(cloud.resources("aws:ec2:Vpc").len(), 2);
        assert_eq!(cloud.resources("aws:ec2:Subnet"), before[1]);
        assert!(cloud.resources("aws:ec2:SecurityGroup").is_empty());
        assert_eq!(cloud.images().len(), crate::release::builtin_images().len());
    }

    #[tokio::test]
    async fn an_open_cloud_follows_another_handles_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalCloud::open(dir.path()).unwrap();
        let b = LocalCloud::open(dir.path()).unwrap();
        let net = network(&a).await;
        assert_eq!(b.resources("aws:ec2:Subnet").len(), 2, "b reads what a appended");
        b.delete_out_of_band("aws:ec2:Subnet", &net.subnets[1]).unwrap();
        assert_eq!(a.read("aws:ec2:Subnet", &net.subnets).await.unwrap()[1], None);
        a.compact().unwrap();
        let vpc =
            create(&b, "vpc2", "aws:ec2:Vpc", json!({"cidr_block": "10.9.0.0/16"})).await.unwrap();
        assert_ne!(vpc.physical_id, net.vpc, "b reloaded after a compacted");
        assert_eq!(a.resources("aws:ec2:Vpc").len(), 2);
    }
}
