//! Connections: a workspace's link to a customer's Azure tenant through a read-only service
//! principal, its onboarding progress, and the rules that decide what a verification means.
//!
//! # States
//!
//! Onboarding moves forward through [`Stage`]s (created → verified → subscriptions chosen → first
//! sync done) and never back. Independently, the connection's [`Health`] says whether Azure accepts
//! it now. What the API shows as the connection's state is the stage while healthy, `failed` when it
//! never worked, and `revoked` once a connection that worked stopped working: then Sixpence stops
//! calling Azure for it until an admin re-verifies it (a timer never re-enables a connection on its
//! own: the admin should know why it broke before data flows again).
//!
//! # What the domain does not know
//!
//! The secret is held only as its sealed form ([`SealedSecret`], opaque here); asking Azure happens
//! behind [`TenantInspector`]; both are adapters' business.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::events::{Event, EventKind, RoleEvent, Severity};
use super::store::{StoreError, Version, Versioned};
use super::tenancy::{UserId, WorkspaceId};

/// The fix for an over-privileged principal (the customer's words).
pub const OVER_PRIVILEGED_FIX: &str =
    "Assign Reader and Cost Management Reader instead of Contributor";
/// Days before a recorded secret expiry date at which a reminder is raised (and again at each).
pub const EXPIRY_REMINDER_DAYS: &[i64] = &[30, 7, 1];

/// A connection's id: a UUID, so ids cannot be guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(Uuid);

impl ConnectionId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().map(Self)
    }

    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The client secret as stored: ciphertext only. `Debug` does not show it either (it is not the
/// secret, but nobody needs it in a log).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub String);

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSecret(..)")
    }
}

/// How far onboarding got. Ordered: a connection only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    Created,
    Verified,
    SubscriptionsChosen,
    FirstSyncDone,
}

/// Why a connection does not work, as something the customer can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProblemKind {
    /// The tenant id names no tenant.
    WrongTenant,
    /// The secret is wrong (often the secret's id pasted instead of its value), or was deleted.
    WrongSecret,
    SecretExpired,
    /// No application with the client id in the tenant (or it was deleted).
    UnknownApplication,
    /// Entra ID refused the credentials for another reason.
    CredentialsRefused,
    /// Azure answered 401/403 to a data call: a role assignment or the principal was removed.
    AccessRevoked,
    /// The principal sees no subscription at all.
    NoSubscriptions,
    /// It sees subscriptions but may read costs on none of them.
    MissingRole,
    /// Azure or Entra ID could not be reached or throttled us: nothing for the customer to fix.
    Unavailable,
}

impl ProblemKind {
    /// Retrying later, unchanged, can work.
    pub fn is_transient(self) -> bool {
        matches!(self, ProblemKind::Unavailable)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::WrongTenant => "wrongTenant",
            ProblemKind::WrongSecret => "wrongSecret",
            ProblemKind::SecretExpired => "secretExpired",
            ProblemKind::UnknownApplication => "unknownApplication",
            ProblemKind::CredentialsRefused => "credentialsRefused",
            ProblemKind::AccessRevoked => "accessRevoked",
            ProblemKind::NoSubscriptions => "noSubscriptions",
            ProblemKind::MissingRole => "missingRole",
            ProblemKind::Unavailable => "unavailable",
        }
    }
}

/// A problem and the words to show for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub kind: ProblemKind,
    /// What happened and what to do, for the customer. Never contains a secret.
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Whether Azure accepts the connection now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Health {
    /// Never verified successfully yet (just created).
    Unverified,
    Healthy,
    /// Never worked: the admin has to fix the details.
    Failed {
        problem: Problem,
    },
    /// Worked, then stopped: no calls are made until an admin re-verifies.
    Revoked {
        problem: Problem,
    },
}

/// A Sixpence feature a subscription may lack for want of a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Feature {
    Costs,
    Resources,
    Advisor,
}

/// What the principal may do on one subscription, as a verification found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionAccess {
    pub subscription_id: String,
    pub display_name: Option<String>,
    /// Azure's state (`Enabled`, `Disabled`, …).
    pub azure_state: Option<String>,
    /// Still accrues and reports cost (Enabled, Warned, PastDue).
    pub active: bool,
    /// Cost Management Reader or Reader.
    pub can_read_costs: bool,
    /// Reader: Resource Graph inventory and Advisor.
    pub can_read_resources: bool,
    /// Permissions beyond read, as granted (`*`, `Microsoft.Compute/*/write`, …).
    pub excess_actions: Vec<String>,
    /// Chosen by an admin for sync.
    pub selected: bool,
}

impl SubscriptionAccess {
    /// Cost data can be synced.
    pub fn usable(&self) -> bool {
        self.active && self.can_read_costs
    }

    pub fn over_privileged(&self) -> bool {
        !self.excess_actions.is_empty()
    }

    /// Features this subscription will lack, for the onboarding answer.
    pub fn missing_features(&self) -> Vec<Feature> {
        let mut missing = Vec::new();
        if !self.can_read_costs {
            missing.push(Feature::Costs);
        }
        if !self.can_read_resources {
            missing.extend([Feature::Resources, Feature::Advisor]);
        }
        missing
    }

    /// What the customer should change on this subscription, most important first.
    pub fn fixes(&self) -> Vec<&'static str> {
        let mut fixes = Vec::new();
        if self.over_privileged() {
            fixes.push(OVER_PRIVILEGED_FIX);
        }
        if !self.can_read_costs {
            fixes.push(
                "Assign the Cost Management Reader role (or Reader) to the service principal on \
                 the subscription",
            );
        } else if !self.can_read_resources && !self.over_privileged() {
            fixes.push(
                "Assign the Reader role to the service principal on the subscription so \
                 Sixpence can list resources and Advisor recommendations",
            );
        }
        fixes
    }
}

/// A workspace's connection to a customer tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub workspace: WorkspaceId,
    pub name: String,
    pub tenant_id: String,
    pub client_id: String,
    pub secret: SealedSecret,
    /// When the client secret expires, if the admin told us (Azure does not let a principal read
    /// its own secret's expiry).
    pub secret_expires_on: Option<Date>,
    /// The smallest [`EXPIRY_REMINDER_DAYS`] threshold already reminded of, for this secret.
    pub expiry_reminded_at_days: Option<i64>,
    pub stage: Stage,
    pub health: Health,
    pub subscriptions: Vec<SubscriptionAccess>,
    pub created_at: OffsetDateTime,
    pub created_by: UserId,
    pub verified_at: Option<OffsetDateTime>,
    pub first_sync_at: Option<OffsetDateTime>,
}

/// The state the API shows: the stage while healthy, else `failed` or `revoked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionState {
    Created,
    Verified,
    SubscriptionsChosen,
    FirstSyncDone,
    Failed,
    Revoked,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Created => "created",
            ConnectionState::Verified => "verified",
            ConnectionState::SubscriptionsChosen => "subscriptionsChosen",
            ConnectionState::FirstSyncDone => "firstSyncDone",
            ConnectionState::Failed => "failed",
            ConnectionState::Revoked => "revoked",
        }
    }
}

/// Who asked for a verification: an admin may revive a revoked connection, a timer may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedBy {
    Admin,
    HealthCheck,
}

/// What a verification found that someone must be told (turned into events by [`Finding::event`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    Revoked(Problem),
    OverPrivileged {
        subscriptions: Vec<String>,
        excess_actions: Vec<String>,
    },
    SubscriptionAccessLost {
        subscription: String,
    },
}

/// A business rule refused the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("{0}")]
    Invalid(String),
    /// Choosing subscriptions before the connection works.
    #[error("the connection is not verified; fix it and verify it first")]
    NotVerified,
    #[error("subscription {0} is not visible to this connection's service principal")]
    UnknownSubscription(String),
    #[error("subscription {id} cannot be synced: {reason}")]
    SubscriptionNotUsable { id: String, reason: String },
    #[error("choose at least one subscription")]
    NoSubscriptionChosen,
    /// A transient failure during an admin's verification: nothing changed.
    #[error("{0}")]
    AzureUnavailable(String),
}

/// Verification input: the credentials in the clear, only for the duration of a call.
pub struct Credentials {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why asking Azure failed, already in the customer's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessProblem {
    pub kind: ProblemKind,
    pub message: String,
}

/// Asks the customer's tenant what the principal can see and do.
#[async_trait::async_trait]
pub trait TenantInspector: Send + Sync {
    /// Signs in, lists the subscriptions the principal sees and reads its permissions on each.
    /// `selected` is always `false` in the answer.
    async fn inspect(
        &self,
        credentials: &Credentials,
    ) -> Result<Vec<SubscriptionAccess>, AccessProblem>;
}

/// A tenant id or client id as Entra ID issues them: a GUID (the tenant may also be a domain name,
/// e.g. `contoso.onmicrosoft.com`, which Entra ID accepts in token URLs).
pub fn validate_ids(tenant_id: &str, client_id: &str) -> Result<(), ConnectionError> {
    let tenant_ok = Uuid::parse_str(tenant_id).is_ok()
        || (tenant_id.contains('.')
            && tenant_id.len() <= 253
            && tenant_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if !tenant_ok {
        return Err(ConnectionError::Invalid(
            "tenantId must be the Directory (tenant) ID, a GUID, or the tenant's domain name"
                .to_owned(),
        ));
    }
    if Uuid::parse_str(client_id).is_err() {
        return Err(ConnectionError::Invalid(
            "clientId must be the Application (client) ID, a GUID".to_owned(),
        ));
    }
    Ok(())
}

/// A connection name: 1 to 100 characters, no control characters.
pub fn connection_name(raw: &str) -> Result<String, ConnectionError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ConnectionError::Invalid(
            "name must be 1 to 100 characters without control characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

impl Connection {
    /// What the API shows as this connection's state.
    pub fn state(&self) -> ConnectionState {
        match (&self.health, self.stage) {
            (Health::Revoked { .. }, _) => ConnectionState::Revoked,
            (Health::Failed { .. }, _) => ConnectionState::Failed,
            (_, Stage::Created) => ConnectionState::Created,
            (_, Stage::Verified) => ConnectionState::Verified,
            (_, Stage::SubscriptionsChosen) => ConnectionState::SubscriptionsChosen,
            (_, Stage::FirstSyncDone) => ConnectionState::FirstSyncDone,
        }
    }

    pub fn problem(&self) -> Option<&Problem> {
        match &self.health {
            Health::Failed { problem } | Health::Revoked { problem } => Some(problem),
            _ => None,
        }
    }

    /// Sixpence may call Azure for this connection (the timer's and the sync's test).
    pub fn is_active(&self) -> bool {
        self.health == Health::Healthy && self.stage >= Stage::Verified
    }

    pub fn is_revoked(&self) -> bool {
        matches!(self.health, Health::Revoked { .. })
    }

    /// Subscriptions on which the principal can change something.
    pub fn over_privileged_subscriptions(&self) -> Vec<&SubscriptionAccess> {
        self.subscriptions
            .iter()
            .filter(|s| s.over_privileged())
            .collect()
    }

    /// Subscriptions to sync: chosen and still usable.
    pub fn selected_subscriptions(&self) -> impl Iterator<Item = &SubscriptionAccess> {
        self.subscriptions
            .iter()
            .filter(|s| s.selected && s.usable())
    }

    /// Applies what a verification found and says what someone must be told.
    ///
    /// - A transient failure changes nothing (the caller reports it or tries again later), except
    ///   that a never-verified connection shows why it is not verified yet.
    /// - Any other failure of a connection that worked before revokes it; of one that never worked,
    ///   marks it failed.
    /// - Success makes it healthy (an admin's verification also revives a revoked connection),
    ///   keeps the chosen subscriptions that are still usable, and reports chosen subscriptions
    ///   that are no longer readable and newly over-privileged ones.
    pub fn apply_verification(
        &mut self,
        outcome: Result<Vec<SubscriptionAccess>, AccessProblem>,
        by: VerifiedBy,
        now: OffsetDateTime,
    ) -> Vec<Finding> {
        if by == VerifiedBy::HealthCheck && !self.is_active() {
            // The timer never touches a connection that is not in use, nor revives a revoked one.
            return Vec::new();
        }
        let found = match outcome {
            Err(problem) => Err(problem),
            Ok(subscriptions) if subscriptions.is_empty() => Err(AccessProblem {
                kind: ProblemKind::NoSubscriptions,
                message: "The service principal cannot see any subscription. Assign it the \
                          Reader and Cost Management Reader roles on the subscriptions to \
                          manage (Subscription → Access control (IAM) → Add role assignment)."
                    .to_owned(),
            }),
            Ok(subscriptions) if !subscriptions.iter().any(SubscriptionAccess::usable) => {
                Err(AccessProblem {
                    kind: ProblemKind::MissingRole,
                    message: "The service principal cannot read cost data on any active \
                              subscription it sees. Assign it the Cost Management Reader role \
                              (and Reader, for resources and Advisor) on each subscription."
                        .to_owned(),
                })
            }
            Ok(subscriptions) => Ok(subscriptions),
        };
        match found {
            Err(problem) if problem.kind.is_transient() => {
                if self.health == Health::Unverified {
                    self.health = Health::Failed {
                        problem: Problem {
                            kind: problem.kind,
                            message: problem.message,
                            at: now,
                        },
                    };
                }
                Vec::new()
            }
            Err(problem) => {
                let problem = Problem {
                    kind: problem.kind,
                    message: problem.message,
                    at: now,
                };
                if self.stage >= Stage::Verified {
                    let already = self.is_revoked();
                    self.health = Health::Revoked {
                        problem: problem.clone(),
                    };
                    if already {
                        Vec::new()
                    } else {
                        vec![Finding::Revoked(problem)]
                    }
                } else {
                    self.health = Health::Failed { problem };
                    Vec::new()
                }
            }
            Ok(mut fresh) => {
                let mut findings = Vec::new();
                for previous in self.subscriptions.iter().filter(|s| s.selected) {
                    match fresh
                        .iter_mut()
                        .find(|s| s.subscription_id == previous.subscription_id)
                    {
                        Some(now_seen) if now_seen.usable() => now_seen.selected = true,
                        _ => findings.push(Finding::SubscriptionAccessLost {
                            subscription: previous.subscription_id.clone(),
                        }),
                    }
                }
                let was_over: Vec<&str> = self
                    .subscriptions
                    .iter()
                    .filter(|s| s.over_privileged())
                    .map(|s| s.subscription_id.as_str())
                    .collect();
                let newly_over: Vec<&SubscriptionAccess> = fresh
                    .iter()
                    .filter(|s| s.over_privileged() && !was_over.contains(&&*s.subscription_id))
                    .collect();
                // An admin's verification restates the warning (they are looking at it); the timer
                // only reports what is new.
                let report_over = match by {
                    VerifiedBy::Admin => fresh.iter().any(SubscriptionAccess::over_privileged),
                    VerifiedBy::HealthCheck => !newly_over.is_empty(),
                };
                if report_over {
                    let over: Vec<&SubscriptionAccess> =
                        fresh.iter().filter(|s| s.over_privileged()).collect();
                    let mut excess_actions: Vec<String> = over
                        .iter()
                        .flat_map(|s| s.excess_actions.iter().cloned())
                        .collect();
                    excess_actions.sort();
                    excess_actions.dedup();
                    findings.insert(
                        0,
                        Finding::OverPrivileged {
                            subscriptions: over.iter().map(|s| s.subscription_id.clone()).collect(),
                            excess_actions,
                        },
                    );
                }
                self.subscriptions = fresh;
                self.health = Health::Healthy;
                self.stage = self.stage.max(Stage::Verified);
                self.verified_at = Some(now);
                findings
            }
        }
    }

    /// Chooses the subscriptions to sync (replacing the previous choice).
    /// Undoes a choice of subscriptions: the selection, and the onboarding stage the choice moved,
    /// as `previous` had them (even none, which a choice itself may not make).
    pub fn restore_choice(&mut self, previous: &Connection) {
        for s in &mut self.subscriptions {
            s.selected = previous
                .subscriptions
                .iter()
                .any(|p| p.selected && p.subscription_id.eq_ignore_ascii_case(&s.subscription_id));
        }
        self.stage = previous.stage;
    }

    pub fn choose_subscriptions(&mut self, ids: &[String]) -> Result<(), ConnectionError> {
        if !self.is_active() {
            return Err(ConnectionError::NotVerified);
        }
        if ids.is_empty() {
            return Err(ConnectionError::NoSubscriptionChosen);
        }
        for id in ids {
            let Some(sub) = self
                .subscriptions
                .iter()
                .find(|s| s.subscription_id.eq_ignore_ascii_case(id))
            else {
                return Err(ConnectionError::UnknownSubscription(id.clone()));
            };
            if !sub.usable() {
                let reason = if !sub.active {
                    format!(
                        "it is {} in Azure",
                        sub.azure_state.as_deref().unwrap_or("not active")
                    )
                } else {
                    "the service principal cannot read its cost data (assign Cost Management \
                     Reader or Reader)"
                        .to_owned()
                };
                return Err(ConnectionError::SubscriptionNotUsable {
                    id: id.clone(),
                    reason,
                });
            }
        }
        for sub in &mut self.subscriptions {
            sub.selected = ids
                .iter()
                .any(|id| sub.subscription_id.eq_ignore_ascii_case(id));
        }
        self.stage = self.stage.max(Stage::SubscriptionsChosen);
        Ok(())
    }

    /// Replaces the secret. The connection must be verified again before it is used.
    pub fn replace_secret(&mut self, secret: SealedSecret, expires_on: Option<Date>) {
        self.secret = secret;
        self.secret_expires_on = expires_on;
        self.expiry_reminded_at_days = None;
    }

    /// Records the first completed sync.
    pub fn record_first_sync(&mut self, now: OffsetDateTime) {
        if self.first_sync_at.is_none() {
            self.first_sync_at = Some(now);
        }
        self.stage = self.stage.max(Stage::FirstSyncDone);
    }

    /// Records that a data call was refused (401/403): the connection is revoked at once.
    /// Returns the finding the first time only.
    pub fn record_access_lost(
        &mut self,
        problem: AccessProblem,
        now: OffsetDateTime,
    ) -> Option<Finding> {
        if self.is_revoked() {
            return None;
        }
        let problem = Problem {
            kind: problem.kind,
            message: problem.message,
            at: now,
        };
        self.health = Health::Revoked {
            problem: problem.clone(),
        };
        Some(Finding::Revoked(problem))
    }

    /// A reminder is due when the recorded expiry is within a threshold not yet reminded of.
    /// Returns the days left and marks the threshold as reminded.
    pub fn take_expiry_reminder(&mut self, today: Date) -> Option<i64> {
        let expires_on = self.secret_expires_on?;
        let days_left = (expires_on - today).whole_days();
        let threshold = EXPIRY_REMINDER_DAYS
            .iter()
            .copied()
            .filter(|t| days_left <= *t)
            .min()?;
        if self
            .expiry_reminded_at_days
            .is_some_and(|reminded| reminded <= threshold)
        {
            return None;
        }
        self.expiry_reminded_at_days = Some(threshold);
        Some(days_left)
    }

    /// The event a finding raises.
    pub fn event(&self, finding: &Finding, now: OffsetDateTime) -> Event {
        let connection = self.id.uuid();
        let connection_name = self.name.clone();
        let (severity, key, kind) = match finding {
            Finding::Revoked(problem) => (
                Severity::Critical,
                format!("role:revoked:{}:{}", self.id, problem.kind.as_str()),
                RoleEvent::CredentialsRevoked {
                    connection,
                    connection_name,
                    reason: problem.kind.as_str().to_owned(),
                    message: problem.message.clone(),
                },
            ),
            Finding::OverPrivileged {
                subscriptions,
                excess_actions,
            } => (
                Severity::Warning,
                format!(
                    "role:over-privileged:{}:{}",
                    self.id,
                    subscriptions.join(",")
                ),
                RoleEvent::OverPrivileged {
                    connection,
                    connection_name,
                    subscriptions: subscriptions.clone(),
                    excess_actions: excess_actions.clone(),
                    fix: OVER_PRIVILEGED_FIX.to_owned(),
                },
            ),
            Finding::SubscriptionAccessLost { subscription } => (
                Severity::Warning,
                format!("role:subscription-lost:{}:{subscription}", self.id),
                RoleEvent::SubscriptionAccessLost {
                    connection,
                    connection_name,
                    subscription: subscription.clone(),
                    fix: "Assign the Cost Management Reader and Reader roles to the service \
                          principal on the subscription again, then verify the connection"
                        .to_owned(),
                },
            ),
        };
        Event::new(self.workspace, now, severity, key, EventKind::Role(kind))
    }

    /// The event of a secret expiry reminder.
    pub fn expiry_event(&self, days_left: i64, now: OffsetDateTime) -> Option<Event> {
        let expires_on = self.secret_expires_on?;
        let severity = if days_left <= 7 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        Some(Event::new(
            self.workspace,
            now,
            severity,
            format!("role:secret-expiring:{}:{expires_on}:{days_left}", self.id),
            EventKind::Role(RoleEvent::SecretExpiring {
                connection: self.id.uuid(),
                connection_name: self.name.clone(),
                expires_on,
                days_left,
            }),
        ))
    }
}

/// Where connections are kept. Every method is scoped by workspace except the operator-wide walk.
#[async_trait::async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn create(&self, connection: &Connection) -> Result<Version, StoreError>;
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
    ) -> Result<Option<Versioned<Connection>>, StoreError>;
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Connection>>, StoreError>;
    /// Replaces the connection if it is still at `guard`.
    async fn update(&self, connection: &Connection, guard: &Version)
    -> Result<Version, StoreError>;
    /// Removes the connection and its secret at once.
    async fn delete(&self, workspace: WorkspaceId, id: ConnectionId) -> Result<(), StoreError>;
    /// Every connection of every workspace (the health timer, key rotation).
    async fn all(&self) -> Result<Vec<Versioned<Connection>>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-23 09:00 UTC)
    }

    fn sub(id: &str, costs: bool, reader: bool, excess: &[&str]) -> SubscriptionAccess {
        SubscriptionAccess {
            subscription_id: id.to_owned(),
            display_name: Some(format!("sub {id}")),
            azure_state: Some("Enabled".to_owned()),
            active: true,
            can_read_costs: costs,
            can_read_resources: reader,
            excess_actions: excess.iter().map(|s| (*s).to_owned()).collect(),
            selected: false,
        }
    }

    fn connection() -> Connection {
        Connection {
            id: ConnectionId::new(),
            workspace: WorkspaceId::new(),
            name: "Contoso".to_owned(),
            tenant_id: Uuid::new_v4().to_string(),
            client_id: Uuid::new_v4().to_string(),
            secret: SealedSecret("v1.k.n.c".to_owned()),
            secret_expires_on: None,
            expiry_reminded_at_days: None,
            stage: Stage::Created,
            health: Health::Unverified,
            subscriptions: Vec::new(),
            created_at: now(),
            created_by: UserId {
                tenant: Uuid::nil(),
                object: Uuid::nil(),
            },
            verified_at: None,
            first_sync_at: None,
        }
    }

    fn refused(kind: ProblemKind) -> AccessProblem {
        AccessProblem {
            kind,
            message: "why".to_owned(),
        }
    }

    #[test]
    fn onboarding_moves_forward_and_a_never_working_connection_fails_rather_than_revokes() {
        let mut c = connection();
        assert_eq!(c.state(), ConnectionState::Created);
        let findings = c.apply_verification(
            Err(refused(ProblemKind::WrongSecret)),
            VerifiedBy::Admin,
            now(),
        );
        assert!(findings.is_empty());
        assert_eq!(c.state(), ConnectionState::Failed);
        assert!(!c.is_active());

        c.apply_verification(
            Ok(vec![sub("a", true, true, &[]), sub("b", false, false, &[])]),
            VerifiedBy::Admin,
            now(),
        );
        assert_eq!(c.state(), ConnectionState::Verified);
        assert_eq!(
            c.choose_subscriptions(&["b".into()]),
            Err(ConnectionError::SubscriptionNotUsable {
                id: "b".into(),
                reason: "the service principal cannot read its cost data (assign Cost \
                         Management Reader or Reader)"
                    .into()
            })
        );
        assert_eq!(
            c.choose_subscriptions(&["zz".into()]),
            Err(ConnectionError::UnknownSubscription("zz".into()))
        );
        c.choose_subscriptions(&["A".into()]).unwrap();
        assert_eq!(c.state(), ConnectionState::SubscriptionsChosen);
        assert_eq!(c.selected_subscriptions().count(), 1);
        c.record_first_sync(now());
        assert_eq!(c.state(), ConnectionState::FirstSyncDone);
    }

    #[test]
    fn a_working_connection_that_is_refused_is_revoked_once_and_only_an_admin_revives_it() {
        let mut c = connection();
        c.apply_verification(
            Ok(vec![sub("a", true, true, &[])]),
            VerifiedBy::Admin,
            now(),
        );
        c.choose_subscriptions(&["a".into()]).unwrap();

        let findings = c.apply_verification(
            Err(refused(ProblemKind::SecretExpired)),
            VerifiedBy::HealthCheck,
            now(),
        );
        assert!(
            matches!(&findings[..], [Finding::Revoked(p)] if p.kind == ProblemKind::SecretExpired)
        );
        assert_eq!(c.state(), ConnectionState::Revoked);
        // Not again, and the timer neither calls nor revives it.
        assert!(
            c.apply_verification(
                Ok(vec![sub("a", true, true, &[])]),
                VerifiedBy::HealthCheck,
                now()
            )
            .is_empty()
        );
        assert_eq!(c.state(), ConnectionState::Revoked);
        assert!(
            c.record_access_lost(refused(ProblemKind::AccessRevoked), now())
                .is_none()
        );

        c.apply_verification(
            Ok(vec![sub("a", true, true, &[])]),
            VerifiedBy::Admin,
            now(),
        );
        assert_eq!(c.state(), ConnectionState::SubscriptionsChosen);
        assert_eq!(c.selected_subscriptions().count(), 1, "the choice survives");
    }

    #[test]
    fn transient_failures_change_nothing_once_verified() {
        let mut c = connection();
        c.apply_verification(
            Ok(vec![sub("a", true, true, &[])]),
            VerifiedBy::Admin,
            now(),
        );
        let findings = c.apply_verification(
            Err(refused(ProblemKind::Unavailable)),
            VerifiedBy::HealthCheck,
            now(),
        );
        assert!(findings.is_empty());
        assert!(c.is_active());
    }

    #[test]
    fn losing_every_role_revokes_and_losing_one_subscription_is_reported() {
        let mut c = connection();
        c.apply_verification(
            Ok(vec![sub("a", true, true, &[]), sub("b", true, true, &[])]),
            VerifiedBy::Admin,
            now(),
        );
        c.choose_subscriptions(&["a".into(), "b".into()]).unwrap();
        let findings = c.apply_verification(
            Ok(vec![sub("a", true, true, &[])]),
            VerifiedBy::HealthCheck,
            now(),
        );
        assert_eq!(
            findings,
            vec![Finding::SubscriptionAccessLost {
                subscription: "b".into()
            }]
        );
        assert!(c.is_active());
        let findings = c.apply_verification(Ok(vec![]), VerifiedBy::HealthCheck, now());
        assert!(
            matches!(&findings[..], [Finding::Revoked(p)] if p.kind == ProblemKind::NoSubscriptions)
        );
    }

    #[test]
    fn a_newly_granted_write_is_reported_by_the_timer_once() {
        let mut c = connection();
        c.apply_verification(
            Ok(vec![sub("a", true, true, &[])]),
            VerifiedBy::Admin,
            now(),
        );
        let over = || Ok(vec![sub("a", true, true, &["*"])]);
        let findings = c.apply_verification(over(), VerifiedBy::HealthCheck, now());
        assert_eq!(
            findings,
            vec![Finding::OverPrivileged {
                subscriptions: vec!["a".into()],
                excess_actions: vec!["*".into()]
            }]
        );
        assert!(
            c.apply_verification(over(), VerifiedBy::HealthCheck, now())
                .is_empty()
        );
        let event = c.event(&findings[0], now());
        assert!(matches!(
            event.kind,
            EventKind::Role(RoleEvent::OverPrivileged { ref fix, .. }) if fix == OVER_PRIVILEGED_FIX
        ));
    }

    #[test]
    fn expiry_reminders_come_once_per_threshold_and_restart_with_a_new_secret() {
        let mut c = connection();
        let today = time::macros::date!(2026 - 11 - 23);
        c.secret_expires_on = Some(today + time::Duration::days(40));
        assert_eq!(c.take_expiry_reminder(today), None);
        c.secret_expires_on = Some(today + time::Duration::days(20));
        assert_eq!(c.take_expiry_reminder(today), Some(20));
        assert_eq!(c.take_expiry_reminder(today), None);
        assert_eq!(
            c.take_expiry_reminder(today + time::Duration::days(14)),
            Some(6)
        );
        assert_eq!(
            c.take_expiry_reminder(today + time::Duration::days(15)),
            None
        );
        c.replace_secret(
            SealedSecret("v1.k.n.d".into()),
            Some(today + time::Duration::days(5)),
        );
        assert_eq!(c.take_expiry_reminder(today), Some(5));
    }

    #[test]
    fn ids_are_validated() {
        let guid = Uuid::new_v4().to_string();
        assert!(validate_ids(&guid, &guid).is_ok());
        assert!(validate_ids("contoso.onmicrosoft.com", &guid).is_ok());
        assert!(validate_ids("contoso", &guid).is_err());
        assert!(validate_ids(&guid, "not-a-guid").is_err());
        assert!(connection_name("  ").is_err());
        assert_eq!(connection_name(" Prod ").unwrap(), "Prod");
    }
}
