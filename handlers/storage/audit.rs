//! The audit trail on Table Storage: table `audit`, PartitionKey = workspace id, and a RowKey that
//! sorts newest first (`<i64::MAX - unix nanos>-<uuid>`), so listing is a forward scan and a time
//! range is a RowKey range. Rows are only ever inserted.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Storage;
use super::names;
use super::table::{ContinuationToken, Entity, Query, odata_string};
use super::tenancy::to_store;
use crate::domain::audit::{Actor, AuditFilter, AuditLog, AuditRecord};
use crate::domain::store::{Page, PageRequest, StoreError};
use crate::domain::tenancy::WorkspaceId;

#[derive(Clone)]
pub struct TableAuditLog {
    storage: Storage,
}

impl TableAuditLog {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuditRow {
    /// Duplicated out of the record so filters run in the service.
    action: String,
    #[serde(default)]
    actor_id: String,
    /// The whole record as JSON: a schema change never needs a table migration.
    record: String,
}

/// The RowKey prefix of an instant: later instants sort first.
fn inverted(at: OffsetDateTime) -> String {
    let nanos = i64::try_from(at.unix_timestamp_nanos())
        .unwrap_or(i64::MAX)
        .max(0);
    format!("{:019}", i64::MAX - nanos)
}

#[async_trait]
impl AuditLog for TableAuditLog {
    async fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let table = self
            .storage
            .tables()
            .table(names::AUDIT_TABLE)
            .map_err(to_store)?;
        let row = AuditRow {
            action: record.action.clone(),
            actor_id: match &record.actor {
                Actor::User { id } => id.to_string(),
                Actor::System { component } => format!("system:{component}"),
            },
            record: serde_json::to_string(record).map_err(|e| StoreError::Unavailable(e.into()))?,
        };
        let row_key = format!("{}-{}", inverted(record.at), uuid::Uuid::new_v4().simple());
        // Insert, never upsert: an audit row cannot be overwritten.
        table
            .insert(&Entity::new(record.workspace.to_string(), row_key, row))
            .await
            .map_err(to_store)?;
        Ok(())
    }

    async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError> {
        let table = self
            .storage
            .tables()
            .table(names::AUDIT_TABLE)
            .map_err(to_store)?;
        let mut clauses = vec![format!(
            "PartitionKey eq {}",
            odata_string(&workspace.to_string())
        )];
        if let Some(to) = filter.to {
            clauses.push(format!("RowKey ge {}", odata_string(&inverted(to))));
        }
        if let Some(from) = filter.from {
            // Everything at or after `from`: inverted keys up to and including from's prefix.
            clauses.push(format!(
                "RowKey lt {}",
                odata_string(&format!("{}~", inverted(from)))
            ));
        }
        if let Some(action) = &filter.action {
            clauses.push(format!(
                "(Action eq {} or (Action ge {} and Action lt {}))",
                odata_string(action),
                odata_string(&format!("{action}.")),
                odata_string(&format!("{action}/"))
            ));
        }
        if let Some(actor) = filter.actor {
            clauses.push(format!("ActorId eq {}", odata_string(&actor.to_string())));
        }
        let mut query = Query::filter(clauses.join(" and ")).top(page.limit.clamp(1, 1000));
        if let Some(after) = &page.after {
            let token = ContinuationToken::decode(after).map_err(|_| StoreError::NotFound)?;
            query = query.after(token);
        }
        let result = table.query::<AuditRow>(&query).await.map_err(to_store)?;
        let items = result
            .items
            .into_iter()
            .filter_map(|e| serde_json::from_str::<AuditRecord>(&e.properties.record).ok())
            .collect();
        Ok(Page {
            items,
            next: result.continuation.map(|c| c.encode()),
        })
    }
}
