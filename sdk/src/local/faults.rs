//! Settings and fault injection: how fast instances boot, and how often calls fail.
//!
//! Both live in `.graven/local/config.json`, so a test can write them before it starts a child
//! process, and both can be changed through [`LocalCloud`](super::LocalCloud). Faults are drawn
//! from a seedable [`fastrand::Rng`]: with a seed, a run fails the same calls every time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::provider::ErrorKind;

use super::model::Reject;

/// What goes wrong with instances launched from one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImageFault {
    /// The instance never boots: it goes from pending to terminated.
    FailBoot,
    /// The instance runs but its health checks never pass: it is reported `Unhealthy`.
    NeverHealthy,
}

/// Injected failures: calls that fail, calls that are slow, images that do not work.
///
/// ```
/// use std::time::Duration;
/// use graven::local::{Faults, ImageFault};
///
/// let faults = Faults::default()
///     .error_rate(0.1)
///     .latency(Duration::from_millis(20))
///     .image("ami-0123456789abcdef0", ImageFault::NeverHealthy)
///     .seed(7);
/// assert_eq!(faults.images.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Faults {
    /// The fraction of calls (0 to 1) that fail with a retryable `InternalError`.
    pub error_rate: f64,
    /// The fraction of calls (0 to 1) that fail with `RequestLimitExceeded`.
    pub throttle_rate: f64,
    /// How long every call takes.
    #[serde(with = "duration")]
    pub latency: Duration,
    /// Faults of instances by the image they run (`ami-...`).
    #[serde(rename = "image_faults")]
    pub images: BTreeMap<String, ImageFault>,
    /// The seed of the generator that draws failing calls; `None` draws a random seed.
    pub seed: Option<u64>,
}

impl Faults {
    /// Sets the fraction of calls that fail with a retryable error.
    #[must_use]
    pub fn error_rate(mut self, rate: f64) -> Faults {
        self.error_rate = rate;
        self
    }

    /// Sets the fraction of calls that are throttled.
    #[must_use]
    pub fn throttle_rate(mut self, rate: f64) -> Faults {
        self.throttle_rate = rate;
        self
    }

    /// Sets the latency of every call.
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Faults {
        self.latency = latency;
        self
    }

    /// Makes instances of `image_id` fail as `fault` says.
    #[must_use]
    pub fn image(mut self, image_id: impl Into<String>, fault: ImageFault) -> Faults {
        self.images.insert(image_id.into(), fault);
        self
    }

    /// Seeds the generator that draws failing calls.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Faults {
        self.seed = Some(seed);
        self
    }
}

/// The local cloud's settings: the fleet's timings and the injected faults.
///
/// Stored in `.graven/local/config.json`; every field is optional there, durations are written
/// like `"400ms"` or `"2s"` (or as a number of milliseconds):
///
/// ```
/// let settings: graven::local::Settings = serde_json::from_str(r#"{
///     "boot_time": "2s",
///     "error_rate": 0.05,
///     "image_faults": { "ami-0123456789abcdef0": "fail_boot" }
/// }"#).unwrap();
/// assert_eq!(settings.boot_time, std::time::Duration::from_secs(2));
/// assert_eq!(settings.health_delay, std::time::Duration::from_millis(300));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Settings {
    /// How long an instance is `Pending` before it runs (default 400 ms).
    #[serde(with = "duration")]
    pub boot_time: Duration,
    /// How long a running instance's health is `Initializing` (default 300 ms).
    #[serde(with = "duration")]
    pub health_delay: Duration,
    /// The injected faults.
    #[serde(flatten)]
    pub faults: Faults,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            boot_time: Duration::from_millis(400),
            health_delay: Duration::from_millis(300),
            faults: Faults::default(),
        }
    }
}

impl Settings {
    /// Sets the boot time.
    #[must_use]
    pub fn boot_time(mut self, boot_time: Duration) -> Settings {
        self.boot_time = boot_time;
        self
    }

    /// Sets the health delay.
    #[must_use]
    pub fn health_delay(mut self, health_delay: Duration) -> Settings {
        self.health_delay = health_delay;
        self
    }

    /// Sets the faults.
    #[must_use]
    pub fn faults(mut self, faults: Faults) -> Settings {
        self.faults = faults;
        self
    }

    /// The boot time in milliseconds.
    pub(crate) fn boot_ms(&self) -> u64 {
        millis(self.boot_time)
    }

    /// The health delay in milliseconds.
    pub(crate) fn health_ms(&self) -> u64 {
        millis(self.health_delay)
    }

    /// The fault of image `image_id`, if any.
    pub(crate) fn image_fault(&self, image_id: &str) -> Option<ImageFault> {
        self.faults.images.get(image_id).copied()
    }

    fn check(&self, path: &Path) -> Result<()> {
        for (name, rate) in
            [("error_rate", self.faults.error_rate), ("throttle_rate", self.faults.throttle_rate)]
        {
            if !(0.0..=1.0).contains(&rate) {
                return Err(Error::State {
                    path: path.to_owned(),
                    message: format!("`{name}` is {rate}; it must lie between 0 and 1"),
                });
            }
        }
        Ok(())
    }
}

/// A duration in milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The settings in force and the generator of faults, reloaded when `config.json` changes.
#[derive(Debug)]
pub(crate) struct Live {
    path: PathBuf,
    settings: Settings,
    rng: fastrand::Rng,
    /// The modification time and length of `config.json` when it was last read.
    seen: Option<(SystemTime, u64)>,
}

impl Live {
    /// Loads `config.json` (defaults when it does not exist).
    pub(crate) fn load(path: PathBuf) -> Result<Live> {
        let (settings, seen) = read(&path)?;
        let rng = rng(&settings);
        Ok(Live { path, settings, rng, seen })
    }

    /// Replaces the settings and writes `config.json`.
    pub(crate) fn set(&mut self, settings: Settings) -> Result<()> {
        settings.check(&self.path)?;
        let text = serde_json::to_vec_pretty(&settings).map_err(|source| Error::Serialize {
            what: "the local cloud's settings".into(),
            source,
        })?;
        super::persist::write_atomically(&self.path, &text)
            .map_err(|e| Error::io("writing", &self.path, e))?;
        self.seen = modified(&self.path);
        self.rng = rng(&settings);
        self.settings = settings;
        Ok(())
    }

    /// Rereads `config.json` if it changed since it was last read (another process, or a
    /// test, wrote it); keeps the current settings if it is not valid.
    fn refresh(&mut self) {
        if modified(&self.path) == self.seen {
            return;
        }
        match read(&self.path) {
            Ok((settings, seen)) => {
                if settings.faults.seed != self.settings.faults.seed {
                    self.rng = rng(&settings);
                }
                self.settings = settings;
                self.seen = seen;
            }
            Err(e) => tracing::warn!("local cloud: keeping the current settings: {e}"),
        }
    }

    /// The settings in force, reread if `config.json` changed.
    pub(crate) fn current(&mut self) -> Settings {
        self.refresh();
        self.settings.clone()
    }

    /// Starts a call: rereads `config.json` if it changed, and draws whether the call fails.
    /// Returns the settings for the call and the injected failure, if any.
    pub(crate) fn start_call(&mut self) -> (Settings, Option<Reject>) {
        self.refresh();
        let faults = &self.settings.faults;
        let mut fault = None;
        if faults.error_rate > 0.0 || faults.throttle_rate > 0.0 {
            let draw = self.rng.f64();
            if draw < faults.error_rate {
                fault = Some(Reject {
                    kind: ErrorKind::Transient,
                    code: "InternalError",
                    message: "An internal error has occurred (injected: the local cloud's \
                              `error_rate`); retry the call"
                        .into(),
                });
            } else if draw < faults.error_rate + faults.throttle_rate {
                fault = Some(Reject {
                    kind: ErrorKind::Throttling,
                    code: "RequestLimitExceeded",
                    message: "Request limit exceeded (injected: the local cloud's \
                              `throttle_rate`); retry with backoff"
                        .into(),
                });
            }
        }
        (self.settings.clone(), fault)
    }
}

fn rng(settings: &Settings) -> fastrand::Rng {
    settings.faults.seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed)
}

fn modified(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read(path: &Path) -> Result<(Settings, Option<(SystemTime, u64)>)> {
    let seen = modified(path);
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Settings::default(), None));
        }
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let settings: Settings = serde_json::from_slice(&text).map_err(|e| Error::State {
        path: path.to_owned(),
        message: format!("not valid local cloud settings: {e}; fix the file or delete it"),
    })?;
    settings.check(path)?;
    Ok((settings, seen))
}

/// Serde of durations as humantime text (`"400ms"`), also accepting milliseconds as a number.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Millis(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Text::deserialize(d)? {
            Text::Millis(ms) => Ok(Duration::from_millis(ms)),
            Text::Text(t) => humantime::parse_duration(&t).map_err(|e| {
                D::Error::custom(format!("`{t}` is not a duration ({e}); write `400ms`"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_fills_defaults() {
        let s: Settings =
            serde_json::from_str(r#"{"latency": 25, "image_faults": {"ami-1": "never_healthy"}}"#)
                .unwrap();
        assert_eq!(s.faults.latency, Duration::from_millis(25));
        assert_eq!(s.boot_time, Duration::from_millis(400));
        assert_eq!(s.image_fault("ami-1"), Some(ImageFault::NeverHealthy));
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""latency":"25ms""#), "{text}");
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), s);
    }

    #[test]
    fn seeded_draws_repeat_and_rates_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let mut live = Live::load(path.clone()).unwrap();
        live.set(Settings::default().faults(Faults::default().error_rate(0.5).seed(3))).unwrap();
        let first: Vec<bool> = (0..20).map(|_| live.start_call().1.is_some()).collect();
        let mut again = Live::load(path).unwrap();
        let second: Vec<bool> = (0..20).map(|_| again.start_call().1.is_some()).collect();
        assert_eq!(first, second);
        assert!(first.contains(&true) && first.contains(&false));
        let e = live.set(Settings::default().faults(Faults::default().throttle_rate(2.0)));
        assert!(e.unwrap_err().to_string().contains("`throttle_rate` is 2"));
    }
}
