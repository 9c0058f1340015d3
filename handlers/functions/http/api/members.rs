//! Members: list, change a role, remove, leave.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::context::{JsonBody, Scoped, audit, decode_cursor, encode_cursor, page_limit};
use super::views::{ChangeRole, MemberView, Paged};
use super::workspaces::PageQuery;
use crate::app::AppState;
use crate::domain::audit::Change;
use crate::domain::store::Version;
use crate::domain::tenancy::{self, Member, Role, UserId, WorkspaceScope};
use crate::error::{Error, Result};

/// The workspace's members, its version (the guard of membership changes) and its owner count.
async fn roster(state: &AppState, scope: &WorkspaceScope) -> Result<(Vec<Member>, Version, usize)> {
    let (workspace, members) = tokio::try_join!(
        state.tenancy().workspace(scope.id()),
        state.tenancy().members(scope.id())
    )?;
    let workspace = workspace.ok_or(Error::NotFound)?;
    let members: Vec<Member> = members.into_iter().map(|m| m.value).collect();
    let owners = members.iter().filter(|m| m.role == Role::Owner).count();
    Ok((members, workspace.version, owners))
}

fn target_user(params: &HashMap<String, String>) -> Result<UserId> {
    params
        .get("userId")
        .and_then(|u| UserId::parse(u))
        .ok_or(Error::NotFound)
}

/// The workspace's members.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/members", tag = "members",
    params(("id" = String, Path, description = "Workspace id"), PageQuery),
    responses((status = 200, description = "Members", body = Paged<MemberView>)))]
pub async fn list(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
) -> Result<Json<Paged<MemberView>>> {
    let limit = page_limit(page.limit)? as usize;
    let listing = format!("workspace:{}:members", scoped.scope.id());
    let offset: usize = match &page.cursor {
        Some(cursor) => decode_cursor(&listing, cursor)?
            .parse()
            .map_err(|_| Error::InvalidRequest("invalid cursor".into()))?,
        None => 0,
    };
    let members = state.tenancy().members(scoped.scope.id()).await?;
    let items: Vec<MemberView> = members
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| MemberView::from(&m.value))
        .collect();
    let next = offset + limit;
    let next_cursor = (next < members.len()).then(|| encode_cursor(&listing, &next.to_string()));
    Ok(Json(Paged { items, next_cursor }))
}

/// Change a member's role. Only an owner may grant or take away the owner role; the last owner
/// cannot be demoted.
#[utoipa::path(patch, path = "/api/v1/workspaces/{id}/members/{userId}", tag = "members", request_body = ChangeRole,
    params(("id" = String, Path, description = "Workspace id"), ("userId" = String, Path, description = "Member's user id")),
    responses((status = 200, description = "Updated", body = MemberView)))]
pub async fn change_role(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
    JsonBody(body): JsonBody<ChangeRole>,
) -> Result<Json<MemberView>> {
    let user = target_user(&params)?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| Error::InvalidRequest(format!("unknown role `{}`", body.role)))?;
    let (members, guard, owners) = roster(&state, &scoped.scope).await?;
    let target = members
        .into_iter()
        .find(|m| m.user == user)
        .ok_or(Error::NotFound)?;
    tenancy::check_role_change(scoped.scope.role(), &target, Some(role), owners)?;
    let updated = Member {
        role,
        ..target.clone()
    };
    state
        .tenancy()
        .update_member(&updated, &guard)
        .await
        .map_err(conflict_retry)?;
    audit(
        scoped.audit.as_ref(),
        format!("member/{user}"),
        vec![Change::new(
            "role",
            Some(target.role.as_str().to_owned()),
            Some(role.as_str().to_owned()),
        )],
    );
    Ok(Json(MemberView::from(&updated)))
}

/// Remove a member. Only an owner may remove an owner; the last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}/members/{userId}", tag = "members",
    params(("id" = String, Path, description = "Workspace id"), ("userId" = String, Path, description = "Member's user id")),
    responses((status = 204, description = "Removed")))]
pub async fn remove(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode> {
    let user = target_user(&params)?;
    let (members, guard, owners) = roster(&state, &scoped.scope).await?;
    let target = members
        .into_iter()
        .find(|m| m.user == user)
        .ok_or(Error::NotFound)?;
    tenancy::check_role_change(scoped.scope.role(), &target, None, owners)?;
    state
        .tenancy()
        .remove_member(scoped.scope.id(), user, &guard)
        .await
        .map_err(conflict_retry)?;
    audit(
        scoped.audit.as_ref(),
        format!("member/{user}"),
        vec![Change::new(
            "role",
            Some(target.role.as_str().to_owned()),
            None,
        )],
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Leave the workspace. The last owner must hand over ownership first.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/leave", tag = "members",
    params(("id" = String, Path, description = "Workspace id")), responses((status = 204, description = "Left")))]
pub async fn leave(State(state): State<AppState>, scoped: Scoped) -> Result<StatusCode> {
    let (members, guard, owners) = roster(&state, &scoped.scope).await?;
    let me = members
        .into_iter()
        .find(|m| m.user == scoped.caller.user)
        .ok_or(Error::NotFound)?;
    tenancy::check_leave(&me, owners)?;
    state
        .tenancy()
        .remove_member(scoped.scope.id(), me.user, &guard)
        .await
        .map_err(conflict_retry)?;
    audit(
        scoped.audit.as_ref(),
        format!("member/{}", me.user),
        vec![Change::new("role", Some(me.role.as_str().to_owned()), None)],
    );
    Ok(StatusCode::NO_CONTENT)
}

/// A concurrent membership change won the guard: the client should read again and retry.
fn conflict_retry(err: crate::domain::store::StoreError) -> Error {
    match err {
        crate::domain::store::StoreError::VersionMismatch => Error::Conflict(
            "the members changed at the same time; read them again and retry".to_owned(),
        ),
        other => other.into(),
    }
}
