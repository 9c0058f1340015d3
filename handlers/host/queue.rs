//! The queue trigger's message and its metadata.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::invocation::{InvokeRequest, PayloadError};
use super::value;

/// A queue-triggered invocation: the message text and what the host knows about its delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueTrigger {
    /// The message exactly as the producer enqueued it (after the host's base64 decoding and after
    /// undoing its second JSON encoding).
    pub text: String,
    pub metadata: QueueMetadata,
}

/// Delivery metadata. Every field is optional on the wire; `dequeue_count` defaults to 1 because the
/// host only omits it in hand-written payloads.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMetadata {
    pub id: Option<String>,
    pub dequeue_count: u64,
    pub insertion_time: Option<OffsetDateTime>,
    pub expiration_time: Option<OffsetDateTime>,
    pub next_visible_time: Option<OffsetDateTime>,
    pub pop_receipt: Option<String>,
}

impl QueueTrigger {
    /// Reads the queue trigger bound to `binding`.
    pub fn from_request(request: &InvokeRequest, binding: &str) -> Result<Self, PayloadError> {
        let raw = request.binding(binding)?;
        let text = value::text(raw).ok_or_else(|| PayloadError::InvalidBinding {
            name: binding.to_owned(),
            reason: "the message has no text".to_owned(),
        })?;
        Ok(Self {
            text,
            metadata: QueueMetadata::from_map(&request.metadata),
        })
    }

    /// Parses the message text as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.text)
    }
}

impl QueueMetadata {
    fn from_map(metadata: &Map<String, Value>) -> Self {
        let get = |name: &str| {
            metadata
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        Self {
            id: get("Id").and_then(value::text),
            dequeue_count: get("DequeueCount").and_then(value::unsigned).unwrap_or(1),
            insertion_time: get("InsertionTime").and_then(value::timestamp),
            expiration_time: get("ExpirationTime").and_then(value::timestamp),
            next_visible_time: get("NextVisibleTime").and_then(value::timestamp),
            pop_receipt: get("PopReceipt").and_then(value::text),
        }
    }
}
