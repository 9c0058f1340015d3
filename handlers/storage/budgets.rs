//! Budgets on Table Storage: table `budgets`, one partition per workspace.
//!
//! - `b:<budget id>`: the budget as JSON (`Body`), and its last evaluation (`Evaluation`), written
//!   by `budget-check` with merge so it never undoes an edit of the budget itself;
//! - `x:<crossing key>`: one row per threshold crossing told (`budget|period|basis|bp`); inserted
//!   once, so a crossing is told once per period.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::names;
use super::table::{Entity, IfMatch, Query, Table, UpdateMode, odata_string};
use super::tenancy::to_store;
use super::{ETag, Storage, StorageError};
use crate::domain::budgets::{Budget, BudgetStore, Evaluation};
use crate::domain::store::{StoreError, Version, Versioned};
use crate::domain::tenancy::WorkspaceId;

#[derive(Clone)]
pub struct TableBudgetStore {
    storage: Storage,
}

impl TableBudgetStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self) -> Result<Table, StoreError> {
        self.storage
            .tables()
            .table(names::BUDGETS_TABLE)
            .map_err(to_store)
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct BudgetRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    evaluation: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CrossingRow {
    key: String,
}

fn budget_key(id: Uuid) -> String {
    format!("b:{id}")
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Unavailable(e.into())
}

fn decode(entity: Entity<BudgetRow>) -> Result<Option<Versioned<Budget>>, StoreError> {
    let Some(body) = entity.properties.body else {
        // Only an evaluation left behind by a check racing a delete.
        return Ok(None);
    };
    Ok(Some(Versioned {
        value: serde_json::from_str(&body).map_err(json_err)?,
        version: Version(
            entity
                .etag
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
        ),
    }))
}

#[async_trait]
impl BudgetStore for TableBudgetStore {
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Budget>>, StoreError> {
        let pk = workspace.to_string();
        let rows = self
            .table()?
            .query_all::<BudgetRow>(&Query::filter(format!(
                "PartitionKey eq {} and RowKey ge 'b:' and RowKey lt 'b;'",
                odata_string(&pk)
            )))
            .await
            .map_err(to_store)?;
        let mut out = Vec::new();
        for row in rows {
            out.extend(decode(row)?);
        }
        out.sort_by_key(|a| a.value.created_at);
        Ok(out)
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Versioned<Budget>>, StoreError> {
        match self
            .table()?
            .get::<BudgetRow>(&workspace.to_string(), &budget_key(id))
            .await
            .map_err(to_store)?
        {
            Some(e) => decode(e),
            None => Ok(None),
        }
    }

    async fn evaluation(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Evaluation>, StoreError> {
        let row = self
            .table()?
            .get::<BudgetRow>(&workspace.to_string(), &budget_key(id))
            .await
            .map_err(to_store)?;
        match row.and_then(|r| r.properties.evaluation) {
            Some(text) => Ok(Some(serde_json::from_str(&text).map_err(json_err)?)),
            None => Ok(None),
        }
    }

    async fn create(&self, workspace: WorkspaceId, budget: &Budget) -> Result<Version, StoreError> {
        let entity = Entity::new(
            workspace.to_string(),
            budget_key(budget.id),
            BudgetRow {
                body: Some(serde_json::to_string(budget).map_err(json_err)?),
                evaluation: None,
            },
        );
        let etag = self.table()?.insert(&entity).await.map_err(to_store)?;
        Ok(Version(etag.as_str().to_owned()))
    }

    async fn replace(
        &self,
        workspace: WorkspaceId,
        budget: &Budget,
        version: Option<&Version>,
    ) -> Result<Version, StoreError> {
        // Replace drops the last evaluation too: it was of the old definition.
        let entity = Entity::new(
            workspace.to_string(),
            budget_key(budget.id),
            BudgetRow {
                body: Some(serde_json::to_string(budget).map_err(json_err)?),
                evaluation: None,
            },
        );
        let condition = match version {
            Some(v) => IfMatch::ETag(ETag::new(v.0.clone())),
            None => IfMatch::Any,
        };
        let etag = self
            .table()?
            .update(&entity, UpdateMode::Replace, condition)
            .await
            .map_err(to_store)?;
        Ok(Version(etag.as_str().to_owned()))
    }

    async fn delete(&self, workspace: WorkspaceId, id: Uuid) -> Result<bool, StoreError> {
        self.table()?
            .delete(&workspace.to_string(), &budget_key(id), IfMatch::Any)
            .await
            .map_err(to_store)
    }

    async fn save_evaluation(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
        evaluation: &Evaluation,
    ) -> Result<(), StoreError> {
        let entity = Entity::new(
            workspace.to_string(),
            budget_key(id),
            BudgetRow {
                body: None,
                evaluation: Some(serde_json::to_string(evaluation).map_err(json_err)?),
            },
        );
        // Only onto an existing budget: a budget deleted meanwhile stays deleted.
        match self
            .table()?
            .update(&entity, UpdateMode::Merge, IfMatch::Any)
            .await
        {
            Ok(_) | Err(StorageError::NotFound(_)) => Ok(()),
            Err(e) => Err(to_store(e)),
        }
    }

    async fn crossing_recorded(
        &self,
        workspace: WorkspaceId,
        key: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .table()?
            .get::<CrossingRow>(&workspace.to_string(), &format!("x:{key}"))
            .await
            .map_err(to_store)?
            .is_some())
    }

    async fn record_crossing(&self, workspace: WorkspaceId, key: &str) -> Result<bool, StoreError> {
        let entity = Entity::new(
            workspace.to_string(),
            format!("x:{key}"),
            CrossingRow {
                key: key.to_owned(),
            },
        );
        match self.table()?.insert(&entity).await {
            Ok(_) => Ok(true),
            Err(StorageError::Conflict(_)) => Ok(false),
            Err(e) => Err(to_store(e)),
        }
    }
}
