//! `heartbeat`: records that the timer path works, so the health route (and an alert on it) can tell
//! when timers stop firing.

use time::OffsetDateTime;

use crate::app::AppState;
use crate::domain::system::Heartbeat;
use crate::error::{Error, Result};
use crate::functions::invoke::HandlerFuture;
use crate::functions::{FunctionDef, Trigger};
use crate::host::{InvocationContext, InvokeRequest, Outputs, TimerInfo};

pub const NAME: &str = "heartbeat";
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
    let heartbeat = Heartbeat {
        at: OffsetDateTime::now_utc(),
        past_due: timer.is_past_due,
    };
    state
        .system()
        .record_heartbeat(&heartbeat)
        .await
        .map_err(Error::Storage)?;
    tracing::info!(past_due = heartbeat.past_due, "heartbeat recorded");
    Ok(Outputs::default())
}
