//! What the local host needs from Azure Storage for triggers and output bindings, and its
//! implementation over the app's own storage layer (so the local host and the binary read the same
//! connection settings the same way).
//!
//! Messages are handled as their raw stored text: the storage encoding (`messageEncoding`) is the
//! host's business, applied in [`crate::queues`].

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

/// A received message exactly as the queue service stores it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: String,
    pub pop_receipt: String,
    pub dequeue_count: u64,
    pub insertion_time: Option<OffsetDateTime>,
    pub expiration_time: Option<OffsetDateTime>,
    pub next_visible_time: Option<OffsetDateTime>,
    /// The stored text (still base64 when the producer encoded it).
    pub text: String,
}

/// Queue and blob operations on one storage account.
#[async_trait]
pub trait BindingStorage: Send + Sync + 'static {
    /// Creates the queue if it does not exist.
    async fn create_queue(&self, queue: &str) -> anyhow::Result<()>;
    /// Receives up to `max` messages, invisible to others for `visibility`.
    async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
    ) -> anyhow::Result<Vec<StoredMessage>>;
    async fn delete(&self, queue: &str, id: &str, pop_receipt: &str) -> anyhow::Result<()>;
    /// Makes the message visible again after `visibility`; returns the new pop receipt.
    async fn set_visibility(
        &self,
        queue: &str,
        id: &str,
        pop_receipt: &str,
        visibility: Duration,
    ) -> anyhow::Result<String>;
    /// Sends `text` as it is (already encoded).
    async fn send(&self, queue: &str, text: &str) -> anyhow::Result<()>;
    /// Writes a block blob, creating its container if needed.
    async fn put_blob(&self, container: &str, name: &str, bytes: Vec<u8>) -> anyhow::Result<()>;
}

/// Connects to the account named by the connection setting prefix `connection` (for example
/// `AzureWebJobsStorage`), reading `<connection>` or `<connection>__*` through `lookup`.
pub fn connect(
    connection: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<std::sync::Arc<dyn BindingStorage>> {
    let _ = lookup;
    anyhow::bail!(
        "storage connection `{connection}`: the storage layer is not available on this branch yet"
    )
}
