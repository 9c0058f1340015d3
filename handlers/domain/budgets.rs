//! Budgets in the product: what a workspace defines, how a budget's daily spend is built from the
//! stored cost rows, and the event a threshold crossing raises.
//!
//! Evaluation is the engine's (`sixpence_analytics::budget::evaluate`): every threshold that stands
//! crossed comes back under a key `(budget, period, basis, threshold)`; the store records each key
//! once, so a crossing is told once per period however often `budget-check` runs and whatever a
//! restatement does to spend in between.
//!
//! ## Decisions
//! - **Actual cost**, as Azure's and AWS's budgets use: a budget is about the money that will be
//!   invoiced, purchases included on the day they are bought.
//! - **Tags come from the costs where they can.** For a tag key the workspace syncs costs by
//!   (`costTagKeys`), a filter matches a resource's cost on the days Cost Management reported it with
//!   that tag value: history stays as it was billed after a re-tag, and a resource deleted mid-month
//!   keeps counting. For other keys (or while a newly chosen key's history is still being re-read) it
//!   falls back to the resource's tags in the last synced inventory; a resource deleted before the
//!   inventory saw it (or costs without a resource) never match such a filter.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sixpence_analytics::DailySeries;
use sixpence_analytics::budget::{Basis, BudgetStatus, Crossing};
use sixpence_analytics::forecast::PeriodKind;
use sixpence_analytics::scope::{RowDimensions, Scope, TagFilter};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::anomalies::micros;
use super::costs::{Micros, StoredRow, TagKey, resource_group_of};
use super::events::{BudgetBasis, BudgetEvent, Event, EventKind, Severity};
use super::store::{StoreError, Version, Versioned};
use super::tenancy::WorkspaceId;

/// Most budgets one workspace may have (bounds what one `budget-check` evaluates).
pub const MAX_BUDGETS: usize = 100;
/// Most thresholds per budget.
pub const MAX_THRESHOLDS: usize = 10;

/// A budget threshold: percent of the amount, on actual spend or on the forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Threshold {
    /// Whole percent (1–1000).
    pub percent: u32,
    pub basis: BudgetBasis,
}

/// A workspace's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub id: Uuid,
    pub name: String,
    /// Per period, in the billing currency.
    pub amount: Micros,
    pub period: PeriodKind,
    pub scope: Scope,
    pub thresholds: Vec<Threshold>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Budget {
    /// Checks what a client sent; the reason in the client's words.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err("name must be 1 to 100 characters".to_owned());
        }
        if self.amount.0 <= 0 {
            return Err("amount must be positive".to_owned());
        }
        if self.thresholds.is_empty() || self.thresholds.len() > MAX_THRESHOLDS {
            return Err(format!(
                "thresholds must list 1 to {MAX_THRESHOLDS} thresholds"
            ));
        }
        if self
            .thresholds
            .iter()
            .any(|t| !(1..=1000).contains(&t.percent))
        {
            return Err("a threshold's percent must be between 1 and 1000".to_owned());
        }
        let mut seen: Vec<(u32, BudgetBasis)> = self
            .thresholds
            .iter()
            .map(|t| (t.percent, t.basis))
            .collect();
        seen.sort_by_key(|(p, b)| (*p, *b == BudgetBasis::Forecast));
        seen.dedup();
        if seen.len() != self.thresholds.len() {
            return Err("thresholds must not repeat".to_owned());
        }
        let lists = [
            &self.scope.subscriptions,
            &self.scope.resource_groups,
            &self.scope.services,
        ];
        if lists.iter().any(|l| l.len() > 50) || self.scope.tags.len() > 10 {
            return Err("a scope lists at most 50 values per dimension and 10 tags".to_owned());
        }
        if lists
            .iter()
            .any(|l| l.iter().any(|v| v.trim().is_empty() || v.len() > 200))
            || self.scope.tags.iter().any(|t| t.key.trim().is_empty())
        {
            return Err("scope values must not be empty".to_owned());
        }
        Ok(())
    }

    /// The engine's view of it.
    pub fn engine(&self) -> sixpence_analytics::budget::Budget {
        sixpence_analytics::budget::Budget {
            id: self.id.to_string(),
            amount: self.amount.0 as f64 / 1e6,
            period: self.period,
            thresholds: self
                .thresholds
                .iter()
                .map(|t| sixpence_analytics::budget::Threshold {
                    percent: f64::from(t.percent),
                    basis: match t.basis {
                        BudgetBasis::Actual => Basis::Actual,
                        BudgetBasis::Forecast => Basis::Forecast,
                    },
                })
                .collect(),
            scope: self.scope.clone(),
        }
    }

    /// Whether costs of `subscription` can count toward this budget.
    pub fn covers_subscription(&self, subscription: &str) -> bool {
        self.scope.subscriptions.is_empty()
            || self
                .scope
                .subscriptions
                .iter()
                .any(|s| s.eq_ignore_ascii_case(subscription))
    }
}

/// The last evaluation of a budget, stored beside it for the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    pub as_of: Date,
    pub period_start: Date,
    pub period_end: Date,
    pub actual: Micros,
    pub actual_percent: f64,
    pub forecast: Option<Micros>,
    pub forecast_lower: Option<Micros>,
    pub forecast_upper: Option<Micros>,
    pub forecast_percent: Option<f64>,
    /// Mean daily spend so far in the period.
    pub burn_rate: Micros,
    /// Daily spend that would use up exactly the rest of the amount.
    pub allowed_daily_rate: Option<Micros>,
    pub projected_overrun: Option<Date>,
    pub currency: String,
}

impl Evaluation {
    pub fn of(status: &BudgetStatus, currency: &str) -> Self {
        Evaluation {
            as_of: status.as_of,
            period_start: status.period.start,
            period_end: status.period.end,
            actual: micros(status.actual),
            actual_percent: status.actual_pct,
            forecast: status.forecast.as_ref().map(|f| micros(f.total)),
            forecast_lower: status.forecast.as_ref().map(|f| micros(f.lower)),
            forecast_upper: status.forecast.as_ref().map(|f| micros(f.upper)),
            forecast_percent: status.forecast_pct,
            burn_rate: micros(status.burn_rate),
            allowed_daily_rate: status.allowed_daily_rate.map(micros),
            projected_overrun: status.projected_overrun_date,
            currency: currency.to_owned(),
        }
    }
}

/// Which tags a resource's cost carried: per day from the cost tag views for the keys synced that
/// way, otherwise the resource's current tags from the inventory.
#[derive(Debug, Default)]
pub struct ResourceTags {
    /// Folded tag key → day → lower-case resource → the values its cost carried that day.
    costed: HashMap<String, HashMap<Date, HashMap<String, Vec<String>>>>,
    /// Lower-case resource → its tags in the last synced inventory.
    current: BTreeMap<String, Vec<(String, String)>>,
}

impl ResourceTags {
    /// Records the rows of `key`'s cost tag view; from now on `key` is judged by them alone.
    pub fn add_costed(&mut self, key: &TagKey, rows: &[StoredRow]) {
        let days = self.costed.entry(key.folded()).or_default();
        for r in rows {
            // Costs with no value for the key group under "": they do not carry it.
            if r.row.value.is_empty() {
                continue;
            }
            let values = days
                .entry(r.day)
                .or_default()
                .entry(r.row.resource.to_ascii_lowercase())
                .or_default();
            if !values.contains(&r.row.value) {
                values.push(r.row.value.clone());
            }
        }
    }

    /// Records a resource's current tags (from the inventory).
    pub fn add_current(&mut self, resource: &str, tags: Vec<(String, String)>) {
        self.current.insert(resource.to_ascii_lowercase(), tags);
    }

    /// Whether the cost of `resource` on `day` satisfies `filter`.
    fn holds(&self, filter: &TagFilter, resource: &str, day: Date) -> bool {
        let resource = resource.to_ascii_lowercase();
        let wanted = |value: &str| filter.value.as_deref().is_none_or(|want| want == value);
        match self.costed.get(&filter.key.to_lowercase()) {
            Some(days) => days
                .get(&day)
                .and_then(|resources| resources.get(&resource))
                .is_some_and(|values| values.iter().any(|v| wanted(v))),
            None => self.current.get(&resource).is_some_and(|tags| {
                tags.iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(&filter.key) && wanted(v))
            }),
        }
    }
}

/// The daily spend of the rows in `scope`, from `from` to `to` (missing days are zero spend).
/// `rows` are rows of the service view (resource and service on each).
///
/// A resource whose cost carried two values of a key on one day (re-tagged that day) matches a
/// filter on either value for the whole day's cost of the service view: the service and tag views
/// cannot be joined more finely than (resource, day).
pub fn daily_spend(
    scope: &Scope,
    rows: &[StoredRow],
    tags: &ResourceTags,
    from: Date,
    to: Date,
) -> DailySeries {
    let untagged = Scope {
        tags: Vec::new(),
        ..scope.clone()
    };
    let mut by_day: BTreeMap<Date, i64> = BTreeMap::new();
    for r in rows {
        if r.day < from || r.day > to {
            continue;
        }
        let dims = RowDimensions {
            subscription: &r.subscription,
            resource_group: resource_group_of(&r.row.resource),
            service: &r.row.value,
            tags: &[],
        };
        if untagged.matches(&dims)
            && scope
                .tags
                .iter()
                .all(|t| tags.holds(t, &r.row.resource, r.day))
        {
            *by_day.entry(r.day).or_insert(0) += r.row.amount.0;
        }
    }
    let mut values = Vec::new();
    let mut d = from;
    while d <= to {
        values.push(Some(by_day.get(&d).copied().unwrap_or(0) as f64 / 1e6));
        d += Duration::days(1);
    }
    DailySeries::from_values(from, values)
}

/// The event of a newly crossed threshold. Dedupe key
/// `budget:<budget id>:<period start>:<basis>:<threshold percent>`: once per period.
pub fn budget_event(
    workspace: WorkspaceId,
    budget: &Budget,
    status: &BudgetStatus,
    crossing: &Crossing,
    currency: &str,
    at: OffsetDateTime,
) -> Event {
    let basis = match crossing.key.basis {
        Basis::Actual => BudgetBasis::Actual,
        Basis::Forecast => BudgetBasis::Forecast,
    };
    let percent = crossing.key.threshold_bp / 100;
    let event = BudgetEvent {
        budget: budget.id,
        budget_name: budget.name.clone(),
        period_start: status.period.start,
        period_end: status.period.end,
        basis,
        threshold_percent: percent,
        amount: budget.amount,
        spend: micros(status.actual),
        forecast: status.forecast.as_ref().map(|f| micros(f.total)),
        currency: currency.to_owned(),
        projected_overrun: status.projected_overrun_date,
    };
    let basis_word = match basis {
        BudgetBasis::Actual => "actual",
        BudgetBasis::Forecast => "forecast",
    };
    let severity = if basis == BudgetBasis::Actual && percent >= 100 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    Event::new(
        workspace,
        at,
        severity,
        format!(
            "budget:{}:{}:{basis_word}:{percent}",
            budget.id,
            sixpence_analytics::format_date(status.period.start)
        ),
        EventKind::Budget(event),
    )
}

/// Storage of budgets, their last evaluation and their recorded crossings.
#[async_trait::async_trait]
pub trait BudgetStore: Send + Sync {
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Budget>>, StoreError>;
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Versioned<Budget>>, StoreError>;
    /// The last evaluation of a budget, if any.
    async fn evaluation(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Evaluation>, StoreError>;
    async fn create(&self, workspace: WorkspaceId, budget: &Budget) -> Result<Version, StoreError>;
    /// Replaces a budget if it is still at `version` (any version when `None`).
    async fn replace(
        &self,
        workspace: WorkspaceId,
        budget: &Budget,
        version: Option<&Version>,
    ) -> Result<Version, StoreError>;
    /// `false` when there was nothing to delete.
    async fn delete(&self, workspace: WorkspaceId, id: Uuid) -> Result<bool, StoreError>;
    async fn save_evaluation(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
        evaluation: &Evaluation,
    ) -> Result<(), StoreError>;
    /// Whether the crossing `key` (a `CrossingKey::as_row_key`) is recorded.
    async fn crossing_recorded(
        &self,
        workspace: WorkspaceId,
        key: &str,
    ) -> Result<bool, StoreError>;
    /// Records a crossing; `Ok(false)` when it was recorded already.
    async fn record_crossing(&self, workspace: WorkspaceId, key: &str) -> Result<bool, StoreError>;
}
