//! The deletion service: starts a workspace's deletion and runs its steps (`domain::deletion`),
//! each idempotent and audited, one queue message (`deletions`) per step.
//!
//! Starting a deletion records it (the "being deleted" marker every worker checks before touching a
//! workspace) and runs the first step, [`Step::Stop`], inside the request: by the time the API
//! answers, no member can reach the workspace and no worker does anything for it. Each later step
//! runs in the `deletion` queue function, saves its progress, writes its audit record and enqueues
//! the next. A crash anywhere leaves either the message (redelivered) or the record's progress
//! (re-enqueued by the daily `retention-sweeper`); re-running a step does no harm.

use time::OffsetDateTime;

use crate::app::AppState;
use crate::domain::audit::{Actor, AuditRecord, Change, Outcome};
use crate::domain::deletion::{self, Deletion, DeletionMessage, Reason, Step};
use crate::domain::tenancy::{UserId, WorkspaceId};
use crate::error::{Error, Result};
use crate::storage::names;

/// The audit actor of every step.
pub const COMPONENT: &str = "deletion";

fn storage_error(err: crate::storage::StorageError) -> Error {
    Error::Storage(err.into())
}

/// This binary's plan: every table but the retained ones and `system`, every container.
pub fn plan() -> Vec<Step> {
    deletion::plan(
        names::TABLES,
        names::RETAINED_TABLES,
        &[names::SYSTEM_TABLE],
        names::CONTAINERS,
    )
}

/// Starts (or finds) the workspace's deletion and stops the workspace at once. `true` when this
/// call started it.
pub async fn start(
    state: &AppState,
    workspace: WorkspaceId,
    reason: Reason,
    by: UserId,
) -> Result<(Deletion, bool)> {
    let fresh = Deletion::new(workspace, reason, by, OffsetDateTime::now_utc());
    let (deletion, created) = state
        .deletions()
        .start(&fresh)
        .await
        .map_err(storage_error)?;
    if created {
        tracing::info!(workspace = %workspace, reason = ?reason, "deletion started");
    }
    if deletion.completed_at.is_none() {
        // Stop now; if this fails, the queued step (or the sweeper) stops it moments later.
        match run_step(state, workspace, &Step::Stop).await {
            Ok(()) => {}
            Err(err) => {
                tracing::warn!(error = %err, workspace = %workspace, "stopping inline failed; the queue retries it");
                enqueue(state, workspace, &Step::Stop).await?;
            }
        }
    }
    let deletion = state
        .deletions()
        .get(workspace)
        .await
        .map_err(storage_error)?
        .unwrap_or(deletion);
    Ok((deletion, created))
}

/// Enqueues one step.
pub async fn enqueue(state: &AppState, workspace: WorkspaceId, step: &Step) -> Result<()> {
    let text = serde_json::to_string(&DeletionMessage::new(workspace, step))
        .map_err(|e| Error::Internal(e.into()))?;
    state
        .storage()
        .queues()
        .queue(names::DELETIONS_QUEUE)
        .map_err(storage_error)?
        .send(&text, None)
        .await
        .map_err(storage_error)?;
    Ok(())
}

/// Whether a worker must drop its message for `workspace`: it is being (or was) deleted. Logged
/// with the function's name, so a dropped message is never silent.
pub async fn drops(state: &AppState, workspace: WorkspaceId, function: &str) -> Result<bool> {
    let deleting = state
        .deletions()
        .is_deleting(workspace)
        .await
        .map_err(storage_error)?;
    if deleting {
        tracing::info!(workspace = %workspace, function, "message dropped: the workspace is being deleted");
    }
    Ok(deleting)
}

/// Runs `step` of the workspace's deletion unless it is done already, records it (progress and
/// audit) and enqueues the next step.
pub async fn run_step(state: &AppState, workspace: WorkspaceId, step: &Step) -> Result<()> {
    let Some(mut record) = state
        .deletions()
        .get(workspace)
        .await
        .map_err(storage_error)?
    else {
        // Steps only exist for recorded deletions; a forged or stale message does nothing.
        tracing::warn!(workspace = %workspace, step = %step.name(), "deletion step for a workspace with no deletion: dropped");
        return Ok(());
    };
    let plan = plan();
    if record.completed_at.is_some() || deletion::is_done(&plan, record.done_step().as_ref(), step)
    {
        tracing::info!(workspace = %workspace, step = %step.name(), "deletion step already done: dropped");
        return Ok(());
    }
    if !plan.contains(step) {
        tracing::warn!(workspace = %workspace, step = %step.name(), "deletion step not in this binary's plan: skipped");
        return Ok(());
    }
    let removed = execute(state, &mut record, step).await?;
    let now = OffsetDateTime::now_utc();
    state
        .audit()
        .append(&AuditRecord {
            workspace,
            at: now,
            actor: Actor::System {
                component: COMPONENT.to_owned(),
            },
            action: if *step == Step::Finish {
                "deletion.complete".to_owned()
            } else {
                "deletion.step".to_owned()
            },
            target: format!("deletion/{}", step.name()),
            request_id: format!("deletion-{workspace}"),
            outcome: Outcome::Succeeded,
            changes: vec![Change::new("removed", None, Some(removed.to_string()))],
        })
        .await?;
    record.done = Some(step.name());
    if *step == Step::Finish {
        record.completed_at = Some(now);
        // Even the requester's id is kept only as the workspace's pseudonym of them (the status
        // route compares the caller's pseudonym).
        record.requested_by = deletion::pseudonym(workspace, &record.requested_by);
    }
    state
        .deletions()
        .save(&record)
        .await
        .map_err(storage_error)?;
    tracing::info!(workspace = %workspace, step = %step.name(), removed, "deletion step done");
    if let Some(next) = deletion::next_step(&plan, Some(step)) {
        enqueue(state, workspace, &next).await?;
    } else {
        tracing::info!(workspace = %workspace, "deletion completed");
    }
    Ok(())
}

/// Performs one step; how many things it removed (rows, blobs, messages, subscriptions).
async fn execute(state: &AppState, record: &mut Deletion, step: &Step) -> Result<usize> {
    let workspace = record.workspace;
    let store = state.deletions();
    let n = match step {
        Step::Stop => {
            // The membership index first: the workspace disappears from listings, then access goes.
            let index = store
                .wipe_table(names::MEMBERSHIPS_TABLE, workspace)
                .await
                .map_err(storage_error)?;
            index
                + store
                    .wipe_table(names::TENANCY_TABLE, workspace)
                    .await
                    .map_err(storage_error)?
        }
        Step::CancelBilling => {
            let cancelled = state.billing().cancel_for_deletion(workspace).await?;
            if cancelled.is_some() {
                record.cancelled_subscription.clone_from(&cancelled);
            }
            usize::from(cancelled.is_some())
        }
        Step::Table(table) => {
            if names::RETAINED_TABLES.contains(&table.as_str())
                || table == names::SYSTEM_TABLE
                || !names::TABLES.contains(&table.as_str())
            {
                0
            } else {
                store
                    .wipe_table(table, workspace)
                    .await
                    .map_err(storage_error)?
            }
        }
        Step::Blobs(container) => store
            .wipe_blobs(container, workspace)
            .await
            .map_err(storage_error)?,
        Step::Queues => store
            .wipe_poison_queues(workspace)
            .await
            .map_err(storage_error)?,
        Step::Minimise => store
            .minimise_audit(workspace)
            .await
            .map_err(storage_error)?,
        Step::Finish => 0,
    };
    Ok(n)
}

/// What the sweeper did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub resumed: usize,
    pub late: usize,
    pub overdue: usize,
    pub purged_workspaces: usize,
    pub purged_incidents: usize,
}

/// The daily sweep: resumes every unfinished deletion (re-enqueues its next step; a duplicate is
/// dropped by the step's own check), warns about late ones and raises the operator alert for
/// overdue ones, and purges retained records past their retention period.
pub async fn sweep(state: &AppState, now: OffsetDateTime) -> Result<Sweep> {
    let retention = state.settings().retention;
    let plan = plan();
    let mut sweep = Sweep::default();
    for record in state.deletions().all().await.map_err(storage_error)? {
        let workspace = record.workspace;
        if record.completed_at.is_none() {
            match record.lateness(now) {
                deletion::Lateness::OnTime => {}
                deletion::Lateness::Late => {
                    sweep.late += 1;
                    tracing::warn!(event = "deletion.late", workspace = %workspace, requested_at = %record.requested_at, done = ?record.done, "deletion.late: a deletion is unfinished after 3 days");
                }
                deletion::Lateness::Overdue => {
                    sweep.overdue += 1;
                    // The operator alert (infra/bicep/modules/alerts.bicep matches this event name).
                    tracing::error!(event = "deletion.overdue", workspace = %workspace, requested_at = %record.requested_at, done = ?record.done, "deletion.overdue: a deletion is past its 7-day deadline");
                }
            }
            if let Some(next) = deletion::next_step(&plan, record.done_step().as_ref()) {
                enqueue(state, workspace, &next).await?;
                sweep.resumed += 1;
            }
            continue;
        }
        let audit_expired = retention.audit_expired(&record, now);
        let billing_expired = retention.billing_expired(&record, now);
        if audit_expired {
            state
                .deletions()
                .purge_retained(workspace, &[names::AUDIT_TABLE])
                .await
                .map_err(storage_error)?;
        }
        if billing_expired {
            state
                .deletions()
                .purge_retained(
                    workspace,
                    &[
                        names::BILLING_TABLE,
                        names::STRIPE_CUSTOMERS_TABLE,
                        names::STRIPE_EVENTS_TABLE,
                    ],
                )
                .await
                .map_err(storage_error)?;
        }
        if audit_expired && billing_expired {
            // Nothing of the workspace is left: the record (and marker) goes too.
            state
                .deletions()
                .forget(workspace)
                .await
                .map_err(storage_error)?;
            sweep.purged_workspaces += 1;
            tracing::info!(workspace = %workspace, "retained records purged after their retention period");
        }
    }
    sweep.purged_incidents = state
        .deletions()
        .purge_incidents(now - retention.billing)
        .await
        .map_err(storage_error)?;
    Ok(sweep)
}
