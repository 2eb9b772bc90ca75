//! The S3 state store: a team's stack state in a bucket, locked by conditional writes.
//!
//! Layout under `s3://bucket/prefix/`:
//!
//! | Object | What |
//! |---|---|
//! | `<stack>.json` | the state, in the same checksummed format as the local store's file |
//! | `<stack>.<serial>.json.bak` | the state as it was at `serial`, before a save replaced it; the last 10 are kept |
//! | `<stack>.lock` | the lock, while a run holds it: who, since when, and until when its lease runs |
//!
//! - **Locking**: the lock is created with `PutObject` and `If-None-Match: *`, so of two runs
//!   racing for it exactly one succeeds. It carries a lease (`expires_at`): a lock whose lease
//!   ran out is broken by the next run that wants it (its holder died without unlocking). A
//!   run renews its lease whenever it records or saves once half of it has passed.
//!   [`Store::force_unlock`] removes any lock.
//! - **Writes are conditional**: the state object is written with `If-Match: <ETag>` of the
//!   version this store last read or wrote (or `If-None-Match: *` for a new stack). If another
//!   run wrote it meanwhile (a forced unlock, an expired lease), the write fails with
//!   [`Error::State`] and nothing is overwritten.
//! - **Journal**: S3 has no append, so [`Store::record`] applies the entry to the state this
//!   store loaded and writes the whole state object (same serial; [`Store::save`] bumps it).
//!   A run killed between two steps leaves a state object holding every step it recorded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::aws::provider::Config;
use crate::aws::provider::errors::failure;
use crate::error::{Error, Result};
use crate::state::{Entry, LockInfo, State, Store, decode, encode};

/// How many backups of old serials a save keeps.
pub const KEEP_BACKUPS: usize = 10;

/// The lock object: the holder and its lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockObject {
    #[serde(flatten)]
    info: LockInfo,
    /// When the lease runs out (RFC 3339); after that, another run may break the lock.
    expires_at: String,
}

impl LockObject {
    fn expired(&self, now: SystemTime) -> bool {
        humantime::parse_rfc3339(&self.expires_at).is_ok_and(|t| t <= now)
    }
}

/// What the store remembers of a stack between calls.
#[derive(Debug, Default)]
struct Inner {
    /// The state as last loaded, recorded on, or saved, and the `ETag` of that object (`None`:
    /// there is no object yet).
    states: HashMap<String, (Option<State>, Option<String>)>,
    /// Locks this store holds: the lock, the `ETag` of its object, when its lease was renewed.
    locks: HashMap<String, (LockInfo, String, SystemTime)>,
    /// Stacks whose last load failed, and why: saving and recording refuse for them.
    damaged: HashMap<String, String>,
}

/// A [`Store`] that keeps state in S3. See the module docs for the layout and the locking.
///
/// ```no_run
/// use graven::aws::s3_state::S3Store;
/// use graven::state::Store;
///
/// # async fn run() -> graven::Result<()> {
/// let store = S3Store::from_url("s3://my-team-state/graven").await?;
/// let lock = store.lock("web", "apply").await?;
/// let state = store.load("web").await?;
/// // ... apply, recording each step with `store.record`, then `store.save` ...
/// store.unlock("web", &lock).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    lease: Duration,
    inner: Mutex<Inner>,
    /// Serializes this store's writes of state and lock objects: each write is conditional on
    /// the `ETag` the previous one returned, so two steps recorded at once must not race.
    writes: tokio::sync::Mutex<()>,
}

/// `s3://bucket/prefix` as bucket and prefix (without slashes at either end).
fn parse_url(url: &str) -> Result<(String, String)> {
    let bad = |why: &str| Error::State {
        path: PathBuf::from(url),
        message: format!("not an S3 state location ({why}); write `s3://bucket/prefix`"),
    };
    let rest = url.strip_prefix("s3://").ok_or_else(|| bad("it does not start with `s3://`"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("the bucket is missing"));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// Whether an S3 error code says a conditional write lost.
fn is_precondition(code: &str) -> bool {
    code == "PreconditionFailed"
        || code == "ConditionalRequestConflict"
        || code == "412"
        || code == "409"
}

impl S3Store {
    /// A store at `s3://bucket/prefix`, configured by aws-config's standard chain (as
    /// [`AwsProvider::from_env`](crate::aws::provider::AwsProvider::from_env)).
    ///
    /// # Errors
    /// [`Error::State`] if `url` is not `s3://bucket[/prefix]`; [`Error::Provider`] if no
    /// region is configured.
    pub async fn from_url(url: &str) -> Result<S3Store> {
        S3Store::from_url_with(url, &Config::default()).await
    }

    /// A store at `url` with the chain's settings overridden by `config`.
    ///
    /// # Errors
    /// As [`S3Store::from_url`].
    pub async fn from_url_with(url: &str, config: &Config) -> Result<S3Store> {
        let (bucket, prefix) = parse_url(url)?;
        let sdk = config.load().await?;
        // An emulator (any endpoint override) serves buckets by path, not by host name, and
        // may not know the SDK's default request checksums.
        let emulated =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let mut s3 = aws_sdk_s3::config::Builder::from(&sdk);
        if emulated {
            s3 = s3.force_path_style(true).request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            );
        }
        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(s3.build()),
            bucket,
            prefix,
            lease: Duration::from_secs(3600),
            inner: Mutex::new(Inner::default()),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Sets how long a lock stays valid without renewal (default one hour). A run renews it
    /// each time it records a step or saves, once half the lease has passed.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key of `name` under the prefix.
    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_owned() } else { format!("{}/{name}", self.prefix) }
    }

    fn url(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("s3://{}/{}", self.bucket, self.key(name)))
    }

    fn state_name(stack: &str) -> String {
        format!("{stack}.json")
    }

    fn lock_name(stack: &str) -> String {
        format!("{stack}.lock")
    }

    fn backup_name(stack: &str, serial: u64) -> String {
        format!("{stack}.{serial}.json.bak")
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_stack(&self, stack: &str) -> Result<()> {
        let ok = !stack.is_empty()
            && stack.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !stack.starts_with('.');
        if ok {
            Ok(())
        } else {
            Err(Error::State {
                path: self.url(&Self::state_name(stack)),
                message: format!("`{stack}` is not a stack name; use letters, digits and `-_.`"),
            })
        }
    }

    /// An S3 error as [`Error::State`].
    fn s3_error<E>(
        &self,
        call: &str,
        name: &str,
        err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Error
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (_, code, message) = failure(err);
        Error::State { path: self.url(name), message: format!("{call} failed: {code}: {message}") }
    }

    /// Reads an object: its bytes and `ETag`, or `None` if there is none.
    async fn get(&self, name: &str) -> Result<Option<(Vec<u8>, String)>> {
        let out =
            match self.client.get_object().bucket(&self.bucket).key(self.key(name)).send().await {
                Ok(out) => out,
                Err(e) => {
                    let (_, code, _) = failure(&e);
                    if code == "NoSuchKey" || code == "NotFound" || code == "HTTP 404" {
                        return Ok(None);
                    }
                    return Err(self.s3_error("GetObject", name, &e));
                }
            };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::State {
                path: self.url(name),
                message: format!("GetObject failed while reading the body: {e}"),
            })?
            .into_bytes()
            .to_vec();
        Ok(Some((bytes, etag)))
    }

    /// Writes an object under a condition: `If-Match: etag`, or `If-None-Match: *` when `etag`
    /// is `None`. `Ok(None)` when the condition failed; else the new `ETag`.
    async fn put_if(
        &self,
        name: &str,
        bytes: Vec<u8>,
        etag: Option<&str>,
    ) -> Result<Option<String>> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .content_type("application/json")
            .body(ByteStream::from(bytes));
        request = match etag {
            Some(e) => request.if_match(e),
            None => request.if_none_match("*"),
        };
        match request.send().await {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_owned())),
            Err(e) => {
                let (_, code, _) = failure(&e);
                if is_precondition(&code)
                    || code == "HTTP 412"
                    || code == "HTTP 409"
                    || (etag.is_some() && (code == "NoSuchKey" || code == "HTTP 404"))
                {
                    Ok(None)
                } else {
                    Err(self.s3_error("PutObject", name, &e))
                }
            }
        }
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .content_type("application/json")
            .body(ByteStream::from(bytes));
        request.send().await.map(drop).map_err(|e| self.s3_error("PutObject", name, &e))
    }

    async fn delete_object(&self, name: &str, etag: Option<&str>) -> Result<bool> {
        let request = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .set_if_match(etag.map(str::to_owned));
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let (_, code, _) = failure(&e);
                if is_precondition(&code)
                    || code == "HTTP 412"
                    || code == "NoSuchKey"
                    || code == "HTTP 404"
                {
                    Ok(false)
                } else {
                    Err(self.s3_error("DeleteObject", name, &e))
                }
            }
        }
    }

    async fn read_lock(&self, stack: &str) -> Result<Option<(LockObject, String)>> {
        let name = Self::lock_name(stack);
        let Some((bytes, etag)) = self.get(&name).await? else {
            return Ok(None);
        };
        let lock = serde_json::from_slice(&bytes).map_err(|e| Error::State {
            path: self.url(&name),
            message: format!("the lock object is damaged ({e}); if no run is active, remove it with `state unlock --force`"),
        })?;
        Ok(Some((lock, etag)))
    }

    fn decode_state(&self, stack: &str, bytes: &[u8]) -> Result<State> {
        let path = self.url(&Self::state_name(stack));
        let state = decode(bytes, &path)?;
        if state.stack != stack {
            return Err(Error::State {
                path,
                message: format!(
                    "the object holds the state of stack `{}`, not `{stack}`: it was renamed or copied",
                    state.stack
                ),
            });
        }
        Ok(state)
    }

    /// Renews the lease of the lock this store holds on `stack` once half of it has passed.
    async fn renew(&self, stack: &str) -> Result<()> {
        let held = self.inner().locks.get(stack).cloned();
        let Some((info, etag, renewed)) = held else {
            return Ok(());
        };
        let now = SystemTime::now();
        if now.duration_since(renewed).unwrap_or_default() < self.lease / 2 {
            return Ok(());
        }
        let object = LockObject {
            info: info.clone(),
            expires_at: crate::state::timestamp(now + self.lease),
        };
        let bytes = serde_json::to_vec_pretty(&object)
            .map_err(|source| Error::Serialize { what: "a lock".into(), source })?;
        match self.put_if(&Self::lock_name(stack), bytes, Some(&etag)).await? {
            Some(new) => {
                self.inner().locks.insert(stack.to_owned(), (info, new, now));
                Ok(())
            }
            None => Err(Error::State {
                path: self.url(&Self::lock_name(stack)),
                message: format!(
                    "this run lost the lock of stack `{stack}` ({}): it was forced or its lease ran out and another run took it; stopping",
                    info.id
                ),
            }),
        }
    }

    /// Writes the state object over the version this store knows of.
    async fn write_state(&self, state: &State, etag: Option<&str>) -> Result<String> {
        let stack = state.stack.as_str();
        let name = Self::state_name(stack);
        let bytes = encode(state)?;
        self.put_if(&name, bytes, etag).await?.ok_or_else(|| Error::State {
            path: self.url(&name),
            message: "state changed since it was read: another run wrote it meanwhile (was its lock forced, or its lease \
                      expired?). Nothing was written: run again to start from the current state"
                .to_owned(),
        })
    }

    fn refuse_if_damaged(&self, stack: &str) -> Result<()> {
        if let Some(reason) = self.inner().damaged.get(stack) {
            return Err(Error::State {
                path: self.url(&Self::state_name(stack)),
                message: format!(
                    "refusing to write: loading this state failed ({reason}); repair or restore it, then run again"
                ),
            });
        }
        Ok(())
    }

    /// Deletes backups beyond the newest [`KEEP_BACKUPS`].
    async fn prune(&self, stack: &str) -> Result<()> {
        let serials = self.backups(stack).await?;
        if serials.len() <= KEEP_BACKUPS {
            return Ok(());
        }
        for serial in &serials[..serials.len() - KEEP_BACKUPS] {
            self.delete_object(&Self::backup_name(stack, *serial), None).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for S3Store {
    fn describe(&self, stack: &str) -> String {
        format!("`{}`", self.url(&Self::state_name(stack)).display())
    }

    async fn load(&self, stack: &str) -> Result<Option<State>> {
        self.check_stack(stack)?;
        let result = match self.get(&Self::state_name(stack)).await {
            Ok(Some((bytes, etag))) => {
                self.decode_state(stack, &bytes).map(|s| (Some(s), Some(etag)))
            }
            Ok(None) => Ok((None, None)),
            Err(e) => Err(e),
        };
        let mut inner = self.inner();
        match result {
            Ok((state, etag)) => {
                inner.damaged.remove(stack);
                inner.states.insert(stack.to_owned(), (state.clone(), etag));
                Ok(state)
            }
            Err(e) => {
                inner.damaged.insert(stack.to_owned(), e.to_string());
                Err(e)
            }
        }
    }

    async fn save(&self, state: &State) -> Result<State> {
        let stack = state.stack.as_str();
        self.check_stack(stack)?;
        self.refuse_if_damaged(stack)?;
        let _writing = self.writes.lock().await;
        self.renew(stack).await?;
        let known = self.inner().states.get(stack).cloned();
        let (current, etag) = if let Some(k) = known {
            k
        } else {
            // Not loaded by this store: read what is there to know what to overwrite.
            self.load(stack).await?;
            self.inner().states.get(stack).cloned().unwrap_or((None, None))
        };
        let name = Self::state_name(stack);
        match &current {
            None if state.serial != 0 => {
                return Err(Error::State {
                    path: self.url(&name),
                    message: format!(
                        "state changed since it was read: this run read serial {}, and the object is gone; nothing was written",
                        state.serial
                    ),
                });
            }
            // Serial 0 holds only steps recorded before the first save (their lineage is the
            // store's own); from the first save on, the lineage must match.
            Some(c)
                if c.serial != state.serial || (c.serial != 0 && c.lineage != state.lineage) =>
            {
                return Err(Error::State {
                    path: self.url(&name),
                    message: format!(
                        "state changed since it was read: this run read serial {} (lineage {}), the store has serial {} (lineage {}); nothing was written",
                        state.serial, state.lineage, c.serial, c.lineage
                    ),
                });
            }
            _ => {}
        }
        if let Some(c) = &current {
            // The object as it is now (this store wrote or read it last: the write below checks that).
            self.put(&Self::backup_name(stack, c.serial), encode(c)?).await?;
        }
        let mut saved = state.clone();
        saved.serial += 1;
        saved.format_version = crate::state::FORMAT_VERSION;
        let new = self.write_state(&saved, etag.as_deref()).await?;
        self.inner().states.insert(stack.to_owned(), (Some(saved.clone()), Some(new)));
        if let Err(e) = self.prune(stack).await {
            tracing::warn!(error = %e, "could not delete old state backups");
        }
        Ok(saved)
    }

    async fn record(&self, stack: &str, entry: &Entry) -> Result<()> {
        self.check_stack(stack)?;
        self.refuse_if_damaged(stack)?;
        let _writing = self.writes.lock().await;
        self.renew(stack).await?;
        if !self.inner().states.contains_key(stack) {
            self.load(stack).await?;
        }
        let (mut state, etag) = self.inner().states.get(stack).cloned().unwrap_or((None, None));
        let mut next = state.take().unwrap_or_else(|| State::new(stack));
        next.apply(entry);
        let new = self.write_state(&next, etag.as_deref()).await?;
        self.inner().states.insert(stack.to_owned(), (Some(next), Some(new)));
        Ok(())
    }

    async fn lock(&self, stack: &str, operation: &str) -> Result<LockInfo> {
        self.check_stack(stack)?;
        let name = Self::lock_name(stack);
        for _ in 0..3 {
            let info = LockInfo::new(operation);
            let now = SystemTime::now();
            let object = LockObject {
                info: info.clone(),
                expires_at: crate::state::timestamp(now + self.lease),
            };
            let bytes = serde_json::to_vec_pretty(&object)
                .map_err(|source| Error::Serialize { what: "a lock".into(), source })?;
            if let Some(etag) = self.put_if(&name, bytes, None).await? {
                self.inner().locks.insert(stack.to_owned(), (info.clone(), etag, now));
                return Ok(info);
            }
            match self.read_lock(stack).await? {
                // Released between our write and our read: try again.
                None => {}
                Some((holder, etag)) if holder.expired(now) => {
                    tracing::warn!(stack, holder = %holder.info, expired = %holder.expires_at, "breaking a lock whose lease ran out");
                    self.delete_object(&name, Some(&etag)).await?;
                }
                Some((holder, _)) => {
                    return Err(Error::Locked {
                        stack: stack.to_owned(),
                        holder: format!("{} (lease until {})", holder.info, holder.expires_at),
                    });
                }
            }
        }
        Err(Error::Locked {
            stack: stack.to_owned(),
            holder: "a run that keeps re-taking it".to_owned(),
        })
    }

    async fn unlock(&self, stack: &str, lock: &LockInfo) -> Result<()> {
        let name = Self::lock_name(stack);
        let message = match self.read_lock(stack).await? {
            Some((holder, etag)) if holder.info.id == lock.id => {
                if self.delete_object(&name, Some(&etag)).await? {
                    self.inner().locks.remove(stack);
                    return Ok(());
                }
                format!(
                    "cannot unlock stack `{stack}`: the lock changed while unlocking; check it with `state lock`"
                )
            }
            Some((holder, _)) => format!(
                "cannot unlock stack `{stack}`: the lock is held by {}, not by this run ({}); this run's lock was forced or expired and another run took it; leaving that lock in place",
                holder.info, lock.id
            ),
            None => format!(
                "cannot unlock stack `{stack}`: it is not locked; this run's lock {} was force-unlocked while it ran, so check the state for changes made by another run",
                lock.id
            ),
        };
        self.inner().locks.remove(stack);
        Err(Error::State { path: self.url(&name), message })
    }

    async fn lock_info(&self, stack: &str) -> Result<Option<LockInfo>> {
        Ok(self.read_lock(stack).await?.map(|(l, _)| l.info))
    }

    async fn force_unlock(&self, stack: &str) -> Result<Option<LockInfo>> {
        let name = Self::lock_name(stack);
        let holder = match self.read_lock(stack).await {
            Ok(h) => h.map(|(l, _)| l.info),
            Err(e) => {
                tracing::warn!(error = %e, "removing a damaged lock");
                None
            }
        };
        self.delete_object(&name, None).await?;
        self.inner().locks.remove(stack);
        Ok(holder)
    }

    async fn backups(&self, stack: &str) -> Result<Vec<u64>> {
        let head = self.key(&format!("{stack}."));
        let mut serials = Vec::new();
        let mut next = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&head)
                .set_continuation_token(next.take())
                .send()
                .await
                .map_err(|e| self.s3_error("ListObjectsV2", &format!("{stack}.*.json.bak"), &e))?;
            for o in out.contents() {
                let serial = o
                    .key()
                    .and_then(|k| k.strip_prefix(&head))
                    .and_then(|k| k.strip_suffix(".json.bak"))
                    .and_then(|s| s.parse::<u64>().ok());
                serials.extend(serial);
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => next = Some(t.to_owned()),
                _ => break,
            }
        }
        serials.sort_unstable();
        Ok(serials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(parse_url("s3://b/p/q/").unwrap(), ("b".to_owned(), "p/q".to_owned()));
        assert_eq!(parse_url("s3://b").unwrap(), ("b".to_owned(), String::new()));
        assert!(parse_url("https://b/p").is_err());
        assert!(parse_url("s3:///p").is_err());
    }

    #[test]
    fn leases_expire() {
        let info = LockInfo::new("apply");
        let now = SystemTime::now();
        let lock =
            LockObject { info, expires_at: crate::state::timestamp(now + Duration::from_secs(60)) };
        assert!(!lock.expired(now));
        assert!(lock.expired(now + Duration::from_secs(61)));
        let json = serde_json::to_value(&lock).unwrap();
        assert!(json.get("id").is_some() && json.get("expires_at").is_some(), "flat: {json}");
    }
}
