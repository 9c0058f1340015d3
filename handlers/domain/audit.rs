//! The audit trail: one append-only record per state-changing action.
//!
//! Records are written once and never updated or deleted by the application (retention purges them
//! only after the period the law requires). They name who did what to which target, when, under which
//! request id, and how it ended; for updates, what changed. They never hold secret values: a change to
//! a secret is recorded as "changed", not as its old and new value.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::store::{Page, PageRequest, StoreError};
use super::tenancy::{UserId, WorkspaceId};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Actor {
    /// A signed-in person.
    User { id: UserId },
    /// Sixpence itself (a timer, a queue function, a webhook), named by its component.
    System { component: String },
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Succeeded,
    /// A member without the needed role tried it.
    Denied,
    /// The input or the state did not allow it (validation, precondition, conflict).
    Rejected,
    /// It failed on our side.
    Failed,
}

/// One field of an update, before and after. Secret fields carry `"(changed)"` instead of values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Change {
    pub fn new(
        field: &str,
        from: impl Into<Option<String>>,
        to: impl Into<Option<String>>,
    ) -> Self {
        Self {
            field: field.to_owned(),
            from: from.into(),
            to: to.into(),
        }
    }

    /// A change to a secret, recorded without either value.
    pub fn secret(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            from: None,
            to: Some("(changed)".to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub workspace: WorkspaceId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: Actor,
    /// Dotted verb, stable for filtering: `workspace.rename`, `member.role.change`, …
    pub action: String,
    /// What was acted on, as `kind/id` (`member/<user>`, `invitation/<id>`).
    pub target: String,
    pub request_id: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// Which records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub action: Option<String>,
    pub actor: Option<UserId>,
}

impl AuditFilter {
    /// Whether a record passes the non-time parts of the filter (time is applied by key range).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let action_ok = self
            .action
            .as_deref()
            .is_none_or(|a| record.action == a || record.action.starts_with(&format!("{a}.")));
        let actor_ok = self
            .actor
            .is_none_or(|wanted| matches!(&record.actor, Actor::User { id } if *id == wanted));
        action_ok && actor_ok
    }
}

/// Where audit records are kept: append and list, nothing else. There is deliberately no update
/// or delete here; retention purges expired records through its own path.
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync {
    async fn append(&self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Newest first.
    async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError>;
}
