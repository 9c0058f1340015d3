//! Budgets: actual and forecast spend against an amount per period, with threshold crossings that
//! are reported once per period.
//!
//! # Idempotency
//! [`evaluate`] is a pure function of the budget, the scope's daily costs and the evaluation date.
//! It returns **every** threshold that stands crossed, each under a [`CrossingKey`]
//! `(budget, period, threshold, basis)`. Storage inserts crossings only when their key is new
//! ([`unrecorded`] does that filtering given the stored keys), so re-running a night, receiving a
//! queue message twice, or a restatement that briefly takes spend under a threshold and back over it
//! never sends a second notification for the same threshold in the same period.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::forecast::{self, Period, PeriodForecast, PeriodKind};
use crate::money;
use crate::scope::Scope;
use crate::series::DailySeries;

/// What a threshold is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Spend so far in the period.
    Actual,
    /// Forecast total of the period.
    Forecast,
}

/// One alert threshold, in percent of the budget amount (e.g. 80, 100, 120).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Percent of the amount.
    pub percent: f64,
    /// Actual or forecast.
    pub basis: Basis,
}

/// A budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Stable id.
    pub id: String,
    /// Amount per period, in the billing currency.
    pub amount: f64,
    /// Period kind.
    pub period: PeriodKind,
    /// Alert thresholds.
    pub thresholds: Vec<Threshold>,
    /// Which cost rows count (the caller builds the daily series from the matching rows).
    #[serde(default)]
    pub scope: Scope,
}

/// Identity of a crossing: storage dedupes on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CrossingKey {
    /// Budget id.
    pub budget_id: String,
    /// Period key (`2025-03`, `2025-Q1`, `2025`).
    pub period: String,
    /// Threshold in basis points (hundredths of a percent), so the key holds no float.
    pub threshold_bp: u32,
    /// Actual or forecast.
    pub basis: Basis,
}

impl CrossingKey {
    /// `budget|period|basis|bp`, usable as a table row key.
    pub fn as_row_key(&self) -> String {
        let basis = match self.basis {
            Basis::Actual => "actual",
            Basis::Forecast => "forecast",
        };
        format!(
            "{}|{}|{}|{}",
            self.budget_id, self.period, basis, self.threshold_bp
        )
    }
}

/// A threshold that stands crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// Dedupe key.
    pub key: CrossingKey,
    /// The threshold.
    pub threshold: Threshold,
    /// Actual or forecast spend in percent of the amount.
    pub value_pct: f64,
}

/// Result of evaluating a budget on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// Budget id.
    pub budget_id: String,
    /// Current period.
    pub period: Period,
    /// Last day of actuals.
    pub as_of: Date,
    /// Spend so far in the period.
    pub actual: f64,
    /// `actual / amount × 100`.
    pub actual_pct: f64,
    /// Forecast of the period total (`None` without any history).
    pub forecast: Option<PeriodForecast>,
    /// Forecast total in percent of the amount.
    pub forecast_pct: Option<f64>,
    /// Mean daily spend so far in the period.
    pub burn_rate: f64,
    /// Daily spend that would exactly use up the rest of the budget (`None` on the last day).
    pub allowed_daily_rate: Option<f64>,
    /// Day the budget was or is projected to be exceeded (`None` if not within the period).
    pub projected_overrun_date: Option<Date>,
    /// Every threshold that stands crossed.
    pub crossings: Vec<Crossing>,
}

/// Invalid budget definitions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// Amount not positive and finite.
    #[error("budget amount must be a positive number, got {0}")]
    InvalidAmount(f64),
    /// Threshold not positive and finite (or absurdly large).
    #[error("threshold percent must be in (0, 10000], got {0}")]
    InvalidThreshold(f64),
}

/// Evaluates `budget` on `as_of` against `daily`, the scope's daily spend (missing days = zero).
pub fn evaluate(
    budget: &Budget,
    daily: &DailySeries,
    as_of: Date,
) -> Result<BudgetStatus, BudgetError> {
    if !(budget.amount.is_finite() && budget.amount > 0.0) {
        return Err(BudgetError::InvalidAmount(budget.amount));
    }
    for t in &budget.thresholds {
        if !(t.percent.is_finite() && t.percent > 0.0 && t.percent <= 10_000.0) {
            return Err(BudgetError::InvalidThreshold(t.percent));
        }
    }
    let period = Period::containing(budget.period, as_of);
    let actual = daily.sum_between(period.start, as_of);
    let actual_pct = money::finite(actual / budget.amount * 100.0);
    let forecast = forecast::forecast_period(daily, as_of, budget.period).ok();
    let forecast_pct = forecast
        .as_ref()
        .map(|f| money::finite(f.total / budget.amount * 100.0));
    let elapsed = (as_of - period.start).whole_days() + 1;
    let remaining_days = (period.end - as_of).whole_days();
    let burn_rate = money::finite(actual / elapsed.max(1) as f64);
    let allowed_daily_rate = (remaining_days > 0)
        .then(|| money::finite((budget.amount - actual) / remaining_days as f64));

    let projected_overrun_date = if actual > budget.amount {
        // Already over: the day the running actual first passed the amount.
        let mut running = Vec::new();
        let mut found = None;
        let mut d = period.start;
        while d <= as_of {
            running.push(daily.get(d).unwrap_or(0.0));
            if money::sum(running.iter().copied()) > budget.amount {
                found = Some(d);
                break;
            }
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
        found
    } else {
        forecast.as_ref().and_then(|f| {
            let mut running = vec![actual];
            f.daily.iter().find_map(|day| {
                running.push(day.mean);
                (money::sum(running.iter().copied()) > budget.amount).then_some(day.date)
            })
        })
    };

    let crossings = budget
        .thresholds
        .iter()
        .filter_map(|t| {
            let value = match t.basis {
                Basis::Actual => Some(actual_pct),
                Basis::Forecast => forecast_pct,
            }?;
            (value >= t.percent).then(|| Crossing {
                key: CrossingKey {
                    budget_id: budget.id.clone(),
                    period: period.key(),
                    threshold_bp: (t.percent * 100.0).round() as u32,
                    basis: t.basis,
                },
                threshold: *t,
                value_pct: value,
            })
        })
        .collect();

    Ok(BudgetStatus {
        budget_id: budget.id.clone(),
        period,
        as_of,
        actual,
        actual_pct,
        forecast,
        forecast_pct,
        burn_rate,
        allowed_daily_rate,
        projected_overrun_date,
        crossings,
    })
}

/// The crossings of `status` whose keys are not in `recorded`: the ones to store and notify.
pub fn unrecorded<'a>(status: &'a BudgetStatus, recorded: &[CrossingKey]) -> Vec<&'a Crossing> {
    status
        .crossings
        .iter()
        .filter(|c| !recorded.contains(&c.key))
        .collect()
}
