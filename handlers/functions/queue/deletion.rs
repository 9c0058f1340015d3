//! `deletion`: runs one step of a workspace's deletion (`crate::deletion::run_step`): idempotent,
//! audited, and enqueues the next step. A step that fails (storage, Stripe) fails the invocation:
//! the host retries it, and if it ends in the poison queue the daily `retention-sweeper` enqueues
//! it again, so a deletion is delayed by an outage, never abandoned.

use crate::app::AppState;
use crate::domain::deletion::{DeletionMessage, MESSAGE_VERSION, Step};
use crate::error::{Error, Result};
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};
use crate::storage::names;

pub const NAME: &str = "deletion";
pub const QUEUE: &str = names::DELETIONS_QUEUE;
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
    let message: DeletionMessage =
        super::versioned_message(&trigger, NAME, MESSAGE_VERSION, |m: &DeletionMessage| {
            m.version
        })?;
    let step = Step::parse(&message.step).ok_or_else(|| {
        Error::InvalidMessage(format!("unknown deletion step `{}`", message.step))
    })?;
    state.ready().await?;
    crate::deletion::run_step(&state, message.workspace, &step).await?;
    Ok(Outputs::default())
}
