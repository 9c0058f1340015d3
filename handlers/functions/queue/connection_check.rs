//! `connection-check`: re-verifies one Azure connection (token and permissions) and reminds of an
//! expiring secret. The `connection-health` timer enqueues one message per active connection, so
//! the checks scale out across instances instead of running serially in one timer invocation.
//!
//! Checking twice is harmless (the second finds nothing new to report), so a redelivered message
//! needs no special care. A message that does not parse fails every attempt and ends in
//! `connection-check-poison` with the reason logged.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::domain::connections::ConnectionId;
use crate::domain::tenancy::WorkspaceId;
use crate::error::Result;
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};

pub const NAME: &str = "connection-check";
pub const QUEUE: &str = "connection-check";
const BINDING: &str = "message";
pub const MESSAGE_VERSION: u32 = 1;

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Queue {
        binding: BINDING,
        queue: QUEUE,
    },
    handler: Some(handle),
};

/// One connection to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckMessage {
    pub version: u32,
    pub workspace: WorkspaceId,
    pub connection: ConnectionId,
}

impl CheckMessage {
    pub fn new(workspace: WorkspaceId, connection: ConnectionId) -> Self {
        Self {
            version: MESSAGE_VERSION,
            workspace,
            connection,
        }
    }
}

fn handle(state: AppState, request: InvokeRequest, _context: InvocationContext) -> HandlerFuture {
    Box::pin(run(state, request))
}

async fn run(state: AppState, request: InvokeRequest) -> Result<Outputs> {
    let trigger = QueueTrigger::from_request(&request, BINDING)?;
    let message: CheckMessage = super::versioned_message(
        &trigger,
        "connection-check",
        MESSAGE_VERSION,
        |m: &CheckMessage| m.version,
    )?;
    state.ready().await?;
    // Stopped at once when the workspace is being deleted: the message is dropped (logged).
    if crate::deletion::drops(&state, message.workspace, NAME).await? {
        return Ok(Outputs::default());
    }
    let report = state
        .connections()
        .health_check_one(
            message.workspace,
            message.connection,
            OffsetDateTime::now_utc().date(),
        )
        .await?;
    tracing::info!(
        workspace = %message.workspace,
        connection = %message.connection,
        checked = report.checked,
        revoked = report.revoked,
        events = report.events,
        skipped = report.skipped,
        "connection checked"
    );
    Ok(Outputs::default())
}
