//! The `system` table: platform liveness (heartbeat, queue probes). Not customer data, so its keys do
//! not start with a workspace id.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::names;
use super::table::{Entity, Table, UpdateMode};
use super::{Storage, StorageError};
use crate::domain::system::{Heartbeat, ProbeReceipt, SystemStore};

const PARTITION: &str = "liveness";
const HEARTBEAT_ROW: &str = "heartbeat";
const LAST_PROBE_ROW: &str = "last-probe";
const PROBE_PARTITION: &str = "probe";

/// [`SystemStore`] on Table Storage.
#[derive(Clone)]
pub struct TableSystemStore {
    storage: Storage,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HeartbeatRow {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    past_due: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProbeRow {
    probe_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    sent_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    processed_at: OffsetDateTime,
    /// Stored as a string: Edm.Int32 would need annotations and the count is tiny anyway.
    attempts: String,
}

impl From<&ProbeReceipt> for ProbeRow {
    fn from(r: &ProbeReceipt) -> Self {
        Self {
            probe_id: r.probe_id,
            sent_at: r.sent_at,
            processed_at: r.processed_at,
            attempts: r.attempts.to_string(),
        }
    }
}

impl From<ProbeRow> for ProbeReceipt {
    fn from(r: ProbeRow) -> Self {
        Self {
            probe_id: r.probe_id,
            sent_at: r.sent_at,
            processed_at: r.processed_at,
            attempts: r.attempts.parse().unwrap_or(1),
        }
    }
}

impl TableSystemStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self) -> Result<Table, StorageError> {
        self.storage.tables().table(names::SYSTEM_TABLE)
    }
}

#[async_trait]
impl SystemStore for TableSystemStore {
    async fn record_heartbeat(&self, heartbeat: &Heartbeat) -> anyhow::Result<()> {
        let row = HeartbeatRow {
            at: heartbeat.at,
            past_due: heartbeat.past_due,
        };
        self.table()?
            .upsert(
                &Entity::new(PARTITION, HEARTBEAT_ROW, row),
                UpdateMode::Replace,
            )
            .await?;
        Ok(())
    }

    async fn last_heartbeat(&self) -> anyhow::Result<Option<Heartbeat>> {
        let row = self
            .table()?
            .get::<HeartbeatRow>(PARTITION, HEARTBEAT_ROW)
            .await?;
        Ok(row.map(|e| Heartbeat {
            at: e.properties.at,
            past_due: e.properties.past_due,
        }))
    }

    async fn record_probe(&self, receipt: &ProbeReceipt) -> anyhow::Result<()> {
        let table = self.table()?;
        let row_key = receipt.probe_id.to_string();
        // Keyed by probe id, so a redelivered probe replaces its own receipt.
        table
            .upsert(
                &Entity::new(PROBE_PARTITION, row_key, ProbeRow::from(receipt)),
                UpdateMode::Replace,
            )
            .await?;
        table
            .upsert(
                &Entity::new(PARTITION, LAST_PROBE_ROW, ProbeRow::from(receipt)),
                UpdateMode::Replace,
            )
            .await?;
        Ok(())
    }

    async fn probe(&self, id: Uuid) -> anyhow::Result<Option<ProbeReceipt>> {
        let row = self
            .table()?
            .get::<ProbeRow>(PROBE_PARTITION, &id.to_string())
            .await?;
        Ok(row.map(|e| e.properties.into()))
    }

    async fn last_probe(&self) -> anyhow::Result<Option<ProbeReceipt>> {
        let row = self
            .table()?
            .get::<ProbeRow>(PARTITION, LAST_PROBE_ROW)
            .await?;
        Ok(row.map(|e| e.properties.into()))
    }
}
