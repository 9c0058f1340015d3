//! Workspaces: create, list mine, read, rename and configure; and `GET /me`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use super::context::{
    JsonBody, Scoped, SignedIn, audit, decode_cursor, encode_cursor, etag, if_match, page_limit,
};
use super::views::{
    CreateWorkspace, MeView, Paged, UpdateWorkspace, WorkspaceSummary, WorkspaceView,
};
use crate::app::AppState;
use crate::domain::audit::Change;
use crate::domain::tenancy::{self, Member, Role, Workspace, WorkspaceId, WorkspaceSettings};
use crate::error::{Error, Result};

pub(super) fn with_etag(
    mut response: Response,
    version: &crate::domain::store::Version,
) -> Response {
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `201 Created` with the new resource's body, its `Location` and its `ETag`.
pub(super) fn created(
    location: &str,
    body: impl serde::Serialize,
    version: &crate::domain::store::Version,
) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    with_etag(response, version)
}

/// Create a workspace; the caller becomes its owner.
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", request_body = CreateWorkspace,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe creation: the same key replays the first answer for 24 h")),
    responses((status = 201, description = "Created", body = WorkspaceView, headers(("ETag" = String), ("Location" = String)))))]
pub async fn create(
    State(state): State<AppState>,
    signed: SignedIn,
    JsonBody(body): JsonBody<CreateWorkspace>,
) -> Result<Response> {
    let defaults = WorkspaceSettings::default();
    let workspace = Workspace {
        id: WorkspaceId::new(),
        name: tenancy::workspace_name(&body.name)?,
        settings: WorkspaceSettings {
            display_currency: tenancy::currency(
                body.display_currency
                    .as_deref()
                    .unwrap_or(&defaults.display_currency),
            )?,
            time_zone: tenancy::time_zone(
                body.time_zone.as_deref().unwrap_or(&defaults.time_zone),
            )?,
            cost_tag_keys: Vec::new(),
        },
        created_at: OffsetDateTime::now_utc(),
        created_by: signed.caller.user,
    };
    let owner = Member {
        workspace: workspace.id,
        user: signed.caller.user,
        role: Role::Owner,
        display_name: signed.caller.display_name.clone(),
        email: signed
            .principal
            .email
            .as_ref()
            .map(|e| e.address().to_owned()),
        joined_at: workspace.created_at,
    };
    let version = state.tenancy().create_workspace(&workspace, &owner).await?;
    if let Some(slot) = &signed.audit {
        slot.update(|d| {
            d.workspace = Some(workspace.id);
            d.target = Some(format!("workspace/{}", workspace.id));
            d.changes = vec![Change::new("name", None, Some(workspace.name.clone()))];
        });
    }
    Ok(created(
        &format!("/api/v1/workspaces/{}", workspace.id),
        WorkspaceView::new(&workspace, Role::Owner),
        &version,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The workspaces the caller belongs to.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", params(PageQuery),
    responses((status = 200, description = "The caller's workspaces", body = Paged<WorkspaceView>)))]
pub async fn list(
    State(state): State<AppState>,
    signed: SignedIn,
    Query(page): Query<PageQuery>,
) -> Result<Json<Paged<WorkspaceView>>> {
    let limit = page_limit(page.limit)? as usize;
    let listing = format!("user:{}", signed.caller.user);
    let offset: usize = match &page.cursor {
        Some(cursor) => decode_cursor(&listing, cursor)?
            .parse()
            .map_err(|_| Error::InvalidRequest("invalid cursor".into()))?,
        None => 0,
    };
    let mut memberships = state.tenancy().workspaces_of(signed.caller.user).await?;
    memberships.sort_by_key(|(id, _)| *id);
    let mut items = Vec::new();
    for (id, _) in memberships.iter().skip(offset).take(limit) {
        // The index only lists; the membership row decides (it may have been removed since).
        let (Some(member), Some(workspace)) = tokio::try_join!(
            state.tenancy().member(*id, signed.caller.user),
            state.tenancy().workspace(*id)
        )?
        else {
            continue;
        };
        items.push(WorkspaceView::new(&workspace.value, member.value.role));
    }
    let next = offset + limit;
    let next_cursor =
        (next < memberships.len()).then(|| encode_cursor(&listing, &next.to_string()));
    Ok(Json(Paged { items, next_cursor }))
}

/// Read a workspace. The `ETag` is what `If-Match` takes on update.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}", tag = "workspaces", params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "The workspace", body = WorkspaceView, headers(("ETag" = String)))))]
pub async fn get(State(state): State<AppState>, scoped: Scoped) -> Result<Response> {
    let workspace = state
        .tenancy()
        .workspace(scoped.scope.id())
        .await?
        .ok_or(Error::NotFound)?;
    let response = Json(WorkspaceView::new(&workspace.value, scoped.scope.role())).into_response();
    Ok(with_etag(response, &workspace.version))
}

/// Rename or configure a workspace (display currency, report time zone, cost tag keys).
///
/// The update is conditional on the version read; with `If-Match` it is conditional on yours. Member
/// changes also move the workspace's `ETag` (they are guarded by it), so read the workspace again after
/// changing members.
#[utoipa::path(patch, path = "/api/v1/workspaces/{id}", tag = "workspaces", request_body = UpdateWorkspace,
    params(("id" = String, Path, description = "Workspace id"), ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 if it changed since")),
    responses((status = 200, description = "Updated", body = WorkspaceView, headers(("ETag" = String)))))]
pub async fn update(
    State(state): State<AppState>,
    scoped: Scoped,
    headers: HeaderMap,
    JsonBody(body): JsonBody<UpdateWorkspace>,
) -> Result<Response> {
    let current = state
        .tenancy()
        .workspace(scoped.scope.id())
        .await?
        .ok_or(Error::NotFound)?;
    let expected = if_match(&headers);
    if expected
        .as_ref()
        .is_some_and(|v| etag(v) != etag(&current.version))
    {
        return Err(Error::PreconditionFailed);
    }
    let mut next = current.value.clone();
    let mut changes = Vec::new();
    if let Some(name) = &body.name {
        next.name = tenancy::workspace_name(name)?;
        if next.name != current.value.name {
            changes.push(Change::new(
                "name",
                Some(current.value.name.clone()),
                Some(next.name.clone()),
            ));
        }
    }
    if let Some(currency) = &body.display_currency {
        next.settings.display_currency = tenancy::currency(currency)?;
        if next.settings.display_currency != current.value.settings.display_currency {
            changes.push(Change::new(
                "displayCurrency",
                Some(current.value.settings.display_currency.clone()),
                Some(next.settings.display_currency.clone()),
            ));
        }
    }
    if let Some(zone) = &body.time_zone {
        next.settings.time_zone = tenancy::time_zone(zone)?;
        if next.settings.time_zone != current.value.settings.time_zone {
            changes.push(Change::new(
                "timeZone",
                Some(current.value.settings.time_zone.clone()),
                Some(next.settings.time_zone.clone()),
            ));
        }
    }
    if let Some(keys) = &body.cost_tag_keys {
        next.settings.cost_tag_keys = tenancy::cost_tag_keys(keys)?;
        if next.settings.cost_tag_keys != current.value.settings.cost_tag_keys {
            let list = |keys: &[crate::domain::costs::TagKey]| {
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            changes.push(Change::new(
                "costTagKeys",
                Some(list(&current.value.settings.cost_tag_keys)),
                Some(list(&next.settings.cost_tag_keys)),
            ));
        }
    }
    // Conditional on the version just read, so a concurrent update is never silently overwritten.
    let version = state
        .tenancy()
        .update_workspace(&next, Some(&current.version))
        .await?;
    audit(
        scoped.audit.as_ref(),
        format!("workspace/{}", next.id),
        changes,
    );
    Ok(with_etag(
        Json(WorkspaceView::new(&next, scoped.scope.role())).into_response(),
        &version,
    ))
}

/// The signed-in user and the workspaces they belong to.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", responses((status = 200, description = "The caller", body = MeView)))]
pub async fn me(State(state): State<AppState>, signed: SignedIn) -> Result<Json<MeView>> {
    let mut workspaces = state.tenancy().workspaces_of(signed.caller.user).await?;
    workspaces.sort_by_key(|(id, _)| *id);
    Ok(Json(MeView {
        user_id: signed.caller.user.to_string(),
        display_name: signed.caller.display_name.clone(),
        email: signed
            .principal
            .email
            .as_ref()
            .map(|e| e.address().to_owned()),
        email_verified: signed.principal.verified_email().is_some(),
        workspaces: workspaces
            .into_iter()
            .map(|(id, role)| WorkspaceSummary {
                id: id.to_string(),
                role: role.as_str().to_owned(),
            })
            .collect(),
    }))
}
