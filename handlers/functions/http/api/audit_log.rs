//! `GET /workspaces/{id}/audit`: the audit trail, newest first. There is no route that edits or
//! deletes it.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::IntoParams;

use super::context::{Scoped, decode_cursor, encode_cursor, page_limit};
use super::views::{AuditEntry, ChangeView, Paged, timestamp};
use crate::app::AppState;
use crate::domain::audit::{Actor, AuditFilter, AuditRecord, Outcome};
use crate::domain::store::{PageRequest, StoreError};
use crate::domain::tenancy::UserId;
use crate::error::{Error, Result};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Only records at or before this instant (RFC 3339).
    pub to: Option<String>,
    /// Only this action, or actions under it (`member` matches `member.role.change`).
    pub action: Option<String>,
    /// Only this actor's records (a member's user id).
    pub actor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

fn instant(name: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                Error::InvalidRequest(format!("`{name}` must be an RFC 3339 timestamp"))
            })
        })
        .transpose()
}

/// The workspace's audit trail, newest first, with filters.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/audit", tag = "audit",
    params(("id" = String, Path, description = "Workspace id"), AuditQuery),
    responses((status = 200, description = "Audit records", body = Paged<AuditEntry>)))]
pub async fn list(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Paged<AuditEntry>>> {
    let filter = AuditFilter {
        from: instant("from", query.from.as_deref())?,
        to: instant("to", query.to.as_deref())?,
        action: query.action.clone().filter(|a| !a.is_empty()),
        actor: match query.actor.as_deref() {
            None | Some("") => None,
            Some(a) => Some(
                UserId::parse(a)
                    .ok_or_else(|| Error::InvalidRequest("`actor` must be a user id".into()))?,
            ),
        },
    };
    let listing = format!("workspace:{}:audit", scoped.scope.id());
    let after = query
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&listing, c))
        .transpose()?;
    let has_cursor = after.is_some();
    let page = state
        .audit()
        .list(
            scoped.scope.id(),
            &filter,
            PageRequest {
                after,
                limit: page_limit(query.limit)?,
            },
        )
        .await
        .map_err(|err| match err {
            // The membership check already found the workspace: "not found" here is the store
            // refusing a position it never handed out, i.e. a forged or corrupted cursor, which is
            // the client's mistake (400), not a missing resource.
            StoreError::NotFound if has_cursor => {
                Error::InvalidRequest("the cursor is not valid for this listing".to_owned())
            }
            other => other.into(),
        })?;
    let items = page.items.into_iter().map(entry).collect();
    Ok(Json(Paged {
        items,
        next_cursor: page.next.map(|n| encode_cursor(&listing, &n)),
    }))
}

/// An audit record as the API (and a workspace export) shows it.
pub fn entry(r: AuditRecord) -> AuditEntry {
    AuditEntry {
        at: timestamp(r.at),
        actor: match r.actor {
            Actor::User { id } => id.to_string(),
            Actor::System { component } => format!("system:{component}"),
        },
        action: r.action,
        target: r.target,
        request_id: r.request_id,
        outcome: match r.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Denied => "denied",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
        .to_owned(),
        changes: r
            .changes
            .into_iter()
            .map(|c| ChangeView {
                field: c.field,
                from: c.from,
                to: c.to,
            })
            .collect(),
    }
}
