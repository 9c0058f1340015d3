//! `Idempotency-Key`: a creating request retried with the same key gets the first answer again
//! instead of creating a second resource.

use serde::{Deserialize, Serialize};

use super::store::StoreError;

/// The answer recorded for a key, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedResponse {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// What the store says about a key when a request arrives with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: the caller runs the request and then records its answer.
    New,
    /// Already answered for the same request: replay it.
    Replay(RecordedResponse),
    /// Same key, different request (method, path or body).
    Mismatch,
    /// The first request with this key has not finished yet.
    InProgress,
}

/// How long a key is remembered. A day covers any sane client retry policy.
pub const KEY_LIFETIME: time::Duration = time::Duration::hours(24);

#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` within `scope` for a request to `path` whose content hashes to `fingerprint`.
    ///
    /// Atomic (an insert that fails on conflict), so two concurrent requests with one key cannot
    /// both get [`Claim::New`].
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        path: &str,
    ) -> Result<Claim, StoreError>;
    /// Records the answer of a claimed key.
    async fn complete(
        &self,
        scope: &str,
        key: &str,
        response: &RecordedResponse,
    ) -> Result<(), StoreError>;
    /// Releases a claim whose request failed on our side, so a retry can run it again.
    async fn release(&self, scope: &str, key: &str) -> Result<(), StoreError>;
}
