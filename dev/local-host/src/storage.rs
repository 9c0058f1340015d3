//! What the local host needs from Azure Storage for triggers and output bindings, and its
//! implementation over the app's own storage layer (so the local host and the binary read the same
//! connection settings the same way).
//!
//! Messages are handled as their raw stored text: the storage encoding (`messageEncoding`) is the
//! host's business, applied in [`crate::queues`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sixpence::storage::queue::MAX_BATCH;
use sixpence::storage::{Queue, Storage, StorageConnection};
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
/// `AzureWebJobsStorage`), reading `<connection>` or `<connection>__*` through `lookup`, as the host
/// resolves a binding's `connection`.
pub fn connect(
    connection: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Arc<dyn BindingStorage>> {
    const HOST_SETTING: &str = sixpence::storage::connection::SETTING;
    // The storage layer reads `AzureWebJobsStorage[__*]`; another connection name is the same set of
    // settings under its own prefix.
    let remapped = |name: &str| match name.strip_prefix(HOST_SETTING) {
        Some(rest) => lookup(&format!("{connection}{rest}")),
        None => lookup(name),
    };
    let parsed = StorageConnection::from_lookup(remapped)?;
    let storage = Storage::connect(&parsed)?;
    Ok(Arc::new(AppStorage { storage }))
}

/// [`BindingStorage`] over the app's own storage layer.
struct AppStorage {
    storage: Storage,
}

impl AppStorage {
    fn queue(&self, name: &str) -> anyhow::Result<Queue> {
        Ok(self.storage.queues().queue(name)?)
    }
}

#[async_trait]
impl BindingStorage for AppStorage {
    async fn create_queue(&self, queue: &str) -> anyhow::Result<()> {
        Ok(self.queue(queue)?.create_if_not_exists().await?)
    }

    async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Duration,
    ) -> anyhow::Result<Vec<StoredMessage>> {
        let max = u8::try_from(max.clamp(1, u32::from(MAX_BATCH))).unwrap_or(MAX_BATCH);
        let messages = self.queue(queue)?.receive(max, visibility).await?;
        Ok(messages
            .into_iter()
            .map(|m| StoredMessage {
                id: m.id,
                pop_receipt: m.pop_receipt,
                dequeue_count: u64::from(m.dequeue_count),
                insertion_time: m.insertion_time,
                expiration_time: m.expiration_time,
                next_visible_time: m.next_visible_time,
                // The raw stored text: the host, not the storage layer, applies messageEncoding.
                text: m.raw,
            })
            .collect())
    }

    async fn delete(&self, queue: &str, id: &str, pop_receipt: &str) -> anyhow::Result<()> {
        Ok(self.queue(queue)?.delete_message(id, pop_receipt).await?)
    }

    async fn set_visibility(
        &self,
        queue: &str,
        id: &str,
        pop_receipt: &str,
        visibility: Duration,
    ) -> anyhow::Result<String> {
        let updated = self
            .queue(queue)?
            .update_visibility(id, pop_receipt, visibility)
            .await?;
        Ok(updated.pop_receipt)
    }

    async fn send(&self, queue: &str, text: &str) -> anyhow::Result<()> {
        self.queue(queue)?.send_raw(text, None).await?;
        Ok(())
    }

    async fn put_blob(&self, container: &str, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let container = self.storage.blobs().container(container)?;
        container.create_if_not_exists().await?;
        // The blob output binding writes octet-stream unless told otherwise.
        container
            .put(name, Bytes::from(bytes), "application/octet-stream")
            .await?;
        Ok(())
    }
}
