//! Workspace exports: owners and admins ask for one, watch it, and download the archive until it
//! expires (`SIXPENCE_EXPORT_TTL_HOURS`).
//!
//! The download is a streamed, authorised response rather than a SAS link: production storage has
//! shared-key access off (no account key to sign a SAS with), the archive holds members' emails and
//! the audit trail so it should be reached only through the same membership check as the rest of
//! the API, and every download is audited (`export.download`). The GET is audited by the handler
//! itself: the route table reserves audit actions for state-changing routes.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::context::{RequestId, Scoped, audit};
use super::views::timestamp;
use crate::app::AppState;
use crate::domain::audit::{Actor, AuditRecord, Change, Outcome};
use crate::domain::exports::{Export, ExportStatus, MAX_PENDING};
use crate::domain::tenancy::WorkspaceId;
use crate::error::{Error, Result};
use crate::functions::http::problem::Problem;
use crate::storage::names::EXPORTS_QUEUE;

/// A file of the archive and how many rows it holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportFileView {
    #[schema(example = "costs.csv")]
    pub name: String,
    pub rows: u64,
}

/// An export of the workspace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportView {
    pub id: String,
    /// `queued`, `running`, `ready`, `failed` or `expired`.
    #[schema(example = "ready")]
    pub status: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<String>,
    /// After this instant the download answers 410 and the archive is deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Size of the archive in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The archive's files (the manifest's summary).
    pub files: Vec<ExportFileView>,
    /// Where to download the archive, while it is ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The workspace's exports, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportList {
    pub items: Vec<ExportView>,
}

fn location(workspace: WorkspaceId, id: Uuid) -> String {
    format!("/api/v1/workspaces/{workspace}/exports/{id}")
}

fn view(export: &Export, now: OffsetDateTime) -> ExportView {
    let status = export.status_at(now);
    ExportView {
        id: export.id.to_string(),
        status: status.as_str().to_owned(),
        created_at: timestamp(export.created_at),
        ready_at: export.ready_at.map(timestamp),
        expires_at: export.expires_at.map(timestamp),
        size: export.size,
        files: export
            .files
            .iter()
            .map(|f| ExportFileView {
                name: f.name.clone(),
                rows: f.rows,
            })
            .collect(),
        download: (status == ExportStatus::Ready)
            .then(|| format!("{}/download", location(export.workspace, export.id))),
        error: export.error.clone(),
    }
}

/// The queue message that asks the `export` function to build one export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportMessage {
    pub version: u32,
    pub workspace: WorkspaceId,
    pub export: Uuid,
}

pub const MESSAGE_VERSION: u32 = 1;

/// Export everything Sixpence holds about the workspace: costs (FOCUS CSV), inventory,
/// recommendations, anomalies, budgets, members, channels (webhook URLs masked) and the audit
/// trail, in one zip with a manifest. One export at a time per workspace (409 while one is queued
/// or running). Poll the `Location` until `status` is `ready`, then download it.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/exports", tag = "exports",
    params(("id" = String, Path, description = "Workspace id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe creation: the same key replays the first answer for 24 h")),
    responses((status = 202, description = "Queued", body = ExportView, headers(("Location" = String)))))]
pub async fn request(State(state): State<AppState>, scoped: Scoped) -> Result<Response> {
    let workspace = scoped.scope.id();
    let now = OffsetDateTime::now_utc();
    let pending = state
        .exports()
        .list(workspace)
        .await?
        .iter()
        .filter(|e| e.value.is_pending(now))
        .count();
    if pending >= MAX_PENDING {
        return Err(Error::Conflict(
            "an export of this workspace is already being prepared; wait for it to finish"
                .to_owned(),
        ));
    }
    let export = Export::new(workspace, scoped.caller.user, now);
    state.exports().create(&export).await?;
    let message = ExportMessage {
        version: MESSAGE_VERSION,
        workspace,
        export: export.id,
    };
    let text = serde_json::to_string(&message).map_err(|e| Error::Internal(e.into()))?;
    state
        .storage()
        .queues()
        .queue(EXPORTS_QUEUE)
        .map_err(|e| Error::Storage(e.into()))?
        .send(&text, None)
        .await
        .map_err(|e| Error::Storage(e.into()))?;
    audit(
        scoped.audit.as_ref(),
        format!("export/{}", export.id),
        vec![Change::new("status", None, Some("queued".to_owned()))],
    );
    let mut response = (StatusCode::ACCEPTED, Json(view(&export, now))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location(workspace, export.id)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// The workspace's exports, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/exports", tag = "exports",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Exports", body = ExportList)))]
pub async fn list(State(state): State<AppState>, scoped: Scoped) -> Result<Json<ExportList>> {
    let now = OffsetDateTime::now_utc();
    let items = state
        .exports()
        .list(scoped.scope.id())
        .await?
        .iter()
        .map(|e| view(&e.value, now))
        .collect();
    Ok(Json(ExportList { items }))
}

async fn find(state: &AppState, workspace: WorkspaceId, id: &str) -> Result<Export> {
    let id = Uuid::parse_str(id).map_err(|_| Error::NotFound)?;
    Ok(state
        .exports()
        .get(workspace, id)
        .await?
        .ok_or(Error::NotFound)?
        .value)
}

/// One export: its status, and once ready its size, files and download link.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/exports/{exportId}", tag = "exports",
    params(("id" = String, Path, description = "Workspace id"), ("exportId" = String, Path, description = "Export id")),
    responses((status = 200, description = "The export", body = ExportView)))]
pub async fn get(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((_, export)): Path<(String, String)>,
) -> Result<Json<ExportView>> {
    let export = find(&state, scoped.scope.id(), &export).await?;
    Ok(Json(view(&export, OffsetDateTime::now_utc())))
}

/// Download the archive (`application/zip`), streamed. 409 until it is ready; 410 once it has
/// expired (the archive is then deleted). Every download is audited (`export.download`).
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/exports/{exportId}/download", tag = "exports",
    params(("id" = String, Path, description = "Workspace id"), ("exportId" = String, Path, description = "Export id")),
    responses((status = 200, description = "The zip archive", content_type = "application/zip"),
        (status = 409, description = "Not ready yet", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired: ask for a new export", body = Problem, content_type = "application/problem+json")))]
pub async fn download(
    State(state): State<AppState>,
    scoped: Scoped,
    request_id: Option<axum::Extension<RequestId>>,
    Path((_, export)): Path<(String, String)>,
) -> Result<Response> {
    let workspace = scoped.scope.id();
    let export = find(&state, workspace, &export).await?;
    let now = OffsetDateTime::now_utc();
    let record = |outcome: Outcome| AuditRecord {
        workspace,
        at: now,
        actor: Actor::User {
            id: scoped.caller.user,
        },
        action: "export.download".to_owned(),
        target: format!("export/{}", export.id),
        request_id: request_id
            .as_ref()
            .map(|r| r.0.0.clone())
            .unwrap_or_default(),
        outcome,
        changes: Vec::new(),
    };
    let container = crate::exports::container(&state)?;
    match export.status_at(now) {
        ExportStatus::Ready => {}
        ExportStatus::Expired => {
            crate::exports::expire(&state, &export).await;
            append(&state, &record(Outcome::Rejected)).await;
            return Err(Error::Gone(
                "this export has expired and its archive was deleted; request a new export"
                    .to_owned(),
            ));
        }
        ExportStatus::Failed => {
            return Err(Error::Conflict(
                "this export failed; request a new export".to_owned(),
            ));
        }
        ExportStatus::Queued | ExportStatus::Running => {
            return Err(Error::Conflict(
                "this export is not ready yet; poll it until its status is `ready`".to_owned(),
            ));
        }
    }
    let Some(blob) = container
        .open(&export.archive_blob())
        .await
        .map_err(|e| Error::Storage(e.into()))?
    else {
        return Err(Error::Internal(anyhow::anyhow!(
            "export {} is ready but its archive is missing",
            export.id
        )));
    };
    append(&state, &record(Outcome::Succeeded)).await;
    let mut response = Response::new(Body::from_stream(blob.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(size) = blob.size
        && let Ok(value) = HeaderValue::from_str(&size.to_string())
    {
        headers.insert(header::CONTENT_LENGTH, value);
    }
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", export.file_name()))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn append(state: &AppState, record: &AuditRecord) {
    if let Err(err) = state.audit().append(record).await {
        tracing::error!(error = %err, action = %record.action, workspace = %record.workspace, "audit record could not be written");
    }
}
