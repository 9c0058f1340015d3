//! Connections on Table Storage.
//!
//! Table `connections`, one partition per workspace, one row per connection (`RowKey` = the
//! connection id). The client secret is stored only in its sealed form (`Secret`), never in the
//! clear. The subscriptions a verification found live in the same row, as JSON split over
//! `Subscriptions0`, `Subscriptions1`, … (a string property holds at most 32 K characters), so a
//! verification replaces the connection and its subscriptions in one conditional write: a reader
//! never sees the subscriptions of one verification with the state of another.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Date, OffsetDateTime};

use super::names;
use super::table::{Entity, IfMatch, Query, Table, UpdateMode, odata_string};
use super::tenancy::to_store;
use super::{ETag, Storage};
use crate::domain::connections::{
    Connection, ConnectionId, ConnectionStore, Health, SealedSecret, Stage, SubscriptionAccess,
};
use crate::domain::store::{StoreError, Version, Versioned};
use crate::domain::tenancy::{UserId, WorkspaceId};

/// Bytes of JSON per `SubscriptionsN` property: under the service's 32 K UTF-16 units, whatever the
/// characters (a UTF-8 byte never stands for more than one UTF-16 unit).
const CHUNK_BYTES: usize = 30_000;
/// An entity is at most 1 MiB; leave room for the other properties.
const MAX_CHUNKS: usize = 28;
const CHUNK_PREFIX: &str = "Subscriptions";

#[derive(Clone)]
pub struct TableConnectionStore {
    storage: Storage,
}

impl TableConnectionStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self) -> Result<Table, StoreError> {
        self.storage
            .tables()
            .table(names::CONNECTIONS_TABLE)
            .map_err(to_store)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConnectionRow {
    name: String,
    tenant_id: String,
    client_id: String,
    /// `v1.<kid>.<nonce>.<ciphertext>`: see `crate::secrets`.
    secret: String,
    #[serde(default)]
    secret_expires_on: Option<String>,
    #[serde(default)]
    expiry_reminded_at_days: Option<i32>,
    stage: Stage,
    /// JSON of [`Health`].
    health: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    created_by: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    verified_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    first_sync_at: Option<OffsetDateTime>,
    /// `SubscriptionsN` chunks (and, when read, whatever else the service adds).
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn to_row(connection: &Connection) -> Result<Entity<ConnectionRow>, StoreError> {
    let json = serde_json::to_string(&connection.subscriptions)
        .map_err(|e| StoreError::Unavailable(e.into()))?;
    let mut rest = BTreeMap::new();
    let mut remaining = json.as_str();
    let mut index = 0;
    while !remaining.is_empty() {
        let mut end = remaining.len().min(CHUNK_BYTES);
        while !remaining.is_char_boundary(end) {
            end -= 1;
        }
        rest.insert(
            format!("{CHUNK_PREFIX}{index}"),
            Value::String(remaining[..end].to_owned()),
        );
        remaining = &remaining[end..];
        index += 1;
    }
    if index > MAX_CHUNKS {
        return Err(StoreError::Unavailable(anyhow::anyhow!(
            "connection {} lists too many subscriptions to store ({} bytes)",
            connection.id,
            json.len()
        )));
    }
    let secret_expires_on = connection
        .secret_expires_on
        .map(|d| d.format(DATE))
        .transpose()
        .map_err(|e| StoreError::Unavailable(e.into()))?;
    Ok(Entity::new(
        connection.workspace.to_string(),
        connection.id.to_string(),
        ConnectionRow {
            name: connection.name.clone(),
            tenant_id: connection.tenant_id.clone(),
            client_id: connection.client_id.clone(),
            secret: connection.secret.0.clone(),
            secret_expires_on,
            expiry_reminded_at_days: connection
                .expiry_reminded_at_days
                .and_then(|d| i32::try_from(d).ok()),
            stage: connection.stage,
            health: serde_json::to_string(&connection.health)
                .map_err(|e| StoreError::Unavailable(e.into()))?,
            created_at: connection.created_at,
            created_by: connection.created_by.to_string(),
            verified_at: connection.verified_at,
            first_sync_at: connection.first_sync_at,
            rest,
        },
    ))
}

fn from_row(entity: Entity<ConnectionRow>) -> Result<Versioned<Connection>, StoreError> {
    let broken = |what: &str| {
        StoreError::Unavailable(anyhow::anyhow!(
            "connection row {}/{} is unreadable: {what}",
            entity.partition_key,
            entity.row_key
        ))
    };
    let workspace = WorkspaceId::parse(&entity.partition_key).ok_or_else(|| broken("workspace"))?;
    let id = ConnectionId::parse(&entity.row_key).ok_or_else(|| broken("id"))?;
    let row = &entity.properties;
    let mut chunks: Vec<(usize, &str)> = row
        .rest
        .iter()
        .filter_map(|(key, value)| {
            let index = key.strip_prefix(CHUNK_PREFIX)?.parse().ok()?;
            Some((index, value.as_str()?))
        })
        .collect();
    chunks.sort_by_key(|(index, _)| *index);
    let json: String = chunks.iter().map(|(_, text)| *text).collect();
    let subscriptions: Vec<SubscriptionAccess> = if json.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&json).map_err(|_| broken("subscriptions"))?
    };
    let health: Health = serde_json::from_str(&row.health).map_err(|_| broken("health"))?;
    let secret_expires_on = row
        .secret_expires_on
        .as_deref()
        .map(|d| Date::parse(d, DATE))
        .transpose()
        .map_err(|_| broken("secret expiry"))?;
    let created_by = UserId::parse(&row.created_by).ok_or_else(|| broken("creator"))?;
    let version = Version(
        entity
            .etag
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default(),
    );
    let row = entity.properties;
    Ok(Versioned {
        version,
        value: Connection {
            id,
            workspace,
            name: row.name,
            tenant_id: row.tenant_id,
            client_id: row.client_id,
            secret: SealedSecret(row.secret),
            secret_expires_on,
            expiry_reminded_at_days: row.expiry_reminded_at_days.map(i64::from),
            stage: row.stage,
            health,
            subscriptions,
            created_at: row.created_at,
            created_by,
            verified_at: row.verified_at,
            first_sync_at: row.first_sync_at,
        },
    })
}

fn version_of(etag: ETag) -> Version {
    Version(etag.as_str().to_owned())
}

#[async_trait]
impl ConnectionStore for TableConnectionStore {
    async fn create(&self, connection: &Connection) -> Result<Version, StoreError> {
        let entity = to_row(connection)?;
        self.table()?
            .insert(&entity)
            .await
            .map(version_of)
            .map_err(to_store)
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
    ) -> Result<Option<Versioned<Connection>>, StoreError> {
        let entity = self
            .table()?
            .get::<ConnectionRow>(&workspace.to_string(), &id.to_string())
            .await
            .map_err(to_store)?;
        entity.map(from_row).transpose()
    }

    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Connection>>, StoreError> {
        let entities = self
            .table()?
            .query_all::<ConnectionRow>(&Query::filter(format!(
                "PartitionKey eq {}",
                odata_string(&workspace.to_string())
            )))
            .await
            .map_err(to_store)?;
        let mut connections = entities
            .into_iter()
            .map(from_row)
            .collect::<Result<Vec<_>, _>>()?;
        connections.sort_by_key(|c| c.value.created_at);
        Ok(connections)
    }

    async fn update(
        &self,
        connection: &Connection,
        guard: &Version,
    ) -> Result<Version, StoreError> {
        let entity = to_row(connection)?;
        self.table()?
            .update(
                &entity,
                // Replace, so chunks of a longer earlier list do not linger.
                UpdateMode::Replace,
                IfMatch::ETag(ETag::new(guard.0.clone())),
            )
            .await
            .map(version_of)
            .map_err(to_store)
    }

    async fn delete(&self, workspace: WorkspaceId, id: ConnectionId) -> Result<(), StoreError> {
        let deleted = self
            .table()?
            .delete(&workspace.to_string(), &id.to_string(), IfMatch::Any)
            .await
            .map_err(to_store)?;
        if deleted {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn all(&self) -> Result<Vec<Versioned<Connection>>, StoreError> {
        let entities = self
            .table()?
            .query_all::<ConnectionRow>(&Query::all())
            .await
            .map_err(to_store)?;
        entities.into_iter().map(from_row).collect()
    }
}
