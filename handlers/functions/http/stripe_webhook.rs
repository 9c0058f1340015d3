//! `stripe-webhook`: Stripe's webhook deliveries (`POST /api/stripe-webhook`).
//!
//! Anonymous at the host (Stripe cannot present a function key in a header we choose); the
//! `Stripe-Signature` header is the authentication, checked over the raw body before anything is
//! parsed. Answers: 200 when processed, a duplicate, or an event Sixpence ignores (Stripe stops
//! retrying); 400 problem for a bad or stale signature or an unreadable event; 409 while another
//! delivery of the same event is being processed and 503 when storage or configuration is missing
//! (Stripe retries both).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::app::AppState;
use crate::billing::{Processed, StripeEvent};
use crate::domain::billing::BillingError;
use crate::error::Error;
use crate::functions::{FunctionDef, Trigger};

pub const NAME: &str = "stripe-webhook";
pub const PATH: &str = "/api/stripe-webhook";

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Http {
        route: "api/stripe-webhook",
        methods: &["post"],
    },
    handler: None,
};

#[tracing::instrument(skip_all, fields(function.name = NAME))]
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&state, &headers, &body).await {
        Ok(processed) => {
            let body = match processed {
                Processed::Handled(_) => json!({ "received": true }),
                Processed::Duplicate => json!({ "received": true, "duplicate": true }),
                Processed::Ignored(reason) => json!({ "received": true, "ignored": reason }),
            };
            Json(body).into_response()
        }
        Err(err) => {
            if err.problem().status < 500 {
                // The client's mistake: logged without the body or the header.
                tracing::warn!(problem = %err.problem().kind, "Stripe webhook delivery refused");
            }
            err.into_response()
        }
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Processed, Error> {
    let Some(secrets) = &state.settings().stripe_webhook_secret else {
        return Err(BillingError::Unavailable(
            "the webhook signing secret (STRIPE_WEBHOOK_SECRET) is not configured".to_owned(),
        )
        .into());
    };
    let secrets: Vec<&str> = secrets
        .expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    crate::stripe::verify(header, body, &secrets, now)?;
    let event: StripeEvent = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidRequest(format!("not a Stripe event: {e}")))?;
    state.ready().await?;
    state.billing().process(&event).await
}
