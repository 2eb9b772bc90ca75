//! The provider interface: what the engine asks of a cloud.
//!
//! A provider creates, reads, updates and deletes resources of the catalog's kinds, reads many
//! resources of one kind in one call, and offers the fleet operations rollouts need. Inputs
//! arrive resolved (references replaced by the outputs they read, secrets by their values) as
//! JSON objects shaped like the kinds' serialized inputs. Errors are classified so the engine
//! knows what to retry.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// Tag keys Graven puts on every resource it creates.
pub mod tags {
    /// The stack's name.
    pub const STACK: &str = "graven:stack";
    /// The resource's logical id.
    pub const ID: &str = "graven:id";
    /// The release (serial) that created or last changed it.
    pub const RELEASE: &str = "graven:release";
    /// The idempotency token of the create that made it.
    pub const TOKEN: &str = "graven:token";
}

/// A request to create one resource.
#[derive(Debug, Clone)]
pub struct Create<'a> {
    /// The resource's logical id.
    pub id: &'a str,
    /// The kind (`aws:ec2:Vpc`).
    pub kind: &'a str,
    /// Resolved inputs.
    pub inputs: &'a Map<String, Json>,
    /// The idempotency token: attached as client token where the API takes one, and always as
    /// the tag [`tags::TOKEN`], so a create that crashed can be found and adopted.
    pub token: &'a str,
    /// Tags to put on the resource besides the inputs' own (`graven:*`).
    pub tags: &'a BTreeMap<String, String>,
}

/// A resource as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The cloud's id of the resource (`vpc-0abc...`).
    pub physical_id: String,
    /// The kind's outputs (`{"id": "vpc-0abc"}`), shaped like its `Outputs` struct.
    pub outputs: Map<String, Json>,
    /// The inputs as observed, for drift detection (the same shape as the kind's inputs,
    /// references resolved; fields the cloud does not report are absent).
    pub inputs: Map<String, Json>,
    /// All tags on the resource.
    pub tags: BTreeMap<String, String>,
}

/// The life-cycle of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InstanceState {
    /// Booting.
    Pending,
    /// Running.
    Running,
    /// Being terminated.
    ShuttingDown,
    /// Gone.
    Terminated,
}

/// The health of an instance as status checks (and target health, where present) report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Health {
    /// Checks still running.
    Initializing,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
}

/// One instance of a fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The instance id.
    pub id: String,
    /// The launch template version it was launched from.
    pub launch_template_version: u64,
    /// The image it runs.
    pub image_id: String,
    /// Its state.
    pub state: InstanceState,
    /// Its health.
    pub health: Health,
}

/// The class of a provider error: it decides whether the engine retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The API said slow down (`RequestLimitExceeded`, `Throttling`): retry with backoff.
    Throttling,
    /// A server-side or transient failure (5xx, timeouts): retry.
    Transient,
    /// Not found just after a create (eventual consistency): retry briefly.
    NotFoundYet,
    /// The resource does not exist.
    NotFound,
    /// The request is wrong (invalid input, dependency violation): do not retry.
    Terminal,
}

impl ErrorKind {
    /// Whether the engine should retry a call that failed this way.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttling | ErrorKind::Transient | ErrorKind::NotFoundYet)
    }
}

/// A failed provider call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{call}: {code}: {message}")]
pub struct Error {
    /// The class of the failure.
    pub kind: ErrorKind,
    /// The API call (`CreateVpc`).
    pub call: String,
    /// The provider's error code (`InvalidParameterValue`).
    pub code: String,
    /// The provider's message.
    pub message: String,
}

impl Error {
    /// A new error.
    pub fn new(
        kind: ErrorKind,
        call: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error { kind, call: call.into(), code: code.into(), message: message.into() }
    }
}

/// The result of a provider call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The API category a call counts against, for rate limiting (AWS meters these separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// `Describe*` calls.
    Describe,
    /// Calls that change a resource.
    Mutate,
    /// Instance launches (`RunInstances`, capacity increases).
    Launch,
}

/// A token bucket: `capacity` calls at once, refilled at `refill_per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// The bucket's size (the burst).
    pub capacity: u32,
    /// Tokens added per second.
    pub refill_per_second: f64,
}

/// A cloud. Implemented by the `local` target and, with the `aws` feature, by the AWS one.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The target's name (`local`, `aws`).
    fn name(&self) -> &str;

    /// Creates a resource; the token and the tags go on it.
    async fn create(&self, request: &Create<'_>) -> Result<Observed>;

    /// Reads many resources of one kind in one call (or a few pages); `None` for each id that
    /// no longer exists. The result has one entry per id, in order.
    async fn read(&self, kind: &str, physical_ids: &[String]) -> Result<Vec<Option<Observed>>>;

    /// Finds a resource created with idempotency token `token` (by token or by tag), so that a
    /// create interrupted by a crash is adopted rather than made twice.
    async fn find_by_token(&self, kind: &str, token: &str) -> Result<Option<Observed>>;

    /// Updates the fields `changed` of a resource in place, `inputs` being the new inputs.
    async fn update(
        &self,
        kind: &str,
        physical_id: &str,
        inputs: &Map<String, Json>,
        changed: &[String],
    ) -> Result<Observed>;

    /// Deletes a resource; deleting one that is already gone succeeds.
    async fn delete(&self, kind: &str, physical_id: &str) -> Result<()>;

    /// The instances of Auto Scaling group `group` (not yet terminated).
    async fn fleet_instances(&self, group: &str) -> Result<Vec<Instance>>;

    /// Sets a group's capacity.
    async fn set_capacity(&self, group: &str, min: u32, desired: u32, max: u32) -> Result<()>;

    /// Terminates instances of a group, lowering its desired capacity by as many when
    /// `decrement` is true (else the group launches replacements).
    async fn terminate_instances(&self, group: &str, ids: &[String], decrement: bool)
    -> Result<()>;

    /// The images this cloud offers, for stacks to pick by version (`release.image(...)`).
    /// The default offers none.
    async fn images(&self) -> Result<Vec<crate::release::ImageRecord>> {
        Ok(Vec::new())
    }

    /// The token bucket AWS applies to a category of calls, which the engine's rate limiter
    /// mirrors; `None` (the default) for no limit.
    fn rate_limit(&self, category: Category) -> Option<RateLimit> {
        let _ = category;
        None
    }

    /// The API category of each call, for the engine's rate limiter.
    fn category(&self, call: &str) -> Category {
        if call.starts_with("Describe") || call.starts_with("read") {
            Category::Describe
        } else {
            Category::Mutate
        }
    }
}
