//! Deletion and retention: the rules of deleting a workspace (or closing an account), and how long
//! the records the law requires are kept afterwards.
//!
//! A deletion is a sequence of [`Step`]s, each idempotent, run one queue message at a time
//! (`functions::queue::deletion`). The [`Deletion`] record says which steps are done; the daily
//! `retention-sweeper` re-enqueues the next step of every unfinished deletion, so a crash, a poison
//! message or an outage of Stripe delays a deletion but never loses it. The record's existence is
//! also the workspace's "being deleted" marker every worker honours.
//!
//! The plan is built from the storage lists (`storage::names`): one step per table that is not
//! retained and one per blob container. A table added later is deleted with the workspace without
//! anyone remembering to add it here; a step name a newer binary no longer plans is simply skipped.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::tenancy::{UserId, WorkspaceId};

/// The version of [`DeletionMessage`].
pub const MESSAGE_VERSION: u32 = 1;
/// A deletion not finished this long after its request raises the operator alert
/// (`deletion.overdue`): the promise is 7 days.
pub const DEADLINE: Duration = Duration::days(7);
/// A deletion not finished this long after its request is logged as late (`deletion.late`), well
/// before the deadline, so an operator has days to act.
pub const WARN_AFTER: Duration = Duration::days(3);

/// Why a workspace is being deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Its owner deleted it.
    WorkspaceDeleted,
    /// Its only owner closed their account.
    AccountClosed,
}

/// One step of a deletion. Written as text (`table:costs`), which is also its audit target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// Access and background work stop: members, invitations and the workspace row go, so every
    /// API route answers 404 and no scheduler finds the workspace.
    Stop,
    /// The Stripe subscription is cancelled (at once, not at the period's end).
    CancelBilling,
    /// Every row of the workspace in one table.
    Table(String),
    /// Every blob of the workspace in one container.
    Blobs(String),
    /// The workspace's messages parked in poison queues (live queues drop them as they come).
    Queues,
    /// Personal data in the retained records replaced by pseudonyms.
    Minimise,
    /// The deletion is recorded as complete.
    Finish,
}

impl Step {
    pub fn name(&self) -> String {
        match self {
            Step::Stop => "stop".to_owned(),
            Step::CancelBilling => "cancel-billing".to_owned(),
            Step::Table(t) => format!("table:{t}"),
            Step::Blobs(c) => format!("blobs:{c}"),
            Step::Queues => "queues".to_owned(),
            Step::Minimise => "minimise".to_owned(),
            Step::Finish => "finish".to_owned(),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "stop" => Step::Stop,
            "cancel-billing" => Step::CancelBilling,
            "queues" => Step::Queues,
            "minimise" => Step::Minimise,
            "finish" => Step::Finish,
            other => match other.split_once(':')? {
                ("table", t) if !t.is_empty() => Step::Table(t.to_owned()),
                ("blobs", c) if !c.is_empty() => Step::Blobs(c.to_owned()),
                _ => return None,
            },
        })
    }
}

/// The whole sequence, in order: stop first (at once), then the subscription, then data (connection
/// secrets first among the tables), blobs, poison queues, minimising what is kept, done.
pub fn plan(tables: &[&str], retained: &[&str], keep: &[&str], containers: &[&str]) -> Vec<Step> {
    let mut steps = vec![Step::Stop, Step::CancelBilling];
    let mut deleted: Vec<&str> = tables
        .iter()
        .copied()
        .filter(|t| !retained.contains(t) && !keep.contains(t))
        .collect();
    // Secrets first: the most sensitive data goes earliest.
    deleted.sort_by_key(|t| *t != "connections");
    steps.extend(deleted.into_iter().map(|t| Step::Table(t.to_owned())));
    steps.extend(containers.iter().map(|c| Step::Blobs((*c).to_owned())));
    steps.push(Step::Queues);
    steps.push(Step::Minimise);
    steps.push(Step::Finish);
    steps
}

/// The step after `done` in `plan`; the first step when nothing is done (or `done` is a step this
/// binary does not plan, e.g. after an upgrade: every step is idempotent, so starting over is safe).
pub fn next_step(plan: &[Step], done: Option<&Step>) -> Option<Step> {
    match done {
        None => plan.first().cloned(),
        Some(done) => match plan.iter().position(|s| s == done) {
            Some(i) => plan.get(i + 1).cloned(),
            None => plan.first().cloned(),
        },
    }
}

/// Whether `step` is already behind `done` in `plan` (a duplicate message for it can be dropped).
pub fn is_done(plan: &[Step], done: Option<&Step>, step: &Step) -> bool {
    let (Some(done), Some(at)) = (done, plan.iter().position(|s| s == step)) else {
        return false;
    };
    plan.iter().position(|s| s == done).is_some_and(|d| at <= d)
}

/// A workspace's deletion: at most one per workspace (ids are never reused), so its id is the
/// workspace id and a second request finds the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deletion {
    pub workspace: WorkspaceId,
    pub reason: Reason,
    /// Who asked: the only person who may read its status (they are no longer a member).
    pub requested_by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// The last step done, as [`Step::name`]; `None` before the first.
    pub done: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// Stripe subscription cancelled by the deletion, if there was one.
    #[serde(default)]
    pub cancelled_subscription: Option<String>,
}

impl Deletion {
    pub fn new(workspace: WorkspaceId, reason: Reason, by: UserId, now: OffsetDateTime) -> Self {
        Self {
            workspace,
            reason,
            requested_by: by,
            requested_at: now,
            done: None,
            completed_at: None,
            cancelled_subscription: None,
        }
    }

    pub fn done_step(&self) -> Option<Step> {
        self.done.as_deref().and_then(Step::parse)
    }

    pub fn status(&self) -> &'static str {
        if self.completed_at.is_some() {
            "completed"
        } else {
            "inProgress"
        }
    }

    /// How late an unfinished deletion is at `now`.
    pub fn lateness(&self, now: OffsetDateTime) -> Lateness {
        if self.completed_at.is_some() {
            return Lateness::OnTime;
        }
        let age = now - self.requested_at;
        if age >= DEADLINE {
            Lateness::Overdue
        } else if age >= WARN_AFTER {
            Lateness::Late
        } else {
            Lateness::OnTime
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lateness {
    OnTime,
    /// Past [`WARN_AFTER`]: a warning.
    Late,
    /// Past [`DEADLINE`]: the operator alert.
    Overdue,
}

/// A deletion queue message: run `step` of `workspace`'s deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionMessage {
    pub version: u32,
    pub workspace: WorkspaceId,
    pub step: String,
}

impl DeletionMessage {
    pub fn new(workspace: WorkspaceId, step: &Step) -> Self {
        Self {
            version: MESSAGE_VERSION,
            workspace,
            step: step.name(),
        }
    }
}

/// How long retained records are kept after the deletion completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The audit trail (`SIXPENCE_RETENTION_AUDIT_DAYS`).
    pub audit: Duration,
    /// Billing records and incident records (`SIXPENCE_RETENTION_BILLING_DAYS`).
    pub billing: Duration,
}

/// Two years of audit trail.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 730;
/// Seven years of billing records: HMRC asks for six years after the end of the accounting period.
pub const DEFAULT_BILLING_RETENTION_DAYS: u32 = 2557;

impl Default for Retention {
    fn default() -> Self {
        Self {
            audit: Duration::days(DEFAULT_AUDIT_RETENTION_DAYS.into()),
            billing: Duration::days(DEFAULT_BILLING_RETENTION_DAYS.into()),
        }
    }
}

impl Retention {
    /// Whether a completed deletion's audit trail has been kept long enough at `now`.
    pub fn audit_expired(&self, deletion: &Deletion, now: OffsetDateTime) -> bool {
        deletion
            .completed_at
            .is_some_and(|at| now - at >= self.audit)
    }

    /// Whether a completed deletion's billing records have been kept long enough at `now`.
    pub fn billing_expired(&self, deletion: &Deletion, now: OffsetDateTime) -> bool {
        deletion
            .completed_at
            .is_some_and(|at| now - at >= self.billing)
    }
}

/// The stable pseudonym that replaces a person in a deleted workspace's retained records: the same
/// person gets the same pseudonym throughout that workspace's records (so the trail still reads
/// "the same actor did A then B"), a different one in another workspace's, and the user id is not
/// in it.
pub fn pseudonym(workspace: WorkspaceId, user: &UserId) -> UserId {
    let digest = Sha256::new()
        .chain_update(b"sixpence deletion pseudonym v1\n")
        .chain_update(workspace.to_string().as_bytes())
        .chain_update(b"\n")
        .chain_update(user.to_string().as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    UserId {
        tenant: Uuid::nil(),
        object: uuid::Builder::from_random_bytes(bytes).into_uuid(),
    }
}

/// Whether a text looks like an email address (what minimisation removes from retained records).
pub fn looks_like_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn the_plan() -> Vec<Step> {
        plan(
            &[
                "system",
                "tenancy",
                "audit",
                "costs",
                "connections",
                "billing",
            ],
            &["audit", "billing"],
            &["system"],
            &["raw-cost-pages", "exports"],
        )
    }

    #[test]
    fn the_plan_stops_first_deletes_secrets_before_other_data_and_keeps_retained_tables() {
        let names: Vec<String> = the_plan().iter().map(Step::name).collect();
        assert_eq!(
            names,
            [
                "stop",
                "cancel-billing",
                "table:connections",
                "table:tenancy",
                "table:costs",
                "blobs:raw-cost-pages",
                "blobs:exports",
                "queues",
                "minimise",
                "finish"
            ]
        );
        for step in the_plan() {
            assert_eq!(Step::parse(&step.name()), Some(step));
        }
        assert_eq!(Step::parse("table:"), None);
        assert_eq!(Step::parse("nonsense"), None);
    }

    #[test]
    fn next_step_resumes_after_the_last_done_and_restarts_on_an_unknown_one() {
        let plan = the_plan();
        assert_eq!(next_step(&plan, None), Some(Step::Stop));
        assert_eq!(
            next_step(&plan, Some(&Step::CancelBilling)),
            Some(Step::Table("connections".into()))
        );
        assert_eq!(next_step(&plan, Some(&Step::Finish)), None);
        assert_eq!(
            next_step(&plan, Some(&Step::Table("gone".into()))),
            Some(Step::Stop)
        );
        assert!(is_done(&plan, Some(&Step::Queues), &Step::Stop));
        assert!(is_done(&plan, Some(&Step::Queues), &Step::Queues));
        assert!(!is_done(&plan, Some(&Step::Queues), &Step::Minimise));
        assert!(!is_done(&plan, None, &Step::Stop));
    }

    #[test]
    fn lateness_warns_at_three_days_and_alerts_at_seven() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let user = UserId {
            tenant: Uuid::nil(),
            object: Uuid::nil(),
        };
        let mut d = Deletion::new(WorkspaceId::new(), Reason::WorkspaceDeleted, user, t0);
        assert_eq!(d.lateness(t0 + Duration::days(2)), Lateness::OnTime);
        assert_eq!(d.lateness(t0 + Duration::days(3)), Lateness::Late);
        assert_eq!(d.lateness(t0 + Duration::days(7)), Lateness::Overdue);
        d.completed_at = Some(t0 + Duration::days(1));
        assert_eq!(d.lateness(t0 + Duration::days(30)), Lateness::OnTime);
    }

    #[test]
    fn retention_counts_from_completion() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let user = UserId {
            tenant: Uuid::nil(),
            object: Uuid::nil(),
        };
        let retention = Retention {
            audit: Duration::days(10),
            billing: Duration::days(20),
        };
        let mut d = Deletion::new(WorkspaceId::new(), Reason::AccountClosed, user, t0);
        assert!(!retention.audit_expired(&d, t0 + Duration::days(100)));
        d.completed_at = Some(t0);
        assert!(!retention.audit_expired(&d, t0 + Duration::days(9)));
        assert!(retention.audit_expired(&d, t0 + Duration::days(10)));
        assert!(!retention.billing_expired(&d, t0 + Duration::days(19)));
        assert!(retention.billing_expired(&d, t0 + Duration::days(20)));
    }

    #[test]
    fn pseudonyms_are_stable_per_workspace_and_hide_the_user() {
        let user = UserId {
            tenant: Uuid::from_u128(7),
            object: Uuid::from_u128(8),
        };
        let (a, b) = (WorkspaceId::new(), WorkspaceId::new());
        assert_eq!(pseudonym(a, &user), pseudonym(a, &user));
        assert_ne!(pseudonym(a, &user), pseudonym(b, &user));
        let p = pseudonym(a, &user).to_string();
        assert!(!p.contains(&user.object.to_string()));
        assert!(!p.contains(&user.tenant.to_string()));
        assert!(looks_like_email("alice@contoso.com"));
        assert!(!looks_like_email("member/123"));
    }
}
