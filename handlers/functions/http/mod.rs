//! HTTP functions, forwarded by the host as plain HTTP under the `api` route prefix.

pub mod api;
pub mod health;
pub mod payload_mode;
pub mod problem;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

/// Every forwarded HTTP route, at the path the host forwards it to (`/api/<route>`).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health::get))
        .merge(api::router(state))
}
