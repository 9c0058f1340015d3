//! Period-end forecasts (month, quarter, year) from daily history, with a prediction interval.
//!
//! # Model
//! - **Regular days** use the detector's baseline ([`crate::detect`]): robust level, Theil–Sen slope
//!   and, where the series has one, the weekly pattern, fitted on the last eight weeks with month
//!   starts left out. The slope is damped (factor [`TREND_DAMPING`] per day ahead) because a slope
//!   measured over four weeks should not be extrapolated linearly for a year.
//! - **Month starts** are modelled separately: reservations, savings plans, support and marketplace
//!   charges land on the 1st, and treating them as ordinary days would both inflate the daily level
//!   and miss next month's charge. The charge is the median excess of the last three 1sts over the
//!   regular level around them, used when it is clearly above the daily noise.
//! - **Interval**: daily noise (the detector's one-step scale) summed over the remaining days, plus
//!   the uncertainty of the level, which does not average out (it is shared by every remaining
//!   day), plus the spread of month-start charges. Reported at [`INTERVAL`] coverage.
//! - With fewer than [`crate::detect::MIN_HISTORY_DAYS`] observed days the forecast falls back to
//!   the run rate (mean daily spend) with a wide interval, and says so ([`ForecastMethod::RunRate`]).
//!
//! Sums use [`crate::money::sum`]; outputs are always finite.

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::detect::{Calendar, Fit, Floor, HISTORY_WINDOW_DAYS, RELATIVE_SCALE_FLOOR, Scratch};
use crate::money;
use crate::series::DailySeries;
use crate::stats;

/// Daily damping of the trend: the slope's effect fades with a half-life of about 34 days, so a
/// month-end forecast follows the recent trend while a year-end forecast does not compound it.
pub const TREND_DAMPING: f64 = 0.98;

/// Coverage of the reported interval. 80 %: a 95 % interval on a month-end forecast made early in
/// the month is too wide to act on, and budget alerts are driven by the central forecast anyway.
pub const INTERVAL: f64 = 0.8;

/// Standard normal quantile for [`INTERVAL`] (two-sided).
const Z_INTERVAL: f64 = 1.2816;

/// Month starts looked back at for the month-start charge.
const MONTH_STARTS_USED: usize = 3;

/// Kind of budget / forecast period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// Calendar month.
    Month,
    /// Calendar quarter.
    Quarter,
    /// Calendar year.
    Year,
}

/// One concrete period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Period {
    /// Kind.
    pub kind: PeriodKind,
    /// First day.
    pub start: Date,
    /// Last day (inclusive).
    pub end: Date,
}

impl Period {
    /// The period of `kind` containing `date`.
    pub fn containing(kind: PeriodKind, date: Date) -> Period {
        let year = date.year();
        let (start_month, months) = match kind {
            PeriodKind::Month => (date.month(), 1),
            PeriodKind::Quarter => {
                let q = (u8::from(date.month()) - 1) / 3;
                (Month::try_from(q * 3 + 1).unwrap_or(Month::January), 3)
            }
            PeriodKind::Year => (Month::January, 12),
        };
        let start = Date::from_calendar_date(year, start_month, 1).unwrap_or(date);
        let mut end_month = start_month;
        for _ in 1..months {
            end_month = end_month.next();
        }
        let end = Date::from_calendar_date(year, end_month, end_month.length(year)).unwrap_or(date);
        Period { kind, start, end }
    }

    /// Stable key: `2025-03`, `2025-Q1` or `2025`.
    pub fn key(&self) -> String {
        match self.kind {
            PeriodKind::Month => format!(
                "{:04}-{:02}",
                self.start.year(),
                u8::from(self.start.month())
            ),
            PeriodKind::Quarter => {
                format!(
                    "{:04}-Q{}",
                    self.start.year(),
                    (u8::from(self.start.month()) - 1) / 3 + 1
                )
            }
            PeriodKind::Year => format!("{:04}", self.start.year()),
        }
    }

    /// Number of days.
    pub fn days(&self) -> i64 {
        (self.end - self.start).whole_days() + 1
    }
}

/// How a forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecastMethod {
    /// Level, trend, weekly pattern and month-start charges.
    Model,
    /// Too little history: mean daily spend so far, wide interval.
    RunRate,
}

/// Forecast of one future day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DailyForecast {
    /// The day.
    pub date: Date,
    /// Expected spend.
    pub mean: f64,
}

/// Forecast of a period's total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodForecast {
    /// The period.
    pub period: Period,
    /// Last day of actuals used.
    pub as_of: Date,
    /// Spend from the period start to `as_of`.
    pub actual_to_date: f64,
    /// Expected spend from `as_of + 1` to the period end.
    pub remaining: f64,
    /// `actual_to_date + remaining`.
    pub total: f64,
    /// Lower bound of the total at [`INTERVAL`] coverage.
    pub lower: f64,
    /// Upper bound of the total.
    pub upper: f64,
    /// How it was made.
    pub method: ForecastMethod,
    /// Whether the weekly pattern was used.
    pub weekly: bool,
    /// Month-start charge expected on each remaining 1st (0 when none was recognised).
    pub month_start_charge: f64,
    /// Daily path of the remaining days.
    pub daily: Vec<DailyForecast>,
}

/// Forecast errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForecastError {
    /// No day with data up to `as_of`.
    #[error("no cost history up to the forecast date")]
    NoHistory,
}

struct DailyModel {
    method: ForecastMethod,
    weekly: bool,
    level: f64,
    slope: f64,
    seasonal: [f64; 7],
    /// Window position of the day the level refers to, and that day's date (for weekday alignment).
    anchor_pos: usize,
    anchor_date: Date,
    sigma: f64,
    level_sd: f64,
    charge: f64,
    charge_sd: f64,
    non_negative: bool,
}

impl DailyModel {
    fn fit(series: &DailySeries, as_of: Date) -> Result<DailyModel, ForecastError> {
        let last = match series.index_of(as_of) {
            Some(i) => i,
            None if series.end().is_some_and(|e| e < as_of) => series.len() - 1,
            None => return Err(ForecastError::NoHistory),
        };
        let from = last.saturating_sub(HISTORY_WINDOW_DAYS);
        let window: Vec<Option<f64>> = series.values()[from..=last].to_vec();
        let anchor_date = series.date_at(last);
        let date_of = |pos: usize| {
            crate::detect::shift_date(anchor_date, pos as i64 - (window.len() - 1) as i64)
        };
        let observed: Vec<f64> = window.iter().flatten().copied().collect();
        if observed.is_empty() {
            return Err(ForecastError::NoHistory);
        }
        let non_negative = series.values().iter().flatten().all(|v| *v >= 0.0);
        // Regular days: month starts left out.
        let regular: Vec<Option<f64>> = window
            .iter()
            .enumerate()
            .map(|(p, v)| if date_of(p).day() == 1 { None } else { *v })
            .collect();
        let mut s = Scratch::default();
        let Some(fit) = Fit::new(
            &regular,
            regular.len(),
            Calendar::new(window.len() - 1, anchor_date),
            Floor::Relative(RELATIVE_SCALE_FLOOR),
            &mut s,
        ) else {
            let mut buf = Vec::new();
            let mean = money::sum(observed.iter().copied()) / observed.len() as f64;
            let spread = if observed.len() >= 3 {
                stats::robust_sd(&observed, &mut buf)
            } else {
                0.0
            }
            .max(0.5 * mean.abs());
            return Ok(DailyModel {
                method: ForecastMethod::RunRate,
                weekly: false,
                level: mean,
                slope: 0.0,
                seasonal: [0.0; 7],
                anchor_pos: window.len() - 1,
                anchor_date,
                sigma: spread,
                level_sd: spread / (observed.len() as f64).sqrt(),
                charge: 0.0,
                charge_sd: 0.0,
                non_negative,
            });
        };
        // Month-start excesses over the regular level around them (the week before).
        let mut excesses = Vec::new();
        let first_index = series.index_of(series.start()).unwrap_or(0);
        let mut d = anchor_date.replace_day(1).unwrap_or(anchor_date);
        while excesses.len() < MONTH_STARTS_USED {
            if let Some(i) = series.index_of(d) {
                if let Some(v) = series.values()[i] {
                    let lo = i.saturating_sub(7).max(first_index);
                    let before: Vec<f64> =
                        series.values()[lo..i].iter().flatten().copied().collect();
                    if before.len() >= 4 {
                        let mut b = before;
                        excesses.push(v - stats::median_in_place(&mut b));
                    }
                }
            } else if d < series.start() {
                break;
            }
            match d.previous_day().and_then(|p| p.replace_day(1).ok()) {
                Some(p) => d = p,
                None => break,
            }
        }
        let mut buf = Vec::new();
        let typical = stats::median_with(&excesses, &mut buf);
        // Only a charge clearly above the daily noise is a recurring month-start charge.
        let (charge, charge_sd) = if !excesses.is_empty() && typical > 2.0 * fit.sigma {
            let spread = if excesses.len() >= 3 {
                stats::robust_sd(&excesses, &mut buf)
            } else {
                0.0
            };
            (typical, spread.max(0.1 * typical))
        } else {
            (0.0, 0.0)
        };
        // The detector's level rests on one week so that it reacts within days; a forecast over
        // weeks or months wants a steadier one: the last four weeks, each moved along the slope to
        // the last day, with half the noise.
        let recent = &fit.deseason[fit.deseason.len().saturating_sub(28)..];
        buf.clear();
        buf.extend(
            recent
                .iter()
                .map(|&(p, v)| v + fit.slope * (fit.last_pos as f64 - p as f64)),
        );
        let level = stats::median_in_place(&mut buf);
        let level_points = recent.len().max(1) as f64;
        Ok(DailyModel {
            method: ForecastMethod::Model,
            weekly: fit.weekly,
            level,
            slope: fit.slope,
            seasonal: fit.seasonal,
            anchor_pos: fit.last_pos,
            anchor_date: date_of(fit.last_pos),
            sigma: fit.sigma,
            // Standard error of a median of n values: √(π/2) σ / √n.
            level_sd: 1.2533 * fit.sigma / level_points.sqrt(),
            charge,
            charge_sd,
            non_negative,
        })
    }

    fn mean_on(&self, date: Date) -> f64 {
        let ahead = (date - self.anchor_date).whole_days().max(0);
        let pos = self.anchor_pos as i64 + ahead;
        // Damped trend: slope × (φ + φ² + … + φ^h).
        let phi = TREND_DAMPING;
        let damped = phi * (1.0 - phi.powi(ahead.min(i32::MAX as i64) as i32)) / (1.0 - phi);
        let mut m = self.level + self.slope * damped + self.seasonal[pos.rem_euclid(7) as usize];
        if date.day() == 1 {
            m += self.charge;
        }
        if self.non_negative {
            m = m.max(0.0);
        }
        money::finite(m)
    }
}

/// Expected spend of each day `as_of + 1 ..= until`.
pub fn forecast_days(
    series: &DailySeries,
    as_of: Date,
    until: Date,
) -> Result<Vec<DailyForecast>, ForecastError> {
    let model = DailyModel::fit(series, as_of)?;
    Ok(days_after(as_of, until)
        .map(|date| DailyForecast {
            date,
            mean: model.mean_on(date),
        })
        .collect())
}

fn days_after(as_of: Date, until: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(as_of.next_day(), |d| d.next_day()).take_while(move |d| *d <= until)
}

/// Forecast of the total of the `kind` period containing `as_of`, using actuals up to `as_of`.
pub fn forecast_period(
    series: &DailySeries,
    as_of: Date,
    kind: PeriodKind,
) -> Result<PeriodForecast, ForecastError> {
    let period = Period::containing(kind, as_of);
    let model = DailyModel::fit(series, as_of)?;
    let actual_to_date = series.sum_between(period.start, as_of);
    let daily: Vec<DailyForecast> = days_after(as_of, period.end)
        .map(|date| DailyForecast {
            date,
            mean: model.mean_on(date),
        })
        .collect();
    let remaining = money::sum(daily.iter().map(|d| d.mean));
    let h = daily.len() as f64;
    let starts = daily.iter().filter(|d| d.date.day() == 1).count() as f64;
    let variance =
        h * model.sigma.powi(2) + (h * model.level_sd).powi(2) + starts * model.charge_sd.powi(2);
    let half = money::finite(Z_INTERVAL * variance.sqrt());
    let mut lower = money::finite(remaining - half);
    if model.non_negative {
        lower = lower.max(0.0);
    }
    let upper = money::finite(remaining + half);
    Ok(PeriodForecast {
        period,
        as_of,
        actual_to_date,
        remaining,
        total: money::sum([actual_to_date, remaining]),
        lower: money::sum([actual_to_date, lower]),
        upper: money::sum([actual_to_date, upper]),
        method: model.method,
        weekly: model.weekly,
        month_start_charge: model.charge,
        daily,
    })
}
