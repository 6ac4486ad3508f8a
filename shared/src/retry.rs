//! The one retry policy: capped exponential backoff with "equal" jitter (each delay drawn
//! uniformly from the upper half of its exponential step, so that clients that failed together
//! spread out but none retries at once), bounded by a total time.
//!
//! Every layer that retries (connecting to PostgreSQL, calling the Neon API) uses [`Backoff`]
//! and decides what is retryable by asking its own error type, never by matching message text.
//! AWS SDK calls are left to the SDK's own retry layer instead, so that no call is retried twice.

use std::time::{Duration, Instant};

use rand::Rng;

/// Capped exponential backoff with equal jitter and an overall time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Longest single delay.
    pub max_delay: Duration,
    /// No new attempt starts once this much time has passed since the first one.
    pub max_elapsed: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0 for the first retry): the exponential step,
    /// capped, then drawn uniformly from its upper half so that clients spread out.
    pub fn delay(&self, retry: u32) -> Duration {
        let step = self
            .initial
            .saturating_mul(2u32.saturating_pow(retry.min(20)))
            .min(self.max_delay);
        let half = step / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// Starts tracking the attempts of one operation.
    pub fn start(&self) -> Attempts {
        Attempts {
            policy: *self,
            started: Instant::now(),
            retries: 0,
        }
    }
}

/// The attempts made so far for one operation under a [`Backoff`].
#[derive(Debug)]
pub struct Attempts {
    policy: Backoff,
    started: Instant,
    retries: u32,
}

impl Attempts {
    /// How many attempts have been made (counting the current one).
    pub fn count(&self) -> u32 {
        self.retries + 1
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The delay to wait before the next attempt, or `None` when the time budget does not allow
    /// another one. `hint` (for example a `Retry-After` header) replaces the computed delay when
    /// it is longer.
    pub fn next_delay(&mut self, hint: Option<Duration>) -> Option<Duration> {
        let mut delay = self.policy.delay(self.retries);
        if let Some(hint) = hint {
            delay = delay.max(hint);
        }
        let elapsed = self.started.elapsed();
        if elapsed + delay > self.policy.max_elapsed {
            // Use what is left of the budget for one last attempt, if anything is left.
            let left = self.policy.max_elapsed.checked_sub(elapsed)?;
            if left.is_zero() {
                return None;
            }
            delay = left;
        }
        self.retries += 1;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(60),
        };
        for retry in 0..30 {
            let d = b.delay(retry);
            let step = (Duration::from_millis(100) * 2u32.saturating_pow(retry.min(20)))
                .min(Duration::from_secs(1));
            assert!(
                d >= step / 2 && d <= step + Duration::from_millis(1),
                "{retry}: {d:?}"
            );
        }
    }

    #[test]
    fn delays_are_jittered() {
        let b = Backoff::default();
        let delays: std::collections::HashSet<Duration> = (0..50).map(|_| b.delay(4)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn budget_ends_the_attempts() {
        let b = Backoff {
            initial: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_elapsed: Duration::from_millis(0),
        };
        let mut a = b.start();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(a.next_delay(None), None);
        assert_eq!(a.count(), 1);
    }
}
