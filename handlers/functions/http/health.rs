//! `health`: an anonymous probe of the app and the liveness of its timer and queue paths.

use std::time::Duration;

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
        route: "api/health",
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

/// How long a probe waits for storage. Load balancers and uptime checks time out on their own;
/// answering 503 first tells them why, instead of the storage SDK retrying for a minute.
const STORAGE_BUDGET: Duration = Duration::from_secs(5);

/// `GET /api/health`: 200 when storage answers, 503 (problem+json) when it does not.
pub async fn get(State(state): State<AppState>) -> Result<Json<Health>> {
    let check = async {
        state.ready().await?;
        let system = state.system();
        tokio::try_join!(system.last_heartbeat(), system.last_probe()).map_err(Error::Storage)
    };
    let (heartbeat, probe) =
        tokio::time::timeout(STORAGE_BUDGET, check)
            .await
            .map_err(|_| {
                Error::Storage(anyhow::anyhow!(
                    "storage did not answer within {STORAGE_BUDGET:?}"
                ))
            })??;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        last_heartbeat: heartbeat,
        last_queue_probe: probe,
    }))
}
