//! `budget-check`: after each successful cost sync, evaluates the workspace's budgets that can
//! include the synced subscription, stores each one's status (spend, forecast, burn rate,
//! projected overrun) and raises a budget event for each threshold newly crossed in the period.
//!
//! ## Idempotent
//! The engine returns every threshold that stands crossed under a key `(budget, period, basis,
//! threshold)`; a crossing is told only when its key is not recorded yet, and recorded right after
//! its event is raised. A re-run, a second subscription's message the same night, or a restatement
//! that takes spend under a threshold and back over it finds the key recorded and tells nothing. A
//! crash between raising and recording re-raises the same event (same dedupe key): delivery sends
//! it once.

use sixpence_analytics::DailySeries;
use sixpence_analytics::forecast::Period;
use sixpence_analytics::scope::Scope;
use time::{Date, Duration, OffsetDateTime};

use crate::app::AppState;
use crate::domain::budgets::{self, Budget, Evaluation, ResourceTags};
use crate::domain::costs::{Metric, StoredRow, View};
use crate::domain::inventory::InventoryFilter;
use crate::domain::store::PageRequest;
use crate::domain::tenancy::WorkspaceId;
use crate::error::Result;
use crate::functions::invoke::HandlerFuture;
use crate::functions::queue::anomaly_detect::checked_span;
use crate::functions::queue::cost_sync::{CHANGED_DAYS_VERSION, ChangedDaysMessage};
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};
use crate::storage::names;

pub const NAME: &str = "budget-check";
pub const QUEUE: &str = names::BUDGET_CHECK_QUEUE;
const BINDING: &str = "message";
/// Days of history before a period's start loaded for the forecast (the detector's window and a
/// month: the forecast fits on the last eight weeks and looks at the last three month starts).
const FORECAST_HISTORY_DAYS: i64 = 120;

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Queue {
        binding: BINDING,
        queue: QUEUE,
    },
    handler: Some(handle),
};

fn handle(state: AppState, request: InvokeRequest, _context: InvocationContext) -> HandlerFuture {
    Box::pin(run(state, request))
}

async fn run(state: AppState, request: InvokeRequest) -> Result<Outputs> {
    let trigger = QueueTrigger::from_request(&request, BINDING)?;
    let message: ChangedDaysMessage = super::versioned_message(
        &trigger,
        NAME,
        CHANGED_DAYS_VERSION,
        |m: &ChangedDaysMessage| m.version,
    )?;
    let Some((_, last)) = checked_span(&message)? else {
        return Ok(Outputs::default());
    };
    state.ready().await?;
    // Stopped at once when the workspace is being deleted: the message is dropped (logged).
    if crate::deletion::drops(&state, message.workspace, NAME).await? {
        return Ok(Outputs::default());
    }
    let told = check(
        &state,
        message.workspace,
        &message.subscription.to_ascii_lowercase(),
        last,
    )
    .await?;
    tracing::info!(workspace = %message.workspace, subscription = %message.subscription, run = %message.run, told, "budgets checked");
    Ok(Outputs::default())
}

/// Evaluates every budget of `workspace` that can include `subscription` on `as_of`; the number of
/// crossings told. The spend is read once for all of them (see [`Spend`]).
pub async fn check(
    state: &AppState,
    workspace: WorkspaceId,
    subscription: &str,
    as_of: Date,
) -> Result<usize> {
    let now = OffsetDateTime::now_utc();
    let budgets: Vec<Budget> = state
        .budgets()
        .list(workspace)
        .await?
        .into_iter()
        .map(|b| b.value)
        .filter(|b| b.covers_subscription(subscription))
        .collect();
    let Some(from) = budgets.iter().map(|b| history_start(b, as_of)).min() else {
        return Ok(0);
    };
    let scopes: Vec<&Scope> = budgets.iter().map(|b| &b.scope).collect();
    let spend = Spend::load(state, workspace, &scopes, from, as_of).await?;
    let mut told = 0;
    for budget in &budgets {
        let series = spend.series(&budget.scope, history_start(budget, as_of));
        let status = match sixpence_analytics::budget::evaluate(&budget.engine(), &series, as_of) {
            Ok(status) => status,
            Err(err) => {
                // Validated when saved, so a refusal is logged, not fatal to the other budgets.
                tracing::warn!(workspace = %workspace, budget = %budget.id, error = %err, "budget not evaluated");
                continue;
            }
        };
        state
            .budgets()
            .save_evaluation(
                workspace,
                budget.id,
                &Evaluation::of(&status, spend.currency()),
            )
            .await?;
        for crossing in &status.crossings {
            let key = crossing.key.as_row_key();
            if state.budgets().crossing_recorded(workspace, &key).await? {
                continue;
            }
            let event =
                budgets::budget_event(workspace, budget, &status, crossing, spend.currency(), now);
            state.events().raise(&event).await?;
            state.budgets().record_crossing(workspace, &key).await?;
            told += 1;
        }
    }
    Ok(told)
}

/// The first day of history `budget` is evaluated on: its period's start, or earlier for the
/// forecast.
fn history_start(budget: &Budget, as_of: Date) -> Date {
    Period::containing(budget.period, as_of)
        .start
        .min(as_of - Duration::days(FORECAST_HISTORY_DAYS))
}

/// A workspace's daily actual spend, read once for every budget evaluated together: one read per
/// subscription (and per tag key a scope filters on), however many budgets there are.
pub struct Spend {
    rows: Vec<StoredRow>,
    tags: ResourceTags,
    currency: String,
    to: Date,
}

impl Spend {
    /// Reads the rows `from..=to` that any of `scopes` can include.
    pub async fn load(
        state: &AppState,
        workspace: WorkspaceId,
        scopes: &[&Scope],
        from: Date,
        to: Date,
    ) -> Result<Spend> {
        let every_subscription = scopes.iter().any(|s| s.subscriptions.is_empty());
        let subscriptions: Vec<String> = state
            .costs()
            .subscriptions(workspace)
            .await?
            .into_iter()
            .filter(|sub| {
                every_subscription
                    || scopes.iter().any(|s| {
                        s.subscriptions
                            .iter()
                            .any(|chosen| chosen.eq_ignore_ascii_case(sub))
                    })
            })
            .collect();
        let mut rows: Vec<StoredRow> = Vec::new();
        let mut currency = None;
        for subscription in &subscriptions {
            let (found, c) = state
                .costs()
                .read(
                    workspace,
                    subscription,
                    from,
                    to,
                    Metric::Actual,
                    &View::Service,
                )
                .await?;
            currency = currency.or(c);
            rows.extend(found);
        }
        let tags = resource_tags(state, workspace, scopes, &subscriptions, from, to).await?;
        Ok(Spend {
            rows,
            tags,
            currency: currency.unwrap_or_default(),
            to,
        })
    }

    /// The daily spend in `scope` from `from` to the end of what was loaded.
    pub fn series(&self, scope: &Scope, from: Date) -> DailySeries {
        budgets::daily_spend(scope, &self.rows, &self.tags, from, self.to)
    }

    /// The billing currency of the rows ("" before any cost is synced).
    pub fn currency(&self) -> &str {
        &self.currency
    }
}

/// The tags the scopes' filters need. A key the workspace syncs costs by, with its history synced
/// for every subscription, is read from its cost tag view; any other key falls back to the
/// inventory's current tags (see `domain::budgets`).
async fn resource_tags(
    state: &AppState,
    workspace: WorkspaceId,
    scopes: &[&Scope],
    subscriptions: &[String],
    from: Date,
    to: Date,
) -> Result<ResourceTags> {
    let mut tags = ResourceTags::default();
    let mut keys: Vec<&str> = scopes
        .iter()
        .flat_map(|s| s.tags.iter().map(|t| t.key.as_str()))
        .collect();
    if keys.is_empty() {
        return Ok(tags);
    }
    keys.sort_by_key(|k| k.to_lowercase());
    keys.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let synced = match state.tenancy().workspace(workspace).await? {
        Some(w) => w.value.settings.cost_tag_keys,
        None => Vec::new(),
    };
    let mut from_inventory = false;
    'keys: for key in keys {
        let Some(key) = synced.iter().find(|k| k.as_str().eq_ignore_ascii_case(key)) else {
            from_inventory = true;
            continue;
        };
        let view = View::Tag(key.clone());
        for subscription in subscriptions {
            let missing = state
                .costs()
                .months_without(workspace, subscription, from, to, &view)
                .await?;
            if !missing.is_empty() {
                from_inventory = true;
                continue 'keys;
            }
        }
        let mut rows = Vec::new();
        for subscription in subscriptions {
            let (found, _) = state
                .costs()
                .read(workspace, subscription, from, to, Metric::Actual, &view)
                .await?;
            rows.extend(found);
        }
        tags.add_costed(key, &rows);
    }
    if from_inventory {
        for subscription in subscriptions {
            let filter = InventoryFilter {
                subscription: Some(subscription.clone()),
                ..InventoryFilter::default()
            };
            let mut after = None;
            loop {
                let page = state
                    .inventory()
                    .list(workspace, &filter, PageRequest { after, limit: 200 })
                    .await?;
                for item in page.items {
                    tags.add_current(&item.id, item.tags.into_iter().collect());
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    Ok(tags)
}
