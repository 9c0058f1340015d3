//! What the domain needs to know about a failed storage call, whatever the storage is.

/// An opaque version of a stored record (an ETag): compared only for equality, echoed to clients
/// as `ETag` and taken back as `If-Match`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(pub String);

/// A record and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: Version,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with the same identity already exists.
    #[error("already exists")]
    Conflict,
    /// The record changed since the version the caller read.
    #[error("changed since it was read")]
    VersionMismatch,
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// Storage failed or is unreachable; retrying later may succeed.
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// Where to resume a listing: an opaque continuation from the store, and how many items at most.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: u32,
}

/// One page of a listing and where the next one starts, if anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}
