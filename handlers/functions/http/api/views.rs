//! The API's JSON shapes (camelCase), separate from domain types so the wire format is a decision
//! made here, documented in the OpenAPI document, and never an accident of a domain refactor.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::domain::tenancy::{Invitation, InvitationStatus, Member, Role, Workspace};

pub fn timestamp(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// A page of a listing. Pass `nextCursor` back as `cursor` for the next page; absent on the last.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paged<T: ToSchema> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    #[schema(example = "3f0d8a52-7a0e-4c4b-9a7e-2b1d4f6c8e90")]
    pub id: String,
    #[schema(example = "Contoso FinOps")]
    pub name: String,
    #[schema(example = "GBP")]
    pub display_currency: String,
    #[schema(example = "Europe/London")]
    pub time_zone: String,
    #[schema(example = "2026-11-20T09:30:00Z")]
    pub created_at: String,
    /// The caller's role in this workspace.
    #[schema(example = "owner")]
    pub role: String,
}

impl WorkspaceView {
    pub fn new(workspace: &Workspace, role: Role) -> Self {
        Self {
            id: workspace.id.to_string(),
            name: workspace.name.clone(),
            display_currency: workspace.settings.display_currency.clone(),
            time_zone: workspace.settings.time_zone.clone(),
            created_at: timestamp(workspace.created_at),
            role: role.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkspace {
    #[schema(example = "Contoso FinOps")]
    pub name: String,
    /// ISO 4217 code; default GBP.
    #[schema(example = "GBP")]
    pub display_currency: Option<String>,
    /// IANA time zone whose midnight starts a report day; default Europe/London.
    #[schema(example = "Europe/London")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWorkspace {
    #[schema(example = "Contoso Cloud Costs")]
    pub name: Option<String>,
    #[schema(example = "EUR")]
    pub display_currency: Option<String>,
    #[schema(example = "Europe/Dublin")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// `<tenant id>.<object id>` of the member's Entra ID account.
    #[schema(
        example = "72f988bf-86f1-41af-91ab-2d7cd011db47.9c5e1d3a-2f4b-4c8d-8e7f-1a2b3c4d5e6f"
    )]
    pub user_id: String,
    #[schema(example = "Alice Smith")]
    pub display_name: Option<String>,
    #[schema(example = "alice@contoso.com")]
    pub email: Option<String>,
    #[schema(example = "analyst")]
    pub role: String,
    #[schema(example = "2026-11-20T09:30:00Z")]
    pub joined_at: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        Self {
            user_id: m.user.to_string(),
            display_name: m.display_name.clone(),
            email: m.email.clone(),
            role: m.role.as_str().to_owned(),
            joined_at: timestamp(m.joined_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeRole {
    /// `owner`, `admin`, `analyst` or `viewer`.
    #[schema(example = "admin")]
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    #[schema(example = "5b7c9e1f-3a2d-4e6b-8c0a-9d1e2f3a4b5c")]
    pub id: String,
    #[schema(example = "3f0d8a52-7a0e-4c4b-9a7e-2b1d4f6c8e90")]
    pub workspace_id: String,
    #[schema(example = "bob@fabrikam.com")]
    pub email: String,
    #[schema(example = "viewer")]
    pub role: String,
    /// `pending`, `accepted` or `revoked`.
    #[schema(example = "pending")]
    pub status: String,
    #[schema(example = "2026-11-27T09:30:00Z")]
    pub expires_at: String,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        Self {
            id: i.id.to_string(),
            workspace_id: i.workspace.to_string(),
            email: i.email.clone(),
            role: i.role.as_str().to_owned(),
            status: match i.status {
                InvitationStatus::Pending => "pending",
                InvitationStatus::Accepted => "accepted",
                InvitationStatus::Revoked => "revoked",
            }
            .to_owned(),
            expires_at: timestamp(i.expires_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInvitation {
    #[schema(example = "bob@fabrikam.com")]
    pub email: String,
    #[schema(example = "viewer")]
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeView {
    #[schema(
        example = "72f988bf-86f1-41af-91ab-2d7cd011db47.9c5e1d3a-2f4b-4c8d-8e7f-1a2b3c4d5e6f"
    )]
    pub user_id: String,
    #[schema(example = "Alice Smith")]
    pub display_name: Option<String>,
    #[schema(example = "alice@contoso.com")]
    pub email: Option<String>,
    /// Whether Entra ID vouches for `email` (invitations are accepted only against a verified one).
    pub email_verified: bool,
    pub workspaces: Vec<WorkspaceSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSummary {
    #[schema(example = "3f0d8a52-7a0e-4c4b-9a7e-2b1d4f6c8e90")]
    pub id: String,
    #[schema(example = "owner")]
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    #[schema(example = "2026-11-20T09:30:00Z")]
    pub at: String,
    /// `<tenant>.<object>` for a person, `system:<component>` for Sixpence itself.
    #[schema(
        example = "72f988bf-86f1-41af-91ab-2d7cd011db47.9c5e1d3a-2f4b-4c8d-8e7f-1a2b3c4d5e6f"
    )]
    pub actor: String,
    #[schema(example = "member.role.change")]
    pub action: String,
    #[schema(
        example = "/api/v1/workspaces/3f0d8a52-7a0e-4c4b-9a7e-2b1d4f6c8e90/members/72f988bf-86f1-41af-91ab-2d7cd011db47.9c5e1d3a-2f4b-4c8d-8e7f-1a2b3c4d5e6f"
    )]
    pub target: String,
    #[schema(example = "0f8fad5b-d9cb-469f-a165-70867728950e")]
    pub request_id: String,
    /// `succeeded`, `denied`, `rejected` or `failed`.
    #[schema(example = "succeeded")]
    pub outcome: String,
    pub changes: Vec<ChangeView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeView {
    #[schema(example = "role")]
    pub field: String,
    #[schema(example = "viewer")]
    pub from: Option<String>,
    #[schema(example = "admin")]
    pub to: Option<String>,
}
