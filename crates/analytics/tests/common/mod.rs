#![allow(dead_code)]
pub mod synth;

use sixpence_analytics::{DailySeries, DetectorConfig, Flag, MissingDay, replay};
use time::{Date, Duration};

/// Day `i` of a series starting at `start`.
pub fn day(start: Date, i: usize) -> Date {
    start + Duration::days(i as i64)
}

/// `n` days from `start` of `shape(date, i)` times log-normal noise of width `noise`.
pub fn spend(
    start: Date,
    n: usize,
    noise: f64,
    seed: u64,
    shape: impl Fn(Date, usize) -> f64,
) -> Vec<f64> {
    let mut rng = synth::Rng(seed);
    (0..n)
        .map(|i| shape(day(start, i), i) * (noise * rng.normal()).exp())
        .collect()
}

pub fn series(start: Date, values: &[f64]) -> DailySeries {
    DailySeries::from_values(start, values.iter().copied().map(Some).collect())
}

pub fn flags(series: &DailySeries) -> Vec<Flag> {
    replay(series, &DetectorConfig::default())
}

/// Indices of flagged days.
pub fn flagged_days(series: &DailySeries) -> Vec<usize> {
    flags(series)
        .iter()
        .filter_map(|f| series.index_of(f.date))
        .collect()
}

pub fn weekend(date: Date) -> bool {
    matches!(
        date.weekday(),
        time::Weekday::Saturday | time::Weekday::Sunday
    )
}

pub fn zero_spend(start: Date, points: &[(usize, f64)]) -> DailySeries {
    let pts: Vec<(Date, f64)> = points.iter().map(|&(i, v)| (day(start, i), v)).collect();
    DailySeries::from_points(&pts, MissingDay::ZeroSpend).expect("non-empty")
}
