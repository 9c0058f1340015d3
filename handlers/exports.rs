//! Builds a workspace's export archive (see `domain::exports` for what is in it) straight into blob
//! storage.
//!
//! Memory stays bounded whatever the workspace's size: rows are read a page (or, for costs, one
//! subscription-month) at a time, deflated into a streaming zip writer (`zip`'s stream mode: no
//! seeking, sizes in data descriptors) whose output is cut into 4 MiB blocks staged with Put Block
//! as they fill, and committed with Put Block List at the end. Nothing is visible under the
//! archive's name until that commit; a crash part-way leaves only uncommitted blocks, which the
//! rerun replaces (block ids are the block's position) and the service discards after a week.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use crate::app::AppState;
use crate::domain::audit::AuditFilter;
use crate::domain::costs::{Metric, Micros, View, YearMonth, resource_group_of};
use crate::domain::exports::{
    COST_COLUMNS, Export, ExportStatus, FOCUS_VERSION, FileEntry, Manifest, SCHEMA_VERSION,
    resource_name,
};
use crate::domain::inventory::{InventoryFilter, RecommendationFilter};
use crate::domain::store::PageRequest;
use crate::error::{Error, Result};
use crate::functions::http::api::{anomalies, audit_log, budgets, notifications, views};
use crate::storage::Container;
use crate::storage::names::EXPORTS_CONTAINER;

/// Size of each staged block (the service takes up to 50,000 blocks of up to 4000 MiB each).
const BLOCK_SIZE: usize = 4 * 1024 * 1024;
/// Months of cost history looked at, back from the current one (a backfill fetches 13).
const COST_MONTHS: i32 = 36;
/// Page size for listings read into the archive.
const PAGE: u32 = 500;

/// The export's blob container.
pub fn container(state: &AppState) -> Result<Container> {
    state
        .storage()
        .blobs()
        .container(EXPORTS_CONTAINER)
        .map_err(|e| Error::Storage(e.into()))
}

fn storage_err(e: crate::storage::StorageError) -> Error {
    Error::Storage(e.into())
}

/// Deletes an expired export's archive and manifest and marks it `expired`. Best effort (logged,
/// never fatal): the download route calls it when it finds the export past its window, and a
/// sweeper can call it for every ready export whose `expires_at` has passed.
pub async fn expire(state: &AppState, export: &Export) {
    if let Ok(container) = container(state) {
        for blob in [export.archive_blob(), export.manifest_blob()] {
            if let Err(err) = container.delete(&blob).await {
                tracing::warn!(error = %err, export = %export.id, "could not delete an expired export's blob");
            }
        }
    }
    if let Ok(Some(current)) = state.exports().get(export.workspace, export.id).await
        && current.value.status == ExportStatus::Ready
    {
        let mut expired = current.value.clone();
        expired.status = ExportStatus::Expired;
        if let Err(err) = state.exports().update(&expired, &current.version).await {
            tracing::warn!(error = %err, export = %export.id, "could not mark an export expired");
        }
    }
}

/// What [`build`] made.
#[derive(Debug)]
pub struct Built {
    pub size: u64,
    pub manifest: Manifest,
}

/// Writes the whole archive of `export` to `<workspace>/<export>/archive.zip`, and its manifest
/// beside it.
pub async fn build(state: &AppState, export: &Export, now: OffsetDateTime) -> Result<Built> {
    let container = container(state)?;
    let mut archive = Archive::new(container.clone(), export.archive_blob(), now);
    let workspace = export.workspace;

    // costs.csv
    let columns: Vec<&str> = COST_COLUMNS.iter().map(|(name, _)| *name).collect();
    archive.start_csv("costs.csv", &columns)?;
    let today = now.date();
    let first = YearMonth::of(today).minus(COST_MONTHS);
    for subscription in state.costs().subscriptions(workspace).await? {
        let mut month = first;
        while month <= YearMonth::of(today) {
            write_cost_month(state, &mut archive, export, &subscription, month).await?;
            archive.pump().await?;
            month = month.next();
        }
    }
    archive.end_file();

    // inventory.jsonl
    archive.start_jsonl("inventory.jsonl")?;
    let mut after = None;
    loop {
        let page = state
            .inventory()
            .list(
                workspace,
                &InventoryFilter::default(),
                PageRequest { after, limit: PAGE },
            )
            .await?;
        for item in page.items {
            archive.json_row(&views::ResourceView::from(item))?;
        }
        archive.pump().await?;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    archive.end_file();

    archive.start_jsonl("recommendations.jsonl")?;
    for item in state
        .recommendations()
        .list(workspace, &RecommendationFilter::default())
        .await?
    {
        archive.json_row(&views::RecommendationView::from(item))?;
    }
    archive.end_file();
    archive.pump().await?;

    archive.start_jsonl("anomalies.jsonl")?;
    for anomaly in state.anomalies().list(workspace).await? {
        archive.json_row(&anomalies::view(&anomaly.value))?;
    }
    archive.end_file();
    archive.pump().await?;

    archive.start_jsonl("budgets.jsonl")?;
    for budget in state.budgets().list(workspace).await? {
        let evaluation = state
            .budgets()
            .evaluation(workspace, budget.value.id)
            .await?;
        archive.json_row(&budgets::view(&budget.value, evaluation.as_ref()))?;
    }
    archive.end_file();
    archive.pump().await?;

    archive.start_jsonl("members.jsonl")?;
    for member in state.tenancy().members(workspace).await? {
        archive.json_row(&views::MemberView::from(&member.value))?;
    }
    archive.end_file();

    // Channels as the API shows them: a webhook URL only masked, never the sealed secret.
    archive.start_jsonl("channels.jsonl")?;
    for channel in state.notifier().channels().list(workspace).await? {
        archive.json_row(&notifications::ChannelView::from(&channel.value))?;
    }
    archive.end_file();
    archive.pump().await?;

    archive.start_jsonl("audit.jsonl")?;
    let mut after = None;
    loop {
        let page = state
            .audit()
            .list(
                workspace,
                &AuditFilter::default(),
                PageRequest { after, limit: PAGE },
            )
            .await?;
        for record in page.items {
            archive.json_row(&audit_log::entry(record))?;
        }
        archive.pump().await?;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    archive.end_file();

    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        workspace,
        export: export.id,
        generated_at: now,
        focus_version: FOCUS_VERSION.to_owned(),
        files: archive.files.clone(),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal(anyhow::anyhow!("manifest: {e}")))?;
    let size = archive.finish(&manifest_json).await?;
    container
        .put(
            &export.manifest_blob(),
            Bytes::from(manifest_json),
            "application/json",
        )
        .await
        .map_err(storage_err)?;
    Ok(Built { size, manifest })
}

/// One subscription-month of `costs.csv`: the Service view (resource and service name) of both
/// metrics, split rows summed, one line per day, resource and service.
async fn write_cost_month(
    state: &AppState,
    archive: &mut Archive,
    export: &Export,
    subscription: &str,
    month: YearMonth,
) -> Result<()> {
    let (from, to) = (month.first_day(), month.last_day());
    let mut cells: BTreeMap<(time::Date, String, String), (Micros, Micros)> = BTreeMap::new();
    let mut currency = None;
    for metric in Metric::ALL {
        let (rows, found) = state
            .costs()
            .read(
                export.workspace,
                subscription,
                from,
                to,
                metric,
                &View::Service,
            )
            .await?;
        if currency.is_none() {
            currency = found;
        }
        for stored in rows {
            let cell = cells
                .entry((stored.day, stored.row.resource, stored.row.value))
                .or_insert((Micros(0), Micros(0)));
            let slot = match metric {
                Metric::Actual => &mut cell.0,
                Metric::Amortized => &mut cell.1,
            };
            *slot = slot.checked_add(stored.row.amount).ok_or_else(|| {
                Error::Internal(anyhow::anyhow!("cost sum overflows in {subscription}"))
            })?;
        }
    }
    let currency = currency.unwrap_or_default();
    let sub_account = format!("/subscriptions/{subscription}");
    for ((day, resource, service), (billed, effective)) in cells {
        let start = day.midnight().assume_utc();
        let end = start + Duration::days(1);
        let group = if resource.is_empty() {
            ""
        } else {
            resource_group_of(&resource)
        };
        archive.csv_row(&[
            &rfc3339(start)?,
            &rfc3339(end)?,
            &currency,
            &billed.to_string(),
            &effective.to_string(),
            "Microsoft",
            &sub_account,
            &resource,
            resource_name(&resource),
            &service,
            group,
        ])?;
    }
    Ok(())
}

fn rfc3339(at: OffsetDateTime) -> Result<String> {
    at.format(&Rfc3339)
        .map_err(|e| Error::Internal(anyhow::anyhow!("timestamp: {e}")))
}

/// The bytes the zip writer produced and not yet staged.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("export buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    /// Takes the first `at_least` bytes (or everything, when `at_least` is 0) if that many wait.
    fn take(&self, at_least: usize) -> Option<Vec<u8>> {
        let mut buffer = self.0.lock().ok()?;
        if buffer.is_empty() || buffer.len() < at_least {
            return None;
        }
        if at_least == 0 {
            return Some(std::mem::take(&mut *buffer));
        }
        let rest = buffer.split_off(at_least);
        Some(std::mem::replace(&mut *buffer, rest))
    }
}

/// The file being written.
struct Open {
    name: String,
    columns: Vec<String>,
    rows: u64,
    hash: Sha256,
}

/// The block blob the archive's bytes go to.
struct Upload {
    sink: Sink,
    container: Container,
    blob: String,
    blocks: Vec<Vec<u8>>,
    size: u64,
}

impl Upload {
    /// Stages every full block waiting.
    async fn pump(&mut self) -> Result<()> {
        while let Some(block) = self.sink.take(BLOCK_SIZE) {
            self.stage(block).await?;
        }
        Ok(())
    }

    async fn stage(&mut self, block: Vec<u8>) -> Result<()> {
        let id = format!("{:08}", self.blocks.len()).into_bytes();
        self.size += block.len() as u64;
        self.container
            .stage_block(&self.blob, &id, Bytes::from(block))
            .await
            .map_err(storage_err)?;
        self.blocks.push(id);
        Ok(())
    }

    /// Stages what is left and commits the blob; its size.
    async fn commit(mut self) -> Result<u64> {
        self.pump().await?;
        if let Some(rest) = self.sink.take(0) {
            self.stage(rest).await?;
        }
        self.container
            .commit_blocks(&self.blob, self.blocks, "application/zip")
            .await
            .map_err(storage_err)?;
        Ok(self.size)
    }
}

/// A zip archive written into a block blob as it grows.
struct Archive {
    zip: ZipWriter<StreamWriter<Sink>>,
    upload: Upload,
    options: SimpleFileOptions,
    open: Option<Open>,
    files: Vec<FileEntry>,
}

impl Archive {
    fn new(container: Container, blob: String, now: OffsetDateTime) -> Self {
        let sink = Sink::default();
        let mut options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(0o644);
        if let Ok(at) = zip::DateTime::from_date_and_time(
            u16::try_from(now.year()).unwrap_or(1980),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
        ) {
            options = options.last_modified_time(at);
        }
        Self {
            zip: ZipWriter::new_stream(sink.clone()),
            upload: Upload {
                sink,
                container,
                blob,
                blocks: Vec::new(),
                size: 0,
            },
            options,
            open: None,
            files: Vec::new(),
        }
    }

    fn zip_err(e: impl std::fmt::Display) -> Error {
        Error::Internal(anyhow::anyhow!("writing the export archive: {e}"))
    }

    fn start(&mut self, name: &str, columns: Vec<String>) -> Result<()> {
        self.end_file();
        self.zip
            .start_file(name, self.options)
            .map_err(Self::zip_err)?;
        self.open = Some(Open {
            name: name.to_owned(),
            columns,
            rows: 0,
            hash: Sha256::new(),
        });
        Ok(())
    }

    fn start_csv(&mut self, name: &str, columns: &[&str]) -> Result<()> {
        self.start(name, columns.iter().map(|c| (*c).to_owned()).collect())?;
        let header = csv_line(columns)?;
        self.write_bytes(&header)
    }

    fn start_jsonl(&mut self, name: &str) -> Result<()> {
        self.start(name, Vec::new())
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(open) = &mut self.open {
            open.hash.update(bytes);
        }
        self.zip.write_all(bytes).map_err(Self::zip_err)
    }

    fn csv_row(&mut self, fields: &[&str]) -> Result<()> {
        let line = csv_line(fields)?;
        self.write_bytes(&line)?;
        if let Some(open) = &mut self.open {
            open.rows += 1;
        }
        Ok(())
    }

    fn json_row<T: Serialize>(&mut self, row: &T) -> Result<()> {
        let mut line = serde_json::to_vec(row).map_err(Self::zip_err)?;
        line.push(b'\n');
        // A JSON Lines file's columns are the union of its objects' top-level keys.
        if let (Some(open), Ok(serde_json::Value::Object(map))) =
            (&mut self.open, serde_json::to_value(row))
        {
            for key in map.keys() {
                if !open.columns.contains(key) {
                    open.columns.push(key.clone());
                }
            }
        }
        self.write_bytes(&line)?;
        if let Some(open) = &mut self.open {
            open.rows += 1;
        }
        Ok(())
    }

    fn end_file(&mut self) {
        if let Some(open) = self.open.take() {
            self.files.push(FileEntry {
                name: open.name,
                rows: open.rows,
                sha256: hex(&open.hash.finalize()),
                columns: open.columns,
            });
        }
    }

    /// Stages every full block waiting.
    async fn pump(&mut self) -> Result<()> {
        self.upload.pump().await
    }

    /// Adds `manifest.json`, closes the zip and commits the blob; its size.
    async fn finish(mut self, manifest: &[u8]) -> Result<u64> {
        self.end_file();
        self.zip
            .start_file("manifest.json", self.options)
            .map_err(Self::zip_err)?;
        self.zip.write_all(manifest).map_err(Self::zip_err)?;
        self.zip.finish().map_err(Self::zip_err)?;
        self.upload.commit().await
    }
}

fn csv_line(fields: &[&str]) -> Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(512)
        .from_writer(Vec::with_capacity(256));
    writer
        .write_record(fields)
        .map_err(|e| Error::Internal(anyhow::anyhow!("csv: {e}")))?;
    writer
        .into_inner()
        .map_err(|e| Error::Internal(anyhow::anyhow!("csv: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_hands_out_whole_blocks_then_the_rest() {
        let mut sink = Sink::default();
        sink.write_all(&[1; 10]).unwrap();
        assert_eq!(sink.take(4), Some(vec![1; 4]));
        assert_eq!(sink.take(4), Some(vec![1; 4]));
        assert_eq!(sink.take(4), None);
        assert_eq!(sink.take(0), Some(vec![1; 2]));
        assert_eq!(sink.take(0), None);
    }

    #[test]
    fn csv_lines_quote_what_needs_quoting() {
        assert_eq!(
            csv_line(&["a", "b,c", "d\"e"]).unwrap(),
            b"a,\"b,c\",\"d\"\"e\"\n".to_vec()
        );
    }
}
