//! Notifications on Table Storage.
//!
//! - `channels`: one partition per workspace, one row per channel (`RowKey` = channel id). The
//!   webhook URL is stored only sealed (with its masked form beside it).
//! - `deliveries`: one partition per workspace, one row per (channel, dedupe key):
//!   `RowKey` = `<channel>~<sha256(dedupe key)>` (a dedupe key may hold characters a key may not).
//!   The row is the idempotency record, the cool-down memory and the delivery log entry at once,
//!   written with ETags (insert = If-None-Match, replace = If-Match) so two workers never both
//!   hold a claim.
//! - `inbox`: one partition per (workspace, user), one row per in-app notification, newest first.
//! - `digests`: one partition per (workspace, channel, digest window), one row per gathered event,
//!   plus a `~scheduled` marker row whose insert decides who schedules the window's send.
//!
//! Each record's body is its JSON in a `Body` property (records are small); the columns a query
//! filters on (`Read`) are properties of their own.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::names;
use super::table::{Entity, IfMatch, Query, Table, UpdateMode, odata_string};
use super::tenancy::to_store;
use super::{ETag, Storage, StorageError};
use crate::domain::events::Event;
use crate::domain::notifications::{
    Channel, ChannelId, ChannelStore, DeliveryRecord, DeliveryStore, InAppNotification, Inbox,
    LogPosition,
};
use crate::domain::store::{StoreError, Version, Versioned};
use crate::domain::tenancy::{UserId, WorkspaceId};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BodyRow {
    body: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InboxRow {
    body: String,
    read: bool,
}

fn version(etag: Option<ETag>) -> Version {
    Version(etag.map(|e| e.as_str().to_owned()).unwrap_or_default())
}

fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.into()))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Unavailable(e.into()))
}

fn table(storage: &Storage, name: &str) -> Result<Table, StoreError> {
    storage.tables().table(name).map_err(to_store)
}

#[derive(Clone)]
pub struct TableChannelStore {
    storage: Storage,
}

impl TableChannelStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }
}

#[async_trait]
impl ChannelStore for TableChannelStore {
    async fn create(&self, channel: &Channel) -> Result<Version, StoreError> {
        let entity = Entity::new(
            channel.workspace.to_string(),
            channel.id.to_string(),
            BodyRow {
                body: json(channel)?,
            },
        );
        let etag = table(&self.storage, names::CHANNELS_TABLE)?
            .insert(&entity)
            .await
            .map_err(to_store)?;
        Ok(version(Some(etag)))
    }

    async fn get(
        &self,
        workspace: WorkspaceId,
        id: ChannelId,
    ) -> Result<Option<Versioned<Channel>>, StoreError> {
        let row = table(&self.storage, names::CHANNELS_TABLE)?
            .get::<BodyRow>(&workspace.to_string(), &id.to_string())
            .await
            .map_err(to_store)?;
        row.map(|e| {
            let value: Channel = parse(&e.properties.body)?;
            // The partition is the authority on the workspace.
            if value.workspace != workspace {
                return Err(StoreError::NotFound);
            }
            Ok(Versioned {
                value,
                version: version(e.etag),
            })
        })
        .transpose()
    }

    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Channel>>, StoreError> {
        let rows = table(&self.storage, names::CHANNELS_TABLE)?
            .query_all::<BodyRow>(&Query::partition(&workspace.to_string()))
            .await
            .map_err(to_store)?;
        let mut out = Vec::with_capacity(rows.len());
        for e in rows {
            let value: Channel = parse(&e.properties.body)?;
            if value.workspace == workspace {
                out.push(Versioned {
                    value,
                    version: version(e.etag),
                });
            }
        }
        out.sort_by_key(|c| c.value.created_at);
        Ok(out)
    }

    async fn update(
        &self,
        channel: &Channel,
        guard: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let entity = Entity::new(
            channel.workspace.to_string(),
            channel.id.to_string(),
            BodyRow {
                body: json(channel)?,
            },
        );
        let condition = match guard {
            Some(v) => IfMatch::ETag(ETag::new(v.0.clone())),
            None => IfMatch::Any,
        };
        let etag = table(&self.storage, names::CHANNELS_TABLE)?
            .update(&entity, UpdateMode::Replace, condition)
            .await
            .map_err(to_store)?;
        Ok(version(Some(etag)))
    }

    async fn delete(&self, workspace: WorkspaceId, id: ChannelId) -> Result<bool, StoreError> {
        table(&self.storage, names::CHANNELS_TABLE)?
            .delete(&workspace.to_string(), &id.to_string(), IfMatch::Any)
            .await
            .map_err(to_store)
    }
}

/// The row key of a delivery record.
pub fn delivery_row_key(channel: ChannelId, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{channel}~{hex}")
}

#[derive(Clone)]
pub struct TableDeliveryStore {
    storage: Storage,
}

impl TableDeliveryStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }
}

#[async_trait]
impl DeliveryStore for TableDeliveryStore {
    async fn get(
        &self,
        workspace: WorkspaceId,
        channel: ChannelId,
        key: &str,
    ) -> Result<Option<Versioned<DeliveryRecord>>, StoreError> {
        let row = table(&self.storage, names::DELIVERIES_TABLE)?
            .get::<BodyRow>(&workspace.to_string(), &delivery_row_key(channel, key))
            .await
            .map_err(to_store)?;
        row.map(|e| {
            Ok(Versioned {
                value: parse(&e.properties.body)?,
                version: version(e.etag),
            })
        })
        .transpose()
    }

    async fn put(
        &self,
        record: &DeliveryRecord,
        guard: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let entity = Entity::new(
            record.workspace.to_string(),
            delivery_row_key(record.channel, &record.key),
            BodyRow {
                body: json(record)?,
            },
        );
        let table = table(&self.storage, names::DELIVERIES_TABLE)?;
        let etag = match guard {
            None => table.insert(&entity).await,
            Some(v) => {
                table
                    .update(
                        &entity,
                        UpdateMode::Replace,
                        IfMatch::ETag(ETag::new(v.0.clone())),
                    )
                    .await
            }
        }
        .map_err(to_store)?;
        Ok(version(Some(etag)))
    }

    async fn log(
        &self,
        workspace: WorkspaceId,
        after: Option<&LogPosition>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = table(&self.storage, names::DELIVERIES_TABLE)?
            .query_all::<BodyRow>(&Query::partition(&workspace.to_string()))
            .await
            .map_err(to_store)?;
        let mut out = rows
            .iter()
            .map(|e| parse::<DeliveryRecord>(&e.properties.body))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_cached_key(LogPosition::of);
        if let Some(after) = after {
            out.retain(|r| &LogPosition::of(r) > after);
        }
        out.truncate(limit);
        Ok(out)
    }
}

fn inbox_partition(workspace: WorkspaceId, user: UserId) -> String {
    format!("{workspace}~{user}")
}

#[derive(Clone)]
pub struct TableInbox {
    storage: Storage,
}

impl TableInbox {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }
}

#[async_trait]
impl Inbox for TableInbox {
    async fn add(
        &self,
        user: UserId,
        notification: &InAppNotification,
    ) -> Result<bool, StoreError> {
        let entity = Entity::new(
            inbox_partition(notification.workspace, user),
            notification.id.clone(),
            InboxRow {
                body: json(notification)?,
                read: false,
            },
        );
        match table(&self.storage, names::INBOX_TABLE)?
            .insert(&entity)
            .await
        {
            Ok(_) => Ok(true),
            Err(StorageError::Conflict(_)) => Ok(false),
            Err(e) => Err(to_store(e)),
        }
    }

    async fn list(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        unread_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<InAppNotification>, StoreError> {
        let partition = inbox_partition(workspace, user);
        let mut filter = format!("PartitionKey eq {}", odata_string(&partition));
        if let Some(after) = after {
            filter.push_str(&format!(" and RowKey gt {}", odata_string(after)));
        }
        if unread_only {
            filter.push_str(" and Read eq false");
        }
        let page = table(&self.storage, names::INBOX_TABLE)?
            .query::<InboxRow>(&Query::filter(filter).top(limit.clamp(1, 1000) as u32))
            .await
            .map_err(to_store)?;
        page.items
            .iter()
            .map(|e| {
                let mut n: InAppNotification = parse(&e.properties.body)?;
                n.read = e.properties.read;
                Ok(n)
            })
            .collect()
    }

    async fn unread_count(&self, workspace: WorkspaceId, user: UserId) -> Result<u64, StoreError> {
        let partition = inbox_partition(workspace, user);
        let filter = format!(
            "PartitionKey eq {} and Read eq false",
            odata_string(&partition)
        );
        let rows = table(&self.storage, names::INBOX_TABLE)?
            .query_all::<InboxRow>(&Query::filter(filter))
            .await
            .map_err(to_store)?;
        Ok(rows.len() as u64)
    }

    async fn mark_read(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        id: &str,
    ) -> Result<bool, StoreError> {
        if id.is_empty()
            || id.len() > 80
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Ok(false);
        }
        let partition = inbox_partition(workspace, user);
        let table = table(&self.storage, names::INBOX_TABLE)?;
        let Some(mut row) = table
            .get::<InboxRow>(&partition, id)
            .await
            .map_err(to_store)?
        else {
            return Ok(false);
        };
        if !row.properties.read {
            row.properties.read = true;
            table
                .update(&row, UpdateMode::Merge, IfMatch::Any)
                .await
                .map_err(to_store)?;
        }
        Ok(true)
    }

    async fn mark_all_read(&self, workspace: WorkspaceId, user: UserId) -> Result<u64, StoreError> {
        let partition = inbox_partition(workspace, user);
        let filter = format!(
            "PartitionKey eq {} and Read eq false",
            odata_string(&partition)
        );
        let table = table(&self.storage, names::INBOX_TABLE)?;
        let rows = table
            .query_all::<InboxRow>(&Query::filter(filter))
            .await
            .map_err(to_store)?;
        let mut changed = 0;
        for mut row in rows {
            row.properties.read = true;
            table
                .update(&row, UpdateMode::Merge, IfMatch::Any)
                .await
                .map_err(to_store)?;
            changed += 1;
        }
        Ok(changed)
    }
}

/// The marker row of a digest window.
const SCHEDULED: &str = "~scheduled";

/// Events gathered for one channel's digest window.
#[derive(Clone)]
pub struct DigestBuffer {
    storage: Storage,
}

fn digest_partition(workspace: WorkspaceId, channel: ChannelId, window: i64) -> String {
    format!("{workspace}~{channel}~{window}")
}

impl DigestBuffer {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    /// Adds `event` to the window; returns whether this call created the window (and so must
    /// schedule its send). Adding the same event twice is harmless.
    pub async fn add(
        &self,
        channel: ChannelId,
        window: i64,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let partition = digest_partition(event.workspace, channel, window);
        let table = table(&self.storage, names::DIGESTS_TABLE)?;
        let item = Entity::new(
            partition.clone(),
            event.id.simple().to_string(),
            BodyRow { body: json(event)? },
        );
        match table.insert(&item).await {
            Ok(_) | Err(StorageError::Conflict(_)) => {}
            Err(e) => return Err(to_store(e)),
        }
        let marker = Entity::new(partition, SCHEDULED, BodyRow { body: "{}".into() });
        match table.insert(&marker).await {
            Ok(_) => Ok(true),
            Err(StorageError::Conflict(_)) => Ok(false),
            Err(e) => Err(to_store(e)),
        }
    }

    /// The events gathered in the window, oldest first.
    pub async fn events(
        &self,
        workspace: WorkspaceId,
        channel: ChannelId,
        window: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = table(&self.storage, names::DIGESTS_TABLE)?
            .query_all::<BodyRow>(&Query::partition(&digest_partition(
                workspace, channel, window,
            )))
            .await
            .map_err(to_store)?;
        let mut events = rows
            .iter()
            .filter(|e| e.row_key != SCHEDULED)
            .map(|e| parse::<Event>(&e.properties.body))
            .collect::<Result<Vec<_>, _>>()?;
        events.retain(|e| e.workspace == workspace);
        events.sort_by_key(|e| e.at);
        Ok(events)
    }
}
