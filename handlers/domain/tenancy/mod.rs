//! Tenancy: workspaces, their members and roles, invitations, and the rules that keep them safe.
//!
//! A workspace is the unit of isolation. Code reaches a workspace's data only through a
//! [`WorkspaceScope`], which only [`authorize`] hands out, after checking the caller's membership and
//! role; every stored key of customer data starts with [`WorkspaceScope::id`].

mod role;

use super::costs::{TagKey, validate_tag_keys};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::store::{StoreError, Version, Versioned};

pub use role::{Permission, Role};

/// A workspace's id. Opaque to clients; a UUID so ids cannot be guessed or enumerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkspaceId(Uuid);

impl WorkspaceId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses a client-supplied id. Anything that is not a UUID is simply not a workspace.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().map(Self)
    }
}

impl Default for WorkspaceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A person, as Microsoft Entra ID identifies them: their home tenant and object id.
///
/// Never keyed by email: an email address can be reassigned, an object id cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId {
    pub tenant: Uuid,
    pub object: Uuid,
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.tenant.hyphenated(),
            self.object.hyphenated()
        )
    }
}

impl UserId {
    pub fn parse(text: &str) -> Option<Self> {
        let (tenant, object) = text.split_once('.')?;
        Some(Self {
            tenant: Uuid::parse_str(tenant).ok()?,
            object: Uuid::parse_str(object).ok()?,
        })
    }
}

/// The signed-in caller, as the authentication layer established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub display_name: Option<String>,
    /// Only an address the identity provider verified; invitations are accepted against it.
    pub verified_email: Option<String>,
}

/// How a workspace presents numbers and days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceSettings {
    /// ISO 4217 code used to display amounts (costs stay in their billing currency).
    pub display_currency: String,
    /// IANA time zone whose midnight starts a "day" in reports.
    pub time_zone: String,
    /// Tag keys whose values costs are synced by (`groupBy=tag:<key>`); none by default, since
    /// each key costs two queries per month of every subscription's sync.
    pub cost_tag_keys: Vec<TagKey>,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        Self {
            display_currency: "GBP".to_owned(),
            time_zone: "Europe/London".to_owned(),
            cost_tag_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub settings: WorkspaceSettings,
    pub created_at: OffsetDateTime,
    pub created_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub workspace: WorkspaceId,
    pub user: UserId,
    pub role: Role,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub joined_at: OffsetDateTime,
}

/// Something the tenancy rules refuse. Each maps to a client error with a stable problem type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenancyError {
    #[error("a workspace name must be 1 to 100 characters")]
    InvalidName,
    #[error("`{0}` is not an ISO 4217 currency code")]
    InvalidCurrency(String),
    #[error("`{0}` is not an IANA time zone")]
    InvalidTimeZone(String),
    #[error("costTagKeys: {0}")]
    InvalidTagKeys(String),
    #[error("the workspace must keep at least one owner")]
    LastOwner,
    #[error("only an owner can grant, change or remove the owner role")]
    OwnerRoleNeedsOwner,
    #[error("`{0}` is not an email address")]
    InvalidEmail(String),
    #[error("the invitation is for another email address, or your email address is not verified")]
    InvitationEmailMismatch,
    #[error("the invitation has expired or was already used or revoked")]
    InvitationNotPending,
    #[error("this user is already a member")]
    AlreadyMember,
}

/// Validates and normalises a workspace name.
pub fn workspace_name(raw: &str) -> Result<String, TenancyError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(TenancyError::InvalidName);
    }
    Ok(name.to_owned())
}

/// Validates a currency code's shape (three ASCII capitals); the list of live codes changes too
/// often to hard-code and Azure bills only in codes it knows.
pub fn currency(raw: &str) -> Result<String, TenancyError> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(TenancyError::InvalidCurrency(raw.to_owned()))
    }
}

/// Validates an IANA time zone against the bundled tz database.
/// The tag keys a workspace syncs costs by, checked against Azure's rules for tag names.
pub fn cost_tag_keys(raw: &[String]) -> Result<Vec<TagKey>, TenancyError> {
    let keys = raw
        .iter()
        .map(|k| TagKey::parse(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TenancyError::InvalidTagKeys)?;
    validate_tag_keys(&keys).map_err(TenancyError::InvalidTagKeys)?;
    Ok(keys)
}

pub fn time_zone(raw: &str) -> Result<String, TenancyError> {
    let name = raw.trim();
    match jiff::tz::TimeZone::get(name) {
        Ok(_) => Ok(name.to_owned()),
        Err(_) => Err(TenancyError::InvalidTimeZone(raw.to_owned())),
    }
}

/// Normalises an email address for comparison (trimmed, lower-case) after a basic shape check.
pub fn email(raw: &str) -> Result<String, TenancyError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(TenancyError::InvalidEmail(raw.to_owned()))
    }
}

/// Whether `actor` may give `target` the role `new_role` (or remove them, when `new_role` is `None`).
///
/// Admins manage members up to admin; only an owner may touch the owner role, so an admin cannot
/// promote themselves or anyone else past their own rights. A workspace never loses its last owner.
pub fn check_role_change(
    actor_role: Role,
    target: &Member,
    new_role: Option<Role>,
    owner_count: usize,
) -> Result<(), TenancyError> {
    let touches_owner = target.role == Role::Owner || new_role == Some(Role::Owner);
    if touches_owner && actor_role != Role::Owner {
        return Err(TenancyError::OwnerRoleNeedsOwner);
    }
    let loses_owner = target.role == Role::Owner && new_role != Some(Role::Owner);
    if loses_owner && owner_count <= 1 {
        return Err(TenancyError::LastOwner);
    }
    Ok(())
}

/// Whether a member may leave: anyone but the last owner.
pub fn check_leave(member: &Member, owner_count: usize) -> Result<(), TenancyError> {
    if member.role == Role::Owner && owner_count <= 1 {
        return Err(TenancyError::LastOwner);
    }
    Ok(())
}

/// How long an invitation stays valid.
pub const INVITATION_LIFETIME: time::Duration = time::Duration::days(7);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Random and unguessable: it is what the invitee presents to accept.
    pub id: Uuid,
    pub workspace: WorkspaceId,
    /// Normalised with [`email`].
    pub email: String,
    pub role: Role,
    pub invited_by: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub status: InvitationStatus,
}

impl Invitation {
    /// Checks an inviter may offer `role` (an admin cannot invite an owner).
    pub fn check_offer(inviter_role: Role, role: Role) -> Result<(), TenancyError> {
        if role == Role::Owner && inviter_role != Role::Owner {
            return Err(TenancyError::OwnerRoleNeedsOwner);
        }
        Ok(())
    }

    /// Whether `caller` may accept this invitation now.
    pub fn check_accept(&self, caller: &Caller, now: OffsetDateTime) -> Result<(), TenancyError> {
        if self.status != InvitationStatus::Pending || now >= self.expires_at {
            return Err(TenancyError::InvitationNotPending);
        }
        let matches = caller
            .verified_email
            .as_deref()
            .and_then(|e| email(e).ok())
            .is_some_and(|e| e == self.email);
        if !matches {
            return Err(TenancyError::InvitationEmailMismatch);
        }
        Ok(())
    }
}

/// Proof that the caller may act on one workspace with at least some permission.
///
/// The only constructor is [`authorize`]; storage adapters for customer data take a scope, not a
/// bare id, so no code path can read a workspace's data without having passed the membership check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceScope {
    id: WorkspaceId,
    caller: UserId,
    role: Role,
}

impl WorkspaceScope {
    pub fn id(&self) -> WorkspaceId {
        self.id
    }

    pub fn caller(&self) -> UserId {
        self.caller
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// A scope for background work (queue and timer functions) that acts for the system, not a
    /// person. Only code that already holds a workspace id from its own trusted message may call it.
    pub fn system(id: WorkspaceId) -> Self {
        Self {
            id,
            caller: UserId {
                tenant: Uuid::nil(),
                object: Uuid::nil(),
            },
            role: Role::Owner,
        }
    }
}

/// Why a caller may not act on a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not a member: answered exactly like a workspace that does not exist.
    NotFound,
    /// A member whose role is too low.
    Forbidden,
}

/// Decides access from the caller's membership (`None` when not a member).
pub fn authorize(
    workspace: WorkspaceId,
    caller: UserId,
    membership: Option<Role>,
    needed: Permission,
) -> Result<WorkspaceScope, Denied> {
    let role = membership.ok_or(Denied::NotFound)?;
    if !role.grants(needed) {
        return Err(Denied::Forbidden);
    }
    Ok(WorkspaceScope {
        id: workspace,
        caller,
        role,
    })
}

/// Where workspaces, members and invitations are kept.
///
/// `members` is the source of truth for access; `workspaces_of` reads an index kept for listing a
/// user's workspaces and is never used to authorise anything.
#[async_trait::async_trait]
pub trait TenancyStore: Send + Sync {
    /// Creates the workspace with its first owner.
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &Member,
    ) -> Result<Version, StoreError>;
    async fn workspace(&self, id: WorkspaceId) -> Result<Option<Versioned<Workspace>>, StoreError>;
    /// Replaces name and settings if `expected` is still current (or unconditionally when `None`).
    async fn update_workspace(
        &self,
        workspace: &Workspace,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError>;
    /// The caller's membership: the one read every authorised request makes.
    async fn member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Option<Versioned<Member>>, StoreError>;
    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Member>>, StoreError>;
    /// Adds a member: [`StoreError::Conflict`] when already one.
    async fn add_member(&self, member: &Member) -> Result<Version, StoreError>;
    /// Changes a member's role, atomically with a touch of the workspace conditional on `guard` (the
    /// workspace version the caller decided on): two concurrent membership changes cannot both pass
    /// the last-owner check; the second gets [`StoreError::VersionMismatch`].
    async fn update_member(&self, member: &Member, guard: &Version) -> Result<(), StoreError>;
    /// Removes a member, guarded like [`TenancyStore::update_member`].
    async fn remove_member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        guard: &Version,
    ) -> Result<(), StoreError>;
    /// The workspaces `user` belongs to, with their role there, from the listing index.
    async fn workspaces_of(&self, user: UserId) -> Result<Vec<(WorkspaceId, Role)>, StoreError>;
    async fn create_invitation(&self, invitation: &Invitation) -> Result<Version, StoreError>;
    async fn invitation(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Versioned<Invitation>>, StoreError>;
    async fn invitations(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<Versioned<Invitation>>, StoreError>;
    async fn update_invitation(
        &self,
        invitation: &Invitation,
        expected: &Version,
    ) -> Result<Version, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> UserId {
        UserId {
            tenant: Uuid::from_u128(1),
            object: Uuid::from_u128(n),
        }
    }

    fn member(role: Role) -> Member {
        Member {
            workspace: WorkspaceId::new(),
            user: user(2),
            role,
            display_name: None,
            email: None,
            joined_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_last_owner_can_neither_leave_nor_be_demoted() {
        let owner = member(Role::Owner);
        assert_eq!(check_leave(&owner, 1), Err(TenancyError::LastOwner));
        assert_eq!(
            check_role_change(Role::Owner, &owner, Some(Role::Admin), 1),
            Err(TenancyError::LastOwner)
        );
        assert_eq!(
            check_role_change(Role::Owner, &owner, None, 1),
            Err(TenancyError::LastOwner)
        );
        assert!(check_leave(&owner, 2).is_ok());
        assert!(check_role_change(Role::Owner, &owner, Some(Role::Admin), 2).is_ok());
    }

    #[test]
    fn admins_cannot_touch_the_owner_role() {
        let owner = member(Role::Owner);
        let viewer = member(Role::Viewer);
        assert_eq!(
            check_role_change(Role::Admin, &owner, Some(Role::Viewer), 3),
            Err(TenancyError::OwnerRoleNeedsOwner)
        );
        assert_eq!(
            check_role_change(Role::Admin, &viewer, Some(Role::Owner), 3),
            Err(TenancyError::OwnerRoleNeedsOwner)
        );
        assert!(check_role_change(Role::Admin, &viewer, Some(Role::Admin), 1).is_ok());
        assert_eq!(
            Invitation::check_offer(Role::Admin, Role::Owner),
            Err(TenancyError::OwnerRoleNeedsOwner)
        );
    }

    #[test]
    fn non_members_look_like_missing_workspaces_and_low_roles_are_forbidden() {
        let ws = WorkspaceId::new();
        assert_eq!(
            authorize(ws, user(3), None, Permission::Read),
            Err(Denied::NotFound)
        );
        assert_eq!(
            authorize(ws, user(3), Some(Role::Viewer), Permission::Administer),
            Err(Denied::Forbidden)
        );
        let scope =
            authorize(ws, user(3), Some(Role::Admin), Permission::Administer).expect("allowed");
        assert_eq!(scope.id(), ws);
        assert_eq!(scope.role(), Role::Admin);
    }

    #[test]
    fn an_invitation_is_accepted_only_by_the_verified_matching_email_before_expiry() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let invitation = Invitation {
            id: Uuid::new_v4(),
            workspace: WorkspaceId::new(),
            email: "alice@contoso.com".into(),
            role: Role::Analyst,
            invited_by: user(1),
            created_at: now,
            expires_at: now + INVITATION_LIFETIME,
            status: InvitationStatus::Pending,
        };
        let alice = Caller {
            user: user(5),
            display_name: None,
            verified_email: Some("Alice@Contoso.com".into()),
        };
        let unverified = Caller {
            verified_email: None,
            ..alice.clone()
        };
        let mallory = Caller {
            verified_email: Some("mallory@contoso.com".into()),
            ..alice.clone()
        };
        assert!(invitation.check_accept(&alice, now).is_ok());
        assert_eq!(
            invitation.check_accept(&unverified, now),
            Err(TenancyError::InvitationEmailMismatch)
        );
        assert_eq!(
            invitation.check_accept(&mallory, now),
            Err(TenancyError::InvitationEmailMismatch)
        );
        assert_eq!(
            invitation.check_accept(&alice, now + INVITATION_LIFETIME),
            Err(TenancyError::InvitationNotPending)
        );
    }

    #[test]
    fn settings_are_validated() {
        assert_eq!(currency("gbp"), Ok("GBP".into()));
        assert!(currency("pounds").is_err());
        assert_eq!(time_zone("Europe/London"), Ok("Europe/London".into()));
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(workspace_name("   ").is_err());
        assert_eq!(workspace_name("  FinOps  "), Ok("FinOps".into()));
        assert!(email("not-an-email").is_err());
    }

    #[test]
    fn user_ids_round_trip() {
        let id = user(42);
        assert_eq!(UserId::parse(&id.to_string()), Some(id));
        assert_eq!(UserId::parse("nope"), None);
    }
}
