//! Events: the one way any part of Sixpence says "someone should be told".
//!
//! Producers (connections, sync, analytics, billing) build an [`Event`] and hand it to an
//! [`EventSink`]; nothing sends an email or a webhook directly. Delivery (channels, preferences,
//! exactly-once) belongs to the notifications side, which reads the same type back.
//!
//! Each event carries a **dedupe key**: two events with the same key describe the same fact (the
//! same connection revoked for the same reason, the same secret expiring on the same date), so
//! delivery can send it once however often a timer re-discovers it.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::costs::Micros;
use super::store::StoreError;
use super::tenancy::WorkspaceId;

// Days in events are ISO dates (`2026-11-23`), as every renderer and reader expects; `time`'s own
// serde form is a `[year, ordinal]` tuple.
time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// How urgently a person should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Something happened that a workspace's people should hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique per raising (two raisings of one fact share the dedupe key, not the id).
    pub id: Uuid,
    pub workspace: WorkspaceId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub severity: Severity,
    /// Same key, same fact: delivered once.
    pub dedupe_key: String,
    pub kind: EventKind,
}

/// The kinds of event the product promises. Later producers add their variants here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum EventKind {
    /// Something about a connection's credentials or roles needs the customer's attention.
    Role(RoleEvent),
    /// A cost sync failed for a reason the customer must fix.
    Sync(SyncEvent),
    /// Spend on a monitored scope departed from what its history predicts.
    Anomaly(AnomalyEvent),
    /// A budget threshold was crossed, on actual spend or on the forecast.
    Budget(BudgetEvent),
    /// The workspace's Stripe billing changed in a way its owners must hear about.
    Billing(BillingEvent),
}

/// A subscription's cost sync stopped for a reason only the customer can fix. Dedupe key:
/// `sync-failed:<subscription>:<reason>`, so a nightly retry of the same failure is told once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncEvent {
    pub connection: Uuid,
    pub subscription: String,
    pub run: Uuid,
    /// Stable code of the reason (`accessRevoked`, `secretExpired`, …).
    pub reason: String,
    /// What is wrong and how to fix it, in the customer's words.
    pub message: String,
}

impl SyncEvent {
    pub fn dedupe_key(&self) -> String {
        format!("sync-failed:{}:{}", self.subscription, self.reason)
    }
}

/// Where an anomaly stands. An episode is raised once as `New`, then `Updated` as days join it or
/// restated days change it, and `Resolved` when it ends or an analyst closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AnomalyStatus {
    New,
    Updated,
    Resolved,
}

/// One child series' share of an anomaly's impact ("72 % came from vm-batch-07").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyCause {
    /// The dimension of the child (`resource`, `service`, `resourceGroup`, `meterCategory`).
    pub dimension: String,
    /// The child's value as the customer knows it (a resource name, a service name).
    pub label: String,
    /// Share of the parent's impact, 0–1 (shares of the listed causes and the rest add up to 1).
    pub share: f64,
    pub impact: Micros,
}

/// An anomaly episode on one series. Dedupe key: `anomaly:<anomaly id>:<status>:<revision>`, so a
/// re-run of the same detection is told once but a later update is told again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyEvent {
    pub anomaly: Uuid,
    pub status: AnomalyStatus,
    /// The series, in the customer's words ("Subscription Production", "Service Virtual Machines").
    pub scope: String,
    #[serde(with = "iso_date")]
    pub first_day: Date,
    #[serde(with = "iso_date")]
    pub last_day: Date,
    /// `spike`, `drop`, `newCost`, `removedCost`, `levelShift`, `steadyGrowth`.
    pub anomaly_kind: String,
    /// Over the episode's days.
    pub actual: Micros,
    pub expected: Micros,
    pub impact: Micros,
    /// Impact as a percentage of expected; `None` when nothing was expected (new cost).
    pub impact_percent: Option<f64>,
    pub currency: String,
    pub causes: Vec<AnomalyCause>,
}

/// Which spend a budget threshold watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BudgetBasis {
    Actual,
    Forecast,
}

/// A budget threshold was crossed in a period. Dedupe key:
/// `budget:<budget id>:<period start>:<basis>:<threshold percent>`: once per period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetEvent {
    pub budget: Uuid,
    pub budget_name: String,
    #[serde(with = "iso_date")]
    pub period_start: Date,
    #[serde(with = "iso_date")]
    pub period_end: Date,
    pub basis: BudgetBasis,
    /// The threshold crossed, in percent of the amount (80, 100, …).
    pub threshold_percent: u32,
    pub amount: Micros,
    pub spend: Micros,
    pub forecast: Option<Micros>,
    pub currency: String,
    /// The day spend is projected to pass the amount, if it is.
    #[serde(with = "iso_date::option")]
    pub projected_overrun: Option<Date>,
}

/// What changed in the workspace's billing. Dedupe key: `billing:<stripe event id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum BillingEvent {
    /// A payment failed; Stripe retries on its schedule.
    #[serde(rename_all = "camelCase")]
    PaymentFailed {
        amount: Micros,
        currency: String,
        #[serde(with = "iso_date::option")]
        next_attempt: Option<Date>,
    },
    /// The plan or status of the subscription changed.
    #[serde(rename_all = "camelCase")]
    SubscriptionChanged { plan: String, status: String },
    /// The subscription was cancelled; syncs stop at the end of the paid period.
    #[serde(rename_all = "camelCase")]
    SubscriptionCancelled { ends_on: Option<Date> },
    /// The trial ends soon.
    #[serde(rename_all = "camelCase")]
    TrialEnding { trial_end: Date },
}

/// What is wrong with a connection's service principal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "camelCase")]
pub enum RoleEvent {
    /// Azure stopped accepting the principal (secret revoked or expired, role removed, principal
    /// deleted). Sixpence stopped calling Azure for this connection.
    #[serde(rename_all = "camelCase")]
    CredentialsRevoked {
        connection: Uuid,
        connection_name: String,
        /// Stable code of the reason (`secretExpired`, `accessRevoked`, …).
        reason: String,
        /// What is wrong and how to fix it, in the customer's words.
        message: String,
    },
    /// The principal can change things in the customer's tenant, which Sixpence never needs.
    #[serde(rename_all = "camelCase")]
    OverPrivileged {
        connection: Uuid,
        connection_name: String,
        subscriptions: Vec<String>,
        excess_actions: Vec<String>,
        fix: String,
    },
    /// A subscription chosen for sync can no longer be read.
    #[serde(rename_all = "camelCase")]
    SubscriptionAccessLost {
        connection: Uuid,
        connection_name: String,
        subscription: String,
        fix: String,
    },
    /// The client secret expires soon (the date the admin recorded).
    #[serde(rename_all = "camelCase")]
    SecretExpiring {
        connection: Uuid,
        connection_name: String,
        #[serde(with = "iso_date")]
        expires_on: Date,
        days_left: i64,
    },
}

impl Event {
    pub fn new(
        workspace: WorkspaceId,
        at: OffsetDateTime,
        severity: Severity,
        dedupe_key: String,
        kind: EventKind,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            workspace,
            at,
            severity,
            dedupe_key,
            kind,
        }
    }
}

/// Where events go to be delivered.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Accepts the event for delivery. Once this returns `Ok` the event is durable.
    async fn raise(&self, event: &Event) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn days_in_events_are_iso_dates() {
        let event = Event::new(
            WorkspaceId::new(),
            datetime!(2026-11-23 01:30 UTC),
            Severity::Warning,
            "budget:x".into(),
            EventKind::Budget(BudgetEvent {
                budget: Uuid::nil(),
                budget_name: "Production".into(),
                period_start: date!(2026 - 11 - 01),
                period_end: date!(2026 - 11 - 30),
                basis: BudgetBasis::Forecast,
                threshold_percent: 100,
                amount: Micros(1_000_000_000),
                spend: Micros(700_000_000),
                forecast: Some(Micros(1_100_000_000)),
                currency: "GBP".into(),
                projected_overrun: Some(date!(2026 - 11 - 27)),
            }),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"]["kind"], "budget");
        assert_eq!(json["kind"]["periodStart"], "2026-11-01");
        assert_eq!(json["kind"]["projectedOverrun"], "2026-11-27");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
