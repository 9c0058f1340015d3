//! The sync ledger on Table Storage: table `syncs`, one partition per workspace, one row per
//! scheduled `(night, subscription)` (`RowKey` = `scheduled:<night>:<subscription>`). Claiming is
//! an insert, so two schedulers racing on the same night cannot both win.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::names;
use super::table::{Entity, IfMatch, Table};
use super::tenancy::to_store;
use super::{Storage, StorageError};
use crate::domain::store::StoreError;
use crate::domain::sync::{SyncLedger, SyncRequest, SyncTrigger};

#[derive(Clone)]
pub struct TableSyncLedger {
    storage: Storage,
}

impl TableSyncLedger {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self) -> Result<Table, StoreError> {
        self.storage
            .tables()
            .table(names::SYNCS_TABLE)
            .map_err(to_store)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledRow {
    connection: String,
    trigger: SyncTrigger,
    #[serde(with = "time::serde::rfc3339")]
    scheduled_at: OffsetDateTime,
}

fn row_key(request: &SyncRequest) -> String {
    format!("scheduled:{}:{}", request.night, request.subscription)
}

#[async_trait]
impl SyncLedger for TableSyncLedger {
    async fn claim(&self, request: &SyncRequest) -> Result<bool, StoreError> {
        let entity = Entity::new(
            request.workspace.to_string(),
            row_key(request),
            ScheduledRow {
                connection: request.connection.to_string(),
                trigger: request.trigger,
                scheduled_at: OffsetDateTime::now_utc(),
            },
        );
        match self.table()?.insert(&entity).await {
            Ok(_) => Ok(true),
            Err(StorageError::Conflict(_)) => Ok(false),
            Err(other) => Err(to_store(other)),
        }
    }

    async fn release(&self, request: &SyncRequest) -> Result<(), StoreError> {
        self.table()?
            .delete(
                &request.workspace.to_string(),
                &row_key(request),
                IfMatch::Any,
            )
            .await
            .map(|_| ())
            .map_err(to_store)
    }
}
