//! Sync runs on Table Storage: table `syncs`, the workspace's partition (beside the scheduling
//! ledger), one row per run, `RowKey` = `run:<inverted start time>:<run id>` so a prefix query lists
//! them newest first. The run is stored whole as JSON: it is read and written as a unit.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Storage;
use super::names;
use super::table::{Entity, Query, Table, UpdateMode, odata_string};
use super::tenancy::to_store;
use crate::domain::store::StoreError;
use crate::domain::sync::{SyncRun, SyncRunStore};
use crate::domain::tenancy::WorkspaceId;

#[derive(Clone)]
pub struct TableSyncRuns {
    storage: Storage,
}

impl TableSyncRuns {
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
struct RunRow {
    run: String,
}

fn row_key(run: &SyncRun) -> String {
    let millis = (run.started_at.unix_timestamp_nanos() / 1_000_000) as i64;
    format!("run:{:019}:{}", i64::MAX - millis.max(0), run.id)
}

#[async_trait]
impl SyncRunStore for TableSyncRuns {
    async fn save(&self, run: &SyncRun) -> Result<(), StoreError> {
        let text = serde_json::to_string(run).map_err(|e| StoreError::Unavailable(e.into()))?;
        let entity = Entity::new(
            run.workspace.to_string(),
            row_key(run),
            RunRow { run: text },
        );
        self.table()?
            .upsert(&entity, UpdateMode::Replace)
            .await
            .map(|_| ())
            .map_err(to_store)
    }

    async fn list(&self, workspace: WorkspaceId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        let query = Query::filter(format!(
            "PartitionKey eq {} and RowKey ge 'run:' and RowKey lt 'run;'",
            odata_string(&workspace.to_string())
        ))
        .top(limit.clamp(1, 1000) as u32);
        let page = self
            .table()?
            .query::<RunRow>(&query)
            .await
            .map_err(to_store)?;
        page.items
            .into_iter()
            .map(|e| {
                serde_json::from_str(&e.properties.run)
                    .map_err(|e| StoreError::Unavailable(anyhow::anyhow!("a stored sync run: {e}")))
            })
            .collect()
    }
}
