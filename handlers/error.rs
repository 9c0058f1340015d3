//! The application's one error type and how each transport reports it.
//!
//! Handlers return [`Result`]; HTTP functions turn an [`Error`] into an RFC 9457 problem document
//! (`functions::http::problem`), timer and queue functions into a non-2xx answer so the host retries
//! and finally poisons the message (`functions::invoke`). Either way the error is logged exactly once,
//! at that boundary, and internal detail never reaches a client.

use crate::domain::billing::BillingError;
use crate::domain::connections::ConnectionError;
use crate::domain::store::StoreError;
use crate::domain::tenancy::TenancyError;
use crate::host::PayloadError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host's envelope is unusable (HTTP 400 in payload mode; a failed invocation otherwise).
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A queue message that no retry can fix: wrong JSON, unknown version. It still fails the
    /// invocation so the host moves it to the poison queue, where nothing is lost.
    #[error("the message is not valid: {0}")]
    InvalidMessage(String),
    /// The client's request is wrong (HTTP 400).
    #[error("{0}")]
    InvalidRequest(String),
    /// A business rule refused the request (HTTP 400, 403, 409 or 410 by rule).
    #[error(transparent)]
    Rule(#[from] TenancyError),
    /// A connection rule refused the request (HTTP 400, 409 or 503 by rule).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A billing rule or Stripe refused the request (HTTP 400, 402 or 503 by rule).
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// A Stripe webhook delivery whose signature does not verify (HTTP 400).
    #[error(transparent)]
    Signature(#[from] crate::stripe::SignatureError),
    /// Sixpence has no data-encryption key configured, so it cannot store secrets (HTTP 503).
    #[error(
        "secrets cannot be stored: the data-encryption keyring (SIXPENCE_DATA_KEYS) is not configured"
    )]
    NoKeyring,
    /// The resource does not exist, or the caller may not know it exists (HTTP 404).
    #[error("not found")]
    NotFound,
    /// A member whose role does not allow this (HTTP 403).
    #[error("your role in this workspace does not allow this")]
    Forbidden,
    /// The resource already exists or the request conflicts with its state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The resource existed but is gone for good, e.g. an export past its download window (HTTP 410).
    #[error("{0}")]
    Gone(String),
    /// `If-Match` named a version that is no longer current (HTTP 412).
    #[error("the resource changed since you read it; read it again and retry")]
    PreconditionFailed,
    /// The body is larger than the API accepts (HTTP 413).
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not JSON (HTTP 415).
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// An `Idempotency-Key` reused with a different request (HTTP 422).
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// Too many requests for this workspace or user (HTTP 429).
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Storage failed; retryable from the caller's point of view (HTTP 503).
    #[error("storage is unavailable")]
    Storage(#[source] anyhow::Error),
    /// A bug or an unexpected state (HTTP 500). The source is logged, never shown.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// Whether retrying the same input can succeed. Queue handlers use this for logging; the host
    /// decides retries by `maxDequeueCount` either way.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Storage(_) | Error::Internal(_))
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => Error::Conflict("it already exists".to_owned()),
            StoreError::VersionMismatch => Error::PreconditionFailed,
            StoreError::NotFound => Error::NotFound,
            StoreError::Unavailable(source) => Error::Storage(source),
        }
    }
}
