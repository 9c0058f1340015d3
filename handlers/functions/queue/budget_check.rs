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

use std::collections::BTreeMap;

use sixpence_analytics::DailySeries;
use sixpence_analytics::forecast::Period;
use sixpence_analytics::scope::Scope;
use time::{Date, Duration, OffsetDateTime};

use crate::app::AppState;
use crate::domain::budgets::{self, Budget, Evaluation};
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
/// crossings told.
pub async fn check(
    state: &AppState,
    workspace: WorkspaceId,
    subscription: &str,
    as_of: Date,
) -> Result<usize> {
    let now = OffsetDateTime::now_utc();
    let mut told = 0;
    for budget in state.budgets().list(workspace).await? {
        let budget = budget.value;
        if !budget.covers_subscription(subscription) {
            continue;
        }
        let (status, currency) = match evaluate(state, workspace, &budget, as_of).await? {
            Some(s) => s,
            None => continue,
        };
        state
            .budgets()
            .save_evaluation(workspace, budget.id, &Evaluation::of(&status, &currency))
            .await?;
        for crossing in &status.crossings {
            let key = crossing.key.as_row_key();
            if state.budgets().crossing_recorded(workspace, &key).await? {
                continue;
            }
            let event =
                budgets::budget_event(workspace, &budget, &status, crossing, &currency, now);
            state.events().raise(&event).await?;
            state.budgets().record_crossing(workspace, &key).await?;
            told += 1;
        }
    }
    Ok(told)
}

/// The engine's evaluation of `budget` on `as_of`, with the billing currency; `None` for a budget
/// the engine refuses (it was validated when saved, so that is logged, not fatal).
pub async fn evaluate(
    state: &AppState,
    workspace: WorkspaceId,
    budget: &Budget,
    as_of: Date,
) -> Result<Option<(sixpence_analytics::budget::BudgetStatus, String)>> {
    let period = Period::containing(budget.period, as_of);
    let from = period
        .start
        .min(as_of - Duration::days(FORECAST_HISTORY_DAYS));
    let (series, currency) = scope_series(state, workspace, &budget.scope, from, as_of).await?;
    match sixpence_analytics::budget::evaluate(&budget.engine(), &series, as_of) {
        Ok(status) => Ok(Some((status, currency))),
        Err(err) => {
            tracing::warn!(workspace = %workspace, budget = %budget.id, error = %err, "budget not evaluated");
            Ok(None)
        }
    }
}

/// Daily actual spend of the rows in `scope`, `from..=to`, across the workspace's subscriptions.
pub async fn scope_series(
    state: &AppState,
    workspace: WorkspaceId,
    scope: &Scope,
    from: Date,
    to: Date,
) -> Result<(DailySeries, String)> {
    let mut rows: Vec<StoredRow> = Vec::new();
    let mut currency = None;
    let mut tags: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for subscription in state.costs().subscriptions(workspace).await? {
        if !scope.subscriptions.is_empty()
            && !scope
                .subscriptions
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&subscription))
        {
            continue;
        }
        let (found, c) = state
            .costs()
            .read(
                workspace,
                &subscription,
                from,
                to,
                Metric::Actual,
                &View::Service,
            )
            .await?;
        currency = currency.or(c);
        rows.extend(found);
        if !scope.tags.is_empty() {
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
                    tags.insert(
                        item.id.to_ascii_lowercase(),
                        item.tags.into_iter().collect(),
                    );
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    Ok((
        budgets::daily_spend(scope, &rows, &tags, from, to),
        currency.unwrap_or_default(),
    ))
}
