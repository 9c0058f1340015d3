//! Runs a timer or queue function from its envelope and answers the host.
//!
//! The contract with the host (functions-host.md §0.3, §1.7): a 2xx answer with `Outputs` completes the
//! invocation; any non-2xx fails it, the host writes no outputs, and a queue message becomes visible
//! again until `maxDequeueCount` moves it to `<queue>-poison`. So every error, permanent or not,
//! answers 500 here, and is logged once, with the reason, in the invocation's span.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::host::{
    INVOCATION_ID_HEADER, InvocationContext, InvokeRequest, InvokeResponse, Outputs,
};

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Outputs>> + Send>>;

/// A function's envelope handler.
pub type Handler = fn(AppState, InvokeRequest, InvocationContext) -> HandlerFuture;

/// The axum handler for `POST /<name>`.
pub fn envelope(
    name: &'static str,
    handler: Handler,
) -> impl Fn(State<AppState>, HeaderMap, Bytes) -> Pin<Box<dyn Future<Output = Response> + Send>> + Clone
{
    move |State(state): State<AppState>, headers: HeaderMap, body: Bytes| {
        Box::pin(async move {
            let invocation_id = headers
                .get(INVOCATION_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let span =
                tracing::info_span!("invocation", function = name, invocation_id = %invocation_id);
            run(state, name, handler, invocation_id, body)
                .instrument(span)
                .await
        })
    }
}

async fn run(
    state: AppState,
    name: &'static str,
    handler: Handler,
    invocation_id: String,
    body: Bytes,
) -> Response {
    let request = match InvokeRequest::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return failure(&Error::Payload(err)),
    };
    let context = InvocationContext {
        function: name,
        invocation_id,
    };
    match handler(state, request, context).await {
        Ok(outputs) => {
            tracing::info!("invocation succeeded");
            (
                StatusCode::OK,
                Json(InvokeResponse::new(outputs, Vec::new())),
            )
                .into_response()
        }
        Err(err) => failure(&err),
    }
}

/// Logs the error once and answers non-2xx so the host retries (and finally poisons).
fn failure(err: &Error) -> Response {
    let reason = match err {
        // Internal and storage errors keep their cause for operators; the chain may name hosts and
        // status codes but the adapters never put secrets into errors.
        Error::Internal(source) | Error::Storage(source) => format!("{err}: {source:#}"),
        other => other.to_string(),
    };
    tracing::error!(transient = err.is_transient(), reason = %reason, "invocation failed");
    let body = InvokeResponse::new(Outputs::default(), vec![format!("failed: {reason}")]);
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}
