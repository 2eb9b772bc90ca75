//! The state file format: a checksummed envelope around the state.
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "checksum": "sha256:9f86d081884c7d65...",
//!   "state": {
//!     "format_version": 1,
//!     "lineage": "...",
//!     ...
//!   }
//! }
//! ```
//!
//! The checksum is the SHA-256 of the bytes of the `state` value exactly as they appear in the
//! file, from its `{` to its `}`. Reading locates those bytes with a small scanner over the
//! (already validated) JSON and hashes them; the state is then parsed from the same bytes. No
//! re-serialization is involved, so the check cannot be fooled or broken by how a JSON library
//! prints numbers or orders keys: any change to the state (an edit, a flipped bit, a reformat)
//! fails it, and a change outside it (the envelope) cannot matter.
//!
//! The envelope's `format_version` is read before anything else, so a file from a newer Graven
//! is reported as such rather than as damaged. A file whose `checksum` member was deleted is
//! accepted with a warning: that is how a user who edits the state by hand on purpose tells
//! Graven so (the next save writes a new checksum).

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

use super::model::{FORMAT_VERSION, State};
use crate::error::{Error, Result};

const CHECKSUM_PREFIX: &str = "sha256:";

/// Serializes `state` as a state file: pretty-printed, keys in a stable order, checksummed.
///
/// # Errors
/// [`Error::Serialize`] if the state cannot be serialized (it always can: its maps have string
/// keys).
pub fn encode(state: &State) -> Result<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        format_version: u32,
        checksum: String,
        state: &'a State,
    }
    // Serialize with a placeholder of the checksum's length, then hash the state's bytes as
    // they are in the output and write the checksum over the placeholder.
    let placeholder = format!("{CHECKSUM_PREFIX}{}", "0".repeat(64));
    let envelope = Envelope { format_version: FORMAT_VERSION, checksum: placeholder, state };
    let mut bytes = serde_json::to_vec_pretty(&envelope).map_err(|source| Error::Serialize {
        what: format!("the state of `{}`", state.stack),
        source,
    })?;
    bytes.push(b'\n');
    let slots =
        members(&bytes).and_then(|m| Some((member(&m, b"state")?, member(&m, b"checksum")?)));
    let Some((body, slot)) = slots else {
        // serde_json writes the envelope as an object with both members; this is unreachable.
        return Err(Error::State {
            path: format!("{}.json", state.stack).into(),
            message: "internal error: cannot locate the state in its envelope".to_owned(),
        });
    };
    let sum = format!("\"{CHECKSUM_PREFIX}{}\"", hex(&Sha256::digest(&bytes[body])));
    bytes[slot].copy_from_slice(sum.as_bytes());
    Ok(bytes)
}

/// What is wrong with a state file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Damage {
    /// The JSON ends early.
    Truncated(String),
    /// The JSON is malformed.
    Syntax(String),
    /// Valid JSON, but not a state file's envelope.
    NotState(String),
    /// Written by a newer Graven.
    Newer(u64),
    /// A format version this Graven never wrote.
    UnknownVersion(u64),
    /// The checksum does not match the state's bytes.
    Checksum,
    /// The checksum member is not a `sha256:<hex>` string.
    BadChecksum(String),
    /// The envelope is fine but the state inside does not have the shape of this format.
    Shape(String),
}

impl Damage {
    /// What to do about it, to append to its description; `backup` is the newest backup.
    pub(crate) fn remedy(&self, backup: Option<&std::path::Path>) -> String {
        let mut remedy = match (self, backup) {
            // Upgrading is the remedy, and the description says so.
            (Damage::Newer(_), _) => return String::new(),
            (_, Some(backup)) => format!(
                "; restore `{}` (the newest backup) by copying it over the state file, or fix the file",
                backup.display()
            ),
            (_, None) => {
                "; restore the newest backup over it if there is one, or fix the file by hand"
                    .to_owned()
            }
        };
        if *self == Damage::Checksum {
            remedy.push_str(
                " (if you edited it on purpose, delete its `checksum` line to accept the edit)",
            );
        }
        remedy
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncated(e) => write!(
                f,
                "the file is truncated ({e}): it was cut short, e.g. by a full disk or an interrupted copy"
            ),
            Damage::Syntax(e) => {
                write!(f, "the file is not valid JSON ({e}): it was edited or damaged")
            }
            Damage::NotState(e) => write!(f, "the file is not a Graven state file ({e})"),
            Damage::Newer(v) => write!(
                f,
                "written by a newer Graven (format {v}, this one reads up to {FORMAT_VERSION}): upgrade Graven; do not edit the file"
            ),
            Damage::UnknownVersion(v) => write!(
                f,
                "unknown format version {v} (this Graven reads 1 to {FORMAT_VERSION}): the file was edited or damaged"
            ),
            Damage::Checksum => {
                write!(f, "checksum mismatch: the file was edited or damaged since Graven wrote it")
            }
            Damage::BadChecksum(c) => write!(
                f,
                "the checksum `{c}` is not of the form `sha256:<64 hex digits>`: the file was edited or damaged"
            ),
            Damage::Shape(e) => write!(
                f,
                "the state does not have the shape of format {FORMAT_VERSION} ({e}): the file was edited or damaged"
            ),
        }
    }
}

/// Reads a state file written by [`encode`]. `source` names the file in errors.
///
/// # Errors
/// [`Error::State`] if the file is truncated, malformed, fails its checksum, or was written by
/// a newer Graven; the message says which, and what to do.
pub fn decode(bytes: &[u8], source: &std::path::Path) -> Result<State> {
    decode_checked(bytes).map_err(|damage| Error::State {
        path: source.to_owned(),
        message: format!("{damage}{}", damage.remedy(None)),
    })
}

/// [`decode`], with the damage kept structured so the caller can word the remedy.
pub(crate) fn decode_checked(bytes: &[u8]) -> Result<State, Damage> {
    #[derive(Deserialize)]
    struct Head {
        format_version: Option<serde_json::Value>,
        checksum: Option<serde_json::Value>,
        state: Option<IgnoredAny>,
    }
    // Parse the whole file first: it validates the JSON, so the scanner below can trust it.
    let head: Head = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            Damage::Truncated(e.to_string())
        } else if e.is_syntax() {
            Damage::Syntax(e.to_string())
        } else {
            Damage::NotState(e.to_string())
        }
    })?;
    let version = match head.format_version {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        None => return Err(Damage::NotState("it has no `format_version`".to_owned())),
        Some(_) => None,
    }
    .ok_or_else(|| Damage::NotState("`format_version` is not a number".to_owned()))?;
    if version > u64::from(FORMAT_VERSION) {
        return Err(Damage::Newer(version));
    }
    if version == 0 {
        return Err(Damage::UnknownVersion(version));
    }
    if head.state.is_none() {
        return Err(Damage::NotState("it has no `state`".to_owned()));
    }
    let members =
        members(bytes).ok_or_else(|| Damage::NotState("it is not a JSON object".to_owned()))?;
    if members.iter().filter(|(key, _)| *key == b"state").count() > 1 {
        return Err(Damage::NotState("it has two `state` members".to_owned()));
    }
    let body = member(&members, b"state")
        .ok_or_else(|| Damage::NotState("its `state` key is escaped".to_owned()))?;
    let body = &bytes[body];
    match head.checksum {
        None => tracing::warn!(
            "the state file has no checksum (removed to accept a manual edit); it gets a new one when it is next saved"
        ),
        Some(serde_json::Value::String(text)) => {
            let expected = text
                .strip_prefix(CHECKSUM_PREFIX)
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| Damage::BadChecksum(text.clone()))?;
            if !expected.eq_ignore_ascii_case(&hex(&Sha256::digest(body))) {
                return Err(Damage::Checksum);
            }
        }
        Some(other) => return Err(Damage::BadChecksum(other.to_string())),
    }
    let state: State = serde_json::from_slice(body).map_err(|e| Damage::Shape(e.to_string()))?;
    if u64::from(state.format_version) != version {
        return Err(Damage::Shape(format!(
            "the envelope says format {version} but the state says {}",
            state.format_version
        )));
    }
    Ok(state)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn member(members: &[(&[u8], Range<usize>)], key: &[u8]) -> Option<Range<usize>> {
    members.iter().find(|(k, _)| *k == key).map(|(_, range)| range.clone())
}

/// The members of the top-level JSON object in `b`: each key's raw bytes (between the quotes,
/// escapes left as they are) and the byte range of its value. `b` must be valid JSON (parse it
/// first); returns `None` if it is not an object.
fn members(b: &[u8]) -> Option<Vec<(&[u8], Range<usize>)>> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => return Some(out),
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(b, i)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i)? != &b':' {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = skip_value(b, start)?;
        out.push((key, start..end));
        i = end;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index just past the string starting (with its quote) at `i`.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The index just past the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                j += 1;
            }
            Some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::tests::resource;
    use crate::state::model::{Entry, Outcome};
    use serde_json::json;

    fn sample() -> State {
        let mut state = State::new("web");
        state.serial = 7;
        state.apply(&Entry::Put(resource("vpc", 1)));
        let mut odd = resource("odd \"quoted\" {id}", 1);
        odd.outputs.insert("ratio".to_owned(), json!(0.1 + 0.2));
        state.apply(&Entry::Put(odd));
        state.apply(&Entry::Release(crate::state::model::tests::release(1, Outcome::Succeeded)));
        state
    }

    #[test]
    fn round_trip() {
        let state = sample();
        let bytes = encode(&state).unwrap();
        assert_eq!(decode_checked(&bytes).unwrap(), state);
        assert_eq!(encode(&state).unwrap(), bytes, "encoding is deterministic");
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("{\n  \"format_version\": 1,\n  \"checksum\": \"sha256:"),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
        assert!(!text.contains(&"0".repeat(64)), "the placeholder was replaced");
    }

    #[test]
    fn checksum_does_not_depend_on_how_floats_parse() {
        // serde_json's default float parser is not exact for every float (this one reads back
        // one unit in the last place off), so a checksum over re-serialized values would fail
        // on a file Graven itself wrote. Hashing the bytes as written does not.
        let mut state = sample();
        let tiny = json!(1.234_567_890_123_456_7e-300);
        state.resources.get_mut("vpc").unwrap().outputs.insert("tiny".to_owned(), tiny);
        let bytes = encode(&state).unwrap();
        let back = decode_checked(&bytes).unwrap();
        assert_eq!(back.resources.len(), 2);
    }

    #[test]
    fn checksum_covers_the_state_bytes() {
        let bytes = encode(&sample()).unwrap();
        let members = members(&bytes).unwrap();
        let body = member(&members, b"state").unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let sum = hex(&Sha256::digest(&bytes[body]));
        assert!(text.contains(&format!("\"sha256:{sum}\"")));
    }

    #[test]
    fn an_edit_fails_the_checksum() {
        let text = String::from_utf8(encode(&sample()).unwrap()).unwrap();
        let edited = text.replacen("vpc-vpc", "vpc-vpd", 1);
        assert_ne!(edited, text);
        assert_eq!(decode_checked(edited.as_bytes()), Err(Damage::Checksum));
        // Whitespace inside the state counts too: the checksum is over the exact bytes.
        let reformatted = text.replacen("\"serial\": 7", "\"serial\":7", 1);
        assert_eq!(decode_checked(reformatted.as_bytes()), Err(Damage::Checksum));
    }

    #[test]
    fn a_removed_checksum_accepts_an_edit() {
        let text = String::from_utf8(encode(&sample()).unwrap()).unwrap();
        let start = text.find("  \"checksum\"").unwrap();
        let end = start + text[start..].find('\n').unwrap() + 1;
        let edited =
            format!("{}{}", &text[..start], &text[end..]).replacen("vpc-vpc", "vpc-new", 1);
        let state = decode_checked(edited.as_bytes()).unwrap();
        assert_eq!(state.resource("vpc").unwrap().physical_id, "vpc-new");
    }

    #[test]
    fn damage_is_classified() {
        let bytes = encode(&sample()).unwrap();
        assert!(matches!(decode_checked(&bytes[..bytes.len() / 2]), Err(Damage::Truncated(_))));
        assert!(matches!(decode_checked(b"{\"format_version\": 1,, }"), Err(Damage::Syntax(_))));
        assert!(matches!(decode_checked(b"[1, 2]"), Err(Damage::NotState(_))));
        assert!(matches!(decode_checked(b"{\"state\": {}}"), Err(Damage::NotState(_))));
        let newer = String::from_utf8(bytes.clone()).unwrap().replacen(
            "\"format_version\": 1",
            "\"format_version\": 3",
            1,
        );
        assert_eq!(decode_checked(newer.as_bytes()), Err(Damage::Newer(3)));
        let bad = String::from_utf8(bytes).unwrap().replacen("sha256:", "md5:", 1);
        assert!(matches!(decode_checked(bad.as_bytes()), Err(Damage::BadChecksum(_))));
    }

    #[test]
    fn decode_error_names_the_remedy() {
        let path = std::path::Path::new(".graven/state/web.json");
        let err = decode(b"{\"format_version\": 9, \"state\": {}}", path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("format 9, this one reads up to 1"), "{text}");
        assert!(text.contains("upgrade Graven"), "{text}");
        assert!(!text.contains("backup"), "{text}");
    }

    #[test]
    fn scanner_finds_members_around_tricky_strings() {
        let doc = br#" { "a" : "x\"}{" , "b":[1,{"c":"]"}], "n": -1.5e3 ,"state":{"k":"\\"}}"#;
        serde_json::from_slice::<serde_json::Value>(doc).unwrap();
        let m = members(doc).unwrap();
        let keys: Vec<&[u8]> = m.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"n", b"state"]);
        assert_eq!(&doc[m[0].1.clone()], br#""x\"}{""#);
        assert_eq!(&doc[m[1].1.clone()], br#"[1,{"c":"]"}]"#);
        assert_eq!(&doc[m[2].1.clone()], b"-1.5e3");
        assert_eq!(&doc[m[3].1.clone()], br#"{"k":"\\"}"#);
    }
}
