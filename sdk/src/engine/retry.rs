//! Retries with exponential backoff and full jitter, and token-bucket rate limiting per API
//! category, shaped like AWS's (describe, mutate, launch buckets).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::{self, Category, ErrorKind, RateLimit};

/// How failed calls are retried.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts in all, the first included, for throttling and transient errors.
    pub max_attempts: u32,
    /// Attempts for not-found just after a create (eventual consistency).
    pub not_found_attempts: u32,
    /// The first backoff.
    pub base: Duration,
    /// The longest backoff.
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 10,
            not_found_attempts: 5,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(20),
        }
    }
}

impl Retry {
    /// The delay before attempt `attempt` (1 = the first retry): full jitter over an
    /// exponentially growing window; throttling starts from a window four times wider.
    pub fn delay(&self, attempt: u32, kind: ErrorKind) -> Duration {
        let base = if kind == ErrorKind::Throttling { self.base * 4 } else { self.base };
        let window = base.saturating_mul(1u32 << attempt.min(16)).min(self.cap);
        let millis = window.as_millis().max(1) as u64;
        Duration::from_millis(fastrand::u64(millis / 2..=millis))
    }

    fn attempts(&self, kind: ErrorKind) -> u32 {
        if kind == ErrorKind::NotFoundYet { self.not_found_attempts } else { self.max_attempts }
    }
}

struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

/// Token buckets per API category; a call waits for a token of its category.
#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<Category, Bucket>>,
}

impl Limiter {
    /// A limiter with the given bucket per category (categories absent are unlimited).
    pub fn new(limits: impl IntoIterator<Item = (Category, RateLimit)>) -> Limiter {
        let now = Instant::now();
        let buckets = limits
            .into_iter()
            .map(|(c, limit)| (c, Bucket { limit, tokens: f64::from(limit.capacity), at: now }))
            .collect();
        Limiter { buckets: Mutex::new(buckets) }
    }

    /// Waits until a call of `category` may go.
    pub async fn acquire(&self, category: Category) {
        loop {
            let wait = {
                let Ok(mut buckets) = self.buckets.lock() else { return };
                let Some(b) = buckets.get_mut(&category) else { return };
                let now = Instant::now();
                let elapsed = now.duration_since(b.at).as_secs_f64();
                b.tokens = (b.tokens + elapsed * b.limit.refill_per_second)
                    .min(f64::from(b.limit.capacity));
                b.at = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / b.limit.refill_per_second.max(1e-3))
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Runs `call` until it succeeds, fails terminally, or runs out of attempts; `on_retry` hears
/// of each retry (attempt number, error, delay).
pub(crate) async fn with_retry<T, F, Fut>(
    retry: &Retry,
    limiter: &Limiter,
    category: Category,
    mut call: F,
    mut on_retry: impl FnMut(u32, &provider::Error, Duration),
) -> Result<T, provider::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, provider::Error>>,
{
    let mut attempt = 0;
    loop {
        limiter.acquire(category).await;
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.kind.is_retryable() && attempt + 1 < retry.attempts(e.kind) => {
                attempt += 1;
                let delay = retry.delay(attempt, e.kind);
                on_retry(attempt, &e, delay);
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let r = Retry::default();
        let d1 = r.delay(1, ErrorKind::Transient);
        assert!(d1 <= Duration::from_millis(100), "{d1:?}");
        for attempt in 1..40 {
            assert!(r.delay(attempt, ErrorKind::Throttling) <= r.cap);
        }
        assert!(r.delay(8, ErrorKind::Transient) >= Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_pace_calls() {
        let l =
            Limiter::new([(Category::Mutate, RateLimit { capacity: 2, refill_per_second: 1.0 })]);
        let start = Instant::now();
        for _ in 0..4 {
            l.acquire(Category::Mutate).await;
        }
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1900) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        // Unlimited category: no wait.
        let start = Instant::now();
        l.acquire(Category::Describe).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_errors_only() {
        let mut n = 0;
        let r: Result<u32, _> = with_retry(
            &Retry::default(),
            &Limiter::default(),
            Category::Mutate,
            || {
                n += 1;
                let fail = n < 3;
                async move {
                    if fail {
                        Err(provider::Error::new(
                            ErrorKind::Throttling,
                            "CreateVpc",
                            "RequestLimitExceeded",
                            "slow down",
                        ))
                    } else {
                        Ok(7)
                    }
                }
            },
            |_, _, _| {},
        )
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n, 3);
        let mut m = 0;
        let r: Result<u32, _> = with_retry(
            &Retry::default(),
            &Limiter::default(),
            Category::Mutate,
            || {
                m += 1;
                async {
                    Err(provider::Error::new(
                        ErrorKind::Terminal,
                        "CreateVpc",
                        "InvalidParameterValue",
                        "bad",
                    ))
                }
            },
            |_, _, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(m, 1);
    }
}
