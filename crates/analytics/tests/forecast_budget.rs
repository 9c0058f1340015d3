//! Period-end forecasts and budget evaluation.
mod common;

use common::*;
use sixpence_analytics::budget::{Basis, Budget, CrossingKey, Threshold, evaluate, unrecorded};
use sixpence_analytics::forecast::{ForecastMethod, Period, PeriodKind, forecast_period};
use sixpence_analytics::money;
use sixpence_analytics::scope::{RowDimensions, Scope, TagFilter};
use time::macros::date;

#[test]
fn periods_have_stable_keys_and_bounds() {
    let q = Period::containing(PeriodKind::Quarter, date!(2024 - 05 - 17));
    assert_eq!(
        (q.start, q.end, q.key()),
        (
            date!(2024 - 04 - 01),
            date!(2024 - 06 - 30),
            "2024-Q2".to_string()
        )
    );
    let m = Period::containing(PeriodKind::Month, date!(2024 - 02 - 10));
    assert_eq!(
        (m.end, m.key(), m.days()),
        (date!(2024 - 02 - 29), "2024-02".to_string(), 29)
    );
    assert_eq!(
        Period::containing(PeriodKind::Year, date!(2024 - 12 - 31)).key(),
        "2024"
    );
}

#[test]
fn a_flat_series_forecasts_its_run_rate_with_an_interval_around_it() {
    let start = date!(2024 - 01 - 01);
    let v = spend(start, 100, 0.05, 31, |_, _| 100.0);
    let s = series(start, &v);
    let as_of = date!(2024 - 04 - 09);
    let f = forecast_period(&s, as_of, PeriodKind::Month).unwrap();
    assert_eq!(f.method, ForecastMethod::Model);
    assert!((f.total - 3000.0).abs() < 150.0, "{}", f.total);
    assert!(f.lower < f.total && f.total < f.upper);
    assert!(
        f.upper - f.lower < 600.0,
        "interval too wide: {} .. {}",
        f.lower,
        f.upper
    );
    assert!((f.actual_to_date - money::sum(v[91..100].iter().copied())).abs() < 1e-9);
}

#[test]
fn the_forecast_knows_the_weekend_pattern() {
    let start = date!(2024 - 01 - 01);
    let v = spend(
        start,
        100,
        0.03,
        32,
        |d, _| if weekend(d) { 20.0 } else { 100.0 },
    );
    let f = forecast_period(&series(start, &v), date!(2024 - 04 - 09), PeriodKind::Month).unwrap();
    assert!(f.weekly);
    // April 2024: 22 weekdays, 8 weekend days.
    let truth = 22.0 * 100.0 + 8.0 * 20.0;
    assert!(
        (f.total - truth).abs() / truth < 0.05,
        "{} vs {truth}",
        f.total
    );
}

#[test]
fn the_forecast_expects_the_month_start_purchase() {
    let start = date!(2023 - 12 - 01);
    let v = spend(start, 130, 0.03, 33, |d, _| {
        if d.day() == 1 { 1100.0 } else { 100.0 }
    });
    let s = series(start, &v);
    let f = forecast_period(&s, date!(2024 - 04 - 09), PeriodKind::Quarter).unwrap();
    assert!(f.month_start_charge > 800.0, "{}", f.month_start_charge);
    // Q2: 91 days at 100 plus three purchases of 1,000 extra.
    let truth = 91.0 * 100.0 + 3000.0;
    assert!(
        (f.total - truth).abs() / truth < 0.05,
        "{} vs {truth}",
        f.total
    );
    assert!(f.lower <= truth && truth <= f.upper, "{f:?}");
}

#[test]
fn the_forecast_follows_a_trend_without_compounding_it_for_a_year() {
    let start = date!(2024 - 01 - 01);
    let v = spend(start, 90, 0.02, 34, |_, i| 100.0 + i as f64);
    let s = series(start, &v);
    let month = forecast_period(&s, date!(2024 - 03 - 30), PeriodKind::Month).unwrap();
    assert!(month.daily.iter().all(|d| d.mean > 180.0));
    let year = forecast_period(&s, date!(2024 - 03 - 30), PeriodKind::Year).unwrap();
    let last = year.daily.last().unwrap().mean;
    assert!(last < 100.0 + 90.0 + 60.0, "damped trend, got {last}");
}

#[test]
fn a_short_history_falls_back_to_the_run_rate_and_no_history_is_an_error() {
    let start = date!(2024 - 03 - 01);
    let s = series(start, &[10.0, 12.0, 11.0]);
    let f = forecast_period(&s, date!(2024 - 03 - 03), PeriodKind::Month).unwrap();
    assert_eq!(f.method, ForecastMethod::RunRate);
    assert!((f.total - 11.0 * 31.0).abs() < 1.0);
    assert!(forecast_period(&s, date!(2023 - 01 - 01), PeriodKind::Month).is_err());
}

fn budget() -> Budget {
    Budget {
        id: "b1".into(),
        amount: 3000.0,
        period: PeriodKind::Month,
        thresholds: vec![
            Threshold {
                percent: 50.0,
                basis: Basis::Actual,
            },
            Threshold {
                percent: 100.0,
                basis: Basis::Actual,
            },
            Threshold {
                percent: 110.0,
                basis: Basis::Forecast,
            },
        ],
        scope: Scope::default(),
    }
}

#[test]
fn budget_crossings_are_keyed_per_period_so_reruns_report_them_once() {
    let start = date!(2024 - 01 - 01);
    let v = spend(
        start,
        110,
        0.03,
        35,
        |_, i| if i >= 91 { 130.0 } else { 100.0 },
    );
    let s = series(start, &v);
    let status = evaluate(&budget(), &s, date!(2024 - 04 - 15)).unwrap();
    assert!(status.actual_pct > 50.0 && status.actual_pct < 100.0);
    let kinds: Vec<_> = status
        .crossings
        .iter()
        .map(|c| (c.key.basis, c.key.threshold_bp))
        .collect();
    assert_eq!(kinds, [(Basis::Actual, 5000), (Basis::Forecast, 11000)]);
    assert!(status.burn_rate > 120.0 && status.burn_rate < 140.0);
    let overrun = status.projected_overrun_date.expect("projected to overrun");
    assert!(overrun > date!(2024 - 04 - 15) && overrun <= date!(2024 - 04 - 30));
    // Storage recorded them; the same night again, or a restated next night, adds nothing new.
    let recorded: Vec<CrossingKey> = status.crossings.iter().map(|c| c.key.clone()).collect();
    let again = evaluate(&budget(), &s, date!(2024 - 04 - 15)).unwrap();
    assert!(unrecorded(&again, &recorded).is_empty());
    // Next month is a new period: keys differ.
    let may = evaluate(&budget(), &s, date!(2024 - 04 - 19)).unwrap();
    assert!(may.crossings.iter().all(|c| c.key.period == "2024-04"));
    assert_eq!(recorded[0].as_row_key(), "b1|2024-04|actual|5000");
}

#[test]
fn an_invalid_budget_is_a_clear_error() {
    let s = series(date!(2024 - 01 - 01), &[1.0; 30]);
    let mut b = budget();
    b.amount = f64::NAN;
    assert!(evaluate(&b, &s, date!(2024 - 01 - 30)).is_err());
    let mut b = budget();
    b.thresholds[0].percent = -5.0;
    assert!(evaluate(&b, &s, date!(2024 - 01 - 30)).is_err());
}

#[test]
fn scopes_match_rows_by_subscription_group_service_and_tags() {
    let tags = vec![("Env".to_string(), "prod".to_string())];
    let row = RowDimensions {
        subscription: "AAAA-1",
        resource_group: "RG-Batch",
        service: "Virtual Machines",
        tags: &tags,
    };
    assert!(Scope::default().matches(&row));
    let scope = Scope {
        subscriptions: vec!["aaaa-1".into()],
        resource_groups: vec!["rg-batch".into(), "rg-web".into()],
        services: vec![],
        tags: vec![TagFilter {
            key: "env".into(),
            value: Some("prod".into()),
        }],
    };
    assert!(scope.matches(&row));
    let wrong_value = Scope {
        tags: vec![TagFilter {
            key: "env".into(),
            value: Some("Prod".into()),
        }],
        ..scope.clone()
    };
    assert!(!wrong_value.matches(&row), "tag values are case-sensitive");
    let other_service = Scope {
        services: vec!["Storage".into()],
        ..scope
    };
    assert!(!other_service.matches(&row));
}
