//! The AWS target: [`AwsProvider`] implements [`Provider`] on aws-sdk-ec2 and
//! aws-sdk-autoscaling.
//!
//! Configuration comes from aws-config's standard chain (environment, profiles, SSO, IMDS), so
//! `AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL` and the per-service endpoint variables
//! (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL_AUTO_SCALING`) work as they do for the AWS CLI.
//! [`Config`] overrides any of it in code (tests pointing at `moto_server` use it).
//!
//! ## What the provider does for each call
//! - **Create**: one create call with the inputs' tags, the request's `graven:*` tags and the
//!   token tag `graven:token` attached at creation (`TagSpecifications`, or the group's tags
//!   with `PropagateAtLaunch`), the token as `ClientToken` where the API takes one, then the
//!   follow-up calls the kind needs (attach, associate, authorize rules). Follow-ups are retried
//!   while AWS is eventually consistent; if one fails for good, the half-made resource is
//!   deleted and the error returned.
//! - **Read**: one `Describe*` call per kind for many ids (filters by id, in chunks, following
//!   `NextToken`), never one per resource.
//! - **Update**: in place where AWS allows it (tags, rules, routes, associations, attributes,
//!   a new launch template version, group capacity); the result is read back.
//! - **Delete**: waits for what dependants need (an instance terminated, a group and its
//!   instances gone); deleting what is already gone succeeds.
//!
//! Every SDK call is counted by name: [`AwsProvider::api_calls`].

mod autoscaling;
mod ec2;
pub(crate) mod errors;
mod fleet;
mod image;
mod launch_template;
mod security_group;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};

use crate::provider::{
    self, Category, Create, ErrorKind, Instance, Observed, Provider, RateLimit, tags,
};

/// The kinds of the catalog, as the provider dispatches on them.
pub(crate) mod kinds {
    pub(crate) const VPC: &str = "aws:ec2:Vpc";
    pub(crate) const SUBNET: &str = "aws:ec2:Subnet";
    pub(crate) const INTERNET_GATEWAY: &str = "aws:ec2:InternetGateway";
    pub(crate) const ROUTE_TABLE: &str = "aws:ec2:RouteTable";
    pub(crate) const SECURITY_GROUP: &str = "aws:ec2:SecurityGroup";
    pub(crate) const LAUNCH_TEMPLATE: &str = "aws:ec2:LaunchTemplate";
    pub(crate) const INSTANCE: &str = "aws:ec2:Instance";
    pub(crate) const IMAGE: &str = "aws:ec2:Image";
    pub(crate) const AUTO_SCALING_GROUP: &str = "aws:autoscaling:AutoScalingGroup";
}

/// How to reach AWS: region, endpoint, credentials and the provider's waits. Unset fields come
/// from aws-config's standard chain.
///
/// ```no_run
/// # async fn run() -> graven::Result<()> {
/// use graven::aws::provider::{AwsProvider, Config};
/// let provider = AwsProvider::new(
///     &Config::default().region("eu-west-2").endpoint_url("http://127.0.0.1:5000"),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Config {
    region: Option<String>,
    endpoint_url: Option<String>,
    credentials: Option<(String, String)>,
    session_token: Option<String>,
    profile: Option<String>,
    max_attempts: Option<u32>,
    poll_interval: Duration,
    wait_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: None,
            endpoint_url: None,
            credentials: None,
            session_token: None,
            profile: None,
            max_attempts: None,
            poll_interval: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl Config {
    /// The region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, IMDS).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// One endpoint for every service (default: `AWS_ENDPOINT_URL` and the per-service
    /// variables). Point it at an emulator: `http://127.0.0.1:5000`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Static credentials instead of the chain (for emulators and tests).
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// The session token that goes with temporary [`Config::static_credentials`] (from STS);
    /// an empty token is none.
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// The profile of `~/.aws/config` to use (default: `AWS_PROFILE`, else `default`).
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// How many times the SDK tries a call that was throttled or failed transiently, with
    /// exponential backoff (default: the SDK's standard mode, 3, or `AWS_MAX_ATTEMPTS`). The
    /// engine retries on top of this, for whole steps.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// How often the provider polls while it waits (an instance terminated, a group gone,
    /// an image available). Default 5 s.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long the provider waits for one resource before it gives up. Default 30 minutes
    /// (copying an image can take that long).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Loads the SDK's configuration: the standard chain, then these overrides.
    pub(crate) async fn load(&self) -> crate::Result<aws_config::SdkConfig> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some((key, secret)) = &self.credentials {
            loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                key.clone(),
                secret.clone(),
                self.session_token.clone(),
                None,
                "graven-static",
            ));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile.clone());
        }
        if let Some(n) = self.max_attempts {
            loader = loader
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(n));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(crate::Error::Provider {
                resource: "aws".into(),
                call: "configure".into(),
                message: "no AWS region is configured; set AWS_REGION (or `region` in the profile of ~/.aws/config)".into(),
            });
        }
        Ok(config)
    }
}

/// The AWS target.
///
/// Cheap to clone: clones share the SDK clients and the call counters.
#[derive(Debug, Clone)]
pub struct AwsProvider {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) asg: aws_sdk_autoscaling::Client,
    region: String,
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
    poll_interval: Duration,
    wait_timeout: Duration,
}

impl AwsProvider {
    /// A provider configured by aws-config's standard chain: credentials from the environment,
    /// profiles, SSO or IMDS; the region from `AWS_REGION` or the profile; endpoints from
    /// `AWS_ENDPOINT_URL` and the per-service variables.
    ///
    /// # Errors
    /// [`crate::Error::Provider`] if no region is configured. Credentials are resolved at the
    /// first call, so missing credentials show up there.
    pub async fn from_env() -> crate::Result<AwsProvider> {
        AwsProvider::new(&Config::default()).await
    }

    /// A provider with the chain's settings overridden by `config`.
    ///
    /// # Errors
    /// [`crate::Error::Provider`] if no region is configured.
    pub async fn new(config: &Config) -> crate::Result<AwsProvider> {
        let sdk = config.load().await?;
        let region = sdk.region().map(ToString::to_string).unwrap_or_default();
        Ok(AwsProvider {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            asg: aws_sdk_autoscaling::Client::new(&sdk),
            region,
            calls: Arc::default(),
            poll_interval: config.poll_interval,
            wait_timeout: config.wait_timeout,
        })
    }

    /// The region the provider works in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// How many times each AWS API was called (`"DescribeInstances": 3`), since the provider
    /// was made or last [reset](AwsProvider::reset_api_calls). Pages count one each; the
    /// SDK's own retries of one call do not.
    pub fn api_calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Sets every call counter back to zero.
    pub fn reset_api_calls(&self) {
        if let Ok(mut c) = self.calls.lock() {
            c.clear();
        }
    }

    /// Counts and sends one SDK call; its error becomes a classified [`provider::Error`].
    pub(crate) async fn call<T, E>(
        &self,
        name: &'static str,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> provider::Result<T>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if let Ok(mut c) = self.calls.lock() {
            *c.entry(name.to_owned()).or_default() += 1;
        }
        tracing::debug!(call = name, "aws call");
        // The SDK's futures are large (~20 KB): box them rather than every caller's future.
        Box::pin(request).await.map_err(|e| {
            let error = errors::from_sdk(name, &e);
            tracing::debug!(call = name, code = %error.code, kind = ?error.kind, "aws call failed");
            error
        })
    }

    /// Runs `step` until it succeeds, retrying what is retryable or not found (eventual
    /// consistency right after a create) until the wait timeout. For the follow-up calls of a
    /// create, which must not fail the create for a passing reason.
    pub(crate) async fn persist<T, F, Fut>(&self, mut step: F) -> provider::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = provider::Result<T>>,
    {
        let start = Instant::now();
        let mut delay = self.poll_interval.min(Duration::from_millis(200));
        loop {
            match step().await {
                Ok(v) => return Ok(v),
                Err(e)
                    if (e.kind.is_retryable() || e.kind == ErrorKind::NotFound)
                        && start.elapsed() < self.settle_timeout() =>
                {
                    tracing::debug!(call = %e.call, code = %e.code, "retrying a follow-up call");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.poll_interval.max(Duration::from_millis(200)));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// How long follow-ups wait for eventual consistency: a tenth of the wait timeout, at most
    /// two minutes.
    fn settle_timeout(&self) -> Duration {
        (self.wait_timeout / 10).min(Duration::from_secs(120))
    }

    /// Polls `check` until it returns `true`; errors that are retryable are polled through.
    pub(crate) async fn wait_until<F, Fut>(
        &self,
        call: &str,
        what: &str,
        mut check: F,
    ) -> provider::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = provider::Result<bool>>,
    {
        let start = Instant::now();
        loop {
            match check().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.kind.is_retryable() => {
                    tracing::debug!(call = %e.call, code = %e.code, "retrying a wait");
                }
                Err(e) => return Err(e),
            }
            if start.elapsed() >= self.wait_timeout {
                return Err(provider::Error::new(
                    ErrorKind::Transient,
                    call,
                    "WaitTimeout",
                    format!("gave up after {:?} waiting for {what}", self.wait_timeout),
                ));
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Deletes a resource that a failed create left half made, keeping the create's error.
    /// If the delete fails too, the resource keeps its token tag, so the next run adopts it.
    pub(crate) async fn undo_create(
        &self,
        kind: &str,
        id: &str,
        error: provider::Error,
    ) -> provider::Error {
        tracing::warn!(kind, id, error = %error, "a create failed half way; deleting what it made");
        if let Err(e) = Box::pin(self.delete(kind, id)).await {
            tracing::warn!(kind, id, error = %e, "could not delete a half-made resource; the next run finds it by its token");
        }
        error
    }
}

/// Decodes a kind's inputs into the provider's view of them.
pub(crate) fn decode<T: DeserializeOwned>(
    kind: &str,
    inputs: &Map<String, Json>,
) -> provider::Result<T> {
    serde_json::from_value(Json::Object(inputs.clone())).map_err(|e| {
        provider::Error::new(
            ErrorKind::Terminal,
            format!("decode {kind}"),
            "InvalidInputs",
            format!("the inputs do not have the shape of `{kind}`: {e}"),
        )
    })
}

/// The tags a new resource gets: its inputs' own, the request's `graven:*` tags, and the token.
pub(crate) fn create_tags(
    request: &Create<'_>,
    own: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = own.clone();
    all.extend(request.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    all.insert(tags::TOKEN.to_owned(), request.token.to_owned());
    all
}

/// Whether a tag key is set by Graven or AWS rather than by the user.
pub(crate) fn is_managed_tag(key: &str) -> bool {
    key.starts_with("graven:") || key.starts_with("aws:")
}

/// The user's tags among all of a resource's tags (what the inputs' `tags` field holds).
pub(crate) fn user_tags(all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all.iter().filter(|(k, _)| !is_managed_tag(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// What to change to go from the user tags `current` to `desired`: tags to set, keys to remove.
/// Graven's and AWS's own tags are never touched.
pub(crate) fn tag_diff(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let set = desired
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = current
        .keys()
        .filter(|k| !is_managed_tag(k) && !desired.contains_key(*k))
        .cloned()
        .collect();
    (set, remove)
}

/// The name Graven gives a resource whose name the stack leaves open:
/// `{stack}-{logical id}-{first 8 characters of the token}`, with every character that is not
/// a letter or a digit replaced by `-`, at most `max` characters (the token part is kept).
pub(crate) fn generated_name(request: &Create<'_>, max: usize) -> String {
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect::<String>()
    };
    let stack = request.tags.get(tags::STACK).map_or_else(|| "graven".to_owned(), |s| clean(s));
    let token: String = clean(request.token).chars().take(8).collect();
    let mut head = format!("{stack}-{}", clean(request.id));
    let room = max.saturating_sub(token.len() + 1);
    if head.len() > room {
        head.truncate(room);
    }
    format!("{head}-{token}")
}

/// A JSON object from pairs.
pub(crate) fn object<const N: usize>(pairs: [(&str, Json); N]) -> Map<String, Json> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The tags as JSON.
pub(crate) fn tags_json(tags: &BTreeMap<String, String>) -> Json {
    Json::Object(tags.iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect())
}

/// An [`Observed`] from its parts; `inputs.tags` are the user's tags among `all_tags`.
pub(crate) fn observed(
    physical_id: &str,
    outputs: Map<String, Json>,
    mut inputs: Map<String, Json>,
    all_tags: BTreeMap<String, String>,
) -> Observed {
    inputs.insert("tags".to_owned(), tags_json(&user_tags(&all_tags)));
    Observed { physical_id: physical_id.to_owned(), outputs, inputs, tags: all_tags }
}

/// Splits ids into chunks of at most `n` (EC2 takes at most 200 values per filter).
pub(crate) fn chunks(ids: &[String], n: usize) -> impl Iterator<Item = &[String]> {
    ids.chunks(n.max(1))
}

/// Base64 of user data, as EC2 wants it.
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unknown_kind(kind: &str) -> provider::Error {
    provider::Error::new(
        ErrorKind::Terminal,
        "dispatch",
        "UnknownKind",
        format!(
            "the aws target has no resource kind `{kind}`; it supports the `graven::aws` catalog"
        ),
    )
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn create(&self, request: &Create<'_>) -> provider::Result<Observed> {
        use kinds::{
            AUTO_SCALING_GROUP, IMAGE, INSTANCE, INTERNET_GATEWAY, LAUNCH_TEMPLATE, ROUTE_TABLE,
            SECURITY_GROUP, SUBNET, VPC,
        };
        let result = match request.kind {
            VPC => ec2::create_vpc(self, request).await,
            SUBNET => ec2::create_subnet(self, request).await,
            INTERNET_GATEWAY => ec2::create_internet_gateway(self, request).await,
            ROUTE_TABLE => ec2::create_route_table(self, request).await,
            SECURITY_GROUP => security_group::create(self, request).await,
            LAUNCH_TEMPLATE => launch_template::create(self, request).await,
            INSTANCE => ec2::create_instance(self, request).await,
            IMAGE => image::create(self, request).await,
            AUTO_SCALING_GROUP => autoscaling::create(self, request).await,
            other => Err(unknown_kind(other)),
        };
        match result {
            // A create sent again with the token of a create whose run died (see
            // `State::retry_tokens`): the name Graven generates from the token is taken, by the
            // first create, which the cloud finished after all. Adopt it.
            Err(e) if e.code.contains("AlreadyExists") || e.code.ends_with(".Duplicate") => {
                match self.find_by_token(request.kind, request.token).await {
                    Ok(Some(found)) => Ok(found),
                    _ => Err(errors::after_create(e)),
                }
            }
            other => other.map_err(errors::after_create),
        }
    }

    async fn read(
        &self,
        kind: &str,
        physical_ids: &[String],
    ) -> provider::Result<Vec<Option<Observed>>> {
        use kinds::{
            AUTO_SCALING_GROUP, IMAGE, INSTANCE, INTERNET_GATEWAY, LAUNCH_TEMPLATE, ROUTE_TABLE,
            SECURITY_GROUP, SUBNET, VPC,
        };
        if physical_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut wanted: Vec<String> = physical_ids.to_vec();
        wanted.sort();
        wanted.dedup();
        let found = match kind {
            VPC => ec2::read_vpcs(self, &wanted, None).await?,
            SUBNET => ec2::read_subnets(self, &wanted, None).await?,
            INTERNET_GATEWAY => ec2::read_internet_gateways(self, &wanted, None).await?,
            ROUTE_TABLE => ec2::read_route_tables(self, &wanted, None).await?,
            SECURITY_GROUP => security_group::read(self, &wanted, None).await?,
            LAUNCH_TEMPLATE => launch_template::read(self, &wanted, None).await?,
            INSTANCE => ec2::read_instances(self, &wanted, None).await?,
            IMAGE => image::read(self, &wanted, None).await?,
            AUTO_SCALING_GROUP => autoscaling::read(self, &wanted, None).await?,
            other => return Err(unknown_kind(other)),
        };
        Ok(physical_ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn find_by_token(&self, kind: &str, token: &str) -> provider::Result<Option<Observed>> {
        use kinds::{
            AUTO_SCALING_GROUP, IMAGE, INSTANCE, INTERNET_GATEWAY, LAUNCH_TEMPLATE, ROUTE_TABLE,
            SECURITY_GROUP, SUBNET, VPC,
        };
        let token = Some(token);
        let found = match kind {
            VPC => ec2::read_vpcs(self, &[], token).await?,
            SUBNET => ec2::read_subnets(self, &[], token).await?,
            INTERNET_GATEWAY => ec2::read_internet_gateways(self, &[], token).await?,
            ROUTE_TABLE => ec2::read_route_tables(self, &[], token).await?,
            SECURITY_GROUP => security_group::read(self, &[], token).await?,
            LAUNCH_TEMPLATE => launch_template::read(self, &[], token).await?,
            INSTANCE => ec2::read_instances(self, &[], token).await?,
            IMAGE => image::read(self, &[], token).await?,
            AUTO_SCALING_GROUP => autoscaling::read(self, &[], token).await?,
            other => return Err(unknown_kind(other)),
        };
        if found.len() > 1 {
            tracing::warn!(
                kind,
                count = found.len(),
                "several resources carry one token; adopting the first"
            );
        }
        Ok(found.into_values().next())
    }

    async fn update(
        &self,
        kind: &str,
        physical_id: &str,
        inputs: &Map<String, Json>,
        changed: &[String],
    ) -> provider::Result<Observed> {
        use kinds::{
            AUTO_SCALING_GROUP, IMAGE, INSTANCE, INTERNET_GATEWAY, LAUNCH_TEMPLATE, ROUTE_TABLE,
            SECURITY_GROUP, SUBNET, VPC,
        };
        match kind {
            VPC => ec2::update_vpc(self, physical_id, inputs, changed).await?,
            SUBNET => ec2::update_subnet(self, physical_id, inputs, changed).await?,
            INTERNET_GATEWAY | INSTANCE => {
                ec2::update_tags_only(self, kind, physical_id, inputs).await?;
            }
            ROUTE_TABLE => ec2::update_route_table(self, physical_id, inputs, changed).await?,
            SECURITY_GROUP => security_group::update(self, physical_id, inputs, changed).await?,
            LAUNCH_TEMPLATE => launch_template::update(self, physical_id, inputs, changed).await?,
            IMAGE => image::update(self, physical_id, inputs).await?,
            AUTO_SCALING_GROUP => autoscaling::update(self, physical_id, inputs, changed).await?,
            other => return Err(unknown_kind(other)),
        }
        let ids = [physical_id.to_owned()];
        let read = self.persist(|| async { self.read(kind, &ids).await }).await?;
        read.into_iter().next().flatten().ok_or_else(|| {
            provider::Error::new(
                ErrorKind::NotFound,
                format!("update {kind}"),
                "NotFound",
                format!("`{physical_id}` is gone"),
            )
        })
    }

    async fn delete(&self, kind: &str, physical_id: &str) -> provider::Result<()> {
        use kinds::{
            AUTO_SCALING_GROUP, IMAGE, INSTANCE, INTERNET_GATEWAY, LAUNCH_TEMPLATE, ROUTE_TABLE,
            SECURITY_GROUP, SUBNET, VPC,
        };
        let result = match kind {
            VPC => ec2::delete_vpc(self, physical_id).await,
            SUBNET => ec2::delete_subnet(self, physical_id).await,
            INTERNET_GATEWAY => ec2::delete_internet_gateway(self, physical_id).await,
            ROUTE_TABLE => ec2::delete_route_table(self, physical_id).await,
            SECURITY_GROUP => security_group::delete(self, physical_id).await,
            LAUNCH_TEMPLATE => launch_template::delete(self, physical_id).await,
            INSTANCE => ec2::delete_instance(self, physical_id).await,
            IMAGE => image::delete(self, physical_id).await,
            AUTO_SCALING_GROUP => autoscaling::delete(self, physical_id).await,
            other => Err(unknown_kind(other)),
        };
        match result {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    async fn fleet_instances(&self, group: &str) -> provider::Result<Vec<Instance>> {
        fleet::instances(self, group).await
    }

    async fn set_capacity(
        &self,
        group: &str,
        min: u32,
        desired: u32,
        max: u32,
    ) -> provider::Result<()> {
        fleet::set_capacity(self, group, min, desired, max).await
    }

    async fn terminate_instances(
        &self,
        group: &str,
        ids: &[String],
        decrement: bool,
    ) -> provider::Result<()> {
        fleet::terminate(self, group, ids, decrement).await
    }

    async fn images(&self) -> provider::Result<Vec<crate::release::ImageRecord>> {
        image::catalog(self).await
    }

    /// Conservative versions of AWS's default EC2 request buckets: `Describe*` 100 calls,
    /// refilled at 20 a second (as AWS documents); other mutations 50 at 5 a second; launches
    /// 5 at 2 a second (`RunInstances` also has an instance-count bucket).
    fn rate_limit(&self, category: Category) -> Option<RateLimit> {
        Some(match category {
            Category::Describe => RateLimit { capacity: 100, refill_per_second: 20.0 },
            Category::Launch => RateLimit { capacity: 5, refill_per_second: 2.0 },
            _ => RateLimit { capacity: 50, refill_per_second: 5.0 },
        })
    }

    fn category(&self, call: &str) -> Category {
        category(call)
    }
}

/// The rate-limit category of a call: launches (`RunInstances`, capacity raises, creating a
/// group, which launches its instances) are metered apart from other mutations, as AWS meters
/// them.
pub(crate) fn category(call: &str) -> Category {
    let launch = [
        "RunInstances",
        "set_capacity",
        "SetDesiredCapacity",
        "CreateAutoScalingGroup",
        "UpdateAutoScalingGroup",
    ];
    if launch.contains(&call)
        || call.starts_with("create:aws:ec2:Instance")
        || call.starts_with("create:aws:autoscaling")
        || call == kinds::INSTANCE
    {
        Category::Launch
    } else if call.starts_with("Describe")
        || call.starts_with("read")
        || call.starts_with("Get")
        || call.starts_with("fleet_instances")
    {
        Category::Describe
    } else {
        Category::Mutate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn generated_names_are_clean_and_bounded() {
        let inputs = Map::new();
        let tags = BTreeMap::from([(tags::STACK.to_owned(), "web prod".to_owned())]);
        let request = Create {
            id: "network.web_sg",
            kind: kinds::SECURITY_GROUP,
            inputs: &inputs,
            token: "0123abcd-ffff",
            tags: &tags,
        };
        assert_eq!(generated_name(&request, 255), "web-prod-network-web-sg-0123abcd");
        let short = generated_name(&request, 20);
        assert_eq!(short.len(), 20);
        assert!(short.ends_with("-0123abcd"), "{short}");
    }

    #[test]
    fn tag_diff_leaves_managed_tags_alone() {
        let current = BTreeMap::from([
            ("team".to_owned(), "a".to_owned()),
            ("old".to_owned(), "x".to_owned()),
            ("graven:stack".to_owned(), "web".to_owned()),
            ("aws:autoscaling:groupName".to_owned(), "g".to_owned()),
        ]);
        let desired = BTreeMap::from([
            ("team".to_owned(), "b".to_owned()),
            ("new".to_owned(), "y".to_owned()),
        ]);
        let (set, remove) = tag_diff(&current, &desired);
        assert_eq!(set, desired);
        assert_eq!(remove, ["old"]);
    }

    #[test]
    fn launches_are_their_own_category() {
        assert_eq!(category("RunInstances"), Category::Launch);
        assert_eq!(category("set_capacity"), Category::Launch);
        assert_eq!(category("DescribeInstances"), Category::Describe);
        assert_eq!(category("CreateVpc"), Category::Mutate);
    }
}
