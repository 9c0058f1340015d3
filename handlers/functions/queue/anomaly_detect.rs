//! `anomaly-detect`: after each successful cost sync, detects anomalies on the days it changed.
//!
//! Per message (one subscription, the days the sync re-read): load the subscription's stored
//! amortized costs from [`HISTORY_WINDOW_DAYS`] before the first changed day to the last, build the
//! watched series (subscription, resource groups, services: the workspace's `dimensions`), assess
//! each changed day causally (the decision for day `t` uses days `≤ t` only), fold the flags into
//! the series' episodes, compute each changed episode's root cause over its child series, and store
//! it; raise an anomaly event for each episode that is new, updated or resolved and passes the
//! workspace's alert thresholds (`domain::anomalies`).
//!
//! ## Idempotent
//! Anomaly ids are derived from (workspace, series, first day), and the episode engine yields no
//! change when the same days are assessed again over the same stored episodes, so a redelivered
//! message stores nothing new and raises nothing. Events are raised before the anomaly that
//! records them is stored: a crash in between re-raises the same event (same dedupe key, so
//! delivery sends it once) rather than losing it.

use std::collections::BTreeMap;

use time::{Date, OffsetDateTime};

use crate::app::AppState;
use crate::domain::anomalies::{
    self, AlertContext, Alerted, Anomaly, CostPoint, Level, Notified, SubscriptionCosts, event_for,
    series_key,
};
use crate::domain::costs::{Metric, View};
use crate::domain::events::AnomalyStatus;
use crate::domain::tenancy::WorkspaceId;
use crate::error::{Error, Result};
use crate::functions::invoke::HandlerFuture;
use crate::functions::queue::cost_sync::{CHANGED_DAYS_VERSION, ChangedDaysMessage};
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};
use crate::storage::names;
use sixpence_analytics::detect::HISTORY_WINDOW_DAYS;
use sixpence_analytics::episode::{self, Assessed, EpisodeChange};

pub const NAME: &str = "anomaly-detect";
pub const QUEUE: &str = names::ANOMALY_DETECT_QUEUE;
const BINDING: &str = "message";
/// The longest span of changed days one message may carry (a backfill is 13 months and a bit).
const MAX_SPAN_DAYS: i64 = 500;

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
    let Some((first, last)) = checked_span(&message)? else {
        return Ok(Outputs::default());
    };
    state.ready().await?;
    // Stopped at once when the workspace is being deleted: the message is dropped (logged).
    if crate::deletion::drops(&state, message.workspace, NAME).await? {
        return Ok(Outputs::default());
    }
    let summary = detect(
        &state,
        message.workspace,
        &message.subscription.to_ascii_lowercase(),
        first,
        last,
    )
    .await?;
    tracing::info!(
        workspace = %message.workspace,
        subscription = %message.subscription,
        run = %message.run,
        series = summary.series,
        changed = summary.changed,
        events = summary.events,
        "anomaly detection done"
    );
    Ok(Outputs::default())
}

/// The first and last changed day, or `None` when there are none; bad input is a poison message.
pub(crate) fn checked_span(message: &ChangedDaysMessage) -> Result<Option<(Date, Date)>> {
    if message.subscription.is_empty()
        || !message
            .subscription
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-')
    {
        return Err(Error::InvalidMessage(
            "changed-days message subscription is not a subscription id".to_owned(),
        ));
    }
    let (Some(first), Some(last)) = (message.days.iter().min(), message.days.iter().max()) else {
        return Ok(None);
    };
    if (*last - *first).whole_days() > MAX_SPAN_DAYS {
        return Err(Error::InvalidMessage(format!(
            "changed-days message spans more than {MAX_SPAN_DAYS} days"
        )));
    }
    Ok(Some((*first, *last)))
}

/// What one detection did (for the log and tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub series: usize,
    pub changed: usize,
    pub events: usize,
}

/// Detects anomalies of one subscription on the days `first..=last`.
pub async fn detect(
    state: &AppState,
    workspace: WorkspaceId,
    subscription: &str,
    first: Date,
    last: Date,
) -> Result<Summary> {
    let settings = state.anomalies().settings(workspace).await?;
    let load_from = first - time::Duration::days(HISTORY_WINDOW_DAYS as i64 + 1);
    let mut points = Vec::new();
    let mut currency = None;
    for view in View::FIXED {
        let (rows, c) = state
            .costs()
            .read(
                workspace,
                subscription,
                load_from,
                last,
                Metric::Amortized,
                &view,
            )
            .await?;
        currency = currency.or(c);
        points.extend(rows.into_iter().map(|r| CostPoint {
            day: r.day,
            view: view.clone(),
            resource: r.row.resource,
            value: r.row.value,
            amount: r.row.amount,
        }));
    }
    let currency = currency.unwrap_or_default();
    let costs = SubscriptionCosts::new(&points);
    drop(points);

    let mut stored: BTreeMap<uuid::Uuid, Anomaly> = state
        .anomalies()
        .list(workspace)
        .await?
        .into_iter()
        .map(|v| v.value)
        .filter(|a| a.subscription == subscription)
        .map(|a| (a.id, a))
        .collect();
    let mut alerted: Vec<Alerted> = stored
        .values()
        .filter(|a| a.notified.is_some() && a.state != anomalies::State::Retracted)
        .map(Alerted::of)
        .collect();

    // Subscriptions first, then resource groups, then services: an anomaly covered by an alerted
    // one of a more general level is known as such when its turn comes.
    let mut series = costs.series(&settings.dimensions, last);
    series.sort_by_key(|(level, _, _)| *level);
    let config = settings.detector();
    let now = OffsetDateTime::now_utc();
    let mut summary = Summary {
        series: series.len(),
        ..Summary::default()
    };
    for (level, value, daily) in series {
        let value = if level == Level::Subscription {
            subscription.to_owned()
        } else {
            value
        };
        let key = series_key(subscription, level, &value);
        let from = first.max(daily.start());
        if from > last {
            continue;
        }
        let flags = sixpence_analytics::detect_range(&daily, from, last, &config);
        let existing: Vec<episode::Episode> = stored
            .values()
            .filter(|a| a.episode.id.series == key && a.state != anomalies::State::Retracted)
            .map(|a| a.episode.clone())
            .collect();
        let changes: Vec<EpisodeChange> = episode::update_episodes(
            &existing,
            Assessed {
                series: &key,
                from,
                to: last,
                flags: &flags,
            },
        );
        for change in &changes {
            let Some(mut anomaly) = anomalies::apply_change(
                anomalies::SeriesRef {
                    workspace,
                    subscription,
                    level,
                    value: &value,
                    currency: &currency,
                },
                change,
                &stored,
                &costs,
            ) else {
                continue;
            };
            let ctx = AlertContext {
                settings: &settings,
                latest_day: last,
                alerted: &alerted,
            };
            let event = event_for(&anomaly, anomaly.notified, &ctx);
            if let Some(status) = event {
                let raised = anomalies::anomaly_event(workspace, &anomaly, status, now);
                state.events().raise(&raised).await?;
                // An episode told while already over has been told its whole life: recorded as
                // resolved, so a later restatement of its days is not announced as its end.
                let recorded = if anomaly.state == anomalies::State::Open {
                    status
                } else {
                    AnomalyStatus::Resolved
                };
                anomaly.notified = Some(Notified {
                    status: recorded,
                    revision: anomaly.episode.revision,
                });
                summary.events += 1;
            }
            if event == Some(AnomalyStatus::New) {
                alerted.push(Alerted::of(&anomaly));
            }
            state.anomalies().save(workspace, &anomaly).await?;
            summary.changed += 1;
            stored.insert(anomaly.id, anomaly);
        }
    }
    Ok(summary)
}
