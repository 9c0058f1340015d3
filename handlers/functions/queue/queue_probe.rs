//! `queue-probe`: records each probe message it receives, proving the queue path end to end.
//!
//! A message that is not a probe fails the invocation every time, so the host moves it to
//! `queue-probe-poison` after `maxDequeueCount` attempts: bad input is kept, never dropped.

use time::OffsetDateTime;

use crate::app::AppState;
use crate::domain::system::{ProbeMessage, ProbeReceipt};
use crate::error::{Error, Result};
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};

pub const NAME: &str = "queue-probe";
pub const QUEUE: &str = "queue-probe";
const BINDING: &str = "message";

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
    let message: ProbeMessage = trigger
        .json()
        .map_err(|e| Error::InvalidMessage(format!("not a probe message: {e}")))?;
    state.ready().await?;
    let receipt = ProbeReceipt::for_message(
        &message,
        OffsetDateTime::now_utc(),
        trigger.metadata.dequeue_count,
    );
    state
        .system()
        .record_probe(&receipt)
        .await
        .map_err(Error::Storage)?;
    tracing::info!(probe_id = %receipt.probe_id, attempts = receipt.attempts, "probe recorded");
    Ok(Outputs::default())
}
