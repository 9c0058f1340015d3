//! `notify-fanout`: reads one event from the `events` queue and enqueues one `notifications`
//! message per channel that hears about it (or adds it to the channel's digest).
//!
//! Running twice is harmless: each delivery is deduplicated by its record (see `crate::notify`).
//! A message that does not parse, or has an unknown version, ends in `events-poison` with the
//! reason logged.

use crate::app::AppState;
use crate::error::Result;
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};
use crate::storage::events::{EVENT_MESSAGE_VERSION, EventMessage};
use crate::storage::names;

pub const NAME: &str = "notify-fanout";
pub const QUEUE: &str = names::EVENTS_QUEUE;
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
    let message: EventMessage = super::versioned_message(
        &trigger,
        "event",
        EVENT_MESSAGE_VERSION,
        |m: &EventMessage| m.version,
    )?;
    state.ready().await?;
    // Stopped at once when the workspace is being deleted: the message is dropped (logged).
    if crate::deletion::drops(&state, message.event.workspace, NAME).await? {
        return Ok(Outputs::default());
    }
    let fanned = state.notifier().fan_out(&message.event).await?;
    tracing::info!(
        workspace = %message.event.workspace,
        event = %message.event.id,
        channels = fanned,
        "event fanned out"
    );
    Ok(Outputs::default())
}
