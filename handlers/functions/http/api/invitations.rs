//! Invitations: invite by email, list, revoke, and accept as the invited user.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use uuid::Uuid;

use super::context::{JsonBody, Scoped, SignedIn, audit};
use super::views::{CreateInvitation, InvitationView, Paged, WorkspaceView};
use crate::app::AppState;
use crate::domain::audit::Change;
use crate::domain::store::StoreError;
use crate::domain::tenancy::{
    self, INVITATION_LIFETIME, Invitation, InvitationStatus, Member, Role, WorkspaceId,
};
use crate::error::{Error, Result};

fn invitation_id(params: &HashMap<String, String>) -> Result<Uuid> {
    params
        .get("invitationId")
        .and_then(|i| Uuid::parse_str(i).ok())
        .ok_or(Error::NotFound)
}

/// Invite someone by email. They accept as the signed-in user whose verified email matches.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/invitations", tag = "invitations", request_body = CreateInvitation,
    params(("id" = String, Path, description = "Workspace id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe creation: the same key replays the first answer for 24 h")),
    responses((status = 201, description = "Invited", body = InvitationView)))]
pub async fn create(
    State(state): State<AppState>,
    scoped: Scoped,
    JsonBody(body): JsonBody<CreateInvitation>,
) -> Result<Response> {
    let role = Role::parse(&body.role)
        .ok_or_else(|| Error::InvalidRequest(format!("unknown role `{}`", body.role)))?;
    Invitation::check_offer(scoped.scope.role(), role)?;
    let now = OffsetDateTime::now_utc();
    let invitation = Invitation {
        id: Uuid::new_v4(),
        workspace: scoped.scope.id(),
        email: tenancy::email(&body.email)?,
        role,
        invited_by: scoped.caller.user,
        created_at: now,
        expires_at: now + INVITATION_LIFETIME,
        status: InvitationStatus::Pending,
    };
    state.tenancy().create_invitation(&invitation).await?;
    // The address is personal data: the audit record names the invitation, not the email.
    audit(
        scoped.audit.as_ref(),
        format!("invitation/{}", invitation.id),
        vec![Change::new("role", None, Some(role.as_str().to_owned()))],
    );
    Ok((StatusCode::CREATED, Json(InvitationView::from(&invitation))).into_response())
}

/// Pending and past invitations of the workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/invitations", tag = "invitations",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Invitations", body = Paged<InvitationView>)))]
pub async fn list(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<Json<Paged<InvitationView>>> {
    let invitations = state.tenancy().invitations(scoped.scope.id()).await?;
    Ok(Json(Paged {
        items: invitations
            .iter()
            .map(|i| InvitationView::from(&i.value))
            .collect(),
        next_cursor: None,
    }))
}

/// Revoke a pending invitation.
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}/invitations/{invitationId}", tag = "invitations",
    params(("id" = String, Path, description = "Workspace id"), ("invitationId" = String, Path, description = "Invitation id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode> {
    let id = invitation_id(&params)?;
    let current = state
        .tenancy()
        .invitation(scoped.scope.id(), id)
        .await?
        .ok_or(Error::NotFound)?;
    if current.value.status != InvitationStatus::Pending {
        return Err(tenancy::TenancyError::InvitationNotPending.into());
    }
    let revoked = Invitation {
        status: InvitationStatus::Revoked,
        ..current.value
    };
    state
        .tenancy()
        .update_invitation(&revoked, &current.version)
        .await?;
    audit(
        scoped.audit.as_ref(),
        format!("invitation/{id}"),
        vec![Change::new(
            "status",
            Some("pending".into()),
            Some("revoked".into()),
        )],
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation as the signed-in user. Only a user whose **verified** email matches the
/// invitation may accept; anyone else gets 404 (the id is the capability, never a hint).
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/invitations/{invitationId}/accept", tag = "invitations",
    params(("id" = String, Path, description = "Workspace id"), ("invitationId" = String, Path, description = "Invitation id")),
    responses((status = 200, description = "Joined", body = WorkspaceView)))]
pub async fn accept(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<WorkspaceView>> {
    let workspace_id = params
        .get("id")
        .and_then(|w| WorkspaceId::parse(w))
        .ok_or(Error::NotFound)?;
    let id = invitation_id(&params)?;
    let invitation = state
        .tenancy()
        .invitation(workspace_id, id)
        .await?
        .ok_or(Error::NotFound)?;
    let now = OffsetDateTime::now_utc();
    match invitation.value.check_accept(&signed.caller, now) {
        Ok(()) => {}
        // Someone else holding the link learns nothing about the workspace.
        Err(tenancy::TenancyError::InvitationEmailMismatch) => return Err(Error::NotFound),
        Err(other) => return Err(other.into()),
    }
    let workspace = state
        .tenancy()
        .workspace(workspace_id)
        .await?
        .ok_or(Error::NotFound)?;
    let member = Member {
        workspace: workspace_id,
        user: signed.caller.user,
        role: invitation.value.role,
        display_name: signed.caller.display_name.clone(),
        email: signed.caller.verified_email.clone(),
        joined_at: now,
    };
    // Already a member: say so without using the invitation up.
    if state
        .tenancy()
        .member(workspace_id, signed.caller.user)
        .await?
        .is_some()
    {
        return Err(tenancy::TenancyError::AlreadyMember.into());
    }
    // Mark it used first: if that fails (a concurrent accept or revoke), nobody joins twice.
    let accepted = Invitation {
        status: InvitationStatus::Accepted,
        ..invitation.value.clone()
    };
    state
        .tenancy()
        .update_invitation(&accepted, &invitation.version)
        .await
        .map_err(|e| match e {
            StoreError::VersionMismatch => Error::Rule(tenancy::TenancyError::InvitationNotPending),
            other => other.into(),
        })?;
    match state.tenancy().add_member(&member).await {
        Ok(_) => {}
        Err(StoreError::Conflict) => return Err(tenancy::TenancyError::AlreadyMember.into()),
        Err(other) => return Err(other.into()),
    }
    if let Some(slot) = &signed.audit {
        slot.update(|d| {
            d.workspace = Some(workspace_id);
            d.target = Some(format!("invitation/{id}"));
            d.changes = vec![Change::new(
                "member",
                None,
                Some(member.role.as_str().to_owned()),
            )];
        });
    }
    Ok(Json(WorkspaceView::new(&workspace.value, member.role)))
}
