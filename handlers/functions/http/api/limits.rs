//! Request quotas of the tenant API, per workspace (and per user for routes outside a workspace).
//!
//! GCRA via `governor`: a sustained 20 requests per second with bursts of 60 per workspace, generous
//! for a web app and scripts, and it keeps one noisy customer from starving the storage partitions
//! others share. Quotas are per instance: the platform scales instances out, so the effective limit
//! grows with them; that is acceptable for abuse protection, and exact global quotas would cost a
//! storage round trip per request. Checked only after authentication and the membership check, so an
//! outsider cannot spend a workspace's quota.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::Error;

pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

const PER_SECOND: NonZeroU32 = NonZeroU32::new(20).expect("non-zero");
const BURST: NonZeroU32 = NonZeroU32::new(60).expect("non-zero");

impl Default for RateLimits {
    fn default() -> Self {
        Self::new(Quota::per_second(PER_SECOND).allow_burst(BURST))
    }
}

impl RateLimits {
    pub fn new(quota: Quota) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `key`'s quota, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Error> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(Error::RateLimited {
                    retry_after_secs: wait.as_secs().max(1),
                })
            }
        }
    }
}
