//! `retention-sweeper`: daily, completes or retries every deletion and purges retained records
//! past their retention period (`crate::deletion::sweep`). An unfinished deletion gets its next
//! step enqueued again (a duplicate is dropped by the step's own check); one unfinished after 3
//! days is logged as `deletion.late`, after 7 days as `deletion.overdue`, the error the operator
//! alert in `infra/bicep/modules/alerts.bicep` matches.

use time::OffsetDateTime;

use crate::app::AppState;
use crate::error::Result;
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, TimerInfo};

pub const NAME: &str = "retention-sweeper";
const BINDING: &str = "timer";

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
    let sweep = crate::deletion::sweep(&state, OffsetDateTime::now_utc()).await?;
    tracing::info!(
        past_due = timer.is_past_due,
        resumed = sweep.resumed,
        late = sweep.late,
        overdue = sweep.overdue,
        purged_workspaces = sweep.purged_workspaces,
        purged_incidents = sweep.purged_incidents,
        "retention sweep done"
    );
    Ok(Outputs::default())
}
