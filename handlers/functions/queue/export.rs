//! `export`: builds one requested workspace export (`crate::exports`) and marks it ready.
//!
//! ## Idempotent
//! An export already `ready` (or `failed`, `expired`) is left alone, so a redelivered message does
//! not rebuild it. One still `queued` or `running` is (re)built from the start: a crash mid-way left
//! only uncommitted blocks, which the rebuild replaces. The status is written with the record's
//! ETag, so two deliveries racing each other cannot both mark it.
//!
//! A message that does not parse, or has an unknown version, fails every attempt and ends in
//! `exports-poison` with the reason logged. A build that keeps failing is marked `failed` on the
//! host's last attempt, so the customer sees it and can ask again.

use time::OffsetDateTime;

use crate::app::AppState;
use crate::domain::exports::ExportStatus;
use crate::domain::store::StoreError;
use crate::error::Result;
use crate::functions::http::api::exports::{ExportMessage, MESSAGE_VERSION};
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, QueueTrigger};
use crate::storage::names;

pub const NAME: &str = "export";
pub const QUEUE: &str = names::EXPORTS_QUEUE;
const BINDING: &str = "message";
/// `maxDequeueCount` in host.json: the attempt after which the host poisons the message.
const LAST_ATTEMPT: u64 = 5;

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
    let message: ExportMessage =
        super::versioned_message(&trigger, NAME, MESSAGE_VERSION, |m: &ExportMessage| {
            m.version
        })?;
    state.ready().await?;
    let Some(current) = state
        .exports()
        .get(message.workspace, message.export)
        .await?
    else {
        // The workspace (and its exports) was deleted meanwhile: nothing to build.
        tracing::info!(workspace = %message.workspace, export = %message.export, "export no longer exists");
        return Ok(Outputs::default());
    };
    if !matches!(
        current.value.status,
        ExportStatus::Queued | ExportStatus::Running
    ) {
        tracing::info!(workspace = %message.workspace, export = %message.export, status = current.value.status.as_str(), "export already finished");
        return Ok(Outputs::default());
    }
    let mut export = current.value.clone();
    export.status = ExportStatus::Running;
    let guard = state.exports().update(&export, &current.version).await?;
    let now = OffsetDateTime::now_utc();
    match crate::exports::build(&state, &export, now).await {
        Ok(built) => {
            let ready_at = OffsetDateTime::now_utc();
            export.status = ExportStatus::Ready;
            export.ready_at = Some(ready_at);
            let ttl = time::Duration::try_from(state.settings().export_ttl)
                .unwrap_or(time::Duration::DAY);
            export.expires_at = Some(ready_at + ttl);
            export.size = Some(built.size);
            export.files = built.manifest.files;
            match state.exports().update(&export, &guard).await {
                Ok(_) => {}
                // The workspace was deleted while the archive was being built: its deletion may
                // already have swept the folder, so remove what this run just wrote.
                Err(StoreError::NotFound) => {
                    let container = crate::exports::container(&state)?;
                    for blob in [export.archive_blob(), export.manifest_blob()] {
                        container
                            .delete(&blob)
                            .await
                            .map_err(|e| crate::error::Error::Storage(e.into()))?;
                    }
                    tracing::info!(workspace = %export.workspace, export = %export.id, "export deleted while it was built; its archive is removed");
                    return Ok(Outputs::default());
                }
                Err(err) => return Err(err.into()),
            }
            tracing::info!(workspace = %export.workspace, export = %export.id, size = built.size, "export ready");
            Ok(Outputs::default())
        }
        Err(err) => {
            if trigger.metadata.dequeue_count >= LAST_ATTEMPT {
                export.status = ExportStatus::Failed;
                export.error = Some("the export could not be built; request a new one".to_owned());
                if let Err(mark) = state.exports().update(&export, &guard).await {
                    tracing::warn!(error = %mark, export = %export.id, "could not mark an export failed");
                }
            }
            Err(err)
        }
    }
}
