//! Synced costs on Table Storage.
//!
//! - `costs`: the rows. One partition per workspace, subscription, month **and generation**
//!   (`<workspace>:<subscription>:<yyyy-mm>:<generation>`), so a partition holds one month of one
//!   sync (a few hundred entities; a 13-month query reads ~14 partitions per subscription). One entity
//!   per day, metric, view and chunk (`RowKey` = `<yyyymmdd>:<metric>:<view>:<chunk>`), its rows
//!   packed as JSON so a day of a subscription is one or a few entities, not thousands.
//! - `costmonths`: the pointer of each month to its current generation, one partition per
//!   workspace and subscription (`<workspace>:<subscription>`, `RowKey` = `<yyyy-mm>`).
//!
//! ## Why a crash or a second worker cannot change the numbers
//!
//! A sync writes a month's rows under its own generation (the run id), a partition nothing reads,
//! with idempotent upserts; only when every row is written does it switch the month's pointer, one
//! entity, under the ETag it read. So:
//! - a crash before the switch leaves the old generation current (an orphan partition is left,
//!   invisible; a retry writes a new generation and switches to it);
//! - a crash after the switch leaves the new, complete generation current;
//! - two workers each write a complete generation from Azure's answer; the pointer ends on one of
//!   them and both hold the same month (the ETag makes the switch a compare-and-swap, so a worker
//!   that lost the race re-reads the pointer and switches again instead of overwriting blindly).
//!
//! The generation a switch displaces is kept as `Previous` (a reader that followed the old pointer a
//! moment earlier can finish), and the one before it is deleted.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use super::names;
use super::table::{Batch, Entity, IfMatch, Query, Table, UpdateMode, odata_string};
use super::tenancy::to_store;
use super::{Storage, StorageError};
use crate::domain::costs::{
    CostStore, Metric, PageRows, StoredRow, TagKey, View, ViewRow, YearMonth,
};
use crate::domain::store::StoreError;
use crate::domain::tenancy::WorkspaceId;

/// Largest packed rows property, in characters (the service allows 32K UTF-16 characters).
const MAX_PACKED_CHARS: usize = 24_000;
const BATCH: usize = 100;
/// Pointer switches attempted against concurrent writers before giving up (the message retries).
const SWITCH_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct TableCostStore {
    storage: Storage,
}

impl TableCostStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self, name: &str) -> Result<Table, StoreError> {
        self.storage.tables().table(name).map_err(to_store)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChunkRow {
    /// Metric code.
    m: String,
    /// View code.
    v: String,
    currency: String,
    /// `[[resource, value, micros], ...]`.
    rows: String,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct PointerRow {
    /// Empty on the backfill marker row.
    #[serde(default)]
    generation: String,
    #[serde(default)]
    previous: Option<String>,
    /// Codes of the views the generation holds, comma-separated; absent on rows written before
    /// tag views existed (which hold the fixed views).
    #[serde(default)]
    views: Option<String>,
    /// On the backfill marker: JSON array of the tag keys the backfill fetched.
    #[serde(default)]
    tag_keys: Option<String>,
}

impl PointerRow {
    fn holds(&self, view: &View) -> bool {
        match &self.views {
            Some(codes) => codes.split(',').any(|c| c == view.code()),
            None => View::FIXED.contains(view),
        }
    }
}

#[derive(Deserialize)]
struct Nothing {}

/// The row of a subscription's pointer partition that says its backfill completed (sorts after
/// every `yyyy-mm`, so month ranges never include it).
const BACKFILLED_ROW: &str = "~backfilled";

fn pointer_partition(workspace: WorkspaceId, subscription: &str) -> String {
    format!("{workspace}:{subscription}")
}

fn data_partition(
    workspace: WorkspaceId,
    subscription: &str,
    month: &str,
    generation: &str,
) -> String {
    format!("{workspace}:{subscription}:{month}:{generation}")
}

fn day_key(day: Date) -> String {
    format!("{:04}{:02}{:02}", day.year(), day.month() as u8, day.day())
}

fn metric_of(code: &str) -> Option<Metric> {
    Metric::ALL.into_iter().find(|m| m.code() == code)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("stored costs are unreadable: {what}"))
}

/// Packs rows into entities of at most [`MAX_PACKED_CHARS`].
fn pack(rows: &[ViewRow]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<serde_json::Value> = Vec::new();
    let mut size = 2;
    for row in rows {
        let value = serde_json::json!([row.resource, row.value, row.amount.0]);
        let len = value.to_string().chars().count() + 1;
        if !current.is_empty() && size + len > MAX_PACKED_CHARS {
            out.push(serde_json::Value::Array(std::mem::take(&mut current)).to_string());
            size = 2;
        }
        size += len;
        current.push(value);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(serde_json::Value::Array(current).to_string());
    }
    out
}

fn unpack(text: &str) -> Result<Vec<ViewRow>, StoreError> {
    let rows: Vec<(String, String, i64)> =
        serde_json::from_str(text).map_err(|_| corrupt("packed rows"))?;
    Ok(rows
        .into_iter()
        .map(|(resource, value, amount)| ViewRow {
            resource,
            value,
            amount: crate::domain::costs::Micros(amount),
        })
        .collect())
}

impl TableCostStore {
    async fn delete_partition(&self, partition: &str) -> Result<(), StorageError> {
        let table = self.storage.tables().table(names::COSTS_TABLE)?;
        let keys = table
            .query_all::<Nothing>(&Query::partition(partition))
            .await?;
        for chunk in keys.chunks(BATCH) {
            let mut batch = Batch::new(partition);
            for entity in chunk {
                batch.delete(entity.row_key.clone(), IfMatch::Any)?;
            }
            table.submit(batch).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl CostStore for TableCostStore {
    async fn backfilled(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
    ) -> Result<Option<Vec<TagKey>>, StoreError> {
        let marker = self
            .table(names::COST_MONTHS_TABLE)?
            .get::<PointerRow>(&pointer_partition(workspace, subscription), BACKFILLED_ROW)
            .await
            .map_err(to_store)?;
        marker
            .map(|m| match m.properties.tag_keys {
                None => Ok(Vec::new()),
                Some(keys) => serde_json::from_str(&keys).map_err(|_| corrupt("backfill marker")),
            })
            .transpose()
    }

    async fn mark_backfilled(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        tag_keys: &[TagKey],
    ) -> Result<(), StoreError> {
        let marker = Entity::new(
            pointer_partition(workspace, subscription),
            BACKFILLED_ROW,
            PointerRow {
                generation: String::new(),
                previous: None,
                views: None,
                tag_keys: Some(serde_json::to_string(tag_keys).map_err(|e| {
                    StoreError::Unavailable(anyhow::Error::new(e).context("tag keys"))
                })?),
            },
        );
        self.table(names::COST_MONTHS_TABLE)?
            .upsert(&marker, UpdateMode::Replace)
            .await
            .map(|_| ())
            .map_err(to_store)
    }

    async fn write_page(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        month: YearMonth,
        generation: &str,
        page: &PageRows,
    ) -> Result<(), StoreError> {
        let table = self.table(names::COSTS_TABLE)?;
        let partition = data_partition(workspace, subscription, &month.key(), generation);
        let currency = page.currency.clone().unwrap_or_default();
        let (metric, view) = (page.metric.code(), page.view.code());
        // Upserts, so a retry of this page over a half-written generation converges.
        let mut batch = Batch::new(&partition);
        for (day, rows) in &page.days {
            for (i, packed) in pack(rows).into_iter().enumerate() {
                let entity = Entity::new(
                    partition.clone(),
                    format!("{}:{metric}:{view}:{:05}:{i:03}", day_key(*day), page.page),
                    ChunkRow {
                        m: metric.to_owned(),
                        v: view.clone(),
                        currency: currency.clone(),
                        rows: packed,
                    },
                );
                if batch.len() == BATCH {
                    table
                        .submit(std::mem::replace(&mut batch, Batch::new(&partition)))
                        .await
                        .map_err(to_store)?;
                }
                batch
                    .upsert(&entity, UpdateMode::Replace)
                    .map_err(to_store)?;
            }
        }
        if !batch.is_empty() {
            table.submit(batch).await.map_err(to_store)?;
        }
        Ok(())
    }

    async fn switch_month(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        month: YearMonth,
        generation: &str,
        views: &[View],
    ) -> Result<(), StoreError> {
        let month_key = month.key();
        let view_codes = views.iter().map(View::code).collect::<Vec<_>>().join(",");
        // The switch: compare-and-swap on the month's pointer.
        let pointers = self.table(names::COST_MONTHS_TABLE)?;
        let pk = pointer_partition(workspace, subscription);
        for _ in 0..SWITCH_ATTEMPTS {
            let current = pointers
                .get::<PointerRow>(&pk, &month_key)
                .await
                .map_err(to_store)?;
            let (next, result, stale) = match current {
                None => {
                    let next = Entity::new(
                        pk.clone(),
                        month_key.clone(),
                        PointerRow {
                            generation: generation.to_owned(),
                            previous: None,
                            views: Some(view_codes.clone()),
                            tag_keys: None,
                        },
                    );
                    let result = pointers.insert(&next).await.map(|_| ());
                    (next, result, None)
                }
                Some(current) => {
                    if current.properties.generation == generation {
                        return Ok(()); // A retry of a switch that happened.
                    }
                    let next = Entity::new(
                        pk.clone(),
                        month_key.clone(),
                        PointerRow {
                            generation: generation.to_owned(),
                            previous: Some(current.properties.generation.clone()),
                            views: Some(view_codes.clone()),
                            tag_keys: None,
                        },
                    );
                    let condition = current
                        .etag
                        .clone()
                        .map(IfMatch::ETag)
                        .unwrap_or(IfMatch::Any);
                    let result = pointers
                        .update(&next, UpdateMode::Replace, condition)
                        .await
                        .map(|_| ());
                    (next, result, current.properties.previous)
                }
            };
            match result {
                Ok(()) => {
                    // Best effort: a failure leaves an unreferenced partition, never wrong numbers.
                    if let Some(stale) = stale.filter(|s| s != &next.properties.generation) {
                        let partition = data_partition(workspace, subscription, &month_key, &stale);
                        if let Err(e) = self.delete_partition(&partition).await {
                            tracing::warn!(error = %e, "could not delete a superseded cost generation");
                        }
                    }
                    return Ok(());
                }
                Err(StorageError::PreconditionFailed(_) | StorageError::Conflict(_)) => continue,
                Err(other) => return Err(to_store(other)),
            }
        }
        Err(StoreError::VersionMismatch)
    }

    async fn months_without(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        from: Date,
        to: Date,
        view: &View,
    ) -> Result<Vec<YearMonth>, StoreError> {
        let (first, last) = (YearMonth::of(from).key(), YearMonth::of(to).key());
        let pointers = self
            .table(names::COST_MONTHS_TABLE)?
            .query_all::<PointerRow>(&Query::filter(format!(
                "PartitionKey eq {} and RowKey ge {} and RowKey le {}",
                odata_string(&pointer_partition(workspace, subscription)),
                odata_string(&first),
                odata_string(&last),
            )))
            .await
            .map_err(to_store)?;
        let mut out = Vec::new();
        for pointer in pointers.iter().filter(|p| !p.properties.holds(view)) {
            let month = pointer
                .row_key
                .split_once('-')
                .and_then(|(y, m)| {
                    Some(YearMonth {
                        year: y.parse().ok()?,
                        month: time::Month::try_from(m.parse::<u8>().ok()?).ok()?,
                    })
                })
                .ok_or_else(|| corrupt("month pointer"))?;
            out.push(month);
        }
        Ok(out)
    }

    async fn subscriptions(&self, workspace: WorkspaceId) -> Result<Vec<String>, StoreError> {
        // Pointer partitions are `<workspace>:<subscription>`: a range over the workspace's prefix.
        let prefix = format!("{workspace}:");
        let end = format!("{workspace};");
        let rows = self
            .table(names::COST_MONTHS_TABLE)?
            .query_all::<Nothing>(&Query::filter(format!(
                "PartitionKey ge {} and PartitionKey lt {}",
                odata_string(&prefix),
                odata_string(&end)
            )))
            .await
            .map_err(to_store)?;
        let subs: BTreeSet<String> = rows
            .into_iter()
            .filter_map(|e| e.partition_key.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        Ok(subs.into_iter().collect())
    }

    async fn read(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        from: Date,
        to: Date,
        metric: Metric,
        view: &View,
    ) -> Result<(Vec<StoredRow>, Option<String>), StoreError> {
        let pointers = self
            .table(names::COST_MONTHS_TABLE)?
            .query_all::<PointerRow>(&Query::partition(&pointer_partition(
                workspace,
                subscription,
            )))
            .await
            .map_err(to_store)?;
        let table = self.table(names::COSTS_TABLE)?;
        let (first, last) = (YearMonth::of(from).key(), YearMonth::of(to).key());
        let mut out = Vec::new();
        let mut currency = None;
        for pointer in pointers
            .iter()
            .filter(|p| p.row_key >= first && p.row_key <= last)
        {
            let partition = data_partition(
                workspace,
                subscription,
                &pointer.row_key,
                &pointer.properties.generation,
            );
            let filter = format!(
                "PartitionKey eq {} and RowKey ge {} and RowKey lt {} and M eq {} and V eq {}",
                odata_string(&partition),
                odata_string(&day_key(from)),
                odata_string(&day_key(to + Duration::days(1))),
                odata_string(metric.code()),
                odata_string(&view.code()),
            );
            let chunks = table
                .query_all::<ChunkRow>(&Query::filter(filter))
                .await
                .map_err(to_store)?;
            for chunk in chunks {
                let day = chunk
                    .row_key
                    .get(..8)
                    .and_then(|d| {
                        let n: u32 = d.parse().ok()?;
                        Date::from_calendar_date(
                            (n / 10_000) as i32,
                            time::Month::try_from((n / 100 % 100) as u8).ok()?,
                            (n % 100) as u8,
                        )
                        .ok()
                    })
                    .ok_or_else(|| corrupt("row key"))?;
                if metric_of(&chunk.properties.m) != Some(metric) {
                    return Err(corrupt("metric"));
                }
                if !chunk.properties.currency.is_empty() {
                    currency.get_or_insert(chunk.properties.currency.clone());
                }
                for row in unpack(&chunk.properties.rows)? {
                    out.push(StoredRow {
                        subscription: subscription.to_owned(),
                        day,
                        row,
                    });
                }
            }
        }
        Ok((out, currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::costs::Micros;

    #[test]
    fn packing_splits_large_days_and_round_trips() {
        let rows: Vec<ViewRow> = (0..2_000)
            .map(|i| ViewRow {
                resource: format!("/subscriptions/s/resourcegroups/rg/providers/p/t/{i:0>80}"),
                value: "Usage".into(),
                amount: Micros(i),
            })
            .collect();
        let packed = pack(&rows);
        assert!(packed.len() > 1);
        assert!(packed.iter().all(|p| p.chars().count() <= MAX_PACKED_CHARS));
        let back: Vec<ViewRow> = packed.iter().flat_map(|p| unpack(p).unwrap()).collect();
        assert_eq!(back, rows);
        assert_eq!(pack(&[]), vec!["[]".to_owned()]);
    }
}
