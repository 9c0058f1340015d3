//! `connection-health`: hourly by default, enqueues one `connection-check` message per active Azure
//! connection, so a revoked principal, a newly granted write permission or a secret about to expire
//! is noticed within the hour even when no sync runs. The checks themselves run in the queue
//! function, scaled out by the platform (at 20,000 connections a serial check in the timer would
//! take longer than the hour it has).

use futures::{StreamExt as _, TryStreamExt as _};

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::functions::invoke::HandlerFuture;
use crate::functions::queue::connection_check::{self, CheckMessage};
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, TimerInfo};

pub const NAME: &str = "connection-health";
const BINDING: &str = "timer";
/// Messages sent at once (each is one small Queue Storage call).
const CONCURRENT_SENDS: usize = 16;

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Timer { binding: BINDING },
    handler: Some(handle),
};

fn handle(state: AppState, request: InvokeRequest, _context: InvocationContext) -> HandlerFuture {
    Box::pin(run(state, request))
}

async fn run(state: AppState, request: InvokeRequest) -> Result<Outputs> {
    let timer = TimerInfo::from_request(&request, BINDING)?;
    state.ready().await?;
    let active = state.connections().active_connections().await?;
    let queue = state
        .storage()
        .queues()
        .queue(connection_check::QUEUE)
        .map_err(|e| Error::Storage(e.into()))?;
    // A failed send fails the run and the next run re-enqueues everything: a connection checked
    // twice in an hour costs a few ARM reads, a connection never checked costs the promise.
    let enqueued = futures::stream::iter(active)
        .map(|(workspace, connection)| {
            let queue = &queue;
            async move {
                let text = serde_json::to_string(&CheckMessage::new(workspace, connection))
                    .map_err(|e| Error::Internal(e.into()))?;
                queue
                    .send(&text, None)
                    .await
                    .map_err(|e| Error::Storage(e.into()))
            }
        })
        .buffer_unordered(CONCURRENT_SENDS)
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await?;
    tracing::info!(
        past_due = timer.is_past_due,
        enqueued,
        "connection checks enqueued"
    );
    Ok(Outputs::default())
}
