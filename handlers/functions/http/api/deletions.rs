//! Deleting a workspace, and the deletion's status.
//!
//! `DELETE /api/v1/workspaces/{id}` is the owner's, with a confirmation in the body: `confirm` must
//! name the workspace (its id or its exact current name), so a stray request or a wrong tab cannot
//! delete one. It answers `202 Accepted`: the workspace is stopped already (every route of it answers
//! 404 from now on, no sync or alert runs for it), and the rest is carried out by the `deletion`
//! queue function within the promised 7 days. `GET /api/v1/deletions/{deletionId}` shows the
//! progress to the person who asked (they are no longer a member, so no workspace route would).
//!
//! `DELETE /api/v1/me` closes the caller's account, confirmed by their email address or user id:
//! every membership ends, and each workspace the caller is the only member of is deleted as above.
//! A workspace other people still use is never deleted as a side effect of one person leaving: if
//! the caller is its only owner, the whole request is refused (409, naming the workspaces) until
//! they hand ownership over or delete it themselves, and nothing is changed.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::context::{JsonBody, RequestId, Scoped, SignedIn, audit};
use crate::app::AppState;
use crate::domain::audit::{Actor, AuditRecord, Change, Outcome};
use crate::domain::deletion::{Deletion, Reason};
use crate::domain::tenancy::{Role, WorkspaceId};
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloseAccount {
    /// The caller's email address or user id: the confirmation.
    #[schema(example = "alex@contoso.example")]
    pub confirm: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountClosed {
    /// Workspaces the caller was the only member of: deleted, each followed at
    /// `/api/v1/deletions/{id}`.
    pub deleted: Vec<DeletionView>,
    /// Workspaces the caller left (their data stays with the other members).
    pub left: Vec<String>,
}

/// What closing the account does to one of the caller's workspaces.
enum Fate {
    Delete,
    Leave(
        crate::domain::tenancy::Member,
        crate::domain::store::Version,
    ),
}

/// Close the caller's account: leave every workspace, and delete those nobody else belongs to.
/// Refused with 409 while the caller is the only owner of a workspace others use.
#[utoipa::path(delete, path = "/api/v1/me", tag = "workspaces", request_body = CloseAccount,
    responses((status = 202, description = "Account closed: memberships ended, sole workspaces being deleted", body = AccountClosed)))]
pub async fn close_account(
    State(state): State<AppState>,
    signed: SignedIn,
    request_id: Option<Extension<RequestId>>,
    JsonBody(body): JsonBody<CloseAccount>,
) -> Result<Response> {
    let user = signed.caller.user;
    let confirm = body.confirm.trim();
    let email = signed.principal.email.as_ref().map(|e| e.address());
    if confirm != user.to_string() && !email.is_some_and(|e| e.eq_ignore_ascii_case(confirm)) {
        return Err(Error::InvalidRequest(
            "confirm must be your email address or your user id".to_owned(),
        ));
    }
    // Decide every workspace first, so a refusal changes nothing.
    let mut plan = Vec::new();
    let mut blocked = Vec::new();
    for (workspace, _) in state.tenancy().workspaces_of(user).await? {
        let (current, members) = tokio::try_join!(
            state.tenancy().workspace(workspace),
            state.tenancy().members(workspace)
        )?;
        let (Some(current), Some(me)) = (
            current,
            members
                .iter()
                .find(|m| m.value.user == user)
                .map(|m| m.value.clone()),
        ) else {
            continue; // The listing index is behind: not a member any more.
        };
        let owners = members
            .iter()
            .filter(|m| m.value.role == Role::Owner)
            .count();
        if members.len() == 1 {
            plan.push((workspace, Fate::Delete));
        } else if crate::domain::tenancy::check_leave(&me, owners).is_err() {
            blocked.push(workspace.to_string());
        } else {
            plan.push((workspace, Fate::Leave(me, current.version)));
        }
    }
    if !blocked.is_empty() {
        blocked.sort();
        return Err(Error::Conflict(format!(
            "you are the only owner of workspaces other people use ({}); make someone else an owner or delete them first",
            blocked.join(", ")
        )));
    }
    let request_id = request_id.map(|Extension(r)| r.0).unwrap_or_default();
    let mut closed = AccountClosed {
        deleted: Vec::new(),
        left: Vec::new(),
    };
    for (workspace, fate) in plan {
        let change = match fate {
            Fate::Delete => {
                let (deletion, _) =
                    crate::deletion::start(&state, workspace, Reason::AccountClosed, user).await?;
                closed.deleted.push(DeletionView::new(&deletion));
                Change::new("deletion", None, Some(deletion.status().to_owned()))
            }
            Fate::Leave(me, guard) => {
                state
                    .tenancy()
                    .remove_member(workspace, user, &guard)
                    .await
                    .map_err(|e| match e {
                        crate::domain::store::StoreError::VersionMismatch => Error::Conflict(
                            "the members of a workspace changed at the same time; retry".to_owned(),
                        ),
                        other => other.into(),
                    })?;
                closed.left.push(workspace.to_string());
                Change::new("role", Some(me.role.as_str().to_owned()), None)
            }
        };
        // One record in each workspace's own trail (the route's single record cannot span them).
        let record = AuditRecord {
            workspace,
            at: time::OffsetDateTime::now_utc(),
            actor: Actor::User { id: user },
            action: "account.close".to_owned(),
            target: format!("member/{user}"),
            request_id: request_id.clone(),
            outcome: Outcome::Succeeded,
            changes: vec![change],
        };
        if let Err(err) = state.audit().append(&record).await {
            tracing::error!(error = %err, workspace = %workspace, "audit record could not be written");
        }
    }
    Ok((StatusCode::ACCEPTED, Json(closed)).into_response())
}
