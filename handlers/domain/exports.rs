//! Workspace exports: an owner or admin asks for everything Sixpence holds about the workspace, a
//! queue function writes it as one zip archive, and the archive can be downloaded until it expires.
//!
//! The record ([`Export`]) lives in a table partitioned by workspace; the archive and a copy of its
//! manifest live in blob container `exports` under `<workspace>/<export>/` (the layout a workspace
//! deletion relies on to remove them).
//!
//! ## The archive
//! - `manifest.json`: workspace, export id, generated-at, schema version, and per file its name,
//!   row count, SHA-256 and columns ([`Manifest`]). Written last, so its hashes cover the files.
//! - `costs.csv`: daily costs in FOCUS 1.0 column names and types where a column maps, `x_`
//!   extension columns where none does ([`COST_COLUMNS`]).
//! - `inventory.jsonl`, `recommendations.jsonl`, `anomalies.jsonl`, `budgets.jsonl`,
//!   `members.jsonl`, `channels.jsonl` (webhook URLs masked, never the sealed secret) and
//!   `audit.jsonl`: one JSON object a line, each the same shape the API returns for it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::store::{StoreError, Version, Versioned};
use super::tenancy::{UserId, WorkspaceId};

/// Version of the archive layout, written into the manifest.
pub const SCHEMA_VERSION: u32 = 1;

/// Exports a workspace may have waiting or being built at once: each reads the whole workspace.
pub const MAX_PENDING: usize = 1;

/// An export that stayed `queued` or `running` this long is taken as lost (its message was poisoned)
/// and no longer blocks a new request.
pub const STALE_AFTER: time::Duration = time::Duration::hours(6);

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExportStatus {
    Queued,
    Running,
    Ready,
    Failed,
    /// Past its download window; the archive is gone.
    Expired,
}

impl ExportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Queued => "queued",
            ExportStatus::Running => "running",
            ExportStatus::Ready => "ready",
            ExportStatus::Failed => "failed",
            ExportStatus::Expired => "expired",
        }
    }
}

/// One file of the archive, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    pub name: String,
    pub rows: u64,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub columns: Vec<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub workspace: WorkspaceId,
    pub export: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// The FOCUS version `costs.csv` follows.
    pub focus_version: String,
    pub files: Vec<FileEntry>,
}

/// One export request and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    pub id: Uuid,
    pub workspace: WorkspaceId,
    pub requested_by: UserId,
    pub status: ExportStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Size of the archive in bytes, once ready.
    #[serde(default)]
    pub size: Option<u64>,
    /// The files and their row counts, once ready.
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// Why it failed, in words safe to show the customer.
    #[serde(default)]
    pub error: Option<String>,
}

impl Export {
    pub fn new(workspace: WorkspaceId, requested_by: UserId, now: OffsetDateTime) -> Self {
        Self {
            id: Uuid::new_v4(),
            workspace,
            requested_by,
            status: ExportStatus::Queued,
            created_at: now,
            ready_at: None,
            expires_at: None,
            size: None,
            files: Vec::new(),
            error: None,
        }
    }

    /// The status a reader should see at `now`: a ready export past its window is expired even
    /// before anything has removed it.
    pub fn status_at(&self, now: OffsetDateTime) -> ExportStatus {
        match (self.status, self.expires_at) {
            (ExportStatus::Ready, Some(expires)) if now >= expires => ExportStatus::Expired,
            (status, _) => status,
        }
    }

    /// Whether it still occupies the workspace's one pending slot at `now`.
    pub fn is_pending(&self, now: OffsetDateTime) -> bool {
        matches!(self.status, ExportStatus::Queued | ExportStatus::Running)
            && now - self.created_at < STALE_AFTER
    }

    /// The blob folder of this export: `<workspace>/<export>/`.
    pub fn folder(&self) -> String {
        folder(self.workspace, self.id)
    }

    pub fn archive_blob(&self) -> String {
        format!("{}{ARCHIVE_NAME}", self.folder())
    }

    pub fn manifest_blob(&self) -> String {
        format!("{}{MANIFEST_NAME}", self.folder())
    }

    /// The name a browser saves the download as.
    pub fn file_name(&self) -> String {
        format!(
            "sixpence-export-{}-{}.zip",
            self.created_at.date(),
            self.id.simple()
        )
    }
}

/// The blob folder of an export: `<workspace>/<export>/` (container `exports`).
pub fn folder(workspace: WorkspaceId, export: Uuid) -> String {
    format!("{workspace}/{export}/")
}

pub const ARCHIVE_NAME: &str = "archive.zip";
pub const MANIFEST_NAME: &str = "manifest.json";

/// Where export records are kept.
#[async_trait::async_trait]
pub trait ExportStore: Send + Sync {
    async fn create(&self, export: &Export) -> Result<Version, StoreError>;
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Versioned<Export>>, StoreError>;
    /// Newest first.
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Export>>, StoreError>;
    /// Replaces the record if it is still at `guard`.
    async fn update(&self, export: &Export, guard: &Version) -> Result<Version, StoreError>;
}

/// The FOCUS version `costs.csv` follows.
pub const FOCUS_VERSION: &str = "1.0";

/// The columns of `costs.csv`, in order, with the FOCUS data type (`x_` columns are Microsoft's
/// FOCUS extension columns of the same name).
pub const COST_COLUMNS: &[(&str, &str)] = &[
    ("ChargePeriodStart", "DateTime"),
    ("ChargePeriodEnd", "DateTime"),
    ("BillingCurrency", "String"),
    ("BilledCost", "Decimal"),
    ("EffectiveCost", "Decimal"),
    ("ProviderName", "String"),
    ("SubAccountId", "String"),
    ("ResourceId", "String"),
    ("ResourceName", "String"),
    ("ServiceName", "String"),
    ("x_ResourceGroupName", "String"),
];

/// The last path segment of an Azure resource id (its name); empty for no resource.
pub fn resource_name(resource: &str) -> &str {
    resource.rsplit('/').find(|s| !s.is_empty()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId {
            tenant: Uuid::nil(),
            object: Uuid::nil(),
        }
    }

    #[test]
    fn a_ready_export_past_its_window_reads_as_expired() {
        let now = OffsetDateTime::now_utc();
        let mut export = Export::new(WorkspaceId::new(), user(), now);
        export.status = ExportStatus::Ready;
        export.expires_at = Some(now + time::Duration::hours(1));
        assert_eq!(export.status_at(now), ExportStatus::Ready);
        assert_eq!(
            export.status_at(now + time::Duration::hours(1)),
            ExportStatus::Expired
        );
    }

    #[test]
    fn a_stale_pending_export_no_longer_blocks_a_new_one() {
        let now = OffsetDateTime::now_utc();
        let export = Export::new(WorkspaceId::new(), user(), now);
        assert!(export.is_pending(now));
        assert!(!export.is_pending(now + STALE_AFTER));
    }

    #[test]
    fn blobs_live_under_the_workspace_and_export() {
        let export = Export::new(WorkspaceId::new(), user(), OffsetDateTime::now_utc());
        assert_eq!(
            export.archive_blob(),
            format!("{}/{}/archive.zip", export.workspace, export.id)
        );
    }

    #[test]
    fn every_cost_column_is_focus_or_an_extension() {
        let focus: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/focus/FocusCost_1.0.json"
        ))
        .unwrap();
        let known: Vec<(String, String)> = focus["Columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["ColumnName"].as_str().unwrap().to_owned(),
                    c["DataType"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for (name, kind) in COST_COLUMNS {
            assert!(
                known.iter().any(|(n, k)| n == name && k == kind),
                "{name} ({kind}) is not a FOCUS 1.0 column of that type"
            );
        }
    }

    #[test]
    fn resource_names_are_the_last_segment() {
        assert_eq!(
            resource_name("/subscriptions/s/resourcegroups/rg/providers/x/y/vm-1"),
            "vm-1"
        );
        assert_eq!(resource_name(""), "");
    }
}
