//! The API's JSON shapes (camelCase), separate from domain types so the wire format is a decision
//! made here, documented in the OpenAPI document, and never an accident of a domain refactor.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::domain::tenancy::{Invitation, InvitationStatus, Member, Role, Workspace};

// `YYYY-MM-DD` in JSON (the `time` crate's own serde form is a tuple).
time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

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
    /// Tag keys whose values costs are synced by (`groupBy=tag:<key>`).
    #[schema(example = json!(["costCenter", "env"]))]
    pub cost_tag_keys: Vec<String>,
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
            cost_tag_keys: workspace
                .settings
                .cost_tag_keys
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
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
    /// Tag keys to sync costs by (at most 5; each adds two queries per month to every sync).
    /// Adding a key makes the next sync of each subscription re-read its 13 months of history.
    #[schema(example = json!(["costCenter", "env"]))]
    pub cost_tag_keys: Option<Vec<String>>,
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

/// Connect a customer's Azure tenant through a service principal with read-only roles.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateConnection {
    #[schema(example = "Contoso production")]
    pub name: String,
    /// Directory (tenant) ID.
    #[schema(example = "72f988bf-86f1-41af-91ab-2d7cd011db47")]
    pub tenant_id: String,
    /// Application (client) ID of the service principal.
    #[schema(example = "0c7e4a3a-8d0c-4b8e-9b1e-6f1f3f7f2a11")]
    pub client_id: String,
    /// The client secret's **value**. Encrypted before it is stored; never returned.
    #[schema(example = "(secret value)")]
    pub client_secret: String,
    /// When the secret expires (from the app registration's Certificates & secrets page), so
    /// Sixpence can remind you before it does.
    #[schema(value_type = Option<String>, format = Date, example = "2027-05-01")]
    #[serde(default, with = "iso_date::option")]
    pub secret_expires_on: Option<time::Date>,
}

/// A new client secret for a connection.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSecret {
    #[schema(example = "(secret value)")]
    pub client_secret: String,
    #[schema(value_type = Option<String>, format = Date, example = "2027-11-01")]
    #[serde(default, with = "iso_date::option")]
    pub secret_expires_on: Option<time::Date>,
}

/// The subscriptions to sync (replaces the previous choice).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChooseSubscriptions {
    #[schema(example = json!(["8f7e6d5c-4b3a-2910-8f7e-6d5c4b3a2910"]))]
    pub subscription_ids: Vec<String>,
}

/// Why a connection does not work, and what to do.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionProblemView {
    /// `wrongTenant`, `wrongSecret`, `secretExpired`, `unknownApplication`, `credentialsRefused`,
    /// `accessRevoked`, `noSubscriptions`, `missingRole` or `unavailable`.
    #[schema(example = "secretExpired")]
    pub kind: String,
    #[schema(
        example = "The client secret has expired. Create a new secret under the app registration's Certificates & secrets page and update the connection."
    )]
    pub message: String,
    pub at: String,
}

/// Which Sixpence features a subscription gets with the roles the principal has.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionAccessView {
    pub subscription_id: String,
    pub display_name: Option<String>,
    /// Azure's state: `Enabled`, `Warned`, `PastDue`, `Disabled`, `Deleted`.
    pub azure_state: Option<String>,
    /// Costs can be synced (active, and Cost Management Reader or Reader).
    pub usable: bool,
    /// Chosen for sync.
    pub selected: bool,
    /// Features this subscription will lack: `costs`, `resources`, `advisor`.
    pub missing_features: Vec<String>,
    pub over_privileged: bool,
    /// The permissions beyond read, as granted.
    pub excess_actions: Vec<String>,
    /// What to change in the Azure portal, most important first.
    pub fixes: Vec<String>,
}

/// A connection to a customer's Azure tenant. The secret is never part of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub client_id: String,
    /// `created`, `verified`, `subscriptionsChosen`, `firstSyncDone`, `failed` or `revoked`.
    #[schema(example = "verified")]
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<ConnectionProblemView>,
    /// The principal can change something in the tenant, which Sixpence never needs.
    pub over_privileged: bool,
    /// What to change in the Azure portal for the connection as a whole.
    pub fixes: Vec<String>,
    pub subscriptions: Vec<SubscriptionAccessView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_expires_on: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_sync_at: Option<String>,
}

impl From<&crate::domain::connections::Connection> for ConnectionView {
    fn from(c: &crate::domain::connections::Connection) -> Self {
        use crate::domain::connections::{Feature, OVER_PRIVILEGED_FIX};
        let feature = |f: &Feature| {
            match f {
                Feature::Costs => "costs",
                Feature::Resources => "resources",
                Feature::Advisor => "advisor",
            }
            .to_owned()
        };
        let subscriptions: Vec<SubscriptionAccessView> = c
            .subscriptions
            .iter()
            .map(|s| SubscriptionAccessView {
                subscription_id: s.subscription_id.clone(),
                display_name: s.display_name.clone(),
                azure_state: s.azure_state.clone(),
                usable: s.usable(),
                selected: s.selected,
                missing_features: s.missing_features().iter().map(feature).collect(),
                over_privileged: s.over_privileged(),
                excess_actions: s.excess_actions.clone(),
                fixes: s.fixes().into_iter().map(str::to_owned).collect(),
            })
            .collect();
        let over_privileged = subscriptions.iter().any(|s| s.over_privileged);
        let mut fixes = Vec::new();
        if over_privileged {
            fixes.push(OVER_PRIVILEGED_FIX.to_owned());
        }
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            tenant_id: c.tenant_id.clone(),
            client_id: c.client_id.clone(),
            state: c.state().as_str().to_owned(),
            problem: c.problem().map(|p| ConnectionProblemView {
                kind: p.kind.as_str().to_owned(),
                message: p.message.clone(),
                at: timestamp(p.at),
            }),
            over_privileged,
            fixes,
            subscriptions,
            secret_expires_on: c.secret_expires_on.map(|d| d.to_string()),
            created_at: timestamp(c.created_at),
            verified_at: c.verified_at.map(timestamp),
            first_sync_at: c.first_sync_at.map(timestamp),
        }
    }
}

/// A sync asked for now: the subscriptions queued.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequested {
    #[schema(example = json!(["8f7e6d5c-4b3a-2910-8f7e-6d5c4b3a2910"]))]
    pub subscriptions: Vec<String>,
    /// How many such requests a workspace may make an hour.
    #[schema(example = 4)]
    pub per_hour: u32,
}

/// A resource of a connected subscription, as Resource Graph last reported it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceView {
    #[schema(
        example = "/subscriptions/5b7c9e1f-3a2d-4e6b-8c0a-9d1e2f3a4b5c/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-01"
    )]
    pub id: String,
    #[schema(example = "vm-web-01")]
    pub name: String,
    /// Lower case, as Resource Graph reports it.
    #[schema(example = "microsoft.compute/virtualmachines")]
    pub r#type: String,
    #[schema(example = "5b7c9e1f-3a2d-4e6b-8c0a-9d1e2f3a4b5c")]
    pub subscription_id: String,
    /// Lower case; absent for subscription-level resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "rg-web")]
    pub resource_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "uksouth")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Standard_D4s_v5")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Standard")]
    pub sku_tier: Option<String>,
    #[schema(example = json!({"env": "prod", "cost-centre": "cc-1042"}))]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Virtual machines only: `running`, `deallocated`, `stopped`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "running")]
    pub power_state: Option<String>,
}

impl From<crate::domain::inventory::InventoryItem> for ResourceView {
    fn from(item: crate::domain::inventory::InventoryItem) -> Self {
        Self {
            id: item.id,
            name: item.name,
            r#type: item.resource_type,
            subscription_id: item.subscription,
            resource_group: item.resource_group,
            location: item.location,
            sku: item.sku,
            sku_tier: item.sku_tier,
            tags: item.tags,
            power_state: item.power_state,
        }
    }
}

/// What a recommendation says it would save.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavingsView {
    /// Per month.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 182.4)]
    pub amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 2188.8)]
    pub annual_amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "GBP")]
    pub currency: Option<String>,
}

/// An Azure Advisor recommendation for a connected subscription.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationView {
    #[schema(
        example = "/subscriptions/5b7c9e1f-3a2d-4e6b-8c0a-9d1e2f3a4b5c/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-01/providers/Microsoft.Advisor/recommendations/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    )]
    pub id: String,
    #[schema(example = "5b7c9e1f-3a2d-4e6b-8c0a-9d1e2f3a4b5c")]
    pub subscription_id: String,
    /// `Cost`, `HighAvailability`, `Security`, `Performance`, `OperationalExcellence`; absent for a
    /// category this version does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Cost")]
    pub category: Option<String>,
    /// `High`, `Medium`, `Low`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "High")]
    pub impact: Option<String>,
    /// The impacted resource's type.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Microsoft.Compute/virtualMachines")]
    pub impacted_type: Option<String>,
    /// The impacted resource's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "vm-web-01")]
    pub impacted_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "/subscriptions/5b7c9e1f-3a2d-4e6b-8c0a-9d1e2f3a4b5c/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-01"
    )]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Right-size or shutdown underutilized virtual machines")]
    pub problem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Right-size or shutdown underutilized virtual machines")]
    pub solution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savings: Option<SavingsView>,
    /// As Advisor sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-11-20T04:12:09.1234567Z")]
    pub last_updated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://aka.ms/azure-advisor")]
    pub learn_more_link: Option<String>,
}

impl From<crate::domain::inventory::RecommendationItem> for RecommendationView {
    fn from(item: crate::domain::inventory::RecommendationItem) -> Self {
        Self {
            id: item.id,
            subscription_id: item.subscription,
            category: item.category.map(|c| c.as_str().to_owned()),
            impact: item.impact.map(|i| i.as_str().to_owned()),
            impacted_type: item.impacted_type,
            impacted_name: item.impacted_name,
            resource_id: item.resource_id,
            problem: item.problem,
            solution: item.solution,
            savings: item.savings.map(|s| SavingsView {
                amount: s.amount,
                annual_amount: s.annual_amount,
                currency: s.currency,
            }),
            last_updated: item.last_updated,
            learn_more_link: item.learn_more_link,
        }
    }
}

/// Potential savings of the listed recommendations in one currency.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavingsTotalView {
    #[schema(example = "GBP")]
    pub currency: String,
    /// Per month, to the cent.
    #[schema(example = 1240.55)]
    pub amount: f64,
    #[schema(example = 14886.6)]
    pub annual_amount: f64,
    /// Recommendations that contributed.
    #[schema(example = 7)]
    pub recommendations: usize,
}

/// Recommendations matching the filters, and what the ones with savings would save, per currency.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationList {
    pub items: Vec<RecommendationView>,
    pub total_savings: Vec<SavingsTotalView>,
}
