//! `notify`: delivers one (event or digest, channel) pair from the `notifications` queue, exactly
//! once in effect (the argument is in `crate::notify`'s docs).
//!
//! Retries are the service's own: a transient failure re-enqueues the message with a back-off
//! delay and completes this invocation, so the host's fixed retry never hammers a receiver; after
//! the retry budget the service writes the message to `notifications-poison` with the reason. A
//! message that does not parse fails every attempt and the host poisons it.

use crate::app::AppState;
use crate::error::Result;
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};
use crate::notify::{NOTIFY_MESSAGE_VERSION, NotifyMessage};
use crate::storage::names;

pub const NAME: &str = "notify";
pub const QUEUE: &str = names::NOTIFY_QUEUE;
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
    let message: NotifyMessage = super::versioned_message(
        &trigger,
        "notification",
        NOTIFY_MESSAGE_VERSION,
        |m: &NotifyMessage| m.version,
    )?;
    state.ready().await?;
    // Stopped at once when the workspace is being deleted: the message is dropped (logged).
    if crate::deletion::drops(&state, message.workspace, NAME).await? {
        return Ok(Outputs::default());
    }
    let outcome = state.notifier().deliver(&message).await?;
    tracing::info!(
        workspace = %message.workspace,
        channel = %message.channel,
        outcome = ?outcome,
        "notification handled"
    );
    Ok(Outputs::default())
}
