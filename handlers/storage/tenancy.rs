//! Tenancy on Table Storage.
//!
//! One table, `tenancy`, one partition per workspace (PartitionKey = workspace id): the workspace
//! row, its members (`member:<user>`) and its invitations (`invitation:<id>`). Keeping them in one
//! partition makes creating a workspace with its first owner a single atomic batch, and lets the
//! membership check, the one read every request makes, be a point read.
//!
//! A second table, `memberships` (PartitionKey = user id, RowKey = workspace id), indexes a user's
//! workspaces for `GET /me`. It is the one table keyed by a user rather than a workspace; it holds no
//! customer data beyond the role, and is never consulted to authorise anything.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::names;
use super::table::{Batch, Entity, IfMatch, Query, Table, UpdateMode, odata_string};
use super::{ETag, Storage, StorageError};
use crate::domain::store::{StoreError, Version, Versioned};
use crate::domain::tenancy::{
    Invitation, InvitationStatus, Member, Role, TenancyStore, UserId, Workspace, WorkspaceId,
    WorkspaceSettings,
};

const WORKSPACE_ROW: &str = "workspace";
const MEMBER_PREFIX: &str = "member:";
const INVITATION_PREFIX: &str = "invitation:";

#[derive(Clone)]
pub struct TableTenancyStore {
    storage: Storage,
}

impl TableTenancyStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn tenancy(&self) -> Result<Table, StoreError> {
        self.storage
            .tables()
            .table(names::TENANCY_TABLE)
            .map_err(to_store)
    }

    fn memberships(&self) -> Result<Table, StoreError> {
        self.storage
            .tables()
            .table(names::MEMBERSHIPS_TABLE)
            .map_err(to_store)
    }
}

pub(crate) fn to_store(err: StorageError) -> StoreError {
    match err {
        StorageError::Conflict(_) => StoreError::Conflict,
        StorageError::PreconditionFailed(_) => StoreError::VersionMismatch,
        StorageError::NotFound(_) => StoreError::NotFound,
        other => StoreError::Unavailable(other.into()),
    }
}

fn version(etag: Option<ETag>) -> Version {
    Version(etag.map(|e| e.as_str().to_owned()).unwrap_or_default())
}

fn if_match(expected: Option<&Version>) -> IfMatch {
    match expected {
        Some(v) => IfMatch::ETag(ETag::new(v.0.clone())),
        None => IfMatch::Any,
    }
}

/// Row keys of one kind within a workspace partition: `prefix` ≤ RowKey < `prefix` with its last
/// character incremented.
fn prefix_query(workspace: WorkspaceId, prefix: &str) -> Query {
    let upper = format!("{};", prefix.trim_end_matches(':'));
    Query::filter(format!(
        "PartitionKey eq {} and RowKey ge {} and RowKey lt {}",
        odata_string(&workspace.to_string()),
        odata_string(prefix),
        odata_string(&upper)
    ))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WorkspaceRow {
    name: String,
    display_currency: String,
    time_zone: String,
    /// JSON array of the cost tag keys (tables have no list type); absent on older rows.
    #[serde(default)]
    cost_tag_keys: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    created_by: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MemberRow {
    role: Role,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    joined_at: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MembershipRow {
    role: Role,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InvitationRow {
    email: String,
    role: Role,
    invited_by: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    status: InvitationStatus,
}

fn workspace_entity(workspace: &Workspace) -> Entity<WorkspaceRow> {
    Entity::new(
        workspace.id.to_string(),
        WORKSPACE_ROW,
        WorkspaceRow {
            name: workspace.name.clone(),
            display_currency: workspace.settings.display_currency.clone(),
            time_zone: workspace.settings.time_zone.clone(),
            cost_tag_keys: (!workspace.settings.cost_tag_keys.is_empty())
                .then(|| serde_json::to_string(&workspace.settings.cost_tag_keys).ok())
                .flatten(),
            created_at: workspace.created_at,
            created_by: workspace.created_by.to_string(),
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GuardRow {
    #[serde(with = "time::serde::rfc3339")]
    members_changed_at: OffsetDateTime,
}

/// A merge into the workspace row that only changes its ETag: the concurrency guard of
/// membership changes.
fn guard_entity(workspace: WorkspaceId) -> Entity<GuardRow> {
    Entity::new(
        workspace.to_string(),
        WORKSPACE_ROW,
        GuardRow {
            members_changed_at: OffsetDateTime::now_utc(),
        },
    )
}

fn member_entity(member: &Member) -> Entity<MemberRow> {
    Entity::new(
        member.workspace.to_string(),
        format!("{MEMBER_PREFIX}{}", member.user),
        MemberRow {
            role: member.role,
            display_name: member.display_name.clone(),
            email: member.email.clone(),
            joined_at: member.joined_at,
        },
    )
}

fn member_from(workspace: WorkspaceId, entity: Entity<MemberRow>) -> Option<Versioned<Member>> {
    let user = UserId::parse(entity.row_key.strip_prefix(MEMBER_PREFIX)?)?;
    Some(Versioned {
        version: version(entity.etag),
        value: Member {
            workspace,
            user,
            role: entity.properties.role,
            display_name: entity.properties.display_name,
            email: entity.properties.email,
            joined_at: entity.properties.joined_at,
        },
    })
}

fn invitation_entity(invitation: &Invitation) -> Entity<InvitationRow> {
    Entity::new(
        invitation.workspace.to_string(),
        format!("{INVITATION_PREFIX}{}", invitation.id),
        InvitationRow {
            email: invitation.email.clone(),
            role: invitation.role,
            invited_by: invitation.invited_by.to_string(),
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
            status: invitation.status,
        },
    )
}

fn invitation_from(
    workspace: WorkspaceId,
    entity: Entity<InvitationRow>,
) -> Option<Versioned<Invitation>> {
    let id = Uuid::parse_str(entity.row_key.strip_prefix(INVITATION_PREFIX)?).ok()?;
    let row = entity.properties;
    Some(Versioned {
        version: version(entity.etag),
        value: Invitation {
            id,
            workspace,
            email: row.email,
            role: row.role,
            invited_by: UserId::parse(&row.invited_by)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            status: row.status,
        },
    })
}

#[async_trait]
impl TenancyStore for TableTenancyStore {
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &Member,
    ) -> Result<Version, StoreError> {
        let mut batch = Batch::new(workspace.id.to_string());
        batch
            .insert(&workspace_entity(workspace))
            .map_err(to_store)?;
        batch.insert(&member_entity(owner)).map_err(to_store)?;
        let etags = self.tenancy()?.submit(batch).await.map_err(to_store)?;
        self.index_membership(owner).await?;
        Ok(version(etags.into_iter().next().flatten()))
    }

    async fn workspace(&self, id: WorkspaceId) -> Result<Option<Versioned<Workspace>>, StoreError> {
        let entity = self
            .tenancy()?
            .get::<WorkspaceRow>(&id.to_string(), WORKSPACE_ROW)
            .await
            .map_err(to_store)?;
        Ok(entity.and_then(|e| {
            let row = e.properties;
            Some(Versioned {
                version: version(e.etag),
                value: Workspace {
                    id,
                    name: row.name,
                    settings: WorkspaceSettings {
                        display_currency: row.display_currency,
                        time_zone: row.time_zone,
                        // A key Azure would refuse cannot have been stored; an unreadable list
                        // reads as none rather than hiding the workspace.
                        cost_tag_keys: row
                            .cost_tag_keys
                            .and_then(|k| serde_json::from_str(&k).ok())
                            .unwrap_or_default(),
                    },
                    created_at: row.created_at,
                    created_by: UserId::parse(&row.created_by)?,
                },
            })
        }))
    }

    async fn update_workspace(
        &self,
        workspace: &Workspace,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let etag = self
            .tenancy()?
            .update(
                &workspace_entity(workspace),
                UpdateMode::Replace,
                if_match(expected),
            )
            .await
            .map_err(to_store)?;
        Ok(version(Some(etag)))
    }

    async fn member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Option<Versioned<Member>>, StoreError> {
        let entity = self
            .tenancy()?
            .get::<MemberRow>(&workspace.to_string(), &format!("{MEMBER_PREFIX}{user}"))
            .await
            .map_err(to_store)?;
        Ok(entity.and_then(|e| member_from(workspace, e)))
    }

    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Member>>, StoreError> {
        let rows = self
            .tenancy()?
            .query_all::<MemberRow>(&prefix_query(workspace, MEMBER_PREFIX))
            .await
            .map_err(to_store)?;
        Ok(rows
            .into_iter()
            .filter_map(|e| member_from(workspace, e))
            .collect())
    }

    async fn add_member(&self, member: &Member) -> Result<Version, StoreError> {
        let etag = self
            .tenancy()?
            .insert(&member_entity(member))
            .await
            .map_err(to_store)?;
        self.index_membership(member).await?;
        Ok(version(Some(etag)))
    }

    async fn update_member(&self, member: &Member, guard: &Version) -> Result<(), StoreError> {
        let mut batch = Batch::new(member.workspace.to_string());
        batch
            .update(&member_entity(member), UpdateMode::Replace, IfMatch::Any)
            .map_err(to_store)?;
        batch
            .update(
                &guard_entity(member.workspace),
                UpdateMode::Merge,
                if_match(Some(guard)),
            )
            .map_err(to_store)?;
        self.tenancy()?.submit(batch).await.map_err(to_store)?;
        self.index_membership(member).await
    }

    async fn remove_member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        guard: &Version,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new(workspace.to_string());
        batch
            .delete(format!("{MEMBER_PREFIX}{user}"), IfMatch::Any)
            .map_err(to_store)?;
        batch
            .update(
                &guard_entity(workspace),
                UpdateMode::Merge,
                if_match(Some(guard)),
            )
            .map_err(to_store)?;
        // The membership row first: once it is gone, access is gone, whatever happens to the index.
        self.tenancy()?.submit(batch).await.map_err(to_store)?;
        self.memberships()?
            .delete(&user.to_string(), &workspace.to_string(), IfMatch::Any)
            .await
            .map_err(to_store)?;
        Ok(())
    }

    async fn workspaces_of(&self, user: UserId) -> Result<Vec<(WorkspaceId, Role)>, StoreError> {
        let rows = self
            .memberships()?
            .query_all::<MembershipRow>(&Query::partition(&user.to_string()))
            .await
            .map_err(to_store)?;
        Ok(rows
            .into_iter()
            .filter_map(|e| Some((WorkspaceId::parse(&e.row_key)?, e.properties.role)))
            .collect())
    }

    async fn create_invitation(&self, invitation: &Invitation) -> Result<Version, StoreError> {
        let etag = self
            .tenancy()?
            .insert(&invitation_entity(invitation))
            .await
            .map_err(to_store)?;
        Ok(version(Some(etag)))
    }

    async fn invitation(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Versioned<Invitation>>, StoreError> {
        let entity = self
            .tenancy()?
            .get::<InvitationRow>(&workspace.to_string(), &format!("{INVITATION_PREFIX}{id}"))
            .await
            .map_err(to_store)?;
        Ok(entity.and_then(|e| invitation_from(workspace, e)))
    }

    async fn invitations(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<Versioned<Invitation>>, StoreError> {
        let rows = self
            .tenancy()?
            .query_all::<InvitationRow>(&prefix_query(workspace, INVITATION_PREFIX))
            .await
            .map_err(to_store)?;
        Ok(rows
            .into_iter()
            .filter_map(|e| invitation_from(workspace, e))
            .collect())
    }

    async fn update_invitation(
        &self,
        invitation: &Invitation,
        expected: &Version,
    ) -> Result<Version, StoreError> {
        let etag = self
            .tenancy()?
            .update(
                &invitation_entity(invitation),
                UpdateMode::Replace,
                if_match(Some(expected)),
            )
            .await
            .map_err(to_store)?;
        Ok(version(Some(etag)))
    }
}

impl TableTenancyStore {
    async fn index_membership(&self, member: &Member) -> Result<(), StoreError> {
        let entity = Entity::new(
            member.user.to_string(),
            member.workspace.to_string(),
            MembershipRow { role: member.role },
        );
        self.memberships()?
            .upsert(&entity, UpdateMode::Replace)
            .await
            .map_err(to_store)?;
        Ok(())
    }
}
