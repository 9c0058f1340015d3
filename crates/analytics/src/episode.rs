//! Episodes: consecutive anomalous days of one series reported as one anomaly.
//!
//! # Identity and merge rules
//! An episode is identified by [`EpisodeId`] = (series key, the first day it was reported with).
//! That id never changes once issued, even when a restatement later moves the episode's first day,
//! so storage can use it as the row key and upsert idempotently.
//!
//! Each night the detector re-assesses the last few days (Azure restates the last 1–3 days) and
//! [`update_episodes`] is given the existing episodes of the series, the assessed date range and the
//! flags in that range. Within the range the new flags are the truth: days of existing episodes in
//! the range are replaced by them, days outside it are kept. Then:
//! - flagged days of one direction at most [`MAX_GAP_DAYS`] normal days apart form one run;
//! - a run that touches one existing episode (shares a day, or lies within the gap of it) updates that
//!   episode; a run touching several merges them into the oldest, and the others are retracted;
//! - a run touching none opens a new episode;
//! - an existing episode left with no day is retracted (a restatement proved it normal);
//! - an episode is closed once the assessed range reaches more than [`MAX_GAP_DAYS`] days past its
//!   last flagged day; a later restatement that flags a day within its gap reopens it.
//!
//! Running [`update_episodes`] again with the same inputs on the updated episodes yields no change,
//! so at-least-once delivery never duplicates an anomaly.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::detect::{AnomalyKind, Direction, Flag};
use crate::money;

/// Normal days allowed inside one episode. One: a single quiet day (a weekend in the middle of an
/// incident, a day that just missed the threshold) does not split an incident into two alerts,
/// while two quiet days in a row mean the series was back to normal.
pub const MAX_GAP_DAYS: i64 = 1;

/// Stable identity of an episode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EpisodeId {
    /// Key of the series (e.g. `sub/{id}/rg/{name}`), chosen by the caller.
    pub series: String,
    /// First day the episode was reported with.
    pub opened_on: Date,
}

/// One flagged day inside an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeDay {
    /// The day.
    pub date: Date,
    /// Rule that flagged it.
    pub kind: AnomalyKind,
    /// Observed value.
    pub actual: f64,
    /// Expected value.
    pub expected: f64,
    /// `actual − expected`.
    pub impact: f64,
    /// Score of the day.
    pub score: f64,
}

impl From<&Flag> for EpisodeDay {
    fn from(f: &Flag) -> Self {
        EpisodeDay {
            date: f.date,
            kind: f.kind,
            actual: f.actual,
            expected: f.expected,
            impact: f.impact,
            score: f.score,
        }
    }
}

/// Whether an episode may still grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeStatus {
    /// The last assessed days are (or may still be) part of it.
    Open,
    /// The series has been normal for more than [`MAX_GAP_DAYS`] days since.
    Closed,
}

/// One anomaly: consecutive flagged days of one series in one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Stable identity.
    pub id: EpisodeId,
    /// Above or below expectation.
    pub direction: Direction,
    /// Kind of the first day (what started it).
    pub kind: AnomalyKind,
    /// First flagged day.
    pub start: Date,
    /// Last flagged day.
    pub end: Date,
    /// Day with the largest |impact|.
    pub peak: EpisodeDay,
    /// Sum of the daily impacts (compensated sum).
    pub cumulative_impact: f64,
    /// Sum of the expected values over the flagged days (for a percent impact).
    pub cumulative_expected: f64,
    /// The flagged days, in date order.
    pub days: Vec<EpisodeDay>,
    /// Open or closed.
    pub status: EpisodeStatus,
    /// Incremented on every change: storage can use it to order writes and to decide whether a
    /// message about this episode is stale.
    pub revision: u32,
}

impl Episode {
    /// Cumulative impact in percent of the cumulative expected spend (`None` if nothing was
    /// expected).
    pub fn cumulative_impact_pct(&self) -> Option<f64> {
        money::percent(self.cumulative_impact, self.cumulative_expected)
    }

    fn from_days(id: EpisodeId, direction: Direction, mut days: Vec<EpisodeDay>) -> Option<Self> {
        days.sort_by_key(|d| d.date);
        let first = days.first()?;
        let last = days.last()?;
        let peak = days
            .iter()
            .max_by(|a, b| a.impact.abs().total_cmp(&b.impact.abs()))?
            .clone();
        Some(Episode {
            id,
            direction,
            kind: first.kind,
            start: first.date,
            end: last.date,
            peak,
            cumulative_impact: money::sum(days.iter().map(|d| d.impact)),
            cumulative_expected: money::sum(days.iter().map(|d| d.expected)),
            status: EpisodeStatus::Open,
            revision: 0,
            days,
        })
    }

    /// Same content, ignoring the revision.
    fn same_as(&self, other: &Episode) -> bool {
        self.id == other.id
            && self.direction == other.direction
            && self.kind == other.kind
            && self.status == other.status
            && self.days == other.days
    }
}

/// What changed; storage applies these in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum EpisodeChange {
    /// A new episode: insert it (and consider alerting).
    Opened(Episode),
    /// An existing episode grew or was restated: replace it (do not alert again unless the alert
    /// gate newly passes, see [`crate::alert`]).
    Updated(Episode),
    /// An existing episode ended: replace it (a "resolved" notification may follow).
    Closed(Episode),
    /// An existing episode no longer exists (restated away, or merged into `merged_into`).
    Retracted {
        /// The episode that disappears.
        id: EpisodeId,
        /// The episode that absorbed it, when it was merged.
        merged_into: Option<EpisodeId>,
    },
}

/// The days `from..=to` of one series that were (re)assessed, with the flags among them.
#[derive(Debug, Clone, Copy)]
pub struct Assessed<'a> {
    /// Series key (as in [`EpisodeId::series`]).
    pub series: &'a str,
    /// First assessed day.
    pub from: Date,
    /// Last assessed day.
    pub to: Date,
    /// Flags within `from..=to` (others are ignored).
    pub flags: &'a [Flag],
}

/// Folds the assessment of one series into its episodes (see the module docs for the rules).
/// `existing` may contain episodes of other series; they are left alone.
pub fn update_episodes(existing: &[Episode], assessed: Assessed<'_>) -> Vec<EpisodeChange> {
    let mut changes = Vec::new();
    for direction in [Direction::Up, Direction::Down] {
        update_direction(existing, &assessed, direction, &mut changes);
    }
    changes
}

fn update_direction(
    existing: &[Episode],
    a: &Assessed<'_>,
    direction: Direction,
    changes: &mut Vec<EpisodeChange>,
) {
    let in_range = |d: Date| d >= a.from && d <= a.to;
    let mut olds: Vec<&Episode> = existing
        .iter()
        .filter(|e| e.id.series == a.series && e.direction == direction)
        .collect();
    olds.sort_by(|x, y| x.start.cmp(&y.start).then(x.id.cmp(&y.id)));

    // Every flagged day after the restatement, remembering which old episode each kept day had.
    let mut days: Vec<(EpisodeDay, Option<usize>)> = Vec::new();
    for (i, e) in olds.iter().enumerate() {
        days.extend(
            e.days
                .iter()
                .filter(|d| !in_range(d.date))
                .map(|d| (d.clone(), Some(i))),
        );
    }
    let mut new_days: Vec<&Flag> = a
        .flags
        .iter()
        .filter(|f| f.direction == direction && in_range(f.date))
        .collect();
    new_days.sort_by_key(|f| f.date);
    new_days.dedup_by_key(|f| f.date);
    days.extend(new_days.into_iter().map(|f| (EpisodeDay::from(f), None)));
    days.sort_by_key(|d| d.0.date);

    // Runs of days at most MAX_GAP_DAYS normal days apart.
    let mut runs: Vec<Vec<(EpisodeDay, Option<usize>)>> = Vec::new();
    for d in days {
        match runs.last_mut() {
            Some(run)
                if run
                    .last()
                    .is_some_and(|l| (d.0.date - l.0.date).whole_days() <= MAX_GAP_DAYS + 1) =>
            {
                run.push(d)
            }
            _ => runs.push(vec![d]),
        }
    }

    let mut used = vec![false; olds.len()];
    for run in runs {
        let run_start = run[0].0.date;
        let run_end = run[run.len() - 1].0.date;
        // Old episodes this run touches: by a kept day, or by overlapping / adjoining its old span
        // (a restated day next to an episode belongs to it).
        let touched: Vec<usize> = (0..olds.len())
            .filter(|&i| {
                run.iter().any(|d| d.1 == Some(i))
                    || ((olds[i].start - run_end).whole_days() <= MAX_GAP_DAYS + 1
                        && (run_start - olds[i].end).whole_days() <= MAX_GAP_DAYS + 1)
            })
            .filter(|&i| !used[i])
            .collect();
        let days: Vec<EpisodeDay> = run.into_iter().map(|d| d.0).collect();
        let Some(&keep) = touched.first() else {
            let id = EpisodeId {
                series: a.series.to_string(),
                opened_on: run_start,
            };
            if let Some(mut e) = Episode::from_days(id, direction, days) {
                e.status = status_for(e.end, a.to);
                changes.push(EpisodeChange::Opened(e));
            }
            continue;
        };
        for &i in &touched {
            used[i] = true;
        }
        let old = olds[keep];
        if let Some(mut e) = Episode::from_days(old.id.clone(), direction, days) {
            e.status = if old.status == EpisodeStatus::Closed && e.end <= old.end {
                EpisodeStatus::Closed
            } else {
                status_for(e.end, a.to.max(old.end))
            };
            e.revision = old.revision;
            if !e.same_as(old) {
                e.revision = old.revision.saturating_add(1);
                if e.status == EpisodeStatus::Closed && old.status == EpisodeStatus::Open {
                    changes.push(EpisodeChange::Closed(e));
                } else {
                    changes.push(EpisodeChange::Updated(e));
                }
            }
        }
        for &i in &touched[1..] {
            changes.push(EpisodeChange::Retracted {
                id: olds[i].id.clone(),
                merged_into: Some(old.id.clone()),
            });
        }
    }
    for (i, e) in olds.iter().enumerate() {
        if !used[i] {
            // None of its days survived: the assessment proved it normal.
            changes.push(EpisodeChange::Retracted {
                id: e.id.clone(),
                merged_into: None,
            });
        }
    }
}

fn status_for(end: Date, assessed_to: Date) -> EpisodeStatus {
    if (assessed_to - end).whole_days() > MAX_GAP_DAYS {
        EpisodeStatus::Closed
    } else {
        EpisodeStatus::Open
    }
}

/// Applies `changes` to `episodes` (what a storage layer does with its rows); handy for tests and
/// for in-memory replays.
pub fn apply_changes(episodes: &mut Vec<Episode>, changes: &[EpisodeChange]) {
    for c in changes {
        match c {
            EpisodeChange::Opened(e) | EpisodeChange::Updated(e) | EpisodeChange::Closed(e) => {
                match episodes.iter_mut().find(|x| x.id == e.id) {
                    Some(x) => *x = e.clone(),
                    None => episodes.push(e.clone()),
                }
            }
            EpisodeChange::Retracted { id, .. } => episodes.retain(|x| &x.id != id),
        }
    }
}
