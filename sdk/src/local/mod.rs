//! The `local` target: an in-process simulation of EC2 and EC2 Auto Scaling.
//!
//! [`LocalCloud`] implements [`Provider`] for VPCs, subnets, internet gateways, route tables,
//! security groups, launch templates (with immutable versions), instances, images and Auto
//! Scaling groups. It enforces the rules AWS enforces (a subnet lies inside its VPC and does not
//! overlap its siblings, references exist and belong together, a VPC with dependents cannot be
//! deleted, ...) with AWS's error codes, runs fleets whose instances boot, report health and
//! are replaced when unhealthy, and injects faults (failing, throttled and slow calls, images
//! whose instances never boot or never pass health checks).
//!
//! The cloud lives in `<root>/.graven/local/` (apart from Graven's state): `cloud.json` (a
//! snapshot), `journal.jsonl` (one line per change) and `config.json` (the [`Settings`]).
//! Time is tokio's, so tests on a paused clock simulate long rollouts in milliseconds.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use graven::local::LocalCloud;
//! use graven::provider::{Create, Provider};
//!
//! let dir = tempfile::tempdir()?;
//! let cloud = LocalCloud::open(dir.path())?;
//! let inputs = serde_json::json!({"cidr_block": "10.0.0.0/16"});
//! let vpc = cloud
//!     .create(&Create {
//!         id: "vpc",
//!         kind: "aws:ec2:Vpc",
//!         inputs: inputs.as_object().unwrap(),
//!         token: "0f3c9a7e-example",
//!         tags: &BTreeMap::new(),
//!     })
//!     .await?;
//! assert!(vpc.physical_id.starts_with("vpc-"));
//! assert_eq!(cloud.api_calls(), 1);
//! # Ok(()) }
//! ```

mod clock;
mod faults;
mod fleet;
mod inputs;
mod instance;
mod model;
mod persist;
mod rules;
#[cfg(test)]
mod testing;
mod validate;

/// The book's chapter "The local cloud", whose samples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../book/src/local-cloud.md")]
mod book_chapter {}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::provider::{self, Category, Create, ErrorKind, Health, Instance, Observed, Provider};
use crate::release::ImageRecord;

pub use faults::{Faults, ImageFault, Settings};
pub use instance::InstanceDetails;

use clock::Clock;
use faults::Live;
use model::{Kind, Model, Reject, Spec};
use persist::Disk;

/// The directory of the local cloud under a project root.
pub const DIR: &str = ".graven/local";

/// The simulated cloud. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct LocalCloud {
    dir: PathBuf,
    state: Mutex<State>,
    live: Mutex<Live>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

#[derive(Debug)]
struct State {
    model: Model,
    disk: Disk,
    clock: Clock,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn kind_of(kind: &str, call: &str) -> provider::Result<Kind> {
    Kind::parse(kind).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        provider::Error::new(
            ErrorKind::Terminal,
            call,
            "InvalidParameterValue",
            format!(
                "the local cloud does not simulate kind `{kind}`; it simulates {}",
                known.join(", ")
            ),
        )
    })
}

impl LocalCloud {
    /// Opens (or creates) the cloud of project `root`, in `<root>/.graven/local/`: replays its
    /// snapshot and journal, and reads `config.json`.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created or read, [`Error::State`] when the
    /// snapshot or `config.json` is not valid.
    pub fn open(root: impl AsRef<Path>) -> Result<LocalCloud> {
        let dir = root.as_ref().join(DIR);
        let (model, disk) = Disk::open(&dir)?;
        let live = Live::load(dir.join("config.json"))?;
        let clock = Clock::new(model.clock_ms);
        Ok(LocalCloud {
            dir,
            state: Mutex::new(State { model, disk, clock }),
            live: Mutex::new(live),
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    /// The directory holding the cloud's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in force (boot time, health delay, faults).
    pub fn settings(&self) -> Settings {
        lock(&self.live).current()
    }

    /// Replaces the settings and writes them to `config.json`.
    ///
    /// # Errors
    /// [`Error::State`] for a rate outside 0..=1, [`Error::Io`] when the file cannot be written.
    pub fn set_settings(&self, settings: Settings) -> Result<()> {
        lock(&self.live).set(settings)
    }

    /// The injected faults.
    pub fn faults(&self) -> Faults {
        self.settings().faults
    }

    /// Replaces the injected faults (keeping the other settings) and writes `config.json`.
    ///
    /// # Errors
    /// As [`LocalCloud::set_settings`].
    pub fn set_faults(&self, faults: Faults) -> Result<()> {
        let mut live = lock(&self.live);
        let settings = Settings { faults, ..live.current() };
        live.set(settings)
    }

    /// How many simulated API calls this handle has served (failed ones included).
    pub fn api_calls(&self) -> u64 {
        lock(&self.calls).values().sum()
    }

    /// The simulated API calls this handle has served, by call name (`CreateVpc`).
    pub fn api_calls_by_name(&self) -> BTreeMap<String, u64> {
        lock(&self.calls).iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    /// Every image: the built-in ones (see [`crate::release::builtin_images`]) and the
    /// registered copies.
    pub fn images(&self) -> Vec<ImageRecord> {
        self.inspect(Model::images)
    }

    /// Every instance, terminated ones included (for an hour of simulated time).
    pub fn instances(&self) -> Vec<InstanceDetails> {
        self.inspect(Model::instance_details)
    }

    /// Every resource of `kind` (`aws:ec2:Subnet`) as [`Provider::read`] would report it, in id
    /// order; empty for a kind the cloud does not simulate. Not counted as an API call.
    pub fn resources(&self, kind: &str) -> Vec<Observed> {
        let Some(kind) = Kind::parse(kind) else { return Vec::new() };
        self.inspect(|m| m.all(kind).filter_map(model::observe).collect())
    }

    /// Version `version` of launch template `id`, as inputs; older versions stay readable.
    pub fn launch_template_version(&self, id: &str, version: u64) -> Option<Map<String, Json>> {
        self.inspect(|m| match &m.get(Kind::LaunchTemplate, id)?.spec {
            Spec::LaunchTemplate(t) => Some(t.version(version)?.inputs(&t.name)),
            _ => None,
        })
    }

    /// Deletes a resource behind Graven's back, as someone at the console would: the cloud's
    /// rules apply (a VPC with subnets cannot be deleted), but no fault, latency or call count.
    ///
    /// # Errors
    /// The cloud's refusal (`DependencyViolation`), or an unknown kind.
    pub fn delete_out_of_band(&self, kind: &str, physical_id: &str) -> provider::Result<()> {
        let kind = kind_of(kind, "OutOfBand")?;
        let settings = self.settings();
        self.with_model(&settings, |m| m.delete(kind, physical_id, &settings))
            .map_err(|e| e.into_error(kind.delete_call()))
    }

    /// Changes one input field of a resource behind Graven's back (an Auto Scaling group's
    /// `desired_capacity`, a VPC's `enable_dns_hostnames`); the field must be one the cloud can
    /// change in place. A launch template gets a new version.
    ///
    /// # Errors
    /// The cloud's refusal, `NotFound` for a missing resource, or an unknown kind.
    pub fn modify_out_of_band(
        &self,
        kind: &str,
        physical_id: &str,
        field: &str,
        value: Json,
    ) -> provider::Result<Observed> {
        let kind = kind_of(kind, "OutOfBand")?;
        let settings = self.settings();
        let mut inputs = Map::new();
        inputs.insert(field.to_owned(), value);
        self.with_model(&settings, |m| {
            m.update(kind, physical_id, &inputs, &[field.to_owned()], &settings)
        })
        .map_err(|e| e.into_error(kind.update_call(field == "tags")))
    }

    /// Replaces all the tags of a resource behind Graven's back (including `graven:*` ones, so a
    /// test can also remove the token tag).
    ///
    /// # Errors
    /// `NotFound` for a missing resource, or an unknown kind.
    pub fn set_tags_out_of_band(
        &self,
        kind: &str,
        physical_id: &str,
        tags: BTreeMap<String, String>,
    ) -> provider::Result<()> {
        let kind = kind_of(kind, "OutOfBand")?;
        let settings = self.settings();
        self.with_model(&settings, |m| m.set_tags(kind, physical_id, tags))
            .map_err(|e| e.into_error("CreateTags"))
    }

    /// Sets the health of a running instance (to make one `Unhealthy`, say); a group replaces
    /// an unhealthy instance once its grace period is over.
    ///
    /// # Errors
    /// `NotFound` when no running instance has that id.
    pub fn set_instance_health(&self, instance_id: &str, health: Health) -> provider::Result<()> {
        let settings = self.settings();
        self.with_model(&settings, |m| m.set_health(instance_id, health))
            .map_err(|e| e.into_error("SetInstanceHealth"))
    }

    /// Folds the journal into a new snapshot (`cloud.json`) and empties it.
    ///
    /// # Errors
    /// [`Error::Io`] when the files cannot be written.
    pub fn compact(&self) -> Result<()> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        state.disk.sync(&mut state.model)?;
        state
            .disk
            .compact(&state.model)
            .map_err(|e| Error::io("compacting the local cloud in", &self.dir, e))
    }

    /// Runs `f` on the model advanced to now (a read: nothing is counted or injected).
    fn inspect<T>(&self, f: impl FnOnce(&Model) -> T) -> T {
        let settings = self.settings();
        let mut guard = lock(&self.state);
        if let Err(e) = Self::advance(&mut guard, &settings).and_then(|()| self.commit(&mut guard))
        {
            tracing::warn!("local cloud: {}", e.message);
        }
        f(&guard.model)
    }

    /// Starts API call `call`: counts it, draws its fault and waits the first half of its
    /// latency (the request's way there; [`LocalCloud::api`] waits the response's way back, up to
    /// the returned deadline). A faulted call waits both halves.
    async fn enter(
        &self,
        call: &'static str,
    ) -> provider::Result<(Settings, tokio::time::Instant)> {
        *lock(&self.calls).entry(call).or_insert(0) += 1;
        let (settings, fault) = lock(&self.live).start_call();
        let latency = settings.faults.latency;
        // Absolute deadlines, so that the timer's rounding is paid once per call, not per half.
        let start = tokio::time::Instant::now();
        let end = start + latency;
        if !latency.is_zero() {
            tokio::time::sleep_until(start + latency.saturating_sub(latency / 2)).await;
        }
        match fault {
            Some(fault) => {
                if !latency.is_zero() {
                    tokio::time::sleep_until(end).await;
                }
                Err(fault.into_error(call))
            }
            None => Ok((settings, end)),
        }
    }

    /// Catches up with other processes' changes and advances the simulation to now.
    fn advance(state: &mut State, settings: &Settings) -> std::result::Result<(), Reject> {
        if let Err(e) = state.disk.sync(&mut state.model) {
            return Err(Reject {
                kind: ErrorKind::Transient,
                code: "InternalError",
                message: e.to_string(),
            });
        }
        state.clock.bump_to(state.model.clock_ms);
        state.model.advance(state.clock.now_ms(), settings);
        Ok(())
    }

    /// Journals what changed.
    fn commit(&self, state: &mut State) -> std::result::Result<(), Reject> {
        let Some(line) = persist::entry(&mut state.model) else { return Ok(()) };
        state.disk.append(&line).map_err(|e| Reject {
            kind: ErrorKind::Transient,
            code: "InternalError",
            message: format!(
                "the local cloud could not write its journal in `{}`: {e}",
                self.dir.display()
            ),
        })
    }

    /// Runs `f` on the model advanced to now, then journals what changed. The lock is held for
    /// the duration of `f` only, never across an `.await`.
    fn with_model<T>(
        &self,
        settings: &Settings,
        f: impl FnOnce(&mut Model) -> std::result::Result<T, Reject>,
    ) -> std::result::Result<T, Reject> {
        let mut guard = lock(&self.state);
        Self::advance(&mut guard, settings)?;
        let out = f(&mut guard.model);
        self.commit(&mut guard)?;
        out
    }

    async fn api<T>(
        &self,
        call: &'static str,
        f: impl FnOnce(&mut Model, &Settings) -> std::result::Result<T, Reject> + Send,
    ) -> provider::Result<T> {
        let (settings, end) = self.enter(call).await?;
        let out = self.with_model(&settings, |m| f(m, &settings)).map_err(|e| e.into_error(call));
        // The response's way back: a process killed meanwhile has changed the cloud without
        // hearing of it, as on a real cloud (what idempotency tokens are for).
        if !settings.faults.latency.is_zero() {
            tokio::time::sleep_until(end).await;
        }
        out
    }
}

#[async_trait]
impl Provider for LocalCloud {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn images(&self) -> provider::Result<Vec<ImageRecord>> {
        Ok(LocalCloud::images(self))
    }

    async fn create(&self, request: &Create<'_>) -> provider::Result<Observed> {
        let kind = kind_of(request.kind, "Create")?;
        self.api(kind.create_call(), |m, s| m.create(kind, request, s)).await
    }

    async fn read(
        &self,
        kind: &str,
        physical_ids: &[String],
    ) -> provider::Result<Vec<Option<Observed>>> {
        let kind = kind_of(kind, "Describe")?;
        self.api(kind.describe_call(), |m, _| {
            Ok(physical_ids.iter().map(|id| m.observe_id(kind, id)).collect())
        })
        .await
    }

    async fn find_by_token(&self, kind: &str, token: &str) -> provider::Result<Option<Observed>> {
        let kind = kind_of(kind, "Describe")?;
        self.api(kind.describe_call(), |m, _| Ok(m.by_token(kind, token).and_then(model::observe)))
            .await
    }

    async fn update(
        &self,
        kind: &str,
        physical_id: &str,
        inputs: &Map<String, Json>,
        changed: &[String],
    ) -> provider::Result<Observed> {
        let kind = kind_of(kind, "Update")?;
        let tags_only = changed.iter().all(|f| f == "tags");
        self.api(kind.update_call(tags_only), |m, s| {
            m.update(kind, physical_id, inputs, changed, s)
        })
        .await
    }

    async fn delete(&self, kind: &str, physical_id: &str) -> provider::Result<()> {
        let kind = kind_of(kind, "Delete")?;
        self.api(kind.delete_call(), |m, s| m.delete(kind, physical_id, s)).await
    }

    async fn fleet_instances(&self, group: &str) -> provider::Result<Vec<Instance>> {
        self.api("DescribeAutoScalingInstances", |m, _| m.fleet_instances(group)).await
    }

    async fn set_capacity(
        &self,
        group: &str,
        min: u32,
        desired: u32,
        max: u32,
    ) -> provider::Result<()> {
        self.api("SetDesiredCapacity", |m, s| m.set_capacity(group, (min, desired, max), s)).await
    }

    async fn terminate_instances(
        &self,
        group: &str,
        ids: &[String],
        decrement: bool,
    ) -> provider::Result<()> {
        self.api("TerminateInstanceInAutoScalingGroup", |m, s| {
            m.terminate_in_group(group, ids, decrement, s)
        })
        .await
    }

    /// Launches (`RunInstances`, `CreateAutoScalingGroup`, `SetDesiredCapacity`, and the trait's
    /// `set_capacity`) count as [`Category::Launch`]; `Describe*` calls and the trait's reads as
    /// [`Category::Describe`]; everything else as [`Category::Mutate`].
    fn category(&self, call: &str) -> Category {
        match call {
            "RunInstances" | "CreateAutoScalingGroup" | "SetDesiredCapacity" | "set_capacity" => {
                Category::Launch
            }
            "read" | "find_by_token" | "fleet_instances" => Category::Describe,
            _ if call.starts_with("Describe") => Category::Describe,
            _ => Category::Mutate,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::testing::{create, network};
    use super::*;

    #[tokio::test]
    async fn a_faulted_create_fails_retryably_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        cloud.set_faults(Faults::default().error_rate(1.0)).unwrap();
        let e = create(&cloud, "vpc", "aws:ec2:Vpc", json!({"cidr_block": "10.0.0.0/16"}))
            .await
            .unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_str(), e.call.as_str()),
            (ErrorKind::Transient, "InternalError", "CreateVpc")
        );
        assert!(e.kind.is_retryable());
        cloud.set_faults(Faults::default().throttle_rate(1.0)).unwrap();
        let e = create(&cloud, "vpc", "aws:ec2:Vpc", json!({"cidr_block": "10.0.0.0/16"}))
            .await
            .unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Throttling, "RequestLimitExceeded"));
        assert!(cloud.resources("aws:ec2:Vpc").is_empty());
        assert_eq!(fs_len(&cloud), 0, "nothing was journaled");
        assert_eq!(cloud.api_calls_by_name()["CreateVpc"], 2, "failed calls count");
        cloud.set_faults(Faults::default()).unwrap();
        let vpc = create(&cloud, "vpc", "aws:ec2:Vpc", json!({"cidr_block": "10.0.0.0/16"}))
            .await
            .unwrap();
        assert_eq!(vpc.physical_id, "vpc-00000000000000001");
    }

    fn fs_len(cloud: &LocalCloud) -> u64 {
        std::fs::metadata(cloud.dir().join(persist::JOURNAL)).unwrap().len()
    }

    #[tokio::test]
    async fn config_json_written_by_a_test_is_read_on_open_and_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join(DIR).join("config.json");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, r#"{"boot_time": "2s", "error_rate": 1.0}"#).unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        assert_eq!(cloud.settings().boot_time, Duration::from_secs(2));
        assert!(cloud.read("aws:ec2:Vpc", &[]).await.is_err());
        // A change shows as another modification time or size; this one has another size, so
        // it is seen however coarse the file system's clock.
        std::fs::write(&config, r#"{"error_rate": 0.0}"#).unwrap();
        assert!(cloud.read("aws:ec2:Vpc", &[]).await.is_ok(), "the change is picked up");
        assert_eq!(cloud.settings().boot_time, Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_calls_on_tokios_clock() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        cloud.set_faults(Faults::default().latency(Duration::from_secs(5))).unwrap();
        let start = tokio::time::Instant::now();
        network(&cloud).await;
        assert_eq!(start.elapsed(), Duration::from_secs(20), "four calls of five seconds");
    }

    #[tokio::test]
    async fn out_of_band_changes_are_visible_to_reads() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        let net = network(&cloud).await;
        cloud
            .modify_out_of_band("aws:ec2:Vpc", &net.vpc, "enable_dns_hostnames", json!(true))
            .unwrap();
        let e = cloud
            .modify_out_of_band("aws:ec2:Vpc", &net.vpc, "cidr_block", json!("10.1.0.0/16"))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Terminal);
        cloud
            .set_tags_out_of_band(
                "aws:ec2:Vpc",
                &net.vpc,
                BTreeMap::from([("owner".into(), "ops".into())]),
            )
            .unwrap();
        let vpc = cloud
            .read("aws:ec2:Vpc", std::slice::from_ref(&net.vpc))
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!(vpc.inputs["enable_dns_hostnames"], true);
        assert_eq!(vpc.inputs["tags"], json!({"owner": "ops"}));
        assert!(cloud.find_by_token("aws:ec2:Vpc", "tok-vpc-0123456789").await.unwrap().is_none());
        let e = cloud.delete_out_of_band("aws:ec2:Vpc", &net.vpc).unwrap_err();
        assert_eq!(e.code, "DependencyViolation");
        assert!(kind_of("aws:ec2:Nope", "Create").unwrap_err().message.contains("aws:ec2:Vpc"));
    }

    #[test]
    fn launches_have_their_own_category() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LocalCloud::open(dir.path()).unwrap();
        assert_eq!(cloud.name(), "local");
        assert_eq!(cloud.category("RunInstances"), Category::Launch);
        assert_eq!(cloud.category("SetDesiredCapacity"), Category::Launch);
        assert_eq!(cloud.category("DescribeSubnets"), Category::Describe);
        assert_eq!(cloud.category("CreateVpc"), Category::Mutate);
    }
}
