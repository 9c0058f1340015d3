//! `cost-sync`: syncs one subscription's costs for one night (the `sync-scheduler` timer enqueues
//! one message per chosen subscription).
//!
//! Per message: read the connection (gone, revoked or not verified: complete without calling
//! Azure); choose the window (13 months until a subscription's backfill has completed once, else the nightly window,
//! `domain::costs::Window`); for each month, oldest first, run the month's queries (three views and
//! one per chosen tag key, two metrics: `domain::costs::month_plan`), keep every raw page as a gzipped
//! blob under `raw-cost-pages/<workspace>/<subscription>/<run>/`, write each page's rows into the
//! month's new generation as it arrives (one page in memory at a time, so a subscription with
//! millions of rows syncs in the memory of one page), and switch the month to that generation.
//!
//! ## Idempotent and crash-safe
//!
//! Every month is replaced as a unit: its rows are written under a generation named after this run,
//! which nothing reads, and only then does one compare-and-swap on the month's pointer make it
//! current (`storage::costs`). Re-running a month therefore never adds to what is stored: it replaces
//! it with Azure's current answer. So a redelivered message, a second worker on the same
//! subscription, or a crash at any point (before, during or after the raw-page write, the row write or
//! the switch) followed by a retry ends with every month of the window holding exactly one complete
//! answer from Azure: the numbers of a clean run. Raw pages are per run (a retry writes its own
//! folder), so they are an audit trail, never summed.
//!
//! ## Failures
//!
//! - 401/403 or refused credentials: the connection is revoked (`record_access_lost`: role event), a
//!   sync event is raised, the run is recorded failed and the message **completes**: retrying cannot
//!   help until the customer fixes the principal, and a retry storm against a revoked tenant is what
//!   the customer's security team would see.
//! - Throttled, 5xx, unreachable, storage down: the run is recorded failed ("will retry") and the
//!   invocation **fails**, so the host makes the message visible again after its back-off and moves it
//!   to `cost-sync-poison` after `maxDequeueCount`. The client already waited out throttling within
//!   its (long) budget; what is left is better retried by the platform than held in one invocation.
//! - A message that does not parse: `Error::InvalidMessage`, poison with the reason logged.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::app::AppState;
use crate::azure::cost::{CostType, Grouping, QueryDefinition, Scope};
use crate::azure::{AzureClient, AzureError, ClientOptions, ClientSecret, RetryOptions};
use crate::domain::connections::{AccessProblem, Connection, ProblemKind};
use crate::domain::costs::{
    AzureGrouping, Metric, Micros, PageRows, TagKey, ViewRow, Window, month_plan, views, window_qpu,
};
use crate::domain::events::{Event, EventKind, Severity, SyncEvent};
use crate::domain::sync::{RunStatus, SyncRun};
use crate::error::{Error, Result};
use crate::functions::invoke::HandlerFuture;
use crate::functions::timer::sync_scheduler::{CostSyncMessage, MESSAGE_VERSION};
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};
use crate::storage::names;

pub const NAME: &str = "cost-sync";
pub const QUEUE: &str = names::COST_SYNC_QUEUE;
const BINDING: &str = "message";
/// Version of the `anomaly-detect` and `budget-check` messages.
pub const CHANGED_DAYS_VERSION: u32 = 1;

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Queue {
        binding: BINDING,
        queue: QUEUE,
    },
    handler: Some(handle),
};

/// The message a successful sync sends to `anomaly-detect` and `budget-check`: the days whose
/// costs this sync re-read (the whole window: a replaced month may have changed on any day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangedDaysMessage {
    pub version: u32,
    pub workspace: crate::domain::tenancy::WorkspaceId,
    pub subscription: String,
    pub run: Uuid,
    #[serde(with = "day_list")]
    pub days: Vec<Date>,
}

mod day_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use time::Date;
    use time::macros::format_description;

    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]");

    pub fn serialize<S: Serializer>(days: &[Date], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = days
            .iter()
            .map(|d| d.format(FORMAT).unwrap_or_default())
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Date>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| Date::parse(t, FORMAT).map_err(serde::de::Error::custom))
            .collect()
    }
}

fn handle(state: AppState, request: InvokeRequest, _context: InvocationContext) -> HandlerFuture {
    Box::pin(run(state, request))
}

async fn run(state: AppState, request: InvokeRequest) -> Result<Outputs> {
    let trigger = QueueTrigger::from_request(&request, BINDING)?;
    let message: CostSyncMessage = super::versioned_message(
        &trigger,
        "cost-sync",
        MESSAGE_VERSION,
        |m: &CostSyncMessage| m.version,
    )?;
    if message.subscription.is_empty()
        || !message
            .subscription
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-')
    {
        return Err(Error::InvalidMessage(
            "cost-sync message subscription is not a subscription id".to_owned(),
        ));
    }
    state.ready().await?;
    // Stopped at once when the workspace is being deleted: the message is dropped (logged).
    if crate::deletion::drops(&state, message.workspace, NAME).await? {
        return Ok(Outputs::default());
    }
    let attempt = u32::try_from(trigger.metadata.dequeue_count).unwrap_or(u32::MAX);
    sync_subscription(&state, &message, attempt, OffsetDateTime::now_utc().date()).await
}

/// The retry budget of the worker's client: nobody waits on a queue message, so it rides out a
/// throttling storm (up to the hourly quota window's worst case of a few minutes per call) rather
/// than failing the whole run for a pause the platform would add anyway.
fn worker_options(state: &AppState) -> ClientOptions {
    ClientOptions {
        authority: state.settings().azure.authority.clone(),
        retry: RetryOptions {
            max_attempts: 8,
            max_total_wait: Duration::from_secs(300),
            ..RetryOptions::default()
        },
        timeout: Duration::from_secs(120),
        pacers: state
            .settings()
            .cost_pacing
            .clone()
            .map_or_else(crate::azure::pacer::Pacers::global, |options| {
                crate::azure::pacer::Pacers::new(options)
            }),
        ..ClientOptions::default()
    }
}

async fn sync_subscription(
    state: &AppState,
    message: &CostSyncMessage,
    attempt: u32,
    today: Date,
) -> Result<Outputs> {
    let subscription = message.subscription.to_ascii_lowercase();
    let connection = state
        .connections()
        .store()
        .get(message.workspace, message.connection)
        .await?;
    let Some(connection) = connection.map(|c| c.value) else {
        tracing::info!(workspace = %message.workspace, connection = %message.connection, "cost sync skipped: the connection is gone");
        return Ok(Outputs::default());
    };
    if !connection.is_active() {
        tracing::info!(workspace = %message.workspace, connection = %message.connection, "cost sync skipped: the connection is not active");
        return Ok(Outputs::default());
    }
    if !connection
        .selected_subscriptions()
        .any(|s| s.subscription_id.eq_ignore_ascii_case(&subscription))
    {
        tracing::info!(workspace = %message.workspace, %subscription, "cost sync skipped: the subscription is no longer chosen");
        return Ok(Outputs::default());
    }

    let Some(workspace) = state.tenancy().workspace(message.workspace).await? else {
        tracing::info!(workspace = %message.workspace, "cost sync skipped: the workspace is gone");
        return Ok(Outputs::default());
    };
    let tag_keys = workspace.value.settings.cost_tag_keys;
    // A tag key chosen since the last backfill has no history yet: re-read the 13 months, so that
    // grouping by it covers the same range as every other grouping.
    let backfill = match state
        .costs()
        .backfilled(message.workspace, &subscription)
        .await?
    {
        None => true,
        Some(fetched) => tag_keys.iter().any(|k| !fetched.contains(k)),
    };
    let window = if backfill {
        Window::backfill(today)
    } else {
        Window::nightly(today)
    };
    let months = window.months();
    let mut run = SyncRun {
        id: Uuid::new_v4(),
        workspace: message.workspace,
        connection: message.connection,
        subscription: subscription.clone(),
        night: message.night,
        backfill,
        window_from: window.from,
        window_to: window.to,
        started_at: OffsetDateTime::now_utc(),
        finished_at: None,
        status: RunStatus::Running,
        months_done: 0,
        months_total: months.len() as u32,
        rows: 0,
        qpu: 0,
        attempt,
        error: None,
        inventory: None,
        recommendations: None,
    };
    state.sync_runs().save(&run).await?;
    tracing::info!(workspace = %run.workspace, %subscription, run = %run.id, backfill, qpu = window_qpu(&window, &tag_keys), "cost sync started");

    let outcome = fetch_and_store(state, &connection, &mut run, &window, &tag_keys).await;
    // Inventory and Advisor ride on the same message, each tolerant of the other and of the cost
    // part failing; not when the principal was refused (the connection is about to be revoked).
    if !matches!(&outcome, Err(Failure::Azure(err)) if customer_must_fix(err)) {
        let extras = crate::inventory::sync_extras(
            state,
            &connection,
            &subscription,
            crate::inventory::PartOptions::default(),
        )
        .await;
        run.inventory = Some(part_result(&extras.inventory));
        run.recommendations = Some(part_result(&extras.recommendations));
    }
    match outcome {
        Ok(()) => {
            if backfill {
                state
                    .costs()
                    .mark_backfilled(run.workspace, &subscription, &tag_keys)
                    .await?;
            }
            run.status = RunStatus::Succeeded;
            run.finished_at = Some(OffsetDateTime::now_utc());
            state.sync_runs().save(&run).await?;
            state
                .connections()
                .record_first_sync(run.workspace, run.connection)
                .await?;
            announce_changed_days(state, &run, &window).await?;
            tracing::info!(workspace = %run.workspace, %subscription, run = %run.id, rows = run.rows, qpu = run.qpu, "cost sync succeeded");
            Ok(Outputs::default())
        }
        Err(Failure::Azure(err)) if customer_must_fix(&err) => {
            let problem = crate::azure::inspect::access_problem(err);
            run.status = RunStatus::Failed;
            run.finished_at = Some(OffsetDateTime::now_utc());
            run.error = Some(problem.message.clone());
            state.sync_runs().save(&run).await?;
            state
                .connections()
                .record_access_lost(run.workspace, run.connection, problem.clone(), NAME)
                .await?;
            raise_sync_event(state, &run, &problem).await;
            tracing::warn!(workspace = %run.workspace, %subscription, run = %run.id, reason = problem.kind.as_str(), "cost sync stopped: access lost");
            Ok(Outputs::default())
        }
        Err(failure) => {
            run.status = RunStatus::Failed;
            run.finished_at = Some(OffsetDateTime::now_utc());
            let (customer, error) = match failure {
                Failure::Azure(err) => (
                    format!("{} The sync will be retried.", err.customer_message()),
                    Error::Internal(anyhow::Error::new(err).context("cost sync")),
                ),
                Failure::App(err) => (
                    "Sixpence could not store the costs; the sync will be retried.".to_owned(),
                    err,
                ),
            };
            run.error = Some(customer);
            if let Err(e) = state.sync_runs().save(&run).await {
                tracing::warn!(error = %e, run = %run.id, "could not record the failed sync run");
            }
            Err(error)
        }
    }
}

fn part_result(outcome: &crate::inventory::PartOutcome) -> crate::domain::sync::PartResult {
    let summary = outcome.summary();
    crate::domain::sync::PartResult {
        status: summary.status.to_owned(),
        rows: summary.rows as u64,
        message: summary.message,
    }
}

/// A failure only the customer can fix (the principal was refused): no retry can succeed.
fn customer_must_fix(err: &AzureError) -> bool {
    match err {
        AzureError::AccessRevoked { .. } => true,
        AzureError::Credentials(_) => !err.is_transient(),
        _ => false,
    }
}

enum Failure {
    Azure(AzureError),
    App(Error),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::App(err)
    }
}

impl From<crate::domain::store::StoreError> for Failure {
    fn from(err: crate::domain::store::StoreError) -> Self {
        Failure::App(err.into())
    }
}

async fn fetch_and_store(
    state: &AppState,
    connection: &Connection,
    run: &mut SyncRun,
    window: &Window,
    tag_keys: &[TagKey],
) -> Result<(), Failure> {
    let credentials = state.connections().credentials(connection)?;
    let client = AzureClient::with_client_secret(
        Some(state.settings().azure.arm.clone()),
        ClientSecret {
            tenant_id: credentials.tenant_id.clone(),
            client_id: credentials.client_id.clone(),
            secret: credentials.secret.clone(),
        },
        Some(worker_options(state)),
    )
    .map_err(Failure::Azure)?;
    let scope = Scope::subscription(&run.subscription).map_err(Failure::Azure)?;
    let raw = state
        .storage()
        .blobs()
        .container(names::RAW_COST_PAGES_CONTAINER)
        .map_err(|e| Failure::App(Error::Storage(e.into())))?;
    let generation = run.id.simple().to_string();

    let views = views(tag_keys);
    for (month, from, to) in window.months() {
        for query in month_plan(month, from, to, tag_keys) {
            let cost_type = match query.metric {
                Metric::Actual => CostType::ActualCost,
                Metric::Amortized => CostType::AmortizedCost,
            };
            let definition = QueryDefinition::new(cost_type, query.from, query.to)
                .and_then(|d| d.group_by(Grouping::Dimension("ResourceId".to_owned())))
                .and_then(|d| {
                    d.group_by(match query.view.azure_grouping() {
                        AzureGrouping::Dimension(name) => Grouping::Dimension(name.to_owned()),
                        AzureGrouping::Tag(key) => Grouping::TagKey(key.to_owned()),
                    })
                })
                .map_err(Failure::Azure)?;
            run.qpu += definition.estimated_qpu() as u32;
            let mut pages = client
                .cost_query(&scope, &definition)
                .map_err(Failure::Azure)?;
            let mut page_no = 0u32;
            while let Some(page) = pages.next_page().await.map_err(Failure::Azure)? {
                page_no += 1;
                let name = format!(
                    "{}/{}/{}/{}-{}-{}-{page_no:04}.json.gz",
                    run.workspace,
                    run.subscription,
                    run.id,
                    month.key(),
                    query.metric.as_str(),
                    query.view.label(),
                );
                raw.put(&name, gzip(&page_json(&page))?, "application/gzip")
                    .await
                    .map_err(|e| Failure::App(Error::Storage(e.into())))?;
                run.rows += page.rows.len() as u64;
                let mut rows = PageRows::new(query.metric, query.view.clone(), page_no);
                for row in page.rows() {
                    let day = row.usage_date().ok_or_else(|| {
                        Failure::Azure(AzureError::InvalidResponse(
                            "a cost row has no usage date".to_owned(),
                        ))
                    })?;
                    let amount = row.cost().and_then(Micros::from_f64).ok_or_else(|| {
                        Failure::Azure(AzureError::InvalidResponse(
                            "a cost row has no readable cost".to_owned(),
                        ))
                    })?;
                    if let Some(currency) = row.currency() {
                        rows.currency.get_or_insert_with(|| currency.to_owned());
                    }
                    let view_row = ViewRow {
                        resource: row.text("ResourceId").unwrap_or("").to_ascii_lowercase(),
                        value: row.text(query.view.azure_column()).unwrap_or("").to_owned(),
                        amount,
                    };
                    rows.add(day, view_row).ok_or_else(|| {
                        Failure::Azure(AzureError::InvalidResponse(
                            "a day's cost overflows".to_owned(),
                        ))
                    })?;
                }
                state
                    .costs()
                    .write_page(run.workspace, &run.subscription, month, &generation, &rows)
                    .await?;
            }
        }
        state
            .costs()
            .switch_month(run.workspace, &run.subscription, month, &generation, &views)
            .await?;
        run.months_done += 1;
        // Progress for `GET .../syncs`; losing one update only makes the progress lag.
        if let Err(e) = state.sync_runs().save(run).await {
            tracing::warn!(error = %e, run = %run.id, "could not record sync progress");
        }
    }
    Ok(())
}

/// The page as the service sent it (columns, rows, next link), for audit and reprocessing.
fn page_json(page: &crate::azure::cost::QueryResult) -> Vec<u8> {
    serde_json::json!({
        "id": page.id,
        "properties": {
            "nextLink": page.next_link,
            "columns": page.columns.iter().map(|c| serde_json::json!({"name": c.name, "type": c.kind})).collect::<Vec<_>>(),
            "rows": page.rows,
        }
    })
    .to_string()
    .into_bytes()
}

fn gzip(bytes: &[u8]) -> Result<Bytes, Failure> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|_| encoder.finish())
        .map(Bytes::from)
        .map_err(|e| Failure::App(Error::Internal(anyhow::Error::new(e).context("gzip"))))
}

async fn raise_sync_event(state: &AppState, run: &SyncRun, problem: &AccessProblem) {
    let event = SyncEvent {
        connection: run.connection.uuid(),
        subscription: run.subscription.clone(),
        run: run.id,
        reason: problem.kind.as_str().to_owned(),
        message: problem.message.clone(),
    };
    let severity = if problem.kind == ProblemKind::Unavailable {
        Severity::Warning
    } else {
        Severity::Critical
    };
    let event = Event::new(
        run.workspace,
        OffsetDateTime::now_utc(),
        severity,
        event.dedupe_key(),
        EventKind::Sync(event),
    );
    if let Err(err) = state.connections().events().raise(&event).await {
        tracing::error!(error = %err, run = %run.id, dedupe_key = %event.dedupe_key, "sync event could not be raised");
    }
}

/// Tells anomaly detection and budgets which days changed. Sent after the run is recorded: a crash
/// in between re-runs the sync and sends again, which their consumers must (and do, by design)
/// tolerate as at-least-once.
async fn announce_changed_days(state: &AppState, run: &SyncRun, window: &Window) -> Result<()> {
    let message = ChangedDaysMessage {
        version: CHANGED_DAYS_VERSION,
        workspace: run.workspace,
        subscription: run.subscription.clone(),
        run: run.id,
        days: window.days(),
    };
    let text = serde_json::to_string(&message)
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("changed days message")))?;
    for queue in [names::ANOMALY_DETECT_QUEUE, names::BUDGET_CHECK_QUEUE] {
        state
            .storage()
            .queues()
            .queue(queue)
            .map_err(|e| Error::Storage(e.into()))?
            .send(&text, None)
            .await
            .map_err(|e| Error::Storage(e.into()))?;
    }
    Ok(())
}
