//! The sync ledger on Table Storage: table `syncs`, one partition per workspace, one row per
//! scheduled `(night, subscription)` (`RowKey` = `scheduled:<night>:<subscription>`). Claiming is
//! an insert, so two schedulers racing on the same night cannot both win. Manual requests take
//! numbered slots of their hour (`manual:<hour>:<n>`), also by insert, so concurrent requests cannot
//! exceed the hourly allowance.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::names;
use super::table::{Entity, IfMatch, Table};
use super::tenancy::to_store;
use super::{Storage, StorageError};
use crate::domain::store::StoreError;
use crate::domain::sync::{MANUAL_SYNCS_PER_HOUR, SyncLedger, SyncRequest, SyncTrigger};
use crate::domain::tenancy::WorkspaceId;

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

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManualRow {
    #[serde(with = "time::serde::rfc3339")]
    requested_at: OffsetDateTime,
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

    async fn claim_manual(
        &self,
        workspace: WorkspaceId,
        hour: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let table = self.table()?;
        for slot in 0..MANUAL_SYNCS_PER_HOUR {
            let entity = Entity::new(
                workspace.to_string(),
                format!("manual:{}:{slot}", hour.unix_timestamp()),
                ManualRow {
                    requested_at: OffsetDateTime::now_utc(),
                },
            );
            match table.insert(&entity).await {
                Ok(_) => return Ok(true),
                Err(StorageError::Conflict(_)) => continue,
                Err(other) => return Err(to_store(other)),
            }
        }
        Ok(false)
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
