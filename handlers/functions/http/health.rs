//! `health`: an anonymous probe of the app and the liveness of its timer and queue paths.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;
use crate::domain::system::{Heartbeat, ProbeReceipt};
use crate::error::{Error, Result};
use crate::functions::{FunctionDef, Trigger};

pub const NAME: &str = "health";

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Http {
        route: "health",
        methods: &["get"],
    },
    handler: None,
};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub last_heartbeat: Option<Heartbeat>,
    pub last_queue_probe: Option<ProbeReceipt>,
}

/// `GET /api/health`: 200 when storage answers, 503 (problem+json) when it does not.
pub async fn get(State(state): State<AppState>) -> Result<Json<Health>> {
    state.ready().await?;
    let system = state.system();
    let (heartbeat, probe) =
        tokio::try_join!(system.last_heartbeat(), system.last_probe()).map_err(Error::Storage)?;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        last_heartbeat: heartbeat,
        last_queue_probe: probe,
    }))
}
