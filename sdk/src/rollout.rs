//! Rollout strategies: how a fleet's instances are replaced when its launch configuration
//! changes.
//!
//! A [`Rollout`] is an input of an Auto Scaling group (updated in place, never sent to the
//! cloud). The plan shows it; the engine follows it when the fleet rolls.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::resource::problem;
use crate::value::{RefTarget, Refs};

/// How a fleet is rolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rollout {
    /// Replace instances batch by batch, keeping at least `min_healthy_percent` of the desired
    /// capacity healthy and running at most `max_healthy_percent` of it.
    Rolling(Rolling),
}

/// The rolling strategy's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rolling {
    /// The share of desired capacity that must stay healthy (default 90).
    pub min_healthy_percent: u32,
    /// The share of desired capacity that may run during the roll (default 120).
    pub max_healthy_percent: u32,
    /// How long a new instance must stay healthy before it counts (default 0 s).
    #[serde(with = "secs")]
    pub warmup: Duration,
    /// How long to wait for a batch to become healthy before the roll fails (default 600 s).
    #[serde(with = "secs")]
    pub health_timeout: Duration,
    /// Roll back to the previous launch template version when a batch fails (default true).
    pub rollback_on_failure: bool,
}

impl Default for Rolling {
    fn default() -> Self {
        Rolling {
            min_healthy_percent: 90,
            max_healthy_percent: 120,
            warmup: Duration::ZERO,
            health_timeout: Duration::from_secs(600),
            rollback_on_failure: true,
        }
    }
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout::Rolling(Rolling::default())
    }
}

impl Rollout {
    /// A rolling rollout with the default settings.
    pub fn rolling() -> Rollout {
        Rollout::Rolling(Rolling::default())
    }

    fn rolling_mut(&mut self) -> &mut Rolling {
        match self {
            Rollout::Rolling(r) => r,
        }
    }

    /// Sets the share of desired capacity that must stay healthy.
    #[must_use]
    pub fn min_healthy_percent(mut self, percent: u32) -> Rollout {
        self.rolling_mut().min_healthy_percent = percent;
        self
    }

    /// Sets the share of desired capacity that may run during the roll.
    #[must_use]
    pub fn max_healthy_percent(mut self, percent: u32) -> Rollout {
        self.rolling_mut().max_healthy_percent = percent;
        self
    }

    /// Sets how long a new instance must stay healthy before it counts.
    #[must_use]
    pub fn warmup(mut self, warmup: Duration) -> Rollout {
        self.rolling_mut().warmup = warmup;
        self
    }

    /// Sets how long to wait for a batch before the roll fails.
    #[must_use]
    pub fn health_timeout(mut self, timeout: Duration) -> Rollout {
        self.rolling_mut().health_timeout = timeout;
        self
    }

    /// Whether to roll back to the previous version when a batch fails.
    #[must_use]
    pub fn rollback_on_failure(mut self, yes: bool) -> Rollout {
        self.rolling_mut().rollback_on_failure = yes;
        self
    }

    /// Checks the settings; `field` names the input holding them.
    pub fn validate(&self, field: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        match self {
            Rollout::Rolling(r) => {
                if r.min_healthy_percent > 100 {
                    out.push(problem(
                        field,
                        format!(
                            "`min_healthy_percent` is {}; it must be at most 100",
                            r.min_healthy_percent
                        ),
                    ));
                }
                if r.max_healthy_percent < 100 || r.max_healthy_percent > 200 {
                    out.push(problem(
                        field,
                        format!(
                            "`max_healthy_percent` is {}; it must be between 100 and 200",
                            r.max_healthy_percent
                        ),
                    ));
                }
                if r.min_healthy_percent == 100 && r.max_healthy_percent == 100 {
                    out.push(problem(field, "with `min_healthy_percent` 100 and `max_healthy_percent` 100 no instance can ever be replaced; raise `max_healthy_percent` or lower `min_healthy_percent`"));
                }
            }
        }
        out
    }

    /// The size of one batch for a fleet of `desired` instances: how many new instances may
    /// launch above `desired` plus how many old ones may go below the healthy floor, at least 1.
    pub fn batch_size(&self, desired: u32) -> u32 {
        match self {
            Rollout::Rolling(r) => {
                let above = (desired * r.max_healthy_percent / 100).saturating_sub(desired);
                let below = desired.saturating_sub((desired * r.min_healthy_percent).div_ceil(100));
                (above + below).max(1)
            }
        }
    }
}

impl Refs for Rollout {
    fn visit_refs(&self, _: &mut dyn FnMut(RefTarget<'_>)) {}
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes() {
        let r = Rollout::rolling().min_healthy_percent(90).max_healthy_percent(120);
        assert_eq!(r.batch_size(3), 1);
        assert_eq!(r.batch_size(10), 3);
        let r = Rollout::rolling().min_healthy_percent(50).max_healthy_percent(100);
        assert_eq!(r.batch_size(10), 5);
    }

    #[test]
    fn rejects_impossible_settings() {
        let r = Rollout::rolling().min_healthy_percent(100).max_healthy_percent(100);
        assert_eq!(r.validate("rollout").len(), 1);
        assert!(Rollout::rolling().validate("rollout").is_empty());
    }
}
