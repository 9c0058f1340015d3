//! RFC 9457 problem documents: the only shape an HTTP error leaves the process in.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// An RFC 9457 `application/problem+json` body. `type` values are stable identifiers clients may
/// branch on; `title` is fixed per type; `detail` explains this occurrence.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "urn:sixpence:problem:last-owner")]
    pub kind: String,
    #[schema(example = "A workspace must keep an owner")]
    pub title: &'static str,
    #[schema(example = 409)]
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "the workspace must keep at least one owner")]
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

impl Error {
    /// The problem document this error is answered with. One place decides every status and type.
    pub fn problem(&self) -> Problem {
        use crate::domain::tenancy::TenancyError as T;
        let detail = Some(self.to_string());
        match self {
            Error::Payload(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-invocation",
                "The invocation is malformed",
                detail,
            ),
            Error::InvalidMessage(_) | Error::InvalidRequest(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "The request is invalid",
                detail,
            ),
            Error::Rule(rule) => match rule {
                T::InvalidName
                | T::InvalidCurrency(_)
                | T::InvalidTimeZone(_)
                | T::InvalidTagKeys(_)
                | T::InvalidEmail(_) => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "The request is invalid",
                    detail,
                ),
                T::LastOwner => Problem::new(
                    StatusCode::CONFLICT,
                    "last-owner",
                    "A workspace must keep an owner",
                    detail,
                ),
                T::OwnerRoleNeedsOwner => Problem::new(
                    StatusCode::FORBIDDEN,
                    "owner-role",
                    "Only an owner can do this",
                    detail,
                ),
                T::InvitationEmailMismatch => Problem::new(
                    StatusCode::FORBIDDEN,
                    "invitation-email-mismatch",
                    "This invitation is for someone else",
                    detail,
                ),
                T::InvitationNotPending => Problem::new(
                    StatusCode::GONE,
                    "invitation-not-pending",
                    "The invitation is no longer valid",
                    detail,
                ),
                T::AlreadyMember => Problem::new(
                    StatusCode::CONFLICT,
                    "already-member",
                    "Already a member",
                    detail,
                ),
            },
            Error::Connection(rule) => {
                use crate::domain::connections::ConnectionError as C;
                match rule {
                    C::Invalid(_)
                    | C::UnknownSubscription(_)
                    | C::SubscriptionNotUsable { .. }
                    | C::NoSubscriptionChosen => Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-request",
                        "The request is invalid",
                        detail,
                    ),
                    C::NotVerified => Problem::new(
                        StatusCode::CONFLICT,
                        "connection-not-verified",
                        "The connection is not verified",
                        detail,
                    ),
                    C::AzureUnavailable(_) => Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "azure-unavailable",
                        "Azure could not be reached",
                        detail,
                    ),
                }
            }
            Error::Billing(rule) => {
                use crate::domain::billing::BillingError as B;
                match rule {
                    B::PlanLimit { .. } => Problem::new(
                        StatusCode::PAYMENT_REQUIRED,
                        "plan-limit",
                        "The workspace's plan does not allow this",
                        detail,
                    ),
                    B::UnknownPlan(_) | B::Invalid(_) => Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-request",
                        "The request is invalid",
                        detail,
                    ),
                    // Stripe's own words stay in the log: they may name our configuration.
                    B::Unavailable(_) => Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "billing-unavailable",
                        "Billing is temporarily unavailable",
                        None,
                    ),
                }
            }
            Error::Signature(err) => {
                use crate::stripe::SignatureError as S;
                match err {
                    S::Stale => Problem::new(
                        StatusCode::BAD_REQUEST,
                        "stale-signature",
                        "The webhook signature is too old or too new",
                        detail,
                    ),
                    S::Malformed | S::NoMatch => Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-signature",
                        "The webhook signature does not verify",
                        detail,
                    ),
                }
            }
            Error::NoKeyring => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "secrets-unavailable",
                "Secrets cannot be stored",
                detail,
            ),
            Error::NotFound => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", None),
            Error::Forbidden => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Your role does not allow this",
                detail,
            ),
            Error::Conflict(_) => {
                Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
            }
            Error::Gone(_) => Problem::new(StatusCode::GONE, "gone", "Gone", detail),
            Error::PreconditionFailed => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "The resource has changed",
                detail,
            ),
            Error::PayloadTooLarge(_) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is too large",
                detail,
            ),
            Error::UnsupportedMediaType => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The request body must be JSON",
                detail,
            ),
            Error::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "The Idempotency-Key was used for a different request",
                detail,
            ),
            Error::RateLimited { .. } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                detail,
            ),
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
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = self.problem();
        if problem.status >= 500 {
            // Logged once here, with the cause; the client sees only the problem.
            let cause = match &self {
                Error::Storage(source) | Error::Internal(source) => format!("{source:#}"),
                other => other.to_string(),
            };
            tracing::error!(status = problem.status, cause = %cause, "request failed");
        }
        let mut response = problem.into_response();
        match self {
            Error::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Error::Storage(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}
