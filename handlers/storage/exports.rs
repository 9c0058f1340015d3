//! Export records on Table Storage: table `exports`, one partition per workspace (so a workspace's
//! deletion removes them with the partition), RowKey = the export id, the record as JSON (`Body`).
//! The archives themselves are blobs in container `exports` (`domain::exports`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::names;
use super::table::{Entity, IfMatch, Query, Table, UpdateMode};
use super::tenancy::to_store;
use super::{ETag, Storage};
use crate::domain::exports::{Export, ExportStore};
use crate::domain::store::{StoreError, Version, Versioned};
use crate::domain::tenancy::WorkspaceId;

#[derive(Clone)]
pub struct TableExportStore {
    storage: Storage,
}

impl TableExportStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self) -> Result<Table, StoreError> {
        self.storage
            .tables()
            .table(names::EXPORTS_TABLE)
            .map_err(to_store)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExportRow {
    /// Duplicated out of the body for a reader of the raw table.
    status: String,
    body: String,
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Unavailable(e.into())
}

fn entity(export: &Export) -> Result<Entity<ExportRow>, StoreError> {
    Ok(Entity::new(
        export.workspace.to_string(),
        export.id.to_string(),
        ExportRow {
            status: export.status.as_str().to_owned(),
            body: serde_json::to_string(export).map_err(json_err)?,
        },
    ))
}

fn decode(entity: Entity<ExportRow>) -> Result<Versioned<Export>, StoreError> {
    Ok(Versioned {
        value: serde_json::from_str(&entity.properties.body).map_err(json_err)?,
        version: Version(
            entity
                .etag
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
        ),
    })
}

#[async_trait]
impl ExportStore for TableExportStore {
    async fn create(&self, export: &Export) -> Result<Version, StoreError> {
        let etag = self
            .table()?
            .insert(&entity(export)?)
            .await
            .map_err(to_store)?;
        Ok(Version(etag.as_str().to_owned()))
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Versioned<Export>>, StoreError> {
        self.table()?
            .get::<ExportRow>(&workspace.to_string(), &id.to_string())
            .await
            .map_err(to_store)?
            .map(decode)
            .transpose()
    }

    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Export>>, StoreError> {
        let rows = self
            .table()?
            .query_all::<ExportRow>(&Query::partition(&workspace.to_string()))
            .await
            .map_err(to_store)?;
        let mut out = rows
            .into_iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|e| std::cmp::Reverse(e.value.created_at));
        Ok(out)
    }

    async fn update(&self, export: &Export, guard: &Version) -> Result<Version, StoreError> {
        let etag = self
            .table()?
            .update(
                &entity(export)?,
                UpdateMode::Replace,
                IfMatch::ETag(ETag::new(guard.0.clone())),
            )
            .await
            .map_err(to_store)?;
        Ok(Version(etag.as_str().to_owned()))
    }
}
