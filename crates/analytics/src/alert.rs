//! Alert gating: which detected anomalies are worth a notification.
//!
//! Detection reports everything (every episode is stored and queryable); this gate only decides
//! whether someone is told. It looks at an episode's impact in currency **and** in percent, as AWS
//! Cost Anomaly Detection's thresholds do: a +300 % jump on a 2p series is noise to a FinOps lead,
//! and so is +£50 on a £40,000-a-day subscription.

use serde::{Deserialize, Serialize};

use crate::detect::Direction;
use crate::episode::Episode;

/// Which directions are alerted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertDirections {
    /// Increases and decreases (a decrease can be a broken pipeline or a lost resource).
    #[default]
    Both,
    /// Increases only.
    UpOnly,
}

/// Thresholds of the alert gate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertPolicy {
    /// Minimum |cumulative impact| in the billing currency; `0` switches the currency gate off.
    pub min_impact: f64,
    /// Minimum |impact| in percent of the expected spend (of the episode's peak day or of the
    /// whole episode, whichever is larger); `0` switches the percent gate off.
    pub min_impact_pct: f64,
    /// Directions alerted on.
    pub directions: AlertDirections,
}

impl Default for AlertPolicy {
    /// £/$/€ 10 and 10 %: below ten units a day nobody acts on a cost anomaly, and below 10 % the
    /// move is within what weekly and monthly patterns routinely do to a series.
    fn default() -> Self {
        AlertPolicy {
            min_impact: 10.0,
            min_impact_pct: 10.0,
            directions: AlertDirections::Both,
        }
    }
}

/// Why an episode is or is not alerted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertDecision {
    /// Passes every gate.
    Alert,
    /// Direction not alerted on.
    DirectionIgnored,
    /// |impact| below `min_impact`.
    ImpactTooSmall,
    /// |impact %| below `min_impact_pct`.
    PercentTooSmall,
}

/// Applies the gate to an episode. An episode's impact only grows while it is open, so the storage
/// layer alerts on the first `Alert` and records that it did; later updates of the same episode are
/// not re-alerted (the notification can be edited in place instead).
pub fn evaluate(episode: &Episode, policy: &AlertPolicy) -> AlertDecision {
    if policy.directions == AlertDirections::UpOnly && episode.direction == Direction::Down {
        return AlertDecision::DirectionIgnored;
    }
    if episode.cumulative_impact.abs() < policy.min_impact {
        return AlertDecision::ImpactTooSmall;
    }
    if policy.min_impact_pct > 0.0 {
        let peak_pct = crate::money::percent(episode.peak.impact, episode.peak.expected);
        let pct = match (peak_pct, episode.cumulative_impact_pct()) {
            // Nothing was expected (new cost): any spend is infinitely many percent.
            (None, _) | (_, None) => f64::MAX,
            (Some(a), Some(b)) => a.abs().max(b.abs()),
        };
        if pct < policy.min_impact_pct {
            return AlertDecision::PercentTooSmall;
        }
    }
    AlertDecision::Alert
}

/// True when `episode` passes the gate.
pub fn should_alert(episode: &Episode, policy: &AlertPolicy) -> bool {
    evaluate(episode, policy) == AlertDecision::Alert
}
