//! Sixpence's own storage layer: tables, blobs and queues behind interfaces that never show an Azure type.
//!
//! # Why this module exists
//!
//! The domain needs three things from Azure Storage: entities with optimistic concurrency (tables), opaque
//! documents (blobs) and work items between functions (queues). The Rust SDK situation shapes the
//! implementation:
//!
//! * blobs and queues use the official 1.x crates (`azure_storage_blob`, `azure_storage_queue`);
//! * there is no official table crate yet, so [`table`] wraps the frozen `azure_data_tables` 0.21. It is
//!   the only module that names that crate, so replacing it later touches one file;
//! * the 1.x clients only know Entra ID tokens, so connection strings with an account key (local development
//!   against Azurite) are served by a shared-key signing policy in [`shared_key`].
//!
//! # Shape
//!
//! [`StorageConnection`] is parsed from the same app settings the Functions host reads
//! (`AzureWebJobsStorage`, or the identity-based `AzureWebJobsStorage__*` settings), so the binary and the
//! host always talk to the same account. [`Storage::connect`] builds cheap, cloneable handles from it:
//! [`Storage::tables`], [`Storage::blobs`] and [`Storage::queues`]. Every fallible call returns
//! [`StorageError`], whose variants are decided from the HTTP status (never from an error's text, which
//! for the 1.x SDK is the raw response body) and never carry keys, tokens or signatures.
//!
//! The resource names the application uses are listed in [`names`]; [`names::ensure_all`] creates them
//! idempotently at start-up.

pub mod anomalies;
pub mod audit;
pub mod azure_connections;
pub mod billing;
pub mod blob;
pub mod budgets;
pub mod connection;
pub mod costs;
pub mod deletion;
pub mod events;
pub mod exports;
pub mod idempotency;
pub mod incidents;
pub mod inventory;
pub mod names;
pub mod notifications;
pub mod queue;
mod shared_key;
pub mod sync_ledger;
pub mod sync_runs;
pub mod system;
pub mod table;
pub mod tenancy;
mod transport;

use std::fmt;
use std::sync::Arc;

pub use blob::{BlobContent, BlobInfo, BlobService, BlobStream, Container};
pub use connection::{ConnectionError, Endpoints, StorageConnection};
pub use queue::{PeekedMessage, Queue, QueueService, ReceivedMessage, SentMessage, UpdatedMessage};
pub use table::{
    Batch, ContinuationToken, Entity, IfMatch, Page, Query, Table, TableService, UpdateMode, edm,
    odata_string,
};

/// Installs rustls' `ring` crypto provider as the process default.
///
/// Both HTTP stacks (reqwest 0.13 for the 1.x SDK, reqwest 0.12 for the table crate) build rustls
/// configurations from the process-wide default provider, and panic on first use if none is installed.
/// Idempotent: a provider that is already installed (ours or anyone's) is left alone.
pub fn install_crypto_provider() {
    // The only error is "a default provider is already installed", which is exactly the state we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An entity tag returned by the service, used for optimistic concurrency (`If-Match`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    /// Wraps an ETag value exactly as the service returned it (quotes and `W/` prefix included).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value to send back in `If-Match`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({})", self.0)
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What went wrong, without anything secret: the operation, the HTTP status and the service's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// The storage operation that failed, e.g. `table.insert`.
    pub operation: &'static str,
    /// The HTTP status the service answered with, if the request got that far.
    pub status: Option<u16>,
    /// The service's error code (`EntityAlreadyExists`, `ConditionNotMet`, ...), if it sent one.
    pub code: Option<String>,
    /// A short description written by this module or taken from a non-HTTP error.
    pub message: String,
}

impl ErrorDetail {
    pub(crate) fn new(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            status: None,
            code: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.operation)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status}")?;
            if let Some(code) = &self.code {
                write!(f, " {code}")?;
            }
            write!(f, ")")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// The one error type of the storage layer.
///
/// Variants are chosen from the HTTP status code. None of them ever contains an account key, a token or a
/// request signature, so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// 404: the table, entity, container, blob, queue or message does not exist.
    #[error("storage resource not found: {0}")]
    NotFound(ErrorDetail),
    /// 409: the entity or blob already exists, or a concurrent create/delete is in progress.
    #[error("storage conflict: {0}")]
    Conflict(ErrorDetail),
    /// 412: the ETag given in `If-Match` no longer matches (someone else wrote first).
    #[error("storage precondition failed: {0}")]
    PreconditionFailed(ErrorDetail),
    /// 429 / 503: the account or partition is throttling; retry later with back-off.
    #[error("storage throttled: {0}")]
    Throttled(ErrorDetail),
    /// 401 / 403 or no token could be obtained.
    #[error("storage authentication failed: {0}")]
    Auth(ErrorDetail),
    /// The request was refused before or by the service as malformed (400, 413, 416, or local checks).
    #[error("invalid storage request: {0}")]
    InvalidInput(ErrorDetail),
    /// The service could not be reached (connection refused, reset, TLS failure, timeout).
    #[error("storage transport error: {0}")]
    Transport(ErrorDetail),
    /// Anything else (5xx other than 503, unreadable responses).
    #[error("storage error: {0}")]
    Other(ErrorDetail),
}

impl StorageError {
    /// The detail carried by every variant.
    pub fn detail(&self) -> &ErrorDetail {
        match self {
            Self::NotFound(d)
            | Self::Conflict(d)
            | Self::PreconditionFailed(d)
            | Self::Throttled(d)
            | Self::Auth(d)
            | Self::InvalidInput(d)
            | Self::Transport(d)
            | Self::Other(d) => d,
        }
    }

    /// The HTTP status the service answered with, if any.
    pub fn status(&self) -> Option<u16> {
        self.detail().status
    }

    /// The service error code, if any.
    pub fn code(&self) -> Option<&str> {
        self.detail().code.as_deref()
    }

    /// Whether retrying the same request later can succeed (throttling, transport failures, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled(_) | Self::Transport(_) => true,
            Self::Other(d) => d.status.is_none_or(|s| s >= 500),
            _ => false,
        }
    }

    pub(crate) fn invalid_input(operation: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput(ErrorDetail::new(operation, message))
    }

    pub(crate) fn other(operation: &'static str, message: impl Into<String>) -> Self {
        Self::Other(ErrorDetail::new(operation, message))
    }

    /// Classifies an HTTP failure by status code (gotcha 5: never by the error text).
    pub(crate) fn from_status(operation: &'static str, status: u16, code: Option<String>) -> Self {
        let detail = ErrorDetail {
            operation,
            status: Some(status),
            code,
            message: String::new(),
        };
        match status {
            404 => Self::NotFound(detail),
            409 => Self::Conflict(detail),
            412 => Self::PreconditionFailed(detail),
            429 | 503 => Self::Throttled(detail),
            401 | 403 => Self::Auth(detail),
            400 | 411 | 413 | 414 | 416 => Self::InvalidInput(detail),
            _ => Self::Other(detail),
        }
    }

    /// Maps an error of the 1.x SDK (blobs, queues).
    pub(crate) fn from_sdk(operation: &'static str, error: azure_core::Error) -> Self {
        use azure_core::error::ErrorKind;
        match error.kind() {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => Self::from_status(operation, u16::from(*status), error_code.clone()),
            ErrorKind::Connection | ErrorKind::Io => {
                Self::Transport(ErrorDetail::new(operation, describe(&error)))
            }
            ErrorKind::Credential => Self::Auth(ErrorDetail::new(operation, describe(&error))),
            _ => Self::Other(ErrorDetail::new(operation, describe(&error))),
        }
    }

    /// Maps an error of the 0.21 table crate.
    pub(crate) fn from_legacy(operation: &'static str, error: azure_core_legacy::Error) -> Self {
        use azure_core_legacy::error::ErrorKind;
        match error.kind() {
            ErrorKind::HttpResponse { status, error_code } => {
                Self::from_status(operation, u16::from(*status), error_code.clone())
            }
            ErrorKind::Io => Self::Transport(ErrorDetail::new(operation, describe(&error))),
            ErrorKind::Credential => Self::Auth(ErrorDetail::new(operation, describe(&error))),
            _ => Self::Other(ErrorDetail::new(operation, describe(&error))),
        }
    }
}

/// A one-line description of a non-HTTP error. HTTP errors are never described from their text: the 1.x
/// SDK puts the raw response body there.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    // Error chains from transports can be long; keep log lines readable.
    if text.len() > 512 {
        let mut cut = 512;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Storage handles for one account: cheap to clone (a few `Arc`s), safe to share between tasks.
#[derive(Clone, Debug)]
pub struct Storage {
    inner: Arc<StorageInner>,
}

#[derive(Debug)]
struct StorageInner {
    tables: TableService,
    blobs: BlobService,
    queues: QueueService,
}

impl Storage {
    /// Builds the clients for all three services. No request is sent.
    pub fn connect(connection: &StorageConnection) -> Result<Self, StorageError> {
        install_crypto_provider();
        Ok(Self {
            inner: Arc::new(StorageInner {
                tables: TableService::new(connection)?,
                blobs: BlobService::new(connection)?,
                queues: QueueService::new(connection)?,
            }),
        })
    }

    /// Table Storage.
    pub fn tables(&self) -> &TableService {
        &self.inner.tables
    }

    /// Blob Storage.
    pub fn blobs(&self) -> &BlobService {
        &self.inner.blobs
    }

    /// Queue Storage.
    pub fn queues(&self) -> &QueueService {
        &self.inner.queues
    }

    /// Creates every table, queue and container in [`names`] that does not exist yet.
    pub async fn ensure_resources(&self) -> Result<(), StorageError> {
        names::ensure_all(self).await
    }
}

/// Checks a table name: 3–63 ASCII letters and digits, starting with a letter.
pub(crate) fn validate_table_name(name: &str) -> Result<(), StorageError> {
    let ok = (3..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
        && !name.eq_ignore_ascii_case("tables");
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(
            "table.name",
            format!(
                "`{name}` is not a valid table name (3-63 letters and digits, starting with a letter)"
            ),
        ))
    }
}

/// Checks a queue or container name: 3–63 lowercase letters, digits and single dashes, starting and ending
/// with a letter or digit.
pub(crate) fn validate_dns_name(kind: &'static str, name: &str) -> Result<(), StorageError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(
            kind,
            format!(
                "`{name}` is not a valid name (3-63 lowercase letters, digits and single dashes, \
                 starting and ending with a letter or digit)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert!(matches!(
            StorageError::from_status("t", 404, None),
            StorageError::NotFound(_)
        ));
        assert!(matches!(
            StorageError::from_status("t", 409, None),
            StorageError::Conflict(_)
        ));
        assert!(matches!(
            StorageError::from_status("t", 412, None),
            StorageError::PreconditionFailed(_)
        ));
        assert!(matches!(
            StorageError::from_status("t", 429, None),
            StorageError::Throttled(_)
        ));
        assert!(matches!(
            StorageError::from_status("t", 503, None),
            StorageError::Throttled(_)
        ));
        assert!(matches!(
            StorageError::from_status("t", 403, None),
            StorageError::Auth(_)
        ));
        assert!(matches!(
            StorageError::from_status("t", 400, None),
            StorageError::InvalidInput(_)
        ));
        assert!(matches!(
            StorageError::from_status("t", 500, None),
            StorageError::Other(_)
        ));
    }

    #[test]
    fn retryable_errors_are_throttling_transport_and_server_errors() {
        assert!(StorageError::from_status("t", 503, None).is_retryable());
        assert!(StorageError::from_status("t", 500, None).is_retryable());
        assert!(!StorageError::from_status("t", 409, None).is_retryable());
        assert!(!StorageError::from_status("t", 412, None).is_retryable());
    }

    #[test]
    fn error_display_names_operation_status_and_code() {
        let error =
            StorageError::from_status("table.insert", 409, Some("EntityAlreadyExists".into()));
        assert_eq!(
            error.to_string(),
            "storage conflict: table.insert (HTTP 409 EntityAlreadyExists)"
        );
    }

    #[test]
    fn debug_output_of_the_clients_never_contains_the_account_key() {
        let key = "c2l4cGVuY2UtdGVzdC1rZXktbmV2ZXItbG9nZ2Vk";
        let connection = StorageConnection::parse_connection_string(&format!(
            "AccountName=acct;AccountKey={key}"
        ))
        .unwrap();
        let storage = Storage::connect(&connection).unwrap();
        let debug = format!(
            "{storage:?} {:?} {:?} {:?}",
            storage.tables().table("system").unwrap(),
            storage.blobs().container("raw-cost-pages").unwrap(),
            storage.queues().queue("queue-probe").unwrap()
        );
        assert!(!debug.contains(key), "{debug}");
    }

    #[test]
    fn table_names_follow_azure_rules() {
        assert!(validate_table_name("system").is_ok());
        assert!(validate_table_name("costs2024").is_ok());
        assert!(validate_table_name("ab").is_err());
        assert!(validate_table_name("1abc").is_err());
        assert!(validate_table_name("with-dash").is_err());
        assert!(validate_table_name("Tables").is_err());
    }

    #[test]
    fn queue_and_container_names_follow_azure_rules() {
        assert!(validate_dns_name("q", "queue-probe").is_ok());
        assert!(validate_dns_name("q", "raw-cost-pages").is_ok());
        assert!(validate_dns_name("q", "Upper").is_err());
        assert!(validate_dns_name("q", "double--dash").is_err());
        assert!(validate_dns_name("q", "-leading").is_err());
        assert!(validate_dns_name("q", "trailing-").is_err());
        assert!(validate_dns_name("q", "ab").is_err());
    }
}
