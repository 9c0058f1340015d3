//! `sync-scheduler`: nightly (UTC, `SYNC_SCHEDULE`), enqueues one `cost-sync` message per chosen
//! subscription of every working connection. Running it twice the same night enqueues nothing new:
//! each `(subscription, night)` is claimed in the sync ledger before its message is sent.

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::app::AppState;
use crate::domain::connections::ConnectionId;
use crate::domain::sync::{SyncRequest, nightly_requests};
use crate::domain::tenancy::WorkspaceId;
use crate::error::{Error, Result};
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, TimerInfo};
use crate::storage::names::COST_SYNC_QUEUE;
use crate::storage::queue::Queue;

pub const NAME: &str = "sync-scheduler";
const BINDING: &str = "timer";
/// Claims and sends in flight at once (each is two small storage calls).
const CONCURRENT_SCHEDULES: usize = 16;
pub const MESSAGE_VERSION: u32 = 1;

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Timer { binding: BINDING },
    handler: Some(handle),
};

/// The `cost-sync` message: one subscription, one night.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostSyncMessage {
    pub version: u32,
    pub workspace: WorkspaceId,
    pub connection: ConnectionId,
    pub subscription: String,
    #[serde(with = "night")]
    pub night: Date,
}

time::serde::format_description!(night, Date, "[year]-[month]-[day]");

fn handle(state: AppState, request: InvokeRequest, _context: InvocationContext) -> HandlerFuture {
    Box::pin(run(state, request))
}

/// What happened to one request.
enum Scheduled {
    Sent,
    Already,
    Failed,
}

async fn run(state: AppState, request: InvokeRequest) -> Result<Outputs> {
    let timer = TimerInfo::from_request(&request, BINDING)?;
    state.ready().await?;
    let night = OffsetDateTime::now_utc().date();
    let connections = state.connections().store().all().await?;
    let requests = nightly_requests(connections.iter().map(|c| &c.value), night);
    let queue = state
        .storage()
        .queues()
        .queue(COST_SYNC_QUEUE)
        .map_err(|e| Error::Storage(e.into()))?;
    let total = requests.len();
    let outcomes: Vec<Scheduled> = futures::stream::iter(requests)
        .map(|request| {
            let (state, queue) = (state.clone(), queue.clone());
            async move { schedule(&state, &queue, &request).await }
        })
        .buffer_unordered(CONCURRENT_SCHEDULES)
        .collect()
        .await;
    let count = |wanted: fn(&Scheduled) -> bool| outcomes.iter().filter(|o| wanted(o)).count();
    let sent = count(|o| matches!(o, Scheduled::Sent));
    let already = count(|o| matches!(o, Scheduled::Already));
    let failed = count(|o| matches!(o, Scheduled::Failed));
    tracing::info!(past_due = timer.is_past_due, %night, sent, already, failed, "cost syncs scheduled");
    if failed > 0 {
        // Released, so running the scheduler again tonight (`POST /admin/functions/sync-scheduler`)
        // schedules exactly those.
        return Err(Error::Storage(anyhow::anyhow!(
            "{failed} of {total} subscriptions could not be scheduled"
        )));
    }
    Ok(Outputs::default())
}

/// Sends the `cost-sync` message of one request.
pub async fn enqueue(queue: &Queue, request: &SyncRequest) -> anyhow::Result<()> {
    let message = CostSyncMessage {
        version: MESSAGE_VERSION,
        workspace: request.workspace,
        connection: request.connection,
        subscription: request.subscription.clone(),
        night: request.night,
    };
    let text = serde_json::to_string(&message)?;
    queue.send(&text, None).await?;
    Ok(())
}

async fn schedule(state: &AppState, queue: &Queue, request: &SyncRequest) -> Scheduled {
    // A workspace being deleted is not synced (its connections go with the deletion's first steps).
    match crate::deletion::drops(state, request.workspace, NAME).await {
        Ok(false) => {}
        Ok(true) => return Scheduled::Already,
        Err(err) => {
            tracing::error!(error = %err, workspace = %request.workspace, "could not check for a deletion");
            return Scheduled::Failed;
        }
    }
    match state.sync_ledger().claim(request).await {
        Ok(true) => {}
        Ok(false) => return Scheduled::Already,
        Err(err) => {
            tracing::error!(error = %err, workspace = %request.workspace, subscription = %request.subscription, "could not claim a sync");
            return Scheduled::Failed;
        }
    }
    match enqueue(queue, request).await {
        Ok(_) => Scheduled::Sent,
        Err(err) => {
            tracing::error!(error = %err, workspace = %request.workspace, subscription = %request.subscription, "could not enqueue a sync");
            if let Err(err) = state.sync_ledger().release(request).await {
                tracing::error!(error = %err, "could not release a sync claim; the subscription waits for tomorrow");
            }
            Scheduled::Failed
        }
    }
}
