//! Property tests: no input makes the engine panic or emit NaN or infinity.
use proptest::prelude::*;
use sixpence_analytics::budget::{Basis, Budget, Threshold, evaluate};
use sixpence_analytics::episode::{Assessed, update_episodes};
use sixpence_analytics::forecast::{PeriodKind, forecast_period};
use sixpence_analytics::root_cause::{ChildDelta, attribute};
use sixpence_analytics::scope::Scope;
use sixpence_analytics::{DailySeries, DayAssessment, DetectorConfig, Flag, Sensitivity, replay};
use time::macros::date;

fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        4 => (0.0f64..1000.0).prop_map(Some),
        1 => (-1000.0f64..0.0).prop_map(Some),
        1 => Just(Some(0.0)),
        1 => (1e9f64..1e12).prop_map(Some),
        1 => (0.0f64..1e-6).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
        1 => Just(Some(f64::INFINITY)),
        1 => Just(Some(f64::MAX)),
    ]
}

fn series_strategy(max: usize) -> impl Strategy<Value = DailySeries> {
    prop::collection::vec(value(), 0..max)
        .prop_map(|v| DailySeries::from_values(date!(2024 - 01 - 01), v))
}

fn finite_flag(f: &Flag) -> bool {
    [f.actual, f.expected, f.lower, f.upper, f.impact, f.score]
        .iter()
        .all(|x| x.is_finite())
        && f.impact_pct.is_none_or(f64::is_finite)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn replay_never_panics_and_every_number_is_finite(s in series_strategy(100), sens in 0u8..3) {
        let sensitivity = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High][sens as usize];
        let flags = replay(&s, &DetectorConfig { sensitivity });
        for f in &flags {
            prop_assert!(finite_flag(f), "{f:?}");
            prop_assert!(f.lower <= f.upper);
        }
        if let Some(end) = s.end() {
            match sixpence_analytics::assess_day(&s, end, &DetectorConfig::default()) {
                DayAssessment::Normal(b) => prop_assert!(
                    b.expected.is_finite() && b.lower.is_finite() && b.upper.is_finite() && b.score.is_finite()
                ),
                DayAssessment::Anomalous(f) => prop_assert!(finite_flag(&f)),
                _ => {}
            }
        }
    }

    #[test]
    fn episodes_from_any_flags_are_finite(s in series_strategy(80)) {
        let flags = replay(&s, &DetectorConfig::default());
        if let Some(end) = s.end() {
            let changes = update_episodes(&[], Assessed { series: "k", from: s.start(), to: end, flags: &flags });
            for c in &changes {
                if let sixpence_analytics::episode::EpisodeChange::Opened(e) = c {
                    prop_assert!(e.cumulative_impact.is_finite() && e.cumulative_expected.is_finite());
                    prop_assert!(e.start <= e.end);
                }
            }
        }
    }

    #[test]
    fn forecasts_and_budgets_are_finite(s in series_strategy(120), amount in 0.01f64..1e12, pct in 1.0f64..200.0) {
        if let Some(end) = s.end() {
            for kind in [PeriodKind::Month, PeriodKind::Quarter, PeriodKind::Year] {
                if let Ok(f) = forecast_period(&s, end, kind) {
                    prop_assert!(f.total.is_finite() && f.lower.is_finite() && f.upper.is_finite());
                    prop_assert!(f.lower <= f.upper);
                    prop_assert!(f.daily.iter().all(|d| d.mean.is_finite()));
                }
            }
            let b = Budget {
                id: "b".into(),
                amount,
                period: PeriodKind::Month,
                thresholds: vec![
                    Threshold { percent: pct, basis: Basis::Actual },
                    Threshold { percent: pct, basis: Basis::Forecast },
                ],
                scope: Scope::default(),
            };
            let st = evaluate(&b, &s, end).unwrap();
            prop_assert!(st.actual.is_finite() && st.actual_pct.is_finite() && st.burn_rate.is_finite());
            prop_assert!(st.forecast_pct.is_none_or(f64::is_finite));
            prop_assert!(st.allowed_daily_rate.is_none_or(f64::is_finite));
        }
    }

    #[test]
    fn root_cause_shares_are_finite_and_add_up(
        parent in -1e12f64..1e12,
        kids in prop::collection::vec((value(), value()), 0..20),
    ) {
        let children: Vec<ChildDelta> = kids
            .into_iter()
            .enumerate()
            .map(|(i, (a, e))| ChildDelta { key: format!("c{i}"), actual: a.unwrap_or(0.0), expected: e.unwrap_or(0.0) })
            .collect();
        let rc = attribute(parent, &children);
        prop_assert!(rc.net_impact.is_finite());
        let total: f64 = rc.contributors.iter().map(|c| c.share).sum();
        prop_assert!(rc.contributors.iter().all(|c| c.share.is_finite() && c.attributed.is_finite()));
        prop_assert!(rc.contributors.is_empty() || (total - 1.0).abs() < 1e-9, "{total}");
    }
}

#[test]
fn empty_and_single_point_series_are_handled() {
    let empty = DailySeries::empty(date!(2024 - 01 - 01));
    assert!(replay(&empty, &DetectorConfig::default()).is_empty());
    assert!(forecast_period(&empty, date!(2024 - 01 - 01), PeriodKind::Month).is_err());
    let one = DailySeries::from_values(date!(2024 - 01 - 01), vec![Some(5.0)]);
    assert!(replay(&one, &DetectorConfig::default()).is_empty());
    let f = forecast_period(&one, date!(2024 - 01 - 01), PeriodKind::Month).unwrap();
    assert!(f.total.is_finite());
}
