//! The journal: the steps of a run, one JSON line each, appended as they complete.
//!
//! The first line is a header naming the state the entries apply to (the stack, and the serial
//! and lineage of the state file when the journal was started); every other line is an
//! [`Entry`]:
//!
//! ```text
//! {"journal":1,"stack":"web","serial":41,"lineage":"6f1c..."}
//! {"op":"intent","id":"vpc","kind":"aws:ec2:Vpc","token":"...","started_at":"...","release":42}
//! {"op":"put","id":"vpc",...}
//! {"op":"settle","id":"vpc"}
//! ```
//!
//! Reading tolerates a torn tail (a run killed in the middle of a write, or a power loss that
//! left zeros at the end of the file): lines that do not parse, with no good line after them,
//! are dropped. A bad line followed by a good one is damage, and an error.
//!
//! The header lets a reader tell a journal that belongs to the state file (replay it) from one a
//! save already folded into a newer state file but did not get to delete (ignore it) and from
//! one that belongs to another state altogether, e.g. after a backup was restored (refuse).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::Entry;
use crate::error::{Error, Result};

/// The version of the journal format.
const JOURNAL_VERSION: u32 = 1;

/// The first line of a journal: which state its entries apply to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    /// The journal format's version.
    pub(crate) journal: u32,
    /// The stack.
    pub(crate) stack: String,
    /// The serial of the state file the entries apply on top of; 0 if there was none.
    pub(crate) serial: u64,
    /// Its lineage; `None` if there was no state file.
    pub(crate) lineage: Option<String>,
}

impl Header {
    /// The header of a journal on top of the state file with `serial` and `lineage`.
    pub(crate) fn new(stack: &str, serial: u64, lineage: Option<String>) -> Self {
        Header { journal: JOURNAL_VERSION, stack: stack.to_owned(), serial, lineage }
    }

    /// How a journal with this header relates to a state file whose own header (its stack,
    /// serial and lineage) is `file`.
    pub(crate) fn relation(&self, file: &Header) -> Relation {
        let lineage_differs =
            matches!((&self.lineage, &file.lineage), (Some(a), Some(b)) if a != b);
        if self.stack != file.stack || lineage_differs {
            Relation::Foreign
        } else if self.serial == file.serial {
            Relation::Current
        } else if self.serial < file.serial {
            Relation::Stale
        } else {
            Relation::Foreign
        }
    }
}

/// How a journal relates to a state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    /// It was started on this state file: replay it.
    Current,
    /// It was started on an older serial of the same state, which a save then replaced: the
    /// entries are in the state file already (the save stopped before deleting the journal).
    Stale,
    /// It was started on a newer serial, or on another lineage or stack: the state file was
    /// replaced by something else since (a restored backup, a copied file).
    Foreign,
}

/// A journal as read.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// The header, if the first line is one.
    pub(crate) header: Option<Header>,
    /// The entries, in order.
    pub(crate) entries: Vec<Entry>,
    /// The length of the good part (the torn tail starts there).
    pub(crate) valid_len: usize,
    /// Whether the good part ends without a newline (its last line was complete but the
    /// newline was not written).
    pub(crate) missing_newline: bool,
    /// The 1-based line where a torn tail starts, and its length in bytes.
    pub(crate) torn: Option<(usize, usize)>,
}

/// A line that does not parse but is followed by lines that do: the journal is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadLine {
    /// 1-based.
    pub(crate) line: usize,
    /// The parser's complaint.
    pub(crate) error: String,
}

/// A journal written by a newer Graven.
const NEWER: &str = "written by a newer Graven";

/// Parses a journal. See the module docs for the rules.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, BadLine> {
    let mut parsed = Parsed::default();
    let mut first_bad: Option<(usize, usize, String)> = None; // (line, offset, error)
    let mut offset = 0;
    for (index, raw) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let has_newline = raw.last() == Some(&b'\n');
        let line = if has_newline { &raw[..raw.len() - 1] } else { raw };
        if line.iter().all(u8::is_ascii_whitespace) {
            if first_bad.is_none() {
                parsed.valid_len = offset;
                parsed.missing_newline = false;
            }
            continue;
        }
        let result = if index == 0 {
            match serde_json::from_slice::<Header>(line) {
                Ok(header) if header.journal > JOURNAL_VERSION => Err(format!(
                    "{NEWER} (journal format {}, this one reads up to {JOURNAL_VERSION})",
                    header.journal
                )),
                Ok(header) => {
                    parsed.header = Some(header);
                    Ok(None)
                }
                Err(_) => {
                    serde_json::from_slice::<Entry>(line).map(Some).map_err(|e| e.to_string())
                }
            }
        } else {
            serde_json::from_slice::<Entry>(line).map(Some).map_err(|e| e.to_string())
        };
        match result {
            Ok(entry) => {
                if let Some((line, _, error)) = first_bad {
                    return Err(BadLine { line, error });
                }
                parsed.entries.extend(entry);
                parsed.valid_len = offset;
                parsed.missing_newline = !has_newline;
            }
            Err(error) if error.starts_with(NEWER) => {
                return Err(BadLine { line: index + 1, error });
            }
            Err(error) => {
                if first_bad.is_none() {
                    first_bad = Some((index + 1, start, error));
                }
            }
        }
    }
    if let Some((line, start, _)) = first_bad {
        parsed.valid_len = start;
        parsed.torn = Some((line, bytes.len() - start));
    }
    Ok(parsed)
}

/// An open journal, appended to line by line.
#[derive(Debug)]
pub(crate) struct Writer {
    file: File,
    path: PathBuf,
    durable: bool,
}

impl Writer {
    /// Opens the journal at `path` for appending entries on top of the state file described by
    /// `base`, creating it (with its header) if needed.
    ///
    /// An existing journal is kept if it belongs to `base` (a torn tail is cut off first, so
    /// the next line starts clean); a stale one is started afresh; a foreign or damaged one is
    /// an error (loading the state reports the same).
    pub(crate) fn open(path: &Path, base: &Header, durable: bool) -> Result<Writer> {
        let io = |action, e| Error::io(action, path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io("cannot open the journal", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("cannot read the journal", e))?;
        let parsed = parse(&bytes).map_err(|bad| Error::State {
            path: path.to_owned(),
            message: format!("line {} is damaged ({}); not appending to it", bad.line, bad.error),
        })?;
        let keep = match &parsed.header {
            Some(header) => match header.relation(base) {
                Relation::Current => true,
                Relation::Stale => {
                    tracing::warn!(
                        journal = %path.display(),
                        "discarding a journal already folded into state serial {}",
                        base.serial
                    );
                    false
                }
                Relation::Foreign => {
                    return Err(Error::State {
                        path: path.to_owned(),
                        message: format!(
                            "the journal was started on serial {} of lineage {}, not on the state file (serial {}); \
                             load the state to see what to do",
                            header.serial,
                            header.lineage.as_deref().unwrap_or("(none)"),
                            base.serial
                        ),
                    });
                }
            },
            // Entries without a header (written by hand): keep them; nothing at all: start over.
            None => !parsed.entries.is_empty(),
        };
        let mut writer = Writer { file, path: path.to_owned(), durable };
        if keep {
            if let Some((line, len)) = parsed.torn {
                tracing::warn!(
                    journal = %path.display(),
                    "cutting off a torn journal tail ({len} bytes from line {line}): a run was killed while writing it"
                );
                writer.truncate(parsed.valid_len as u64)?;
            }
            if parsed.missing_newline {
                writer.append(b"\n")?;
            }
        } else {
            writer.truncate(0)?;
            let mut line = serde_json::to_vec(base).map_err(|source| Error::Serialize {
                what: "the journal header".to_owned(),
                source,
            })?;
            line.push(b'\n');
            writer.append(&line)?;
            if durable {
                super::disk::sync_dir(path)?;
            }
        }
        Ok(writer)
    }

    /// Appends `line` (which ends with a newline) with one `write` call. Once it returns, the
    /// line survives the process being killed; with `durable`, it is also on disk (it survives
    /// a power loss).
    pub(crate) fn append(&mut self, line: &[u8]) -> Result<()> {
        self.file
            .write_all(line)
            .map_err(|e| Error::io("cannot append to the journal", &self.path, e))?;
        if self.durable {
            self.file
                .sync_data()
                .map_err(|e| Error::io("cannot sync the journal", &self.path, e))?;
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .and_then(|()| self.file.seek(SeekFrom::End(0)).map(drop))
            .map_err(|e| Error::io("cannot truncate the journal", &self.path, e))
    }
}

/// Serializes `entry` as one journal line (with its newline).
pub(crate) fn line(entry: &Entry) -> Result<Vec<u8>> {
    let mut line = serde_json::to_vec(entry)
        .map_err(|source| Error::Serialize { what: "a journal entry".to_owned(), source })?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::tests::resource;

    fn base(serial: u64) -> Header {
        Header::new("web", serial, Some("L".to_owned()))
    }

    fn journal(lines: &[&[u8]]) -> Vec<u8> {
        lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect()
    }

    fn entry_line(id: &str) -> Vec<u8> {
        let mut line = line(&Entry::Put(resource(id, 1))).unwrap();
        line.pop();
        line
    }

    #[test]
    fn parses_header_and_entries() {
        let header = serde_json::to_vec(&base(3)).unwrap();
        let bytes = journal(&[&header, &entry_line("a"), b"", &entry_line("b")]);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.header, Some(base(3)));
        assert_eq!(parsed.entries.len(), 2);
        assert_eq!(parsed.valid_len, bytes.len());
        assert!(parsed.torn.is_none());
        assert!(!parsed.missing_newline);
    }

    #[test]
    fn torn_tail_is_dropped() {
        let header = serde_json::to_vec(&base(3)).unwrap();
        let good = journal(&[&header, &entry_line("a")]);
        let torn = entry_line("b");
        let mut bytes = good.clone();
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.valid_len, good.len());
        assert_eq!(parsed.torn, Some((3, torn.len() / 2)));
        // Zeros left by a power loss are a torn tail too.
        let mut zeros = good.clone();
        zeros.extend_from_slice(&[0; 100]);
        zeros.push(b'\n');
        zeros.extend_from_slice(&[0; 10]);
        let parsed = parse(&zeros).unwrap();
        assert_eq!(parsed.entries.len(), 1);
        assert_eq!(parsed.valid_len, good.len());
    }

    #[test]
    fn complete_last_line_without_newline_is_kept() {
        let bytes = [entry_line("a"), b"\n".to_vec(), entry_line("b")].concat();
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.entries.len(), 2);
        assert!(parsed.missing_newline);
        assert!(parsed.header.is_none());
    }

    #[test]
    fn bad_middle_line_is_an_error() {
        let bytes = journal(&[&entry_line("a"), b"{\"op\":\"put\",", &entry_line("b")]);
        let bad = parse(&bytes).unwrap_err();
        assert_eq!(bad.line, 2);
    }

    #[test]
    fn newer_journal_is_an_error() {
        let bytes = journal(&[br#"{"journal":2,"stack":"web","serial":1,"lineage":null}"#]);
        let bad = parse(&bytes).unwrap_err();
        assert!(bad.error.contains("newer Graven"), "{}", bad.error);
    }

    #[test]
    fn relations() {
        assert_eq!(base(3).relation(&base(3)), Relation::Current);
        assert_eq!(base(2).relation(&base(3)), Relation::Stale);
        assert_eq!(base(4).relation(&base(3)), Relation::Foreign);
        assert_eq!(Header::new("web", 0, None).relation(&base(1)), Relation::Stale);
        assert_eq!(
            Header::new("web", 0, None).relation(&Header::new("web", 0, None)),
            Relation::Current
        );
        let other = Header::new("web", 3, Some("M".to_owned()));
        assert_eq!(other.relation(&base(3)), Relation::Foreign);
        assert_eq!(
            Header::new("db", 3, Some("L".to_owned())).relation(&base(3)),
            Relation::Foreign
        );
    }

    #[test]
    fn writer_cuts_a_torn_tail_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.journal");
        let header = serde_json::to_vec(&base(3)).unwrap();
        let mut bytes = journal(&[&header, &entry_line("a")]);
        bytes.extend_from_slice(b"{\"op\":\"pu");
        std::fs::write(&path, &bytes).unwrap();
        let mut writer = Writer::open(&path, &base(3), false).unwrap();
        writer.append(&line(&Entry::Remove { id: "a".to_owned() }).unwrap()).unwrap();
        let parsed = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert!(parsed.torn.is_none());
        assert_eq!(parsed.entries.len(), 2);
        assert_eq!(parsed.entries[1], Entry::Remove { id: "a".to_owned() });
    }

    #[test]
    fn writer_restarts_a_stale_journal_and_refuses_a_foreign_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.journal");
        let header = serde_json::to_vec(&base(2)).unwrap();
        std::fs::write(&path, journal(&[&header, &entry_line("a")])).unwrap();
        Writer::open(&path, &base(3), true).unwrap();
        let parsed = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(parsed.header, Some(base(3)));
        assert!(parsed.entries.is_empty());

        let before = std::fs::read(&path).unwrap();
        let err = Writer::open(&path, &base(1), false).unwrap_err();
        assert!(matches!(err, Error::State { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "a foreign journal is left alone");
    }
}
