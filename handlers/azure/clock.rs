//! Time, injectable: every wait the client does (retry back-off, pacing, token expiry) goes through a
//! [`Clock`], so tests run on virtual time and assert how long the client *would* have waited.

use std::fmt;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of "now" and of sleeping.
#[async_trait::async_trait]
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant (monotonic).
    fn now(&self) -> Instant;
    /// Waits for `duration`.
    async fn sleep(&self, duration: Duration);
}

/// The real clock: `Instant::now()` and `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A virtual clock for tests: `sleep` returns at once, advances "now" and records the duration.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    start: Instant,
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(ManualState {
                start: Instant::now(),
                elapsed: Duration::ZERO,
                sleeps: Vec::new(),
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves time forward without recording a sleep (time passing between calls).
    pub fn advance(&self, by: Duration) {
        self.state().elapsed += by;
    }

    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state().sleeps.clone()
    }

    /// The sum of every sleep so far.
    pub fn slept(&self) -> Duration {
        self.state().sleeps.iter().sum()
    }
}

#[async_trait::async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let state = self.state();
        state.start + state.elapsed
    }

    async fn sleep(&self, duration: Duration) {
        {
            let mut state = self.state();
            state.elapsed += duration;
            state.sleeps.push(duration);
        }
        tokio::task::yield_now().await;
    }
}

/// A uniformly random duration in `[0, max]`, for jitter.
///
/// `RandomState` is seeded from the OS once per thread and perturbed per instance, which is plenty for
/// spreading retries apart and needs no extra dependency.
pub(crate) fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x0051_5870_656e_6365);
    let fraction = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bound() {
        let max = Duration::from_millis(500);
        for _ in 0..1000 {
            assert!(jitter(max) <= max);
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn the_manual_clock_records_sleeps_and_advances() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.sleep(Duration::from_secs(3)).await;
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now() - before, Duration::from_secs(4));
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(3)]);
    }
}
