//! Sixpence analytics engine
//! ========================
//!
//! Pure, deterministic functions over daily cost series; no I/O (apart from the CLI helper reading a
//! CSV), no clock, no global state. The nightly `anomaly-detect` and `budget-check` queue handlers
//! load a series from storage, call these functions and persist what they return; because every
//! function is a pure function of its inputs, a retried or duplicated queue message produces the same
//! result and storage can upsert it idempotently.
//!
//! - [`series`]: a daily series and what a missing day means ([`series::MissingDay`]: zero spend in
//!   the product, no data in a CSV).
//! - [`detect`]: the nightly detector: weekly pattern decided per series, robust expected value and
//!   band, spikes and drops, plus rules for new cost, removed cost, level shifts and steady growth.
//! - [`episode`]: consecutive anomalous days become one episode with a stable identity; restated
//!   days update it instead of creating a duplicate.
//! - [`alert`]: the gate between detection and notification (impact in currency and percent).
//! - [`root_cause`]: ranks child series by their share of a parent anomaly's impact.
//! - [`forecast`]: period-end forecasts (month, quarter, year) with a prediction interval.
//! - [`budget`]: budget evaluation with once-per-period threshold crossings and burn rate.
//! - [`scope`]: which cost rows a budget or monitor covers.
//! - [`money`]: compensated sums and NaN/∞ guards for amounts.
//! - [`cli`]: `detect --csv FILE`, the offline replay used for evaluation.

//!
//! # The nightly flow (what the `anomaly-detect` handler does per series)
//! 1. Load the series' last [`detect::HISTORY_WINDOW_DAYS`] + [`detect::REASSESS_DAYS`] days as a
//!    [`DailySeries`] with [`MissingDay::ZeroSpend`] (the Query API omits zero days) and
//!    [`DailySeries::extend_to`] yesterday.
//! 2. `let flags = detect::nightly(&series, yesterday, &config);` (no replay: each day is a pure
//!    function of its window).
//! 3. `let changes = episode::update_episodes(&stored, episode::Assessed { series: key, from, to,
//!    flags: &flags });` and upsert every [`episode::EpisodeChange`] by [`episode::EpisodeId`].
//!    Re-running the same message yields no changes.
//! 4. For an opened (or grown) episode that passes [`alert::should_alert`] and was not alerted yet,
//!    compute [`root_cause::attribute`] from the child series' flags/baselines and notify once.
//!
//! `budget-check` calls [`budget::evaluate`] with the scope's daily series and inserts the returned
//! crossings whose [`budget::CrossingKey`] is new ([`budget::unrecorded`]).

pub mod alert;
pub mod budget;
pub mod cli;
pub mod detect;
pub mod episode;
pub mod forecast;
pub mod money;
pub mod root_cause;
pub mod scope;
pub mod series;
mod stats;

pub use cli::{CliError, detect_cli};
pub use detect::{
    AnomalyKind, DayAssessment, DetectorConfig, Direction, Flag, Sensitivity, assess_day,
    assess_window, detect_range, nightly, replay,
};
pub use series::{DailySeries, MissingDay};

/// `YYYY-MM-DD`.
pub fn format_date(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}
