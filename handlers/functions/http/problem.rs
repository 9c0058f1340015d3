//! RFC 9457 problem documents: the only shape an HTTP error leaves the process in.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// An `application/problem+json` body. `type` values are stable identifiers clients may branch on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Prefix of every problem `type`.
pub const TYPE_PREFIX: &str = "urn:sixpence:problem:";

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: &'static str,
        detail: Option<String>,
    ) -> Self {
        Self {
            kind: format!("{TYPE_PREFIX}{slug}"),
            title,
            status: status.as_u16(),
            detail,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Error::Payload(err) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-invocation",
                "The invocation is malformed",
                Some(err.to_string()),
            ),
            Error::InvalidMessage(detail) | Error::InvalidRequest(detail) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "The request is invalid",
                Some(detail.clone()),
            ),
            Error::NotFound => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", None),
            Error::Storage(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is temporarily unavailable",
                None,
            ),
            Error::Internal(_) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on our side",
                None,
            ),
        };
        if problem.status >= 500 {
            // Logged once here, with the cause; the client sees only the problem.
            let cause = match &self {
                Error::Storage(source) | Error::Internal(source) => format!("{source:#}"),
                other => other.to_string(),
            };
            tracing::error!(status = problem.status, cause = %cause, "request failed");
        }
        problem.into_response()
    }
}
