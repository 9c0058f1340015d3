//! Anomalies and analytics settings on Table Storage.
//!
//! - `anomalies`: one partition per workspace, `RowKey` = the anomaly id (stable per episode, see
//!   `domain::anomalies::anomaly_id`), so a redelivered detection upserts what it wrote before.
//!   Detection writes the anomaly as JSON in `Body*` properties (split in pieces below the
//!   service's 32K-character limit) with **merge**, and the API writes `Feedback` with merge: the two
//!   writers touch different properties, so neither can undo the other.
//! - `analytics`: one partition per workspace; `RowKey` `settings` holds the analytics settings.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Storage;
use super::names;
use super::table::{Entity, IfMatch, Query, Table, UpdateMode};
use super::tenancy::to_store;
use crate::domain::anomalies::{AnalyticsSettings, Anomaly, AnomalyStore, Feedback};
use crate::domain::store::{StoreError, Version, Versioned};
use crate::domain::tenancy::WorkspaceId;

/// Characters per `Body*` property (the service allows 32K UTF-16 characters).
const PIECE_CHARS: usize = 30_000;
const SETTINGS_ROW: &str = "settings";

#[derive(Clone)]
pub struct TableAnomalyStore {
    storage: Storage,
}

impl TableAnomalyStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self, name: &str) -> Result<Table, StoreError> {
        self.storage.tables().table(name).map_err(to_store)
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct AnomalyRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pieces: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feedback: Option<String>,
    #[serde(flatten)]
    body: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SettingsRow {
    body: String,
}

fn unavailable(what: &str) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("stored anomaly is unreadable: {what}"))
}

fn split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(PIECE_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}

fn decode(entity: Entity<AnomalyRow>) -> Result<Versioned<Anomaly>, StoreError> {
    let row = entity.properties;
    let pieces = row.pieces.ok_or_else(|| unavailable("no body"))?;
    let mut text = String::new();
    for i in 0..pieces {
        let piece = row
            .body
            .get(&format!("Body{i}"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| unavailable("a body piece is missing"))?;
        text.push_str(piece);
    }
    let mut anomaly: Anomaly = serde_json::from_str(&text).map_err(|_| unavailable("body"))?;
    anomaly.feedback = match row.feedback.as_deref() {
        Some(f) if !f.is_empty() => {
            Some(serde_json::from_str(f).map_err(|_| unavailable("feedback"))?)
        }
        _ => None,
    };
    Ok(Versioned {
        value: anomaly,
        version: Version(
            entity
                .etag
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
        ),
    })
}

#[async_trait]
impl AnomalyStore for TableAnomalyStore {
    async fn settings(&self, workspace: WorkspaceId) -> Result<AnalyticsSettings, StoreError> {
        let row = self
            .table(names::ANALYTICS_TABLE)?
            .get::<SettingsRow>(&workspace.to_string(), SETTINGS_ROW)
            .await
            .map_err(to_store)?;
        match row {
            None => Ok(AnalyticsSettings::default()),
            Some(e) => serde_json::from_str(&e.properties.body)
                .map_err(|_| unavailable("analytics settings")),
        }
    }

    async fn put_settings(
        &self,
        workspace: WorkspaceId,
        settings: &AnalyticsSettings,
    ) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(settings).map_err(|e| StoreError::Unavailable(e.into()))?;
        let entity = Entity::new(workspace.to_string(), SETTINGS_ROW, SettingsRow { body });
        self.table(names::ANALYTICS_TABLE)?
            .upsert(&entity, UpdateMode::Replace)
            .await
            .map(|_| ())
            .map_err(to_store)
    }

    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Anomaly>>, StoreError> {
        let rows = self
            .table(names::ANOMALIES_TABLE)?
            .query_all::<AnomalyRow>(&Query::partition(&workspace.to_string()))
            .await
            .map_err(to_store)?;
        rows.into_iter().map(decode).collect()
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Versioned<Anomaly>>, StoreError> {
        self.table(names::ANOMALIES_TABLE)?
            .get::<AnomalyRow>(&workspace.to_string(), &id.to_string())
            .await
            .map_err(to_store)?
            .map(decode)
            .transpose()
    }

    async fn save(&self, workspace: WorkspaceId, anomaly: &Anomaly) -> Result<(), StoreError> {
        let text = serde_json::to_string(anomaly).map_err(|e| StoreError::Unavailable(e.into()))?;
        let pieces = split(&text);
        let mut body = BTreeMap::new();
        for (i, piece) in pieces.iter().enumerate() {
            body.insert(format!("Body{i}"), serde_json::Value::String(piece.clone()));
        }
        let entity = Entity::new(
            workspace.to_string(),
            anomaly.id.to_string(),
            AnomalyRow {
                pieces: Some(pieces.len() as u32),
                feedback: None,
                body,
            },
        );
        self.table(names::ANOMALIES_TABLE)?
            .upsert(&entity, UpdateMode::Merge)
            .await
            .map(|_| ())
            .map_err(to_store)
    }

    async fn set_feedback(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
        feedback: &Feedback,
        version: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let text =
            serde_json::to_string(feedback).map_err(|e| StoreError::Unavailable(e.into()))?;
        let entity = Entity::new(
            workspace.to_string(),
            id.to_string(),
            AnomalyRow {
                pieces: None,
                feedback: Some(text),
                body: BTreeMap::new(),
            },
        );
        let condition = match version {
            Some(v) => IfMatch::ETag(super::ETag::new(v.0.clone())),
            None => IfMatch::Any,
        };
        let etag = self
            .table(names::ANOMALIES_TABLE)?
            .update(&entity, UpdateMode::Merge, condition)
            .await
            .map_err(to_store)?;
        Ok(Version(etag.as_str().to_owned()))
    }
}
