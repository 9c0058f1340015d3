//! Syncs: ask for a cost sync of the workspace now.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::context::{Scoped, audit};
use super::views::SyncRequested;
use crate::app::AppState;
use crate::domain::audit::Change;
use crate::domain::sync::{MANUAL_SYNCS_PER_HOUR, manual_requests};
use crate::error::{Error, Result};
use crate::functions::timer::sync_scheduler;
use crate::storage::names::COST_SYNC_QUEUE;

/// Sync every chosen subscription of the workspace now, instead of waiting for the night. At most
/// four requests an hour per workspace (each spends the customer's Cost Management quota); beyond
/// that, 429 with `Retry-After` until the next hour.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/syncs", tag = "syncs",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 202, description = "Queued", body = SyncRequested)))]
pub async fn request(State(state): State<AppState>, scoped: Scoped) -> Result<Response> {
    let workspace = scoped.scope.id();
    let now = OffsetDateTime::now_utc();
    let connections = state.connections().store().list(workspace).await?;
    let requests = manual_requests(connections.iter().map(|c| &c.value), now.date());
    if requests.is_empty() {
        return Err(Error::Conflict(
            "nothing to sync: connect an Azure tenant and choose its subscriptions first"
                .to_owned(),
        ));
    }
    let hour = now
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .map_err(|e| Error::Internal(e.into()))?;
    if !state.sync_ledger().claim_manual(workspace, hour).await? {
        let next = hour + time::Duration::HOUR;
        return Err(Error::RateLimited {
            retry_after_secs: u64::try_from((next - now).whole_seconds().max(1)).unwrap_or(1),
        });
    }
    let queue = state
        .storage()
        .queues()
        .queue(COST_SYNC_QUEUE)
        .map_err(|e| Error::Storage(e.into()))?;
    for request in &requests {
        sync_scheduler::enqueue(&queue, request)
            .await
            .map_err(Error::Storage)?;
    }
    let subscriptions: Vec<String> = requests.into_iter().map(|r| r.subscription).collect();
    audit(
        scoped.audit.as_ref(),
        format!("workspace/{workspace}/syncs"),
        vec![Change::new(
            "subscriptions",
            None,
            Some(subscriptions.join(",")),
        )],
    );
    let body = SyncRequested {
        subscriptions,
        per_hour: MANUAL_SYNCS_PER_HOUR,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
