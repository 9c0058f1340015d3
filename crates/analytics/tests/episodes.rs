//! Episodes: one anomaly per run of flagged days, stable identity, restatements update in place.
mod common;

use common::*;
use sixpence_analytics::alert::{self, AlertDecision, AlertPolicy};
use sixpence_analytics::episode::{
    Assessed, Episode, EpisodeChange, EpisodeStatus, apply_changes, update_episodes,
};
use sixpence_analytics::{DailySeries, DetectorConfig, Flag, detect_range};
use time::Date;
use time::macros::date;

const START: Date = date!(2024 - 01 - 01);
const KEY: &str = "sub-1/rg/batch";

/// The nightly job: re-assess the last three days of `series` ending on `today`, fold into episodes.
fn nightly(episodes: &mut Vec<Episode>, series: &DailySeries, today: Date) -> Vec<EpisodeChange> {
    let from = today - time::Duration::days(2);
    let flags = sixpence_analytics::nightly(series, today, &DetectorConfig::default());
    assert_eq!(
        flags,
        detect_range(series, from, today, &DetectorConfig::default())
    );
    let changes = update_episodes(
        episodes,
        Assessed {
            series: KEY,
            from,
            to: today,
            flags: &flags,
        },
    );
    apply_changes(episodes, &changes);
    changes
}

fn base() -> Vec<f64> {
    spend(START, 120, 0.05, 21, |_, _| 100.0)
}

#[test]
fn consecutive_anomalous_days_form_one_episode_reported_once() {
    let mut v = base();
    for x in v.iter_mut().skip(90).take(3) {
        *x *= 4.0;
    }
    let s = series(START, &v);
    let mut episodes = Vec::new();
    let mut opened = 0;
    let mut last_changes = Vec::new();
    for i in 60..=100 {
        let changes = nightly(&mut episodes, &s, day(START, i));
        opened += changes
            .iter()
            .filter(|c| matches!(c, EpisodeChange::Opened(_)))
            .count();
        if i == 100 {
            last_changes = changes;
        }
    }
    assert_eq!(opened, 1, "{episodes:?}");
    let e = &episodes[0];
    assert_eq!((e.start, e.end), (day(START, 90), day(START, 92)));
    assert_eq!(e.id.opened_on, day(START, 90));
    assert_eq!(e.status, EpisodeStatus::Closed);
    assert!(e.cumulative_impact > 800.0);
    assert!(e.days.iter().any(|d| d.date == e.peak.date));
    assert!(
        last_changes.is_empty(),
        "nothing left to change: {last_changes:?}"
    );
}

#[test]
fn running_the_same_night_twice_changes_nothing() {
    let mut v = base();
    v[90] *= 4.0;
    let s = series(START, &v);
    let mut episodes = Vec::new();
    let first = nightly(&mut episodes, &s, day(START, 91));
    assert!(matches!(first.as_slice(), [EpisodeChange::Opened(_)]));
    let again = nightly(&mut episodes, &s, day(START, 91));
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(episodes.len(), 1);
}

fn flag(d: Date, impact: f64) -> Flag {
    Flag {
        date: d,
        direction: if impact >= 0.0 {
            sixpence_analytics::Direction::Up
        } else {
            sixpence_analytics::Direction::Down
        },
        kind: sixpence_analytics::AnomalyKind::Spike,
        actual: 100.0 + impact,
        expected: 100.0,
        lower: 90.0,
        upper: 110.0,
        impact,
        impact_pct: Some(impact),
        score: 5.0,
        weekly: false,
    }
}

fn fold(episodes: &mut Vec<Episode>, from: Date, to: Date, flags: &[Flag]) -> Vec<EpisodeChange> {
    let changes = update_episodes(
        episodes,
        Assessed {
            series: KEY,
            from,
            to,
            flags,
        },
    );
    apply_changes(episodes, &changes);
    changes
}

#[test]
fn a_restated_day_updates_the_episode_instead_of_creating_a_duplicate() {
    let mut episodes = Vec::new();
    let d = |n| day(START, n);
    // Night 1: day 10 flagged.
    fold(&mut episodes, d(8), d(10), &[flag(d(10), 50.0)]);
    let id = episodes[0].id.clone();
    // Night 2: Azure restated day 10 (higher) and day 11 is anomalous too.
    let changes = fold(
        &mut episodes,
        d(9),
        d(11),
        &[flag(d(10), 80.0), flag(d(11), 40.0)],
    );
    assert!(matches!(changes.as_slice(), [EpisodeChange::Updated(e)] if e.id == id));
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0].cumulative_impact, 120.0);
    assert_eq!(episodes[0].revision, 1);
    // Night 3: the restatement moved the anomaly: day 10 is normal now, 11 and 12 are not. Same id.
    let changes = fold(
        &mut episodes,
        d(10),
        d(12),
        &[flag(d(11), 40.0), flag(d(12), 30.0)],
    );
    assert!(matches!(changes.as_slice(), [EpisodeChange::Updated(e)] if e.id == id));
    assert_eq!((episodes[0].start, episodes[0].end), (d(11), d(12)));
    assert_eq!(episodes[0].id.opened_on, d(10), "identity never moves");
}

#[test]
fn a_restatement_that_removes_every_day_retracts_the_episode() {
    let mut episodes = Vec::new();
    let d = |n| day(START, n);
    fold(&mut episodes, d(8), d(10), &[flag(d(10), 50.0)]);
    let changes = fold(&mut episodes, d(9), d(11), &[]);
    assert!(matches!(
        changes.as_slice(),
        [EpisodeChange::Retracted {
            merged_into: None,
            ..
        }]
    ));
    assert!(episodes.is_empty());
}

#[test]
fn a_restated_gap_day_merges_two_episodes_into_the_older_one() {
    let mut episodes = Vec::new();
    let d = |n| day(START, n);
    fold(&mut episodes, d(8), d(10), &[flag(d(10), 50.0)]);
    fold(&mut episodes, d(11), d(13), &[flag(d(13), 50.0)]);
    assert_eq!(episodes.len(), 2);
    let older = episodes[0].id.clone();
    let changes = fold(
        &mut episodes,
        d(11),
        d(13),
        &[flag(d(11), 20.0), flag(d(12), 20.0), flag(d(13), 50.0)],
    );
    assert_eq!(episodes.len(), 1, "{changes:?}");
    assert_eq!(episodes[0].id, older);
    assert!(changes.iter().any(|c| matches!(
        c,
        EpisodeChange::Retracted { merged_into: Some(into), .. } if *into == older
    )));
}

#[test]
fn one_quiet_day_does_not_split_an_episode_but_two_do() {
    let mut episodes = Vec::new();
    let d = |n| day(START, n);
    fold(
        &mut episodes,
        d(1),
        d(20),
        &[flag(d(5), 10.0), flag(d(7), 10.0), flag(d(10), 10.0)],
    );
    assert_eq!(episodes.len(), 2);
    assert_eq!((episodes[0].start, episodes[0].end), (d(5), d(7)));
}

#[test]
fn opposite_directions_are_separate_episodes() {
    let mut episodes = Vec::new();
    let d = |n| day(START, n);
    fold(
        &mut episodes,
        d(1),
        d(10),
        &[flag(d(5), 10.0), flag(d(6), -10.0)],
    );
    assert_eq!(episodes.len(), 2);
}

#[test]
fn alerting_is_gated_on_impact_in_currency_and_percent_separately_from_detection() {
    let mut episodes = Vec::new();
    let d = |n| day(START, n);
    fold(&mut episodes, d(1), d(3), &[flag(d(3), 5.0)]);
    let policy = AlertPolicy::default();
    // Detected (stored) but below the £10 gate.
    assert_eq!(
        alert::evaluate(&episodes[0], &policy),
        AlertDecision::ImpactTooSmall
    );
    fold(
        &mut episodes,
        d(2),
        d(4),
        &[flag(d(3), 5.0), flag(d(4), 30.0)],
    );
    assert!(alert::should_alert(&episodes[0], &policy));
    let strict = AlertPolicy {
        min_impact_pct: 50.0,
        ..policy
    };
    assert_eq!(
        alert::evaluate(&episodes[0], &strict),
        AlertDecision::PercentTooSmall
    );
    let off = AlertPolicy {
        min_impact: 0.0,
        min_impact_pct: 0.0,
        ..policy
    };
    assert!(alert::should_alert(&episodes[0], &off));
}
