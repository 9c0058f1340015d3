//! `Idempotency-Key` records on Table Storage: table `idempotency`, PartitionKey = the scope (the
//! workspace id, or `user:<id>` for requests that create a workspace), RowKey = the key's hash.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::names;
use super::table::{Entity, IfMatch, Table, UpdateMode};
use super::tenancy::to_store;
use super::{Storage, StorageError};
use crate::domain::idempotency::{Claim, IdempotencyStore, KEY_LIFETIME, RecordedResponse};
use crate::domain::store::StoreError;

#[derive(Clone)]
pub struct TableIdempotencyStore {
    storage: Storage,
}

impl TableIdempotencyStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self) -> Result<Table, StoreError> {
        self.storage
            .tables()
            .table(names::IDEMPOTENCY_TABLE)
            .map_err(to_store)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyRow {
    fingerprint: String,
    /// The request's path: names the workspace of a workspace route, so deleting the workspace
    /// finds its keys (the partition is the user's).
    #[serde(default)]
    path: String,
    #[serde(with = "time::serde::rfc3339")]
    claimed_at: OffsetDateTime,
    /// The recorded answer as JSON; empty while the first request runs.
    #[serde(default)]
    response: String,
}

/// Client keys are arbitrary text; hashing makes them safe RowKeys and keeps them out of storage.
fn row_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl IdempotencyStore for TableIdempotencyStore {
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        path: &str,
    ) -> Result<Claim, StoreError> {
        let table = self.table()?;
        let rk = row_key(key);
        let now = OffsetDateTime::now_utc();
        let fresh = Entity::new(
            scope,
            rk.clone(),
            KeyRow {
                fingerprint: fingerprint.to_owned(),
                path: path.to_owned(),
                claimed_at: now,
                response: String::new(),
            },
        );
        match table.insert(&fresh).await {
            Ok(_) => return Ok(Claim::New),
            Err(StorageError::Conflict(_)) => {}
            Err(other) => return Err(to_store(other)),
        }
        let Some(existing) = table.get::<KeyRow>(scope, &rk).await.map_err(to_store)? else {
            // Released between our insert and read: try once more.
            return match table.insert(&fresh).await {
                Ok(_) => Ok(Claim::New),
                Err(_) => Ok(Claim::InProgress),
            };
        };
        if now - existing.properties.claimed_at > KEY_LIFETIME {
            // Expired: take it over, conditionally, so two late retries cannot both win.
            let etag = existing
                .etag
                .clone()
                .map(IfMatch::ETag)
                .unwrap_or(IfMatch::Any);
            return match table.update(&fresh, UpdateMode::Replace, etag).await {
                Ok(_) => Ok(Claim::New),
                Err(StorageError::PreconditionFailed(_)) => Ok(Claim::InProgress),
                Err(other) => Err(to_store(other)),
            };
        }
        if existing.properties.fingerprint != fingerprint {
            return Ok(Claim::Mismatch);
        }
        if existing.properties.response.is_empty() {
            return Ok(Claim::InProgress);
        }
        serde_json::from_str(&existing.properties.response)
            .map(Claim::Replay)
            .map_err(|e| StoreError::Unavailable(e.into()))
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        response: &RecordedResponse,
    ) -> Result<(), StoreError> {
        let table = self.table()?;
        let rk = row_key(key);
        let Some(existing) = table.get::<KeyRow>(scope, &rk).await.map_err(to_store)? else {
            return Err(StoreError::NotFound);
        };
        let mut row = existing.properties;
        row.response =
            serde_json::to_string(response).map_err(|e| StoreError::Unavailable(e.into()))?;
        table
            .update(
                &Entity::new(scope, rk, row),
                UpdateMode::Replace,
                IfMatch::Any,
            )
            .await
            .map_err(to_store)?;
        Ok(())
    }

    async fn release(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        self.table()?
            .delete(scope, &row_key(key), IfMatch::Any)
            .await
            .map_err(to_store)?;
        Ok(())
    }
}
