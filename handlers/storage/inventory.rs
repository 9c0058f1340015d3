//! Inventory and recommendations on Table Storage: tables `inventory` and `recommendations`, one
//! "generational set" per (workspace, subscription).
//!
//! # Layout
//!
//! - Items: partition `<workspace>:<subscription>`, `RowKey` = `<generation>:<item key>`, where the
//!   item key is the lower-case ARM id with the characters a key may not hold percent-encoded (a
//!   SHA-256 when that would be longer than a key may be). A few lower-case index columns (`K1`..`K3`)
//!   let the service filter; the item itself is one JSON property (`Data`).
//! - Pointers: partition `<workspace>`, `RowKey` = `<subscription>`, holding the current generation.
//!   Listing a workspace reads its pointers (one partition), then each subscription's current rows.
//!
//! # Replace, concurrently and idempotently
//!
//! A replace reads the pointer (and its ETag), writes every item under a **new** generation in
//! batches of 100, then swaps the pointer **only if its ETag is unchanged** (insert if there was none).
//! Readers follow the pointer, so they see the old set or the new one, never a mix. Of two concurrent
//! replaces of one subscription, the first swap wins; the second's conditional swap fails, it deletes
//! its own rows and reports `Superseded`. After a successful swap every row of any other generation
//! in the partition is deleted: the previous set, and leftovers of runs that crashed before their
//! swap (their generation never became current, so nobody ever read them). A repeated sync writes the
//! same items under a new generation: the listing is identical.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::names;
use super::table::{Batch, Entity, IfMatch, Query, Table, UpdateMode, odata_string};
use super::tenancy::to_store;
use super::{Storage, StorageError};
use crate::domain::inventory::{
    InventoryFilter, InventoryItem, InventoryStore, RecommendationFilter, RecommendationItem,
    RecommendationStore, Replaced,
};
use crate::domain::store::{Page, PageRequest, StoreError};
use crate::domain::tenancy::WorkspaceId;

/// The service's limit on operations in one entity group transaction.
const BATCH: usize = 100;
/// Longest item key kept readable; longer ones are hashed (a key may be 1 KiB, the generation
/// prefix takes some).
const MAX_READABLE_KEY: usize = 900;

/// The largest `Data` property written, in bytes of JSON: a table string property holds 64 KiB of
/// UTF-16, i.e. 32 K characters at most.
const MAX_DATA: usize = 30_000;

/// An item kept in a generational set.
pub trait SetItem: Serialize + DeserializeOwned + Send + Sync {
    /// The identity within the subscription's set.
    fn key(&self) -> String;
    /// Up to three lower-case values the service can filter on (`K1`..`K3`).
    fn columns(&self) -> [Option<String>; 3];
    /// Makes the item's JSON fit in about `budget` bytes by dropping what matters least.
    fn shrink(&mut self, budget: usize);
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

impl SetItem for InventoryItem {
    fn key(&self) -> String {
        InventoryItem::key(self)
    }

    fn columns(&self) -> [Option<String>; 3] {
        [
            self.resource_group.as_deref().map(str::to_ascii_lowercase),
            Some(self.resource_type.to_ascii_lowercase()),
            self.location.as_deref().map(str::to_ascii_lowercase),
        ]
    }

    /// Azure allows 50 tags of up to 512 + 256 characters: the tags are what can outgrow a row.
    /// Tags are kept in key order while they fit half the budget, and every value is bounded.
    fn shrink(&mut self, budget: usize) {
        let mut used = 0;
        let mut kept = std::collections::BTreeMap::new();
        for (mut key, mut value) in std::mem::take(&mut self.tags) {
            truncate(&mut key, 512);
            truncate(&mut value, 256);
            used += key.len() + value.len() + 8;
            if used > budget / 2 {
                break;
            }
            kept.insert(key, value);
        }
        self.tags = kept;
        for text in [&mut self.name, &mut self.id] {
            truncate(text, 2048);
        }
    }
}

impl SetItem for RecommendationItem {
    fn key(&self) -> String {
        RecommendationItem::key(self)
    }

    fn columns(&self) -> [Option<String>; 3] {
        [
            self.category.map(|c| c.as_str().to_ascii_lowercase()),
            self.impact.map(|i| i.as_str().to_ascii_lowercase()),
            None,
        ]
    }

    fn shrink(&mut self, budget: usize) {
        let share = budget / 8;
        for text in [
            &mut self.problem,
            &mut self.solution,
            &mut self.impacted_name,
            &mut self.impacted_type,
            &mut self.resource_id,
            &mut self.learn_more_link,
        ]
        .into_iter()
        .flatten()
        {
            truncate(text, share);
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ItemRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k3: Option<String>,
    data: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PointerRow {
    generation: String,
    #[serde(with = "super::table::edm::int64")]
    rows: i64,
    #[serde(with = "time::serde::rfc3339")]
    replaced_at: OffsetDateTime,
}

/// A row key fragment for `key`: readable and ordered like the key, within the service's rules.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if matches!(c, '/' | '\\' | '#' | '?' | '%') || c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.len() > MAX_READABLE_KEY {
        format!("~sha256:{}", hex(&Sha256::digest(key.as_bytes())))
    } else {
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new generation: time-ordered for people reading the table, unique for concurrent writers.
fn new_generation() -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("g{now:020}{}", &Uuid::new_v4().simple().to_string()[..8])
}

fn items_partition(workspace: WorkspaceId, subscription: &str) -> String {
    format!("{workspace}:{subscription}")
}

/// Rows whose key starts with `<generation>:` (`;` is the character after `:`).
fn generation_range(generation: &str) -> (String, String) {
    (format!("{generation}:"), format!("{generation};"))
}

/// One kind of generational set in one table.
#[derive(Clone)]
pub struct GenerationalSet<T> {
    storage: Storage,
    table: &'static str,
    kind: &'static str,
    _item: PhantomData<fn() -> T>,
}

impl<T: SetItem> GenerationalSet<T> {
    pub fn new(storage: Storage, table: &'static str, kind: &'static str) -> Self {
        Self {
            storage,
            table,
            kind,
            _item: PhantomData,
        }
    }

    fn table(&self) -> Result<Table, StoreError> {
        self.storage.tables().table(self.table).map_err(to_store)
    }

    #[tracing::instrument(skip_all, fields(workspace.id = %workspace, subscription.id = %subscription, set = self.kind, rows = items.len()))]
    pub async fn replace(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        items: Vec<T>,
    ) -> Result<Replaced, StoreError> {
        let subscription = subscription.to_ascii_lowercase();
        let table = self.table()?;
        let pointer_partition = workspace.to_string();
        let partition = items_partition(workspace, &subscription);
        let before = table
            .get::<PointerRow>(&pointer_partition, &subscription)
            .await
            .map_err(to_store)?;

        // Azure can list an item twice (a page boundary moving under us): the last one wins, so
        // no batch touches a row twice and the set holds each item once.
        let mut unique: BTreeMap<String, T> = BTreeMap::new();
        for item in items {
            unique.insert(encode_key(&item.key()), item);
        }
        let rows = unique.len();
        let generation = new_generation();
        let written = self
            .write_generation(&table, &partition, &generation, unique)
            .await;
        if let Err(err) = written {
            self.delete_generation(&table, &partition, &generation)
                .await;
            return Err(err);
        }

        let pointer = Entity::new(
            pointer_partition.clone(),
            subscription.clone(),
            PointerRow {
                generation: generation.clone(),
                rows: rows as i64,
                replaced_at: OffsetDateTime::now_utc(),
            },
        );
        let swapped = match &before {
            Some(current) => {
                let condition = current.etag.clone().map_or(IfMatch::Any, IfMatch::ETag);
                table
                    .update(&pointer, UpdateMode::Replace, condition)
                    .await
                    .map(|_| ())
            }
            None => table.insert(&pointer).await.map(|_| ()),
        };
        match swapped {
            Ok(()) => {
                self.delete_other_generations(&table, &partition, &generation)
                    .await;
                Ok(Replaced::Current { rows })
            }
            Err(StorageError::PreconditionFailed(_) | StorageError::Conflict(_)) => {
                tracing::info!("another sync replaced this set first; discarding this run's rows");
                self.delete_generation(&table, &partition, &generation)
                    .await;
                Ok(Replaced::Superseded)
            }
            Err(other) => {
                self.delete_generation(&table, &partition, &generation)
                    .await;
                Err(to_store(other))
            }
        }
    }

    async fn write_generation(
        &self,
        table: &Table,
        partition: &str,
        generation: &str,
        items: BTreeMap<String, T>,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new(partition);
        for (key, mut item) in items {
            let [k1, k2, k3] = item.columns();
            let encode = |item: &T| {
                serde_json::to_string(item).map_err(|e| {
                    StoreError::Unavailable(anyhow::anyhow!("encode {}: {e}", self.kind))
                })
            };
            let mut data = encode(&item)?;
            if data.len() > MAX_DATA {
                // One outsized item must not fail the whole set: keep it, smaller.
                item.shrink(MAX_DATA);
                data = encode(&item)?;
                tracing::warn!(
                    set = self.kind,
                    "an item was too large for one row and was shortened"
                );
            }
            let entity = Entity::new(
                partition,
                format!("{generation}:{key}"),
                ItemRow { k1, k2, k3, data },
            );
            // Insert, not upsert: the generation is new, so a conflict would be a bug worth seeing.
            batch.insert(&entity).map_err(to_store)?;
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Batch::new(partition));
                table.submit(full).await.map_err(to_store)?;
            }
        }
        table.submit(batch).await.map_err(to_store)?;
        Ok(())
    }

    /// Best effort: rows left behind are never read (their generation is not current) and the
    /// next successful replace removes them.
    async fn delete_generation(&self, table: &Table, partition: &str, generation: &str) {
        let (from, to) = generation_range(generation);
        let filter = format!(
            "PartitionKey eq {} and RowKey ge {} and RowKey lt {}",
            odata_string(partition),
            odata_string(&from),
            odata_string(&to)
        );
        if let Err(err) = self.delete_matching(table, partition, &filter).await {
            tracing::warn!(error = %err, set = self.kind, "could not discard a generation; the next sync will");
        }
    }

    async fn delete_other_generations(&self, table: &Table, partition: &str, generation: &str) {
        let (from, to) = generation_range(generation);
        let filter = format!(
            "PartitionKey eq {} and (RowKey lt {} or RowKey ge {})",
            odata_string(partition),
            odata_string(&from),
            odata_string(&to)
        );
        if let Err(err) = self.delete_matching(table, partition, &filter).await {
            tracing::warn!(error = %err, set = self.kind, "could not delete the previous set's rows; the next sync will");
        }
    }

    async fn delete_matching(
        &self,
        table: &Table,
        partition: &str,
        filter: &str,
    ) -> Result<(), StorageError> {
        let rows = table
            .query_all::<serde_json::Value>(&Query::filter(filter))
            .await?;
        for chunk in rows.chunks(BATCH) {
            let mut batch = Batch::new(partition);
            for row in chunk {
                batch.delete(row.row_key.clone(), IfMatch::Any)?;
            }
            if let Err(err) = table.submit(batch).await {
                // A concurrent cleanup deleted one of them first, which fails the whole batch:
                // finish one by one (a missing row is fine there).
                if !matches!(err, StorageError::NotFound(_)) {
                    return Err(err);
                }
                for row in chunk {
                    table.delete(partition, &row.row_key, IfMatch::Any).await?;
                }
            }
        }
        Ok(())
    }

    /// The current generation of each subscription of the workspace (one or all).
    async fn pointers(
        &self,
        table: &Table,
        workspace: WorkspaceId,
        subscription: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let partition = workspace.to_string();
        let mut pointers: Vec<(String, String)> = match subscription {
            Some(sub) => table
                .get::<PointerRow>(&partition, &sub.to_ascii_lowercase())
                .await
                .map_err(to_store)?
                .into_iter()
                .map(|e| (e.row_key, e.properties.generation))
                .collect(),
            None => table
                .query_all::<PointerRow>(&Query::partition(&partition))
                .await
                .map_err(to_store)?
                .into_iter()
                .map(|e| (e.row_key, e.properties.generation))
                .collect(),
        };
        pointers.sort();
        Ok(pointers)
    }

    /// Items in key order: of every subscription (or one), starting after `after`, filtered by
    /// `columns` on the service and `keep` here, until `limit` are found. Returns the items and
    /// whether more may follow.
    ///
    /// A replace that lands during the scan deletes the generation being read, which would make the
    /// page come back short: the pointers are read again afterwards, and the scan repeated on the new
    /// generations if any moved (a few times at most; syncs of one subscription are nightly).
    async fn scan(
        &self,
        workspace: WorkspaceId,
        subscription: Option<&str>,
        columns: &[Option<String>; 3],
        after: Option<(String, String)>,
        limit: usize,
        keep: &(dyn Fn(&T) -> bool + Sync),
    ) -> Result<(Vec<(String, String, T)>, bool), StoreError> {
        let table = self.table()?;
        let mut pointers = self.pointers(&table, workspace, subscription).await?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self
                .scan_generations(&table, workspace, &pointers, columns, &after, limit, keep)
                .await?;
            let now = self.pointers(&table, workspace, subscription).await?;
            if now == pointers || attempts == 3 {
                return Ok(result);
            }
            pointers = now;
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one private step of `scan`")]
    async fn scan_generations(
        &self,
        table: &Table,
        workspace: WorkspaceId,
        pointers: &[(String, String)],
        columns: &[Option<String>; 3],
        after: &Option<(String, String)>,
        limit: usize,
        keep: &(dyn Fn(&T) -> bool + Sync),
    ) -> Result<(Vec<(String, String, T)>, bool), StoreError> {
        let mut found = Vec::new();
        for (sub, generation) in pointers {
            let (sub, generation) = (sub.clone(), generation.clone());
            if after.as_ref().is_some_and(|(s, _)| sub < *s) {
                continue;
            }
            let partition = items_partition(workspace, &sub);
            let (from, to) = generation_range(&generation);
            let lower = match after {
                Some((s, key)) if *s == sub => {
                    format!("RowKey gt {}", odata_string(&format!("{from}{key}")))
                }
                _ => format!("RowKey ge {}", odata_string(&from)),
            };
            let mut filter = format!(
                "PartitionKey eq {} and {lower} and RowKey lt {}",
                odata_string(&partition),
                odata_string(&to)
            );
            for (name, value) in ["K1", "K2", "K3"].iter().zip(columns) {
                if let Some(value) = value {
                    filter.push_str(&format!(" and {name} eq {}", odata_string(value)));
                }
            }
            let mut query = Query::filter(filter).top(1000);
            loop {
                let page = table.query::<ItemRow>(&query).await.map_err(to_store)?;
                for row in page.items {
                    let item: T = serde_json::from_str(&row.properties.data).map_err(|e| {
                        StoreError::Unavailable(anyhow::anyhow!("decode {}: {e}", self.kind))
                    })?;
                    if !keep(&item) {
                        continue;
                    }
                    if found.len() == limit {
                        return Ok((found, true));
                    }
                    let key = row.row_key[from.len()..].to_owned();
                    found.push((sub.clone(), key, item));
                }
                match page.continuation {
                    Some(token) => query = query.after(token),
                    None => break,
                }
            }
        }
        Ok((found, false))
    }
}

fn encode_position(subscription: &str, key: &str) -> String {
    format!("{subscription}\n{key}")
}

fn decode_position(position: &str) -> Result<(String, String), StoreError> {
    position
        .split_once('\n')
        .map(|(s, k)| (s.to_owned(), k.to_owned()))
        .ok_or(StoreError::NotFound)
}

/// The inventory store.
#[derive(Clone)]
pub struct TableInventoryStore(GenerationalSet<InventoryItem>);

impl TableInventoryStore {
    pub fn new(storage: Storage) -> Self {
        Self(GenerationalSet::new(
            storage,
            names::INVENTORY_TABLE,
            "inventory",
        ))
    }
}

#[async_trait]
impl InventoryStore for TableInventoryStore {
    async fn replace(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        items: Vec<InventoryItem>,
    ) -> Result<Replaced, StoreError> {
        self.0.replace(workspace, subscription, items).await
    }

    async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &InventoryFilter,
        page: PageRequest,
    ) -> Result<Page<InventoryItem>, StoreError> {
        let after = page.after.as_deref().map(decode_position).transpose()?;
        let lower = |v: &Option<String>| v.as_deref().map(str::to_ascii_lowercase);
        let columns = [
            lower(&filter.resource_group),
            lower(&filter.resource_type),
            lower(&filter.location),
        ];
        let keep = |item: &InventoryItem| filter.matches(item);
        let (found, more) = self
            .0
            .scan(
                workspace,
                filter.subscription.as_deref(),
                &columns,
                after,
                page.limit.max(1) as usize,
                &keep,
            )
            .await?;
        let next = more
            .then(|| found.last().map(|(s, k, _)| encode_position(s, k)))
            .flatten();
        Ok(Page {
            items: found.into_iter().map(|(_, _, item)| item).collect(),
            next,
        })
    }
}

/// The recommendations store.
#[derive(Clone)]
pub struct TableRecommendationStore(GenerationalSet<RecommendationItem>);

impl TableRecommendationStore {
    pub fn new(storage: Storage) -> Self {
        Self(GenerationalSet::new(
            storage,
            names::RECOMMENDATIONS_TABLE,
            "recommendations",
        ))
    }
}

#[async_trait]
impl RecommendationStore for TableRecommendationStore {
    async fn replace(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        items: Vec<RecommendationItem>,
    ) -> Result<Replaced, StoreError> {
        self.0.replace(workspace, subscription, items).await
    }

    async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &RecommendationFilter,
    ) -> Result<Vec<RecommendationItem>, StoreError> {
        let columns = [
            filter.category.map(|c| c.as_str().to_ascii_lowercase()),
            filter.impact.map(|i| i.as_str().to_ascii_lowercase()),
            None,
        ];
        let keep = |item: &RecommendationItem| filter.matches(item);
        let (found, _) = self
            .0
            .scan(
                workspace,
                filter.subscription.as_deref(),
                &columns,
                None,
                usize::MAX,
                &keep,
            )
            .await?;
        Ok(found.into_iter().map(|(_, _, item)| item).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys_keep_order_and_obey_the_key_rules() {
        let a = encode_key("/subscriptions/s/resourcegroups/a/providers/x/y?#\\%");
        assert_eq!(
            a,
            "%2Fsubscriptions%2Fs%2Fresourcegroups%2Fa%2Fproviders%2Fx%2Fy%3F%23%5C%25"
        );
        assert!(encode_key("/a/b") < encode_key("/a/c"));
        let long = encode_key(&"x".repeat(2000));
        assert!(long.starts_with("~sha256:") && long.len() < 100);
        assert!(!encode_key("a\u{1}b").contains('\u{1}'));
    }

    #[test]
    fn generations_are_unique_and_never_contain_the_separator() {
        let a = new_generation();
        let b = new_generation();
        assert_ne!(a, b);
        assert!(!a.contains(':') && !a.contains(';'));
    }

    #[test]
    fn an_item_with_huge_tags_is_shortened_to_fit_a_row() {
        let mut item = InventoryItem {
            subscription: "s".into(),
            id: "/x".into(),
            name: "x".into(),
            resource_type: "t".into(),
            resource_group: None,
            location: None,
            sku: None,
            sku_tier: None,
            tags: (0..50)
                .map(|i| (format!("{i:02}{}", "k".repeat(600)), "é".repeat(300)))
                .collect(),
            power_state: None,
        };
        assert!(serde_json::to_string(&item).unwrap().len() > MAX_DATA);
        item.shrink(MAX_DATA);
        assert!(serde_json::to_string(&item).unwrap().len() <= MAX_DATA);
        assert!(!item.tags.is_empty());
        assert!(item.tags.keys().all(|k| k.len() <= 512));
    }

    #[test]
    fn a_position_needs_both_parts() {
        assert!(decode_position("sub").is_err());
        assert_eq!(
            decode_position(&encode_position("s", "k")).unwrap(),
            ("s".to_owned(), "k".to_owned())
        );
    }
}
