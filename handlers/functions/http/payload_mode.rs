//! HTTP functions invoked with the JSON envelope instead of forwarding.
//!
//! The host forwards an HTTP function only when it has exactly one `httpTrigger` and one `http` output
//! (functions-host.md §1.5); otherwise it POSTs `{Data: {req: …}}` to `/<name>` and reads the `res`
//! output. Rather than keep a second implementation of every route, the envelope is replayed through
//! the same router and the answer wrapped as `res`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;

use crate::app::AppState;
use crate::error::Error;
use crate::host::{
    HttpRequestData, HttpResponseData, InvokeRequest, InvokeResponse, Outputs, PayloadError,
};

/// Name of the trigger binding and of the output binding in every HTTP function's spec.
pub const REQUEST_BINDING: &str = "req";
pub const RESPONSE_BINDING: &str = "res";

/// Largest response body replayed into an envelope; the API's own limits are far below it.
const MAX_BODY: usize = 16 * 1024 * 1024;

pub async fn handle(State(state): State<AppState>, body: Bytes) -> Response {
    match replay(state, body).await {
        Ok(response) => (StatusCode::OK, Json(response)).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn replay(state: AppState, body: Bytes) -> Result<InvokeResponse, Error> {
    let envelope = InvokeRequest::from_slice(&body)?;
    let data = HttpRequestData::from_request(&envelope, REQUEST_BINDING)?;
    let url = url::Url::parse(&data.url).map_err(|_| PayloadError::InvalidBinding {
        name: REQUEST_BINDING.to_owned(),
        reason: "Url is not an absolute URL".to_owned(),
    })?;
    let path_and_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let method =
        Method::from_bytes(data.method.as_bytes()).map_err(|_| PayloadError::InvalidBinding {
            name: REQUEST_BINDING.to_owned(),
            reason: "Method is not an HTTP method".to_owned(),
        })?;
    let mut request = Request::builder().method(method).uri(path_and_query);
    for (name, values) in &data.headers {
        for value in values {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    let request =
        request
            .body(Body::from(data.body))
            .map_err(|e| PayloadError::InvalidBinding {
                name: REQUEST_BINDING.to_owned(),
                reason: e.to_string(),
            })?;

    let response = super::router(&state)
        .with_state(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let headers: BTreeMap<String, String> = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let body = axum::body::to_bytes(response.into_body(), MAX_BODY)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("reading the replayed response: {e}")))?;
    let res = HttpResponseData {
        status_code: status.as_u16().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let mut outputs = Outputs::default();
    outputs.http(RESPONSE_BINDING, &res);
    Ok(InvokeResponse::new(outputs, Vec::new()))
}
