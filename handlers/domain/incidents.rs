//! Incident records: what happened, when, and which workspaces it touched.
//!
//! An operator records an incident (`sixpence record-incident`); the record is kept like billing
//! records (a retained record: a workspace's deletion keeps it, with no personal data in it, until
//! the retention period ends). Each workspace concerned also gets an audit record pointing at it, so
//! its owners see it in their own trail.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::store::StoreError;
use super::tenancy::WorkspaceId;

/// One recorded incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub id: Uuid,
    /// What happened, in the operator's words (no personal data).
    pub summary: String,
    /// When it happened (or began).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The workspaces it touched; empty for an incident that touched no customer data.
    pub workspaces: Vec<WorkspaceId>,
}

/// Why an incident cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    #[error("the summary must be 1 to 2000 characters")]
    InvalidSummary,
    #[error("the incident cannot have happened in the future")]
    InTheFuture,
}

impl Incident {
    /// A new incident, checked: a summary of 1–2000 characters, a time not in the future (a minute
    /// of clock skew allowed), each workspace once.
    pub fn new(
        summary: &str,
        occurred_at: OffsetDateTime,
        workspaces: Vec<WorkspaceId>,
        now: OffsetDateTime,
    ) -> Result<Self, IncidentError> {
        let summary = summary.trim();
        if summary.is_empty() || summary.chars().count() > 2000 {
            return Err(IncidentError::InvalidSummary);
        }
        if occurred_at > now + time::Duration::minutes(1) {
            return Err(IncidentError::InTheFuture);
        }
        let mut unique = Vec::with_capacity(workspaces.len());
        for workspace in workspaces {
            if !unique.contains(&workspace) {
                unique.push(workspace);
            }
        }
        Ok(Self {
            id: Uuid::new_v4(),
            summary: summary.to_owned(),
            occurred_at,
            recorded_at: now,
            workspaces: unique,
        })
    }
}

/// Where incident records are kept: append and list, nothing else.
#[async_trait::async_trait]
pub trait IncidentLog: Send + Sync {
    async fn record(&self, incident: &Incident) -> Result<(), StoreError>;
    /// Newest recorded first.
    async fn list(&self) -> Result<Vec<Incident>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_needs_a_summary_and_a_past_time_and_lists_each_workspace_once() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(100);
        let ws = WorkspaceId::new();
        let incident = Incident::new(" leak ", now, vec![ws, ws], now).expect("valid");
        assert_eq!(incident.summary, "leak");
        assert_eq!(incident.workspaces, vec![ws]);
        assert_eq!(
            Incident::new("  ", now, vec![], now),
            Err(IncidentError::InvalidSummary)
        );
        assert_eq!(
            Incident::new("x", now + time::Duration::hours(1), vec![], now),
            Err(IncidentError::InTheFuture)
        );
    }
}
