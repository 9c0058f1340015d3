//! Pacing Cost Management calls per customer tenant, so we stay inside the tenant's QPU quota instead
//! of finding it with 429s, and one customer's throttling never delays another's.
//!
//! Cost Management charges Query Processing Units **per tenant**: 12 QPU per 10 s, 60 per minute and
//! 600 per hour (about one QPU per month of data queried). [`Pacers`] keeps, per tenant id:
//! - a **ledger** of what this process spent (the estimate before the call, corrected to
//!   `x-ms-ratelimit-microsoft.costmanagement-qpu-consumed` after it), checked against the documented
//!   quotas over sliding windows;
//! - the **hints** from the latest `x-ms-ratelimit-microsoft.costmanagement-qpu-remaining` header (which
//!   also counts what other instances and other tools spent in the tenant): a quota seen at `r` QPU at
//!   time `t` is lowered by what we spent since, and a call that does not fit waits until `t` plus the
//!   quota's window, when the service must have refilled it;
//! - a **block** until the end of the largest retry-after of a 429, so every caller for that tenant
//!   waits rather than each collecting its own 429.
//!
//! State is per process (an optimisation, not a source of truth): a new instance starts empty and
//! learns from the first response's headers. The registry is keyed by tenant id and shared by every
//! client in the process through [`Pacers::global`]; tenants never share state.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use super::throttle::{QPU_REMAINING, parse_qpu_remaining, qpu_consumed};

/// The quotas to pace against and how long a caller may be held back.
#[derive(Debug, Clone)]
pub struct PacingOptions {
    /// `(window, QPU allowed in it)`; the documented Cost Management quotas by default.
    pub quotas: Vec<(Duration, f64)>,
    /// The longest one call may be held back in total. A longer wait fails the call with
    /// [`AzureError::Throttled`](super::AzureError::Throttled) carrying the wait, so a queue handler
    /// can reschedule instead of holding an invocation open.
    pub max_wait: Duration,
}

impl Default for PacingOptions {
    fn default() -> Self {
        Self {
            quotas: vec![
                (Duration::from_secs(10), 12.0),
                (Duration::from_secs(60), 60.0),
                (Duration::from_secs(3600), 600.0),
            ],
            max_wait: Duration::from_secs(90),
        }
    }
}

/// The per-tenant pacers of a process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pacers {
    tenants: Arc<Mutex<HashMap<String, Arc<Mutex<TenantState>>>>>,
    options: Arc<PacingOptions>,
}

impl Default for Pacers {
    fn default() -> Self {
        Self::new(PacingOptions::default())
    }
}

#[derive(Debug, Default)]
struct TenantState {
    next_id: u64,
    /// What we spent: `(when, id, qpu)`, oldest first, pruned after the longest window.
    ledger: VecDeque<(Instant, u64, f64)>,
    /// The latest QPU-remaining report: `(observed at, window, remaining)`.
    hints: Vec<(Instant, Duration, f64)>,
    /// No call before this instant (set from a 429's retry-after).
    blocked_until: Option<Instant>,
}

/// A call admitted by the pacer; settle it with the response's headers.
#[derive(Debug)]
pub(crate) struct Ticket {
    state: Arc<Mutex<TenantState>>,
    id: u64,
}

impl Pacers {
    pub fn new(options: PacingOptions) -> Self {
        Self {
            tenants: Arc::default(),
            options: Arc::new(options),
        }
    }

    /// The process-wide registry every client uses unless given another.
    pub fn global() -> Pacers {
        static GLOBAL: OnceLock<Pacers> = OnceLock::new();
        GLOBAL.get_or_init(Pacers::default).clone()
    }

    pub fn options(&self) -> &PacingOptions {
        &self.options
    }

    fn tenant(&self, tenant_id: &str) -> Arc<Mutex<TenantState>> {
        let key = tenant_id.to_ascii_lowercase();
        let mut tenants = lock(&self.tenants);
        tenants.entry(key).or_default().clone()
    }

    /// Admits a call costing `qpu` now, or says how long to wait before asking again.
    pub(crate) fn try_acquire(
        &self,
        tenant_id: &str,
        qpu: f64,
        now: Instant,
    ) -> Result<Ticket, Duration> {
        let state = self.tenant(tenant_id);
        let mut guard = lock(&state);
        let wait = guard.wait_for(&self.options, qpu, now);
        if !wait.is_zero() {
            return Err(wait);
        }
        guard.next_id += 1;
        let id = guard.next_id;
        guard.ledger.push_back((now, id, qpu));
        drop(guard);
        Ok(Ticket { state, id })
    }

    /// Holds every call for this tenant until `until` (after a 429).
    pub(crate) fn block_until(&self, tenant_id: &str, until: Instant) {
        let state = self.tenant(tenant_id);
        let mut guard = lock(&state);
        guard.blocked_until = Some(guard.blocked_until.map_or(until, |b| b.max(until)));
    }
}

impl Ticket {
    /// Records what the service said the call cost and what is left.
    pub(crate) fn settle(self, headers: &HeaderMap, now: Instant) {
        let mut guard = lock(&self.state);
        if let Some(consumed) = qpu_consumed(headers)
            && let Some(entry) = guard.ledger.iter_mut().find(|(_, id, _)| *id == self.id)
        {
            entry.2 = consumed;
        }
        if let Some(text) = headers.get(QPU_REMAINING).and_then(|v| v.to_str().ok()) {
            let quotas = parse_qpu_remaining(text);
            if !quotas.is_empty() {
                guard.hints = quotas
                    .into_iter()
                    .map(|q| (now, q.window, q.remaining))
                    .collect();
            }
        }
    }
}

impl TenantState {
    fn wait_for(&mut self, options: &PacingOptions, qpu: f64, now: Instant) -> Duration {
        let longest = options
            .quotas
            .iter()
            .map(|(w, _)| *w)
            .chain(self.hints.iter().map(|(_, w, _)| *w))
            .max()
            .unwrap_or_default();
        while self
            .ledger
            .front()
            .is_some_and(|(at, _, _)| now.saturating_duration_since(*at) >= longest)
        {
            self.ledger.pop_front();
        }
        self.hints.retain(|(at, window, _)| *at + *window > now);
        if self.blocked_until.is_some_and(|until| until <= now) {
            self.blocked_until = None;
        }

        let mut ready_at = self.blocked_until.unwrap_or(now);
        for (window, limit) in &options.quotas {
            ready_at = ready_at.max(self.ledger_ready_at(*window, *limit, qpu, now));
        }
        for (observed, window, remaining) in &self.hints {
            let spent_since: f64 = self
                .ledger
                .iter()
                .filter(|(at, _, _)| at > observed)
                .map(|(_, _, q)| q)
                .sum();
            // A call larger than a whole quota can only ever run with that quota full.
            let needed = qpu.min(self.quota_limit(options, *window).unwrap_or(qpu));
            if remaining - spent_since < needed {
                ready_at = ready_at.max(*observed + *window);
            }
        }
        ready_at.saturating_duration_since(now)
    }

    fn quota_limit(&self, options: &PacingOptions, window: Duration) -> Option<f64> {
        options
            .quotas
            .iter()
            .find(|(w, _)| *w == window)
            .map(|(_, l)| *l)
    }

    /// When our own spending leaves room for `qpu` more in the sliding `window`.
    fn ledger_ready_at(&self, window: Duration, limit: f64, qpu: f64, now: Instant) -> Instant {
        let needed = qpu.min(limit);
        let in_window: Vec<&(Instant, u64, f64)> = self
            .ledger
            .iter()
            .filter(|(at, _, _)| now.saturating_duration_since(*at) < window)
            .collect();
        let mut used: f64 = in_window.iter().map(|(_, _, q)| q).sum();
        if used + needed <= limit {
            return now;
        }
        for (at, _, q) in in_window {
            used -= q;
            if used + needed <= limit {
                return *at + window;
            }
        }
        now
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const A: &str = "tenant-a";
    const B: &str = "tenant-b";

    fn remaining(value: &str, consumed: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(QPU_REMAINING, HeaderValue::from_str(value).unwrap());
        headers.insert(
            super::super::throttle::QPU_CONSUMED,
            HeaderValue::from_str(consumed).unwrap(),
        );
        headers
    }

    #[test]
    fn the_documented_ten_second_quota_is_not_exceeded_by_our_own_calls() {
        let pacers = Pacers::default();
        let t0 = Instant::now();
        for _ in 0..12 {
            pacers.try_acquire(A, 1.0, t0).unwrap();
        }
        let wait = pacers.try_acquire(A, 1.0, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(pacers.try_acquire(A, 1.0, t0 + wait).is_ok());
        assert!(
            pacers.try_acquire(B, 1.0, t0).is_ok(),
            "tenant B is not held back"
        );
    }

    #[test]
    fn a_low_remaining_header_delays_until_its_window_refills() {
        let pacers = Pacers::default();
        let t0 = Instant::now();
        let ticket = pacers.try_acquire(A, 1.0, t0).unwrap();
        ticket.settle(&remaining("QueriesPerHour:500,QueriesPerMin:0", "1"), t0);

        let wait = pacers.try_acquire(A, 1.0, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(pacers.try_acquire(B, 1.0, t0).is_ok());
        assert!(
            pacers
                .try_acquire(A, 1.0, t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn what_we_spent_after_a_report_counts_against_it() {
        let pacers = Pacers::default();
        let t0 = Instant::now();
        pacers
            .try_acquire(A, 1.0, t0)
            .unwrap()
            .settle(&remaining("QueriesPerMin:2", "1"), t0);
        let t1 = t0 + Duration::from_millis(1);
        pacers.try_acquire(A, 1.0, t1).unwrap();
        pacers.try_acquire(A, 1.0, t1).unwrap();
        assert_eq!(
            pacers.try_acquire(A, 1.0, t1).unwrap_err(),
            Duration::from_secs(60) - Duration::from_millis(1)
        );
    }

    #[test]
    fn the_consumed_header_corrects_the_estimate() {
        let pacers = Pacers::default();
        let t0 = Instant::now();
        pacers
            .try_acquire(A, 1.0, t0)
            .unwrap()
            .settle(&remaining("", "12"), t0);
        assert_eq!(
            pacers.try_acquire(A, 1.0, t0).unwrap_err(),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_block_holds_the_tenant_only() {
        let pacers = Pacers::default();
        let t0 = Instant::now();
        pacers.block_until(A, t0 + Duration::from_secs(30));
        assert_eq!(
            pacers.try_acquire(A, 1.0, t0).unwrap_err(),
            Duration::from_secs(30)
        );
        assert!(pacers.try_acquire(B, 1.0, t0).is_ok());
        assert!(
            pacers
                .try_acquire(A, 1.0, t0 + Duration::from_secs(30))
                .is_ok()
        );
    }

    #[test]
    fn a_call_bigger_than_a_quota_waits_for_an_empty_window_not_forever() {
        let pacers = Pacers::default();
        let t0 = Instant::now();
        pacers.try_acquire(A, 13.0, t0).unwrap();
        let wait = pacers.try_acquire(A, 13.0, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
    }
}
