//! Every table, queue and container the application uses, in one place.
//!
//! Later features add their names here (a queue per queue-triggered function, plus its `-poison` twin
//! that the host creates itself). `infra/bicep` is tested against these lists, so a resource the code needs
//! cannot be missing from a deployment, and [`ensure_all`] creates them at start-up for local development
//! and tests.

use super::{Storage, StorageError};

/// Platform liveness (heartbeat, queue probes); no customer data.
pub const SYSTEM_TABLE: &str = "system";
/// Workspaces, members and invitations, one partition per workspace.
pub const TENANCY_TABLE: &str = "tenancy";
/// Index of each user's workspaces, for listing only.
pub const MEMBERSHIPS_TABLE: &str = "memberships";
/// The append-only audit trail, one partition per workspace.
pub const AUDIT_TABLE: &str = "audit";
/// Recorded responses of creating requests, for `Idempotency-Key` replays.
pub const IDEMPOTENCY_TABLE: &str = "idempotency";

/// Workspaces' Azure connections (sealed secrets, onboarding state), one partition per workspace.
pub const CONNECTIONS_TABLE: &str = "connections";

/// Cost sync bookkeeping (which subscriptions were scheduled which night), one partition per workspace.
pub const SYNCS_TABLE: &str = "syncs";

/// Synced cost rows: one partition per workspace, subscription, month and generation
/// (`storage::costs`).
pub const COSTS_TABLE: &str = "costs";
/// Each synced month's current generation, one partition per workspace and subscription.
pub const COST_MONTHS_TABLE: &str = "costmonths";

/// Resource Graph inventory per subscription, replaced whole by each sync (`storage::inventory`).
pub const INVENTORY_TABLE: &str = "inventory";

/// Advisor recommendations per subscription, replaced whole by each sync (`storage::inventory`).
pub const RECOMMENDATIONS_TABLE: &str = "recommendations";

/// Incident records (`sixpence record-incident`): retained, like billing records.
pub const INCIDENTS_TABLE: &str = "incidents";

/// Each workspace's Stripe billing state (plan, status, limit, Stripe ids), one partition per
/// workspace. Retained after a workspace's deletion, like the audit trail.
pub const BILLING_TABLE: &str = "billing";

/// Stripe webhook events already processed (at most once each), one partition per event id.
/// Retained: the billing ledger of which event changed what.
pub const STRIPE_EVENTS_TABLE: &str = "stripeevents";

/// Which workspace each Stripe customer belongs to (PartitionKey = customer id), for events that
/// name only the customer.
pub const STRIPE_CUSTOMERS_TABLE: &str = "stripecustomers";

/// Workspace deletions (`domain::deletion`), one partition per workspace: progress, and the
/// "being deleted" marker every worker honours. Retained (no personal data: ids and times).
pub const DELETIONS_TABLE: &str = "deletions";

/// Records kept when a workspace is deleted (minimised), until the retention period ends: billing,
/// audit and incident records.
pub const RETAINED_TABLES: &[&str] = &[
    AUDIT_TABLE,
    INCIDENTS_TABLE,
    BILLING_TABLE,
    STRIPE_EVENTS_TABLE,
    STRIPE_CUSTOMERS_TABLE,
    DELETIONS_TABLE,
];
/// Detected anomalies (episodes with root cause, alert state and feedback), one partition per
/// workspace (`storage::anomalies`).
pub const ANOMALIES_TABLE: &str = "anomalies";
/// Per-workspace analytics settings, one partition per workspace (`storage::anomalies`).
pub const ANALYTICS_TABLE: &str = "analytics";

/// Budgets, their last evaluation and the threshold crossings told, one partition per workspace
/// (`storage::budgets`).
pub const BUDGETS_TABLE: &str = "budgets";
/// Notification channels (sealed webhook URLs), one partition per workspace (`storage::notifications`).
pub const CHANNELS_TABLE: &str = "channels";
/// Delivery records: idempotency, cool-down and the delivery log, one partition per workspace.
pub const DELIVERIES_TABLE: &str = "deliveries";
/// In-app notifications, one partition per workspace and user.
pub const INBOX_TABLE: &str = "inbox";
/// Events gathered for digests, one partition per workspace, channel and window.
pub const DIGESTS_TABLE: &str = "digests";

/// Workspace export requests and their status (`storage::exports`), one partition per workspace
/// (RowKey = export id); deleted with the workspace.
pub const EXPORTS_TABLE: &str = "exports";

/// Tables.
pub const TABLES: &[&str] = &[
    SYSTEM_TABLE,
    TENANCY_TABLE,
    MEMBERSHIPS_TABLE,
    AUDIT_TABLE,
    IDEMPOTENCY_TABLE,
    CONNECTIONS_TABLE,
    SYNCS_TABLE,
    COSTS_TABLE,
    COST_MONTHS_TABLE,
    INVENTORY_TABLE,
    RECOMMENDATIONS_TABLE,
    INCIDENTS_TABLE,
    BILLING_TABLE,
    STRIPE_EVENTS_TABLE,
    STRIPE_CUSTOMERS_TABLE,
    ANOMALIES_TABLE,
    ANALYTICS_TABLE,
    BUDGETS_TABLE,
    CHANNELS_TABLE,
    DELIVERIES_TABLE,
    INBOX_TABLE,
    DIGESTS_TABLE,
    EXPORTS_TABLE,
    DELETIONS_TABLE,
];

/// Events raised for delivery (`domain::events`), one JSON message each.
pub const EVENTS_QUEUE: &str = "events";

/// One message per subscription to sync (`functions::timer::sync_scheduler::CostSyncMessage`).
pub const COST_SYNC_QUEUE: &str = "cost-sync";

/// Days whose costs a sync changed, for anomaly detection (`functions::queue::anomaly_detect`).
pub const ANOMALY_DETECT_QUEUE: &str = "anomaly-detect";
/// Days whose costs a sync changed, for budget evaluation (`functions::queue::budget_check`).
pub const BUDGET_CHECK_QUEUE: &str = "budget-check";

/// One message per (event or digest, channel) to deliver (`functions::queue::notify`).
pub const NOTIFY_QUEUE: &str = "notifications";
/// Deliveries given up after the retry budget, with the reason (written by `notify` itself; the
/// `-poison` twin every queue gets, so not listed in [`QUEUES`]).
pub const NOTIFY_POISON_QUEUE: &str = "notifications-poison";

/// Queues.
pub const QUEUES: &[&str] = &[
    COST_SYNC_QUEUE,
    crate::functions::queue::queue_probe::QUEUE,
    crate::functions::queue::connection_check::QUEUE,
    EVENTS_QUEUE,
    ANOMALY_DETECT_QUEUE,
    BUDGET_CHECK_QUEUE,
    NOTIFY_QUEUE,
    EXPORTS_QUEUE,
    DELETIONS_QUEUE,
];

/// One message per requested workspace export (`functions::queue::export`).
pub const EXPORTS_QUEUE: &str = "exports";
/// One message per step of a workspace's deletion (`functions::queue::deletion`).
pub const DELETIONS_QUEUE: &str = "deletions";

/// Blob containers.
pub const CONTAINERS: &[&str] = &[RAW_COST_PAGES_CONTAINER, EXPORTS_CONTAINER];

/// Each sync run's raw Cost Management pages, gzipped: `<workspace>/<subscription>/<run>/...`.
pub const RAW_COST_PAGES_CONTAINER: &str = "raw-cost-pages";
/// Workspace export archives and their manifests: `<workspace>/<export>/...`. Deleted with the
/// workspace; never retained.
pub const EXPORTS_CONTAINER: &str = "exports";

/// Creates every listed table, queue and container that does not exist yet. Idempotent, so it is safe on
/// every start and from every instance at once.
pub async fn ensure_all(storage: &Storage) -> Result<(), StorageError> {
    for name in TABLES {
        storage.tables().table(name)?.create_if_not_exists().await?;
    }
    for name in QUEUES {
        storage.queues().queue(name)?.create_if_not_exists().await?;
    }
    for name in CONTAINERS {
        storage
            .blobs()
            .container(name)?
            .create_if_not_exists()
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_is_valid() {
        for name in TABLES {
            crate::storage::validate_table_name(name).unwrap();
        }
        for name in QUEUES.iter().chain(CONTAINERS) {
            crate::storage::validate_dns_name("name", name).unwrap();
        }
    }
}
