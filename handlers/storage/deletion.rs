//! Deletion on Azure Storage: the `deletions` table (PartitionKey = workspace id, RowKey
//! `deletion`: one per workspace) and the idempotent wipes each deletion step performs.
//!
//! The wipes are generic over the storage lists: every key of customer data starts with the
//! workspace id (`<ws>`, `<ws>:<sub>:…`, `<ws>~<user>`), so one PartitionKey range
//! `[<ws>, <ws>+1)` finds a workspace's rows in any table, including tables added after this was
//! written (the export's table, for one). The exceptions are named here: `memberships` (keyed by
//! user, RowKey = workspace) and `idempotency` (keyed by user; its recorded answers may hold the
//! workspace's data).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::names;
use super::table::{Batch, Entity, IfMatch, Query, Table, UpdateMode, odata_string};
use super::{Storage, StorageError};
use crate::domain::deletion::{self, Deletion};
use crate::domain::tenancy::{UserId, WorkspaceId};

const ROW: &str = "deletion";
/// Rows read per page while wiping.
const PAGE: u32 = 1000;
/// How long a poison message of another workspace stays hidden while the poison queues are searched
/// (nobody consumes poison queues but operators, so hiding one for a while harms no one).
const POISON_SCAN_VISIBILITY: Duration = Duration::from_secs(300);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeletionRow {
    /// Duplicated out of the record so the sweeper can ask the service for unfinished ones.
    completed: bool,
    record: String,
}

/// The `deletions` table and the wipes.
#[derive(Clone)]
pub struct DeletionStorage {
    storage: Storage,
}

fn table(storage: &Storage, name: &str) -> Result<Table, StorageError> {
    storage.tables().table(name)
}

fn bad(message: impl Into<String>) -> StorageError {
    StorageError::other("deletion.record", message)
}

/// The PartitionKey range of a workspace: every key that starts with its id.
fn partition_range(workspace: WorkspaceId) -> String {
    let lower = workspace.to_string();
    // The id is hex and dashes: the last character has a successor in ASCII.
    let mut upper = lower.clone();
    let last = upper.pop().unwrap_or('0');
    upper.push(char::from(last as u8 + 1));
    format!(
        "PartitionKey ge {} and PartitionKey lt {}",
        odata_string(&lower),
        odata_string(&upper)
    )
}

impl DeletionStorage {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    fn deletions(&self) -> Result<Table, StorageError> {
        table(&self.storage, names::DELETIONS_TABLE)
    }

    fn entity(deletion: &Deletion) -> Result<Entity<DeletionRow>, StorageError> {
        Ok(Entity::new(
            deletion.workspace.to_string(),
            ROW,
            DeletionRow {
                completed: deletion.completed_at.is_some(),
                record: serde_json::to_string(deletion).map_err(|e| bad(e.to_string()))?,
            },
        ))
    }

    fn parse(entity: Entity<DeletionRow>) -> Result<Deletion, StorageError> {
        serde_json::from_str(&entity.properties.record).map_err(|e| bad(e.to_string()))
    }

    /// The workspace's deletion, if one was requested.
    pub async fn get(&self, workspace: WorkspaceId) -> Result<Option<Deletion>, StorageError> {
        match self
            .deletions()?
            .get::<DeletionRow>(&workspace.to_string(), ROW)
            .await?
        {
            Some(entity) => Ok(Some(Self::parse(entity)?)),
            None => Ok(None),
        }
    }

    /// Whether the workspace is being (or was) deleted: the check every worker makes.
    pub async fn is_deleting(&self, workspace: WorkspaceId) -> Result<bool, StorageError> {
        Ok(self
            .deletions()?
            .get::<Value>(&workspace.to_string(), ROW)
            .await?
            .is_some())
    }

    /// Records a new deletion; the existing one (and `false`) when it was already requested.
    pub async fn start(&self, deletion: &Deletion) -> Result<(Deletion, bool), StorageError> {
        match self.deletions()?.insert(&Self::entity(deletion)?).await {
            Ok(_) => Ok((deletion.clone(), true)),
            Err(StorageError::Conflict(_)) => match self.get(deletion.workspace).await? {
                Some(existing) => Ok((existing, false)),
                None => Err(bad("a deletion vanished while being read")),
            },
            Err(other) => Err(other),
        }
    }

    /// Saves progress (whole record).
    pub async fn save(&self, deletion: &Deletion) -> Result<(), StorageError> {
        self.deletions()?
            .upsert(&Self::entity(deletion)?, UpdateMode::Replace)
            .await
            .map(|_| ())
    }

    /// Every deletion (the sweeper's list; deletions are rare, a table scan is cheap).
    pub async fn all(&self) -> Result<Vec<Deletion>, StorageError> {
        self.deletions()?
            .query_all::<DeletionRow>(&Query::all())
            .await?
            .into_iter()
            .map(Self::parse)
            .collect()
    }

    /// Forgets a deletion once nothing of the workspace is retained any more.
    pub async fn forget(&self, workspace: WorkspaceId) -> Result<(), StorageError> {
        self.deletions()?
            .delete(&workspace.to_string(), ROW, IfMatch::Any)
            .await
            .map(|_| ())
    }

    /// Deletes every row of the workspace in `name` (by PartitionKey range; for `memberships`, by
    /// RowKey; for `idempotency`, the keys whose request path or recorded answer names the
    /// workspace). The number of rows deleted.
    pub async fn wipe_table(
        &self,
        name: &str,
        workspace: WorkspaceId,
    ) -> Result<usize, StorageError> {
        let table = table(&self.storage, name)?;
        let ws = workspace.to_string();
        let mut deleted = 0;
        let filter = match name {
            names::MEMBERSHIPS_TABLE => format!("RowKey eq {}", odata_string(&ws)),
            names::IDEMPOTENCY_TABLE => String::new(),
            _ => partition_range(workspace),
        };
        let mut query = if filter.is_empty() {
            Query::all().top(PAGE)
        } else {
            Query::filter(filter).top(PAGE)
        };
        loop {
            let page = table.query::<Map<String, Value>>(&query).await?;
            let mut by_partition: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for entity in page.items {
                let mine = name != names::IDEMPOTENCY_TABLE
                    || entity
                        .properties
                        .values()
                        .any(|v| v.as_str().is_some_and(|s| s.contains(&ws)));
                if mine {
                    by_partition
                        .entry(entity.partition_key)
                        .or_default()
                        .push(entity.row_key);
                }
            }
            for (partition, rows) in by_partition {
                for chunk in rows.chunks(100) {
                    deleted += delete_rows(&table, &partition, chunk).await?;
                }
            }
            match page.continuation {
                Some(token) => query = query.after(token),
                None => return Ok(deleted),
            }
        }
    }

    /// Deletes every blob under `<workspace>/` in `container`. The number deleted.
    pub async fn wipe_blobs(
        &self,
        container: &str,
        workspace: WorkspaceId,
    ) -> Result<usize, StorageError> {
        let container = self.storage.blobs().container(container)?;
        let mut deleted = 0;
        for blob in container.list(&format!("{workspace}/")).await? {
            if container.delete(&blob.name).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Removes the workspace's messages from every poison queue (messages of live queues are dropped
    /// by their workers, which check [`Self::is_deleting`]). The number removed.
    pub async fn wipe_poison_queues(&self, workspace: WorkspaceId) -> Result<usize, StorageError> {
        let ws = workspace.to_string();
        let mut removed = 0;
        for name in names::QUEUES {
            let queue = self.storage.queues().queue(&format!("{name}-poison"))?;
            loop {
                let messages = match queue.receive(32, POISON_SCAN_VISIBILITY).await {
                    Ok(messages) => messages,
                    // The host creates poison queues on first use; none means nothing to remove.
                    Err(StorageError::NotFound(_)) => break,
                    Err(other) => return Err(other),
                };
                if messages.is_empty() {
                    break;
                }
                for message in messages {
                    let text = message.text.as_deref().unwrap_or(&message.raw);
                    if text.contains(&ws) || message.raw.contains(&ws) {
                        match queue
                            .delete_message(&message.id, &message.pop_receipt)
                            .await
                        {
                            Ok(()) | Err(StorageError::NotFound(_)) => removed += 1,
                            Err(other) => return Err(other),
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Replaces personal data in the workspace's audit trail: every user id becomes its stable
    /// pseudonym ([`deletion::pseudonym`]), every email address `(removed)`. Idempotent (a
    /// pseudonym maps to itself: it is recognised by its nil tenant). The number of rows rewritten.
    pub async fn minimise_audit(&self, workspace: WorkspaceId) -> Result<usize, StorageError> {
        let table = table(&self.storage, names::AUDIT_TABLE)?;
        let mut query = Query::partition(&workspace.to_string()).top(PAGE);
        let mut rewritten = 0;
        loop {
            let page = table.query::<Map<String, Value>>(&query).await?;
            for entity in page.items {
                let mut properties = entity.properties.clone();
                for value in properties.values_mut() {
                    minimise_value(workspace, value);
                }
                // The record is JSON inside a string: minimise inside it too.
                if let Some(Value::String(record)) = properties.get("Record").cloned()
                    && let Ok(mut parsed) = serde_json::from_str::<Value>(&record)
                {
                    minimise_value(workspace, &mut parsed);
                    properties.insert("Record".to_owned(), Value::String(parsed.to_string()));
                }
                if properties != entity.properties {
                    let updated = Entity::new(
                        entity.partition_key.clone(),
                        entity.row_key.clone(),
                        properties,
                    );
                    table
                        .update(&updated, UpdateMode::Replace, IfMatch::Any)
                        .await?;
                    rewritten += 1;
                }
            }
            match page.continuation {
                Some(token) => query = query.after(token),
                None => return Ok(rewritten),
            }
        }
    }

    /// Purges the retained records of a deleted workspace in `tables` (whole partitions by range),
    /// plus, for the billing tables, its `stripecustomers` and `stripeevents` rows. The number deleted.
    pub async fn purge_retained(
        &self,
        workspace: WorkspaceId,
        tables: &[&str],
    ) -> Result<usize, StorageError> {
        let mut deleted = 0;
        let ws = workspace.to_string();
        for name in tables {
            let filter = match *name {
                // Keyed by customer / event id, naming the workspace in a column.
                names::STRIPE_CUSTOMERS_TABLE | names::STRIPE_EVENTS_TABLE => {
                    format!("Workspace eq {}", odata_string(&ws))
                }
                _ => partition_range(workspace),
            };
            let table = table(&self.storage, name)?;
            let rows = table
                .query_all::<Map<String, Value>>(&Query::filter(filter))
                .await?;
            for row in rows {
                if table
                    .delete(&row.partition_key, &row.row_key, IfMatch::Any)
                    .await?
                {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    /// Purges incident records recorded before `before`. The number deleted.
    pub async fn purge_incidents(&self, before: OffsetDateTime) -> Result<usize, StorageError> {
        let table = table(&self.storage, names::INCIDENTS_TABLE)?;
        let mut deleted = 0;
        for row in table.query_all::<Map<String, Value>>(&Query::all()).await? {
            let recorded_at = row
                .properties
                .get("Record")
                .and_then(Value::as_str)
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .and_then(|r| r["recordedAt"].as_str().map(str::to_owned))
                .and_then(|t| {
                    OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
                });
            if recorded_at.is_some_and(|at| at < before)
                && table
                    .delete(&row.partition_key, &row.row_key, IfMatch::Any)
                    .await?
            {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// Deletes rows of one partition in one batch; a row gone meanwhile (a concurrent or earlier run)
/// fails the batch, so then they are deleted one by one.
async fn delete_rows(
    table: &Table,
    partition: &str,
    rows: &[String],
) -> Result<usize, StorageError> {
    let mut batch = Batch::new(partition);
    for row in rows {
        batch.delete(row.clone(), IfMatch::Any)?;
    }
    match table.submit(batch).await {
        Ok(_) => Ok(rows.len()),
        Err(StorageError::NotFound(_)) => {
            let mut n = 0;
            for row in rows {
                if table.delete(partition, row, IfMatch::Any).await? {
                    n += 1;
                }
            }
            Ok(n)
        }
        Err(other) => Err(other),
    }
}

/// Pseudonymises user ids (as `tenant.object` text or `{tenant, object}` objects) and removes
/// email addresses, recursively.
fn minimise_value(workspace: WorkspaceId, value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Some(replaced) = minimise_text(workspace, text) {
                *text = replaced;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| minimise_value(workspace, v)),
        Value::Object(map) => {
            if let Ok(user) = serde_json::from_value::<UserId>(Value::Object(map.clone()))
                && map.len() == 2
                && !user.tenant.is_nil()
            {
                let pseudonym = deletion::pseudonym(workspace, &user);
                if let Ok(Value::Object(replaced)) = serde_json::to_value(pseudonym) {
                    *map = replaced;
                }
                return;
            }
            map.values_mut().for_each(|v| minimise_value(workspace, v));
        }
        _ => {}
    }
}

fn minimise_text(workspace: WorkspaceId, text: &str) -> Option<String> {
    if deletion::looks_like_email(text) {
        return Some("(removed)".to_owned());
    }
    // `<tenant>.<object>` anywhere in the text (ActorId, targets like `member/<id>`).
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() >= 73
            && rest.is_char_boundary(73)
            && let Some(user) = UserId::parse(&rest[..73])
            && !user.tenant.is_nil()
        {
            out.push_str(&deletion::pseudonym(workspace, &user).to_string());
            rest = &rest[73..];
            changed = true;
            continue;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_partition_range_covers_every_key_that_starts_with_the_id() {
        let ws = WorkspaceId::parse("00000000-0000-0000-0000-00000000000f").unwrap();
        assert_eq!(
            partition_range(ws),
            "PartitionKey ge '00000000-0000-0000-0000-00000000000f' and PartitionKey lt '00000000-0000-0000-0000-00000000000g'"
        );
    }

    #[test]
    fn minimising_pseudonymises_users_and_removes_emails_idempotently() {
        let ws = WorkspaceId::new();
        let user = UserId {
            tenant: Uuid::from_u128(1),
            object: Uuid::from_u128(2),
        };
        let mut value = serde_json::json!({
            "actor": {"kind": "user", "id": {"tenant": user.tenant, "object": user.object}},
            "target": format!("member/{user}"),
            "changes": [{"field": "email", "from": null, "to": "alice@contoso.com"}],
        });
        minimise_value(ws, &mut value);
        let text = value.to_string();
        assert!(!text.contains(&user.object.to_string()), "{text}");
        assert!(!text.contains("alice@"), "{text}");
        let pseudonym = deletion::pseudonym(ws, &user);
        assert_eq!(value["target"], format!("member/{pseudonym}"));
        let again = value.clone();
        minimise_value(ws, &mut value);
        assert_eq!(value, again);
    }
}
