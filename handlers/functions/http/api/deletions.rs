//! Deleting a workspace, and the deletion's status.
//!
//! `DELETE /api/v1/workspaces/{id}` is the owner's, with a confirmation in the body: `confirm` must
//! name the workspace (its id or its exact current name), so a stray request or a wrong tab cannot
//! delete one. It answers `202 Accepted`: the workspace is stopped already (every route of it answers
//! 404 from now on, no sync or alert runs for it), and the rest is carried out by the `deletion`
//! queue function within the promised 7 days. `GET /api/v1/deletions/{deletionId}` shows the
//! progress to the person who asked (they are no longer a member, so no workspace route would).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::context::{JsonBody, Scoped, SignedIn, audit};
use crate::app::AppState;
use crate::domain::audit::Change;
use crate::domain::deletion::{Deletion, Reason};
use crate::domain::tenancy::WorkspaceId;
use crate::error::{Error, Result};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteWorkspace {
    /// The workspace's id or its exact current name: the confirmation.
    #[schema(example = "Contoso Cloud Costs")]
    pub confirm: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionView {
    /// The deletion's id: the deleted workspace's id.
    pub id: String,
    pub workspace: String,
    /// `inProgress` or `completed`.
    #[schema(example = "inProgress")]
    pub status: String,
    /// `workspaceDeleted` or `accountClosed`.
    pub reason: String,
    #[schema(example = "2026-05-01T09:30:00Z")]
    pub requested_at: String,
    /// The promise: completed by then.
    pub deadline: String,
    pub completed_at: Option<String>,
    /// The last step done (`stop`, `cancel-billing`, `table:costs`, …, `finish`).
    pub last_step: Option<String>,
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl DeletionView {
    pub fn new(d: &Deletion) -> Self {
        Self {
            id: d.workspace.to_string(),
            workspace: d.workspace.to_string(),
            status: d.status().to_owned(),
            reason: match d.reason {
                Reason::WorkspaceDeleted => "workspaceDeleted",
                Reason::AccountClosed => "accountClosed",
            }
            .to_owned(),
            requested_at: rfc3339(d.requested_at),
            deadline: rfc3339(d.requested_at + crate::domain::deletion::DEADLINE),
            completed_at: d.completed_at.map(rfc3339),
            last_step: d.done.clone(),
        }
    }
}

/// Delete the workspace (owners). Starts the deletion and answers at once; follow it at
/// `Location`.
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}", tag = "workspaces", request_body = DeleteWorkspace,
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 202, description = "Deletion started: the workspace is closed to everyone now and deleted within 7 days", body = DeletionView, headers(("Location" = String)))))]
pub async fn delete(
    State(state): State<AppState>,
    scoped: Scoped,
    JsonBody(body): JsonBody<DeleteWorkspace>,
) -> Result<Response> {
    let workspace = scoped.scope.id();
    let current = state
        .tenancy()
        .workspace(workspace)
        .await?
        .ok_or(Error::NotFound)?;
    let confirm = body.confirm.trim();
    if confirm != workspace.to_string() && confirm != current.value.name {
        return Err(Error::InvalidRequest(
            "confirm must be the workspace's id or its exact name".to_owned(),
        ));
    }
    let (deletion, _) = crate::deletion::start(
        &state,
        workspace,
        Reason::WorkspaceDeleted,
        scoped.caller.user,
    )
    .await?;
    audit(
        scoped.audit.as_ref(),
        format!("workspace/{workspace}"),
        vec![Change::new(
            "deletion",
            None,
            Some(deletion.status().to_owned()),
        )],
    );
    let mut response = (StatusCode::ACCEPTED, Json(DeletionView::new(&deletion))).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("/api/v1/deletions/{workspace}")) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A deletion's progress, for the person who asked for it.
#[utoipa::path(get, path = "/api/v1/deletions/{deletionId}", tag = "workspaces",
    params(("deletionId" = String, Path, description = "Deletion id (the deleted workspace's id)")),
    responses((status = 200, description = "The deletion", body = DeletionView)))]
pub async fn get(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<DeletionView>> {
    let workspace = WorkspaceId::parse(&id).ok_or(Error::NotFound)?;
    let deletion = state
        .deletions()
        .get(workspace)
        .await
        .map_err(|e| Error::Storage(e.into()))?
        // Anyone else's deletion does not exist, as far as they can tell.
        .filter(|d| {
            d.requested_by == signed.caller.user
                || d.requested_by
                    == crate::domain::deletion::pseudonym(workspace, &signed.caller.user)
        })
        .ok_or(Error::NotFound)?;
    Ok(Json(DeletionView::new(&deletion)))
}
