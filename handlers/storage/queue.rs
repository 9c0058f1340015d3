//! Queue Storage through the official `azure_storage_queue` 1.x crate.
//!
//! Message text is base64-encoded on the way in and decoded on the way out, because the Functions queue
//! trigger's default `messageEncoding` is base64: a message we send must be readable by the real host, and
//! a message the host (or the portal) sends must be readable by us. A message that is not valid base64 is
//! still delivered, with [`ReceivedMessage::text`] set to `None` and the original in
//! [`ReceivedMessage::raw`], so a consumer can still poison it instead of looping on it.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::{RequestContent, XmlFormat};
use azure_storage_queue::models::{
    QueueClientGetPropertiesResultHeaders as _, QueueClientPeekMessagesOptions,
    QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions, QueueMessage,
};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use base64::Engine as _;
use time::OffsetDateTime;

use super::StorageError;
use super::connection::StorageConnection;
use super::transport::ServiceParts;

/// The service's limit on one message, measured on the (encoded) text it stores.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The longest visibility timeout or initial delay the service accepts.
const MAX_VISIBILITY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// At most this many messages per receive or peek call (service limit).
pub const MAX_BATCH: u8 = 32;

/// The Queue service of one account.
#[derive(Clone, Debug)]
pub struct QueueService {
    parts: Arc<ServiceParts>,
}

impl QueueService {
    pub(crate) fn new(connection: &StorageConnection) -> Result<Self, StorageError> {
        let parts = ServiceParts::new(connection, "queue", &connection.endpoints.queue)?;
        Ok(Self {
            parts: Arc::new(parts),
        })
    }

    /// A handle on one queue (no request is sent).
    pub fn queue(&self, name: &str) -> Result<Queue, StorageError> {
        super::validate_dns_name("queue.name", name)?;
        let mut url = self.parts.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| {
                StorageError::invalid_input("queue.url", "the queue endpoint cannot be a base URL")
            })?
            .pop_if_empty()
            .push(name);
        let client = QueueClient::new(
            url,
            self.parts.credential.clone(),
            Some(QueueClientOptions {
                client_options: self.parts.options.clone(),
                ..Default::default()
            }),
        )
        .map_err(|e| StorageError::from_sdk("queue.client", e))?;
        Ok(Queue {
            name: name.to_owned(),
            client: Arc::new(client),
        })
    }
}

/// One queue.
#[derive(Clone)]
pub struct Queue {
    name: String,
    client: Arc<QueueClient>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("url", &self.client.url().as_str())
            .finish()
    }
}

/// What the service answered to a send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The message id.
    pub id: String,
    /// A pop receipt valid until the message is received by someone (lets the sender update or delete it).
    pub pop_receipt: String,
    /// When the message becomes visible to receivers.
    pub next_visible_time: Option<OffsetDateTime>,
}

/// A message taken from the queue; invisible to others until `next_visible_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The message id.
    pub id: String,
    /// Needed to delete the message or change its visibility; changes on every receive and update.
    pub pop_receipt: String,
    /// How many times the message has been received, this time included.
    pub dequeue_count: u32,
    /// When the message was sent.
    pub insertion_time: Option<OffsetDateTime>,
    /// When the service will drop the message.
    pub expiration_time: Option<OffsetDateTime>,
    /// When the message becomes visible again unless it is deleted.
    pub next_visible_time: Option<OffsetDateTime>,
    /// The decoded text; `None` if the stored text is not base64 of UTF-8 (see [`Self::raw`]).
    pub text: Option<String>,
    /// The text exactly as stored (base64 for messages sent by [`Queue::send`] or the Functions host).
    pub raw: String,
}

/// A message seen without taking it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeekedMessage {
    /// The message id.
    pub id: String,
    /// How many times the message has been received.
    pub dequeue_count: u32,
    /// The decoded text; `None` if the stored text is not base64 of UTF-8.
    pub text: Option<String>,
    /// The text exactly as stored.
    pub raw: String,
}

/// The result of a visibility update: the old pop receipt is no longer valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdatedMessage {
    /// The new pop receipt.
    pub pop_receipt: String,
    /// When the message becomes visible.
    pub next_visible_time: Option<OffsetDateTime>,
}

impl Queue {
    /// The queue name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the queue unless it exists already.
    pub async fn create_if_not_exists(&self) -> Result<(), StorageError> {
        // The service answers 201 (created) or 204 (exists with the same metadata) and the SDK accepts both.
        self.client
            .create(None)
            .await
            .map(|_| ())
            .map_err(|e| StorageError::from_sdk("queue.create", e))
    }

    /// Deletes the queue and its messages; `false` if it did not exist.
    pub async fn delete_queue(&self) -> Result<bool, StorageError> {
        match self.client.delete(None).await {
            Ok(_) => Ok(true),
            Err(e) => match StorageError::from_sdk("queue.delete", e) {
                StorageError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Sends `text` base64-encoded (what the Functions queue trigger expects), visible after `delay`
    /// (immediately if `None`).
    pub async fn send(
        &self,
        text: &str,
        delay: Option<Duration>,
    ) -> Result<SentMessage, StorageError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        self.send_stored("queue.send", encoded, delay).await
    }

    /// Sends `raw` exactly as given, without base64. For tests and tools that need a message the Functions
    /// host would not be able to decode.
    pub async fn send_raw(
        &self,
        raw: &str,
        delay: Option<Duration>,
    ) -> Result<SentMessage, StorageError> {
        self.send_stored("queue.send_raw", raw.to_owned(), delay)
            .await
    }

    async fn send_stored(
        &self,
        operation: &'static str,
        stored: String,
        delay: Option<Duration>,
    ) -> Result<SentMessage, StorageError> {
        if stored.len() > MAX_MESSAGE_BYTES {
            return Err(StorageError::invalid_input(
                operation,
                format!(
                    "message is {} bytes once encoded; the limit is {MAX_MESSAGE_BYTES}",
                    stored.len()
                ),
            ));
        }
        let visibility_timeout = match delay {
            Some(delay) => Some(seconds(operation, delay, Duration::ZERO)?),
            None => None,
        };
        let content: RequestContent<QueueMessage, XmlFormat> = QueueMessage {
            message_text: Some(stored),
        }
        .try_into()
        .map_err(|e| StorageError::from_sdk(operation, e))?;
        let options = QueueClientSendMessageOptions {
            visibility_timeout,
            ..Default::default()
        };
        let sent = self
            .client
            .send_message(content, Some(options))
            .await
            .map_err(|e| StorageError::from_sdk(operation, e))?
            .into_model()
            .map_err(|e| StorageError::from_sdk(operation, e))?
            .into_message()
            .map_err(|e| StorageError::from_sdk(operation, e))?;
        Ok(SentMessage {
            id: required(operation, sent.message_id, "MessageId")?,
            pop_receipt: required(operation, sent.pop_receipt, "PopReceipt")?,
            next_visible_time: sent.time_next_visible,
        })
    }

    /// Takes up to `max` (1–32) messages, hiding them from other receivers for `visibility_timeout`.
    pub async fn receive(
        &self,
        max: u8,
        visibility_timeout: Duration,
    ) -> Result<Vec<ReceivedMessage>, StorageError> {
        const OP: &str = "queue.receive";
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(batch_size(OP, max)?),
            visibility_timeout: Some(seconds(OP, visibility_timeout, Duration::from_secs(1))?),
            ..Default::default()
        };
        let messages = self
            .client
            .receive_messages(Some(options))
            .await
            .map_err(|e| StorageError::from_sdk(OP, e))?
            .into_model()
            .map_err(|e| StorageError::from_sdk(OP, e))?;
        messages
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let raw = m.message_text.unwrap_or_default();
                Ok(ReceivedMessage {
                    id: required(OP, m.message_id, "MessageId")?,
                    pop_receipt: required(OP, m.pop_receipt, "PopReceipt")?,
                    dequeue_count: count(m.dequeue_count),
                    insertion_time: m.insertion_time,
                    expiration_time: m.expiration_time,
                    next_visible_time: m.time_next_visible,
                    text: decode(&raw),
                    raw,
                })
            })
            .collect()
    }

    /// Looks at up to `max` (1–32) visible messages without taking them.
    pub async fn peek(&self, max: u8) -> Result<Vec<PeekedMessage>, StorageError> {
        const OP: &str = "queue.peek";
        let options = QueueClientPeekMessagesOptions {
            number_of_messages: Some(batch_size(OP, max)?),
            ..Default::default()
        };
        let messages = self
            .client
            .peek_messages(Some(options))
            .await
            .map_err(|e| StorageError::from_sdk(OP, e))?
            .into_model()
            .map_err(|e| StorageError::from_sdk(OP, e))?;
        messages
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let raw = m.message_text.unwrap_or_default();
                Ok(PeekedMessage {
                    id: required(OP, m.message_id, "MessageId")?,
                    dequeue_count: count(m.dequeue_count),
                    text: decode(&raw),
                    raw,
                })
            })
            .collect()
    }

    /// Deletes a received message. [`StorageError::NotFound`] if it is gone or the pop receipt is stale
    /// (someone else received it after our visibility timeout ran out).
    pub async fn delete_message(&self, id: &str, pop_receipt: &str) -> Result<(), StorageError> {
        const OP: &str = "queue.delete_message";
        check_id(OP, id)?;
        self.client
            .delete_message(id, pop_receipt, None)
            .await
            .map(|_| ())
            .map_err(|e| StorageError::from_sdk(OP, e))
    }

    /// Makes a received message visible again after `visible_after` (zero: at once), e.g. to retry later.
    /// Returns the new pop receipt.
    pub async fn update_visibility(
        &self,
        id: &str,
        pop_receipt: &str,
        visible_after: Duration,
    ) -> Result<UpdatedMessage, StorageError> {
        const OP: &str = "queue.update_visibility";
        check_id(OP, id)?;
        let timeout = seconds(OP, visible_after, Duration::ZERO)?;
        let response = self
            .client
            .update_message(id, pop_receipt, timeout, None)
            .await
            .map_err(|e| StorageError::from_sdk(OP, e))?;
        let headers = response.headers();
        let pop_receipt = headers
            .get_optional_string(&azure_core::http::headers::HeaderName::from_static(
                "x-ms-popreceipt",
            ))
            .ok_or_else(|| StorageError::other(OP, "the service returned no pop receipt"))?;
        let next_visible_time = headers
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                "x-ms-time-next-visible",
            ))
            .and_then(|v| azure_core::time::parse_rfc7231(v).ok());
        Ok(UpdatedMessage {
            pop_receipt,
            next_visible_time,
        })
    }

    /// The service's approximate message count (includes invisible messages).
    pub async fn approximate_count(&self) -> Result<u64, StorageError> {
        const OP: &str = "queue.count";
        let response = self
            .client
            .get_properties(None)
            .await
            .map_err(|e| StorageError::from_sdk(OP, e))?;
        let count = response
            .approximate_messages_count()
            .map_err(|e| StorageError::from_sdk(OP, e))?
            .unwrap_or(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Deletes every message.
    pub async fn clear(&self) -> Result<(), StorageError> {
        self.client
            .clear(None)
            .await
            .map(|_| ())
            .map_err(|e| StorageError::from_sdk("queue.clear", e))
    }
}

/// Base64 (standard alphabet, padded, as the Functions host writes it) of UTF-8, or `None`.
fn decode(raw: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    String::from_utf8(bytes).ok()
}

fn count(dequeue_count: Option<i64>) -> u32 {
    dequeue_count.map_or(0, |c| u32::try_from(c.max(0)).unwrap_or(u32::MAX))
}

fn required(
    operation: &'static str,
    value: Option<String>,
    field: &str,
) -> Result<String, StorageError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| StorageError::other(operation, format!("the service returned no {field}")))
}

fn batch_size(operation: &'static str, max: u8) -> Result<i32, StorageError> {
    if (1..=MAX_BATCH).contains(&max) {
        Ok(i32::from(max))
    } else {
        Err(StorageError::invalid_input(
            operation,
            format!("can take 1 to {MAX_BATCH} messages at a time, not {max}"),
        ))
    }
}

fn seconds(operation: &'static str, value: Duration, min: Duration) -> Result<i32, StorageError> {
    if value < min || value > MAX_VISIBILITY {
        return Err(StorageError::invalid_input(
            operation,
            format!(
                "visibility must be between {}s and 7 days, not {}s",
                min.as_secs(),
                value.as_secs()
            ),
        ));
    }
    // Bounded by 7 days above, so it fits an i32.
    i32::try_from(value.as_secs())
        .map_err(|_| StorageError::invalid_input(operation, "visibility out of range"))
}

/// Message ids go into the URL path; refuse anything that would change the path.
fn check_id(operation: &'static str, id: &str) -> Result<(), StorageError> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(())
    } else {
        Err(StorageError::invalid_input(operation, "invalid message id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_text_decodes_and_anything_else_does_not() {
        assert_eq!(decode("aGVsbG8="), Some("hello".to_owned()));
        assert_eq!(decode("not base64!"), None);
        // Valid base64 but not UTF-8.
        assert_eq!(decode("/w=="), None);
    }

    #[test]
    fn dequeue_counts_are_clamped() {
        assert_eq!(count(Some(3)), 3);
        assert_eq!(count(None), 0);
        assert_eq!(count(Some(-1)), 0);
    }

    #[test]
    fn visibility_is_checked_before_sending() {
        assert_eq!(
            seconds("t", Duration::from_secs(30), Duration::ZERO).unwrap(),
            30
        );
        assert!(seconds("t", Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(seconds("t", MAX_VISIBILITY + Duration::from_secs(1), Duration::ZERO).is_err());
    }

    #[test]
    fn batch_sizes_are_one_to_thirty_two() {
        assert!(batch_size("t", 0).is_err());
        assert_eq!(batch_size("t", 32).unwrap(), 32);
        assert!(batch_size("t", 33).is_err());
    }

    #[test]
    fn message_ids_cannot_change_the_url() {
        assert!(check_id("t", "4c7a8f6e-0d1a-4a53-9b8c-1f2e3d4c5b6a").is_ok());
        assert!(check_id("t", "../x").is_err());
        assert!(check_id("t", "").is_err());
    }
}
