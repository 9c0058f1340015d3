//! Events on Queue Storage: one JSON message per event on the `events` queue, base64-encoded like
//! every message the Functions host reads.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Storage;
use super::names;
use super::tenancy::to_store;
use crate::domain::events::{Event, EventSink};
use crate::domain::store::StoreError;

/// The message version; a consumer refuses (poisons) versions it does not know.
pub const EVENT_MESSAGE_VERSION: u32 = 1;

/// The queue message of one event.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventMessage {
    pub version: u32,
    pub event: Event,
}

#[derive(Clone)]
pub struct QueueEventSink {
    storage: Storage,
}

impl QueueEventSink {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }
}

#[async_trait]
impl EventSink for QueueEventSink {
    async fn raise(&self, event: &Event) -> Result<(), StoreError> {
        let text = serde_json::to_string(&EventMessage {
            version: EVENT_MESSAGE_VERSION,
            event: event.clone(),
        })
        .map_err(|e| StoreError::Unavailable(e.into()))?;
        let queue = self
            .storage
            .queues()
            .queue(names::EVENTS_QUEUE)
            .map_err(to_store)?;
        queue.send(&text, None).await.map_err(to_store)?;
        tracing::info!(
            event = %event.id,
            workspace = %event.workspace,
            dedupe_key = %event.dedupe_key,
            "event raised"
        );
        Ok(())
    }
}
