//! The one error type of the Azure client, with words a customer can act on.
//!
//! Nothing in here ever holds a client secret or an access token: errors are built from status codes,
//! service error codes and messages, AADSTS codes, and the ids the customer gave us (tenant and client
//! ids, which are not secret).

use std::time::Duration;

/// Everything that can go wrong when calling a customer's tenant.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// The request is not on the read-only allow-list and was never sent. A bug in the caller, or a
    /// `nextLink` from the service pointing at something we must not call.
    #[error("refused to send {method} {path}: not a read-only operation Sixpence uses")]
    WriteRefused { method: String, path: String },
    /// Microsoft Entra ID would not issue a token for the connection's credentials.
    #[error("the credentials were refused: {0}")]
    Credentials(CredentialProblem),
    /// Azure answered 401 or 403 to a data call: the secret was revoked, the role removed or the
    /// principal deleted. The connection is marked revoked; later calls fail fast with this error.
    #[error("access was revoked (HTTP {status}, {})", code.as_deref().unwrap_or("no error code"))]
    AccessRevoked { status: u16, code: Option<String> },
    /// Still throttled when the retry budget ran out, or the wait asked for is longer than the budget.
    /// `retry_after` is how long the service (or the pacer) asked us to wait: requeue with that delay.
    #[error("Azure is throttling requests (retry after {retry_after:?}, {attempts} attempts)")]
    Throttled {
        retry_after: Option<Duration>,
        attempts: u32,
    },
    /// The service answered with an error that retrying did not (or cannot) fix.
    #[error("Azure answered HTTP {status} ({}): {message}", code.as_deref().unwrap_or("no error code"))]
    Service {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The service could not be reached (connection, TLS, timeout) within the retry budget.
    #[error("Azure could not be reached after {attempts} attempts")]
    Unavailable {
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// The service answered something we cannot read (not JSON, missing columns, a `nextLink` that is
    /// not an ARM URL).
    #[error("unexpected response from Azure: {0}")]
    InvalidResponse(String),
    /// The request we were asked to build is invalid (e.g. more than two groupings).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The client was configured wrongly (e.g. an http:// endpoint that is not loopback).
    #[error("invalid Azure client configuration: {0}")]
    Config(String),
}

impl AzureError {
    /// Words for the customer: what happened, and what they can do about it.
    pub fn customer_message(&self) -> String {
        match self {
            AzureError::WriteRefused { .. } => {
                "Sixpence refused to make a call that is not a read-only operation. Nothing was \
                 sent to your tenant. This is a bug on our side; we have been notified."
                    .to_owned()
            }
            AzureError::Credentials(problem) => problem.customer_message(),
            AzureError::AccessRevoked { status: 401, .. } => {
                "Azure no longer accepts the connection's service principal (HTTP 401). If you \
                 deleted the app registration or its secret, create a new secret and update the \
                 connection."
                    .to_owned()
            }
            AzureError::AccessRevoked { .. } => {
                "The service principal no longer has access (HTTP 403). Assign it the Reader and \
                 Cost Management Reader roles on the subscription again, then reconnect."
                    .to_owned()
            }
            AzureError::Throttled { .. } => {
                "Azure is limiting how often your tenant's cost data can be queried. Sixpence will \
                 try again later; no action is needed."
                    .to_owned()
            }
            AzureError::Service { status, code, .. } => format!(
                "Azure returned an error (HTTP {status}{}). Sixpence will try again later; if it \
                 persists, contact support.",
                code.as_deref()
                    .map(|c| format!(", {c}"))
                    .unwrap_or_default()
            ),
            AzureError::Unavailable { .. } => {
                "Azure could not be reached. Sixpence will try again later; no action is needed."
                    .to_owned()
            }
            AzureError::InvalidResponse(_) | AzureError::InvalidRequest(_) => {
                "Sixpence could not read Azure's answer. We have been notified.".to_owned()
            }
            AzureError::Config(_) => {
                "The Azure connection is misconfigured on our side. We have been notified."
                    .to_owned()
            }
        }
    }

    /// Whether the same call can succeed later without the customer doing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            AzureError::Throttled { .. } | AzureError::Unavailable { .. } => true,
            AzureError::Service { status, .. } => *status >= 500 || *status == 429,
            AzureError::Credentials(problem) => matches!(problem, CredentialProblem::Unavailable),
            _ => false,
        }
    }

    /// How long the service asked us to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AzureError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn invalid_response(what: impl Into<String>) -> Self {
        AzureError::InvalidResponse(what.into())
    }
}

/// Why Microsoft Entra ID refused the connection's client credentials (from the AADSTS code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialProblem {
    /// AADSTS90002: the tenant does not exist.
    #[error("tenant {tenant_id} was not found (AADSTS90002)")]
    TenantNotFound { tenant_id: String },
    /// AADSTS7000215: the secret is wrong (often the secret's id pasted instead of its value).
    #[error("the client secret is not valid (AADSTS7000215)")]
    InvalidSecret,
    /// AADSTS7000222: the secret has expired.
    #[error("the client secret has expired (AADSTS7000222)")]
    SecretExpired,
    /// AADSTS700016: no application with this client id in the tenant.
    #[error("application {client_id} was not found in tenant {tenant_id} (AADSTS700016)")]
    UnknownClient {
        client_id: String,
        tenant_id: String,
    },
    /// Any other refusal; `code` is the AADSTS number when the body carried one.
    #[error("Entra ID refused the request ({error}, AADSTS{})", code.map(|c| c.to_string()).unwrap_or_else(|| "?".into()))]
    Other { code: Option<u64>, error: String },
    /// The token endpoint could not be reached or failed (5xx) within the retry budget. Transient.
    #[error("Microsoft Entra ID could not be reached")]
    Unavailable,
}

impl CredentialProblem {
    /// Words for the customer, naming the field to fix.
    pub fn customer_message(&self) -> String {
        match self {
            CredentialProblem::TenantNotFound { tenant_id } => format!(
                "Microsoft Entra ID has no tenant {tenant_id}. Check the connection's Directory \
                 (tenant) ID: it is on the app registration's Overview page."
            ),
            CredentialProblem::InvalidSecret => "The client secret is wrong. Copy the secret's \
                 Value (not its Secret ID) from the app registration's Certificates & secrets page \
                 and update the connection."
                .to_owned(),
            CredentialProblem::SecretExpired => "The client secret has expired. Create a new \
                 secret under the app registration's Certificates & secrets page and update the \
                 connection."
                .to_owned(),
            CredentialProblem::UnknownClient {
                client_id,
                tenant_id,
            } => format!(
                "No application with client ID {client_id} exists in tenant {tenant_id}. Check the \
                 connection's Application (client) ID, and that the app is registered in (or \
                 consented to by) this tenant."
            ),
            CredentialProblem::Other { code, error } => format!(
                "Microsoft Entra ID refused the connection's credentials ({error}{}). Check the \
                 tenant ID, client ID and secret.",
                code.map(|c| format!(", AADSTS{c}")).unwrap_or_default()
            ),
            CredentialProblem::Unavailable => "Microsoft Entra ID could not be reached. Sixpence \
                 will try again later; no action is needed."
                .to_owned(),
        }
    }
}

/// The generic ARM error body, read leniently: `{"error":{"code","message",...}}`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ArmErrorBody {
    #[serde(default)]
    pub error: Option<ArmErrorDetail>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ArmErrorDetail {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl ArmErrorBody {
    /// Parses what it can; a body that is not the ARM shape yields no code and no message.
    pub fn parse(body: &[u8]) -> (Option<String>, Option<String>) {
        match serde_json::from_slice::<ArmErrorBody>(body) {
            Ok(ArmErrorBody {
                error: Some(detail),
            }) => (detail.code, detail.message.map(|m| truncate(&m, 500))),
            _ => (None, None),
        }
    }
}

/// Cuts `text` to at most `max` characters (on a char boundary), marking the cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
