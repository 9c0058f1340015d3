//! Incident records on Table Storage: table `incidents`, one partition (`incident`: incidents are
//! rare, a handful a year), RowKey sorting newest first (`<i64::MAX - unix nanos>-<id>`). Rows are
//! only ever inserted; retention purges them after the retention period.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Storage;
use super::names;
use super::table::{Entity, Query};
use super::tenancy::to_store;
use crate::domain::incidents::{Incident, IncidentLog};
use crate::domain::store::StoreError;

const PARTITION: &str = "incident";

#[derive(Clone)]
pub struct TableIncidentLog {
    storage: Storage,
}

impl TableIncidentLog {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IncidentRow {
    /// Comma-separated workspace ids, duplicated out of the record so a deletion or export can
    /// find a workspace's incidents with a filter.
    workspaces: String,
    /// The whole record as JSON.
    record: String,
}

fn row_key(incident: &Incident) -> String {
    let nanos = i64::try_from(incident.recorded_at.unix_timestamp_nanos())
        .unwrap_or(i64::MAX)
        .max(0);
    format!("{:019}-{}", i64::MAX - nanos, incident.id.simple())
}

#[async_trait]
impl IncidentLog for TableIncidentLog {
    async fn record(&self, incident: &Incident) -> Result<(), StoreError> {
        let table = self
            .storage
            .tables()
            .table(names::INCIDENTS_TABLE)
            .map_err(to_store)?;
        let row = IncidentRow {
            workspaces: incident
                .workspaces
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            record: serde_json::to_string(incident)
                .map_err(|e| StoreError::Unavailable(e.into()))?,
        };
        table
            .insert(&Entity::new(PARTITION, row_key(incident), row))
            .await
            .map_err(to_store)?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Incident>, StoreError> {
        let table = self
            .storage
            .tables()
            .table(names::INCIDENTS_TABLE)
            .map_err(to_store)?;
        let rows = table
            .query_all::<IncidentRow>(&Query::partition(PARTITION))
            .await
            .map_err(to_store)?;
        Ok(rows
            .into_iter()
            .filter_map(|e| serde_json::from_str(&e.properties.record).ok())
            .collect())
    }
}
