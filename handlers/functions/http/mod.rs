//! HTTP functions, forwarded by the host as plain HTTP. `host.json` sets an empty `routePrefix`, so
//! each function's `route` is its whole path (`api/...` for the API, `.well-known/security.txt` at
//! the site root).

pub mod api;
pub mod health;
pub mod payload_mode;
pub mod problem;
pub mod security_txt;
pub mod stripe_webhook;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

/// Every forwarded HTTP route, at the path the host forwards it to (`/api/<route>`).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health::get))
        .route(security_txt::PATH, get(security_txt::get))
        .route(stripe_webhook::PATH, post(stripe_webhook::receive))
        .merge(api::router(state))
}
