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
