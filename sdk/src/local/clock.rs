//! Simulated time: tokio's clock, anchored to wall-clock milliseconds.
//!
//! The local cloud reads time through [`tokio::time::Instant`], so a test on tokio's paused clock
//! (`#[tokio::test(start_paused = true)]` and `tokio::time::advance`) runs an hour-long rollout in
//! milliseconds, while a CLI run sees real time. Timestamps are stored as milliseconds since the
//! Unix epoch so that they mean the same thing to every process that opens the cloud: at open
//! the clock starts at the later of the wall clock and the last time the cloud recorded, so time
//! never runs backwards across processes even after a test fast-forwarded it.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A monotonic clock in wall-clock milliseconds.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    /// The tokio instant at which `base_ms` was read.
    base: Instant,
    /// Milliseconds since the epoch at `base`.
    base_ms: u64,
}

impl Clock {
    /// A clock reading the wall clock now, or `floor_ms` if that is later.
    pub(crate) fn new(floor_ms: u64) -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock { base: Instant::now(), base_ms: wall.max(floor_ms) }
    }

    /// Milliseconds since the epoch, now.
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.base).as_millis();
        self.base_ms.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// Moves the clock forward so that it reads at least `ms` (another process recorded a later
    /// time); it never moves back.
    pub(crate) fn bump_to(&mut self, ms: u64) {
        let now = self.now_ms();
        if ms > now {
            self.base_ms += ms - now;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time_and_never_goes_back() {
        let mut clock = Clock::new(0);
        let t0 = clock.now_ms();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms() - t0, 3_600_000);
        clock.bump_to(t0);
        assert_eq!(clock.now_ms() - t0, 3_600_000, "bumping to the past changes nothing");
        clock.bump_to(t0 + 7_200_000);
        assert_eq!(clock.now_ms() - t0, 7_200_000);
    }

    #[test]
    fn starts_at_the_floor_when_it_is_later() {
        let far = 10_000_000_000_000;
        assert!(Clock::new(far).now_ms() >= far);
    }
}
