//! Cost sync scheduling: which subscriptions are synced each night, and at most once a night.
//!
//! The nightly run is one queue message per subscription (so the platform scales it out). The
//! scheduler claims `(subscription, night)` in a ledger before it enqueues, so running it twice the
//! same night (a manual re-run, a timer fired twice by a host restart) enqueues nothing new.

use serde::{Deserialize, Serialize};
use time::Date;

use super::connections::{Connection, ConnectionId};
use super::store::StoreError;
use super::tenancy::WorkspaceId;

/// Why a sync was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncTrigger {
    Nightly,
    /// A member asked for a sync now (`POST .../syncs`).
    Manual,
}

/// How many times an hour a workspace may ask for a sync now. Each request costs the customer's
/// tenant Cost Management quota (shared with their own tools), so it is kept to a few.
pub const MANUAL_SYNCS_PER_HOUR: u32 = 4;

/// One subscription to sync for one night.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    pub workspace: WorkspaceId,
    pub connection: ConnectionId,
    pub subscription: String,
    /// The UTC date of the night the sync belongs to.
    pub night: Date,
    pub trigger: SyncTrigger,
}

/// The nightly requests of these connections: every chosen, still-usable subscription of every
/// connection Sixpence may call (verified and not revoked). A subscription chosen through two
/// connections of one workspace is synced once, through the first.
pub fn nightly_requests<'a>(
    connections: impl IntoIterator<Item = &'a Connection>,
    night: Date,
) -> Vec<SyncRequest> {
    requests(connections, night, SyncTrigger::Nightly)
}

/// The same subscriptions as the nightly run, asked for now.
pub fn manual_requests<'a>(
    connections: impl IntoIterator<Item = &'a Connection>,
    today: Date,
) -> Vec<SyncRequest> {
    requests(connections, today, SyncTrigger::Manual)
}

fn requests<'a>(
    connections: impl IntoIterator<Item = &'a Connection>,
    night: Date,
    trigger: SyncTrigger,
) -> Vec<SyncRequest> {
    let mut requests: Vec<SyncRequest> = Vec::new();
    for connection in connections.into_iter().filter(|c| c.is_active()) {
        for subscription in connection.selected_subscriptions() {
            let duplicate = requests.iter().any(|r| {
                r.workspace == connection.workspace
                    && r.subscription
                        .eq_ignore_ascii_case(&subscription.subscription_id)
            });
            if !duplicate {
                requests.push(SyncRequest {
                    workspace: connection.workspace,
                    connection: connection.id,
                    subscription: subscription.subscription_id.to_ascii_lowercase(),
                    night,
                    trigger,
                });
            }
        }
    }
    requests
}

/// Remembers which (subscription, night) pairs were scheduled.
#[async_trait::async_trait]
pub trait SyncLedger: Send + Sync {
    /// Records that the request is scheduled; `false` if it already was (nothing to do).
    async fn claim(&self, request: &SyncRequest) -> Result<bool, StoreError>;
    /// Forgets a claim whose message could not be sent, so a re-run schedules it.
    async fn release(&self, request: &SyncRequest) -> Result<(), StoreError>;
    /// Takes one of the [`MANUAL_SYNCS_PER_HOUR`] slots of the hour starting at `hour`; `false`
    /// when all are taken.
    async fn claim_manual(
        &self,
        workspace: WorkspaceId,
        hour: time::OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// Where a sync run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

/// One attempt at syncing one subscription: what the customer sees in `GET .../syncs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRun {
    pub id: uuid::Uuid,
    pub workspace: WorkspaceId,
    pub connection: ConnectionId,
    pub subscription: String,
    pub night: Date,
    /// `true` for a first sync (13 months), `false` for a nightly window.
    pub backfill: bool,
    pub window_from: Date,
    pub window_to: Date,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<time::OffsetDateTime>,
    pub status: RunStatus,
    /// Months of the window done so far, and in all (progress while running).
    pub months_done: u32,
    pub months_total: u32,
    /// Cost rows fetched from Azure.
    pub rows: u64,
    /// Query Processing Units the run's queries cost (one per query per month).
    pub qpu: u32,
    /// Which delivery of the message this run is (1 for the first).
    pub attempt: u32,
    /// What went wrong, in the customer's words.
    #[serde(default)]
    pub error: Option<String>,
    /// How the same run's Resource Graph inventory and Advisor parts went (each is tolerant of the
    /// other and of the cost part failing; `None` when they were not attempted).
    #[serde(default)]
    pub inventory: Option<PartResult>,
    #[serde(default)]
    pub recommendations: Option<PartResult>,
}

/// The outcome of an inventory or recommendations part of a sync run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartResult {
    /// `synced`, `skipped` or `failed`.
    pub status: String,
    pub rows: u64,
    /// The reason or the error, in the customer's words.
    #[serde(default)]
    pub message: Option<String>,
}

/// The record of sync runs, newest first per workspace.
#[async_trait::async_trait]
pub trait SyncRunStore: Send + Sync {
    /// Creates or overwrites the run's record.
    async fn save(&self, run: &SyncRun) -> Result<(), StoreError>;
    /// The workspace's runs, newest first, at most `limit`.
    async fn list(&self, workspace: WorkspaceId, limit: usize) -> Result<Vec<SyncRun>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::connections::{Health, SealedSecret, Stage, SubscriptionAccess};
    use crate::domain::tenancy::UserId;

    fn connection(
        workspace: WorkspaceId,
        health: Health,
        subs: &[(&str, bool, bool)],
    ) -> Connection {
        Connection {
            id: ConnectionId::new(),
            workspace,
            name: "c".into(),
            tenant_id: "t".into(),
            client_id: "c".into(),
            secret: SealedSecret("v1.k.n.c".into()),
            secret_expires_on: None,
            expiry_reminded_at_days: None,
            stage: Stage::SubscriptionsChosen,
            health,
            subscriptions: subs
                .iter()
                .map(|(id, selected, costs)| SubscriptionAccess {
                    subscription_id: (*id).into(),
                    display_name: None,
                    azure_state: Some("Enabled".into()),
                    active: true,
                    can_read_costs: *costs,
                    can_read_resources: true,
                    excess_actions: Vec::new(),
                    selected: *selected,
                })
                .collect(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            created_by: UserId {
                tenant: uuid::Uuid::nil(),
                object: uuid::Uuid::nil(),
            },
            verified_at: None,
            first_sync_at: None,
        }
    }

    #[test]
    fn only_chosen_usable_subscriptions_of_working_connections_are_synced_once_a_workspace() {
        let night = time::macros::date!(2026 - 11 - 23);
        let ws = WorkspaceId::new();
        let revoked = Health::Revoked {
            problem: crate::domain::connections::Problem {
                kind: crate::domain::connections::ProblemKind::AccessRevoked,
                message: "m".into(),
                at: time::OffsetDateTime::UNIX_EPOCH,
            },
        };
        let connections = [
            connection(
                ws,
                Health::Healthy,
                &[("A", true, true), ("b", false, true), ("c", true, false)],
            ),
            connection(ws, Health::Healthy, &[("a", true, true), ("d", true, true)]),
            connection(ws, revoked, &[("e", true, true)]),
            connection(WorkspaceId::new(), Health::Healthy, &[("a", true, true)]),
        ];
        let requests = nightly_requests(&connections, night);
        let subs: Vec<&str> = requests.iter().map(|r| r.subscription.as_str()).collect();
        assert_eq!(subs, ["a", "d", "a"]);
        assert_eq!(requests[0].connection, connections[0].id);
        assert_eq!(requests[2].workspace, connections[3].workspace);
        assert!(requests.iter().all(|r| r.night == night));
    }
}
