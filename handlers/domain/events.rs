//! Events: the one way any part of Sixpence says "someone should be told".
//!
//! Producers (connections, sync, analytics, billing) build an [`Event`] and hand it to an
//! [`EventSink`]; nothing sends an email or a webhook directly. Delivery (channels, preferences,
//! exactly-once) belongs to the notifications side, which reads the same type back.
//!
//! Each event carries a **dedupe key**: two events with the same key describe the same fact (the
//! same connection revoked for the same reason, the same secret expiring on the same date), so
//! delivery can send it once however often a timer re-discovers it.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::store::StoreError;
use super::tenancy::WorkspaceId;

/// How urgently a person should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Something happened that a workspace's people should hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique per raising (two raisings of one fact share the dedupe key, not the id).
    pub id: Uuid,
    pub workspace: WorkspaceId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub severity: Severity,
    /// Same key, same fact: delivered once.
    pub dedupe_key: String,
    pub kind: EventKind,
}

/// The kinds of event the product promises. Later producers add their variants here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum EventKind {
    /// Something about a connection's credentials or roles needs the customer's attention.
    Role(RoleEvent),
    /// A cost sync failed for a reason the customer must fix.
    Sync(SyncEvent),
}

/// A subscription's cost sync stopped for a reason only the customer can fix. Dedupe key:
/// `sync-failed:<subscription>:<reason>`, so a nightly retry of the same failure is told once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncEvent {
    pub connection: Uuid,
    pub subscription: String,
    pub run: Uuid,
    /// Stable code of the reason (`accessRevoked`, `secretExpired`, …).
    pub reason: String,
    /// What is wrong and how to fix it, in the customer's words.
    pub message: String,
}

impl SyncEvent {
    pub fn dedupe_key(&self) -> String {
        format!("sync-failed:{}:{}", self.subscription, self.reason)
    }
}

/// What is wrong with a connection's service principal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "camelCase")]
pub enum RoleEvent {
    /// Azure stopped accepting the principal (secret revoked or expired, role removed, principal
    /// deleted). Sixpence stopped calling Azure for this connection.
    #[serde(rename_all = "camelCase")]
    CredentialsRevoked {
        connection: Uuid,
        connection_name: String,
        /// Stable code of the reason (`secretExpired`, `accessRevoked`, …).
        reason: String,
        /// What is wrong and how to fix it, in the customer's words.
        message: String,
    },
    /// The principal can change things in the customer's tenant, which Sixpence never needs.
    #[serde(rename_all = "camelCase")]
    OverPrivileged {
        connection: Uuid,
        connection_name: String,
        subscriptions: Vec<String>,
        excess_actions: Vec<String>,
        fix: String,
    },
    /// A subscription chosen for sync can no longer be read.
    #[serde(rename_all = "camelCase")]
    SubscriptionAccessLost {
        connection: Uuid,
        connection_name: String,
        subscription: String,
        fix: String,
    },
    /// The client secret expires soon (the date the admin recorded).
    #[serde(rename_all = "camelCase")]
    SecretExpiring {
        connection: Uuid,
        connection_name: String,
        expires_on: Date,
        days_left: i64,
    },
}

impl Event {
    pub fn new(
        workspace: WorkspaceId,
        at: OffsetDateTime,
        severity: Severity,
        dedupe_key: String,
        kind: EventKind,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            workspace,
            at,
            severity,
            dedupe_key,
            kind,
        }
    }
}

/// Where events go to be delivered.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Accepts the event for delivery. Once this returns `Ok` the event is durable.
    async fn raise(&self, event: &Event) -> Result<(), StoreError>;
}
