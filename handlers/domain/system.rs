//! Liveness of the platform itself: the timer heartbeat and the queue probe.
//!
//! These prove, in production as in tests, that each trigger kind reaches the binary: the
//! `heartbeat` timer records when it last fired, a probe message sent through the `queue-probe` queue
//! records when it was processed, and the health route reports both.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The `heartbeat` timer fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The host reported the firing as late (the app was down or scaled in past its schedule).
    pub past_due: bool,
}

/// A message on the `queue-probe` queue. Versioned: a future shape gets a new `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum ProbeMessage {
    #[serde(rename = "1")]
    V1 {
        id: Uuid,
        #[serde(with = "time::serde::rfc3339")]
        sent_at: OffsetDateTime,
    },
}

/// A probe that reached its queue function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReceipt {
    pub probe_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub processed_at: OffsetDateTime,
    /// How many deliveries it took (1 unless an earlier attempt failed).
    pub attempts: u64,
}

impl ProbeReceipt {
    pub fn for_message(
        message: &ProbeMessage,
        processed_at: OffsetDateTime,
        attempts: u64,
    ) -> Self {
        let ProbeMessage::V1 { id, sent_at } = message;
        Self {
            probe_id: *id,
            sent_at: *sent_at,
            processed_at,
            attempts,
        }
    }
}

/// Where liveness records are kept.
#[async_trait]
pub trait SystemStore: Send + Sync {
    async fn record_heartbeat(&self, heartbeat: &Heartbeat) -> anyhow::Result<()>;
    async fn last_heartbeat(&self) -> anyhow::Result<Option<Heartbeat>>;
    /// Idempotent per probe id: a redelivered probe overwrites its own receipt, never adds one.
    async fn record_probe(&self, receipt: &ProbeReceipt) -> anyhow::Result<()>;
    async fn probe(&self, id: Uuid) -> anyhow::Result<Option<ProbeReceipt>>;
    async fn last_probe(&self) -> anyhow::Result<Option<ProbeReceipt>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_messages_are_versioned_json_objects() {
        let id = Uuid::nil();
        let message = ProbeMessage::V1 {
            id,
            sent_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&message).expect("serialises");
        assert_eq!(json["version"], "1");
        assert_eq!(json["id"], id.to_string());
        let unknown =
            serde_json::json!({"version": "2", "id": id, "sent_at": "1970-01-01T00:00:00Z"});
        assert!(serde_json::from_value::<ProbeMessage>(unknown).is_err());
    }
}
