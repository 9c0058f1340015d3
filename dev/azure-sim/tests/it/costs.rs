//! Cost data: zero days omitted, totals reconcile with the ground truth, quota enforcement.

use serde_json::{Value, json};
use sixpence_azure_sim::{Metric, Money, SimConfig};
use time::macros::date;

use crate::common::*;

fn sum(rows: &[Value], cost_col: usize) -> Money {
    Money::from_units(
        rows.iter()
            .map(|r| Money::from_f64(r[cost_col].as_f64().unwrap_or(f64::NAN)).units())
            .sum(),
    )
}

#[tokio::test]
async fn totals_reconcile_with_the_ground_truth_to_the_unit() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    for sub in sim.credentials(0).subscriptions {
        let url = query_url(&sim, &sub);
        for (metric, m) in [
            ("ActualCost", Metric::ActualCost),
            ("AmortizedCost", Metric::AmortizedCost),
        ] {
            let truth = sim
                .ground_truth_cost(&sub, date!(2026 - 10 - 01), date!(2026 - 10 - 31), m)
                .expect("known subscription");
            assert!(truth.units() > 0);
            for (granularity, grouping) in [
                ("Daily", vec![("Dimension", "ResourceId")]),
                (
                    "Monthly",
                    vec![("Dimension", "ServiceName"), ("Dimension", "ChargeType")],
                ),
                ("None", vec![("TagKey", "env")]),
                ("Daily", vec![]),
            ] {
                let body = cost_body(metric, "2026-10-01", "2026-10-31", granularity, &grouping);
                let (cols, rows, _) = query_all(&url, &tok, &body).await;
                assert_eq!(
                    sum(&rows, col(&cols, "Cost")),
                    truth,
                    "{sub} {metric} {granularity} {grouping:?}"
                );
                assert!(
                    rows.iter()
                        .all(|r| r[col(&cols, "Cost")].as_f64().unwrap_or(0.0) > 0.0)
                );
            }
        }
        // A full month amortizes the whole reservation: Actual and Amortized agree on the month.
        let a = sim.ground_truth_cost(
            &sub,
            date!(2026 - 10 - 01),
            date!(2026 - 10 - 31),
            Metric::ActualCost,
        );
        let b = sim.ground_truth_cost(
            &sub,
            date!(2026 - 10 - 01),
            date!(2026 - 10 - 31),
            Metric::AmortizedCost,
        );
        assert_eq!(a, b);
        // ... but not day by day: the purchase lands on the 1st in ActualCost only.
        let d1 = date!(2026 - 10 - 01);
        let by = |m| {
            sim.ground_truth_cost_by(&sub, d1, d1, m, "ChargeType")
                .expect("dimension")
        };
        assert!(by(Metric::ActualCost).contains_key("Purchase"));
        assert!(!by(Metric::AmortizedCost).contains_key("Purchase"));
    }
}

#[tokio::test]
async fn grouped_totals_and_filters_match_the_ground_truth() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[1].clone();
    let (from, to) = (date!(2026 - 08 - 01), date!(2026 - 08 - 31));
    let truth = sim
        .ground_truth_cost_by(&sub, from, to, Metric::ActualCost, "ServiceName")
        .expect("dimension");
    let body = cost_body(
        "ActualCost",
        "2026-08-01",
        "2026-08-31",
        "None",
        &[("Dimension", "ServiceName")],
    );
    let (cols, rows, _) = query_all(&query_url(&sim, &sub), &tok, &body).await;
    assert_eq!(rows.len(), truth.len());
    for r in &rows {
        let svc = r[col(&cols, "ServiceName")].as_str().unwrap_or_default();
        assert_eq!(
            Some(&Money::from_f64(r[0].as_f64().unwrap_or(0.0))),
            truth.get(svc),
            "{svc}"
        );
    }
    let (svc, expected) = truth.iter().next().expect("a service");
    let mut filtered = cost_body("ActualCost", "2026-08-01", "2026-08-31", "Daily", &[]);
    filtered["dataset"]["filter"] = json!({"or": [
        {"dimensions": {"name": "ServiceName", "operator": "In", "values": [svc.to_uppercase()]}},
        {"dimensions": {"name": "ServiceName", "operator": "In", "values": ["No Such Service"]}}
    ]});
    let (cols, rows, _) = query_all(&query_url(&sim, &sub), &tok, &filtered).await;
    assert_eq!(&sum(&rows, col(&cols, "Cost")), expected);
}

#[tokio::test]
async fn zero_cost_days_are_omitted() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let truth = sim.ground_truth();
    let subs = &truth.tenants[0].subscriptions;
    let mut checked = 0;
    for s in subs {
        for day in &s.missing_days {
            let from = day.replace_day(1).expect("first");
            let to = sixpence_last_of_month(from);
            let fmt =
                |d: time::Date| format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day());
            let body = cost_body("ActualCost", &fmt(from), &fmt(to), "Daily", &[]);
            let (cols, rows, _) =
                query_all(&query_url(&sim, &s.subscription_id), &tok, &body).await;
            let dates: Vec<u64> = rows
                .iter()
                .map(|r| r[col(&cols, "UsageDate")].as_u64().unwrap_or(0))
                .collect();
            let ymd = |d: &time::Date| {
                d.year() as u64 * 10_000 + d.month() as u64 * 100 + u64::from(d.day())
            };
            assert!(!dates.contains(&ymd(day)), "missing day {day} omitted");
            let missing_in_month = s
                .missing_days
                .iter()
                .filter(|d| **d >= from && **d <= to)
                .count();
            let days_with_data = (to.min(truth.data_end) - from).whole_days() as usize + 1;
            assert_eq!(
                rows.len(),
                days_with_data - missing_in_month,
                "one row per billed day"
            );
            assert_eq!(
                sim.ground_truth_cost(&s.subscription_id, *day, *day, Metric::ActualCost),
                Some(Money::from_units(0))
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "missing days exist: {checked}");
    assert!(truth.data_end == date!(2026 - 11 - 22) && truth.data_start == date!(2025 - 10 - 01));
}

fn sixpence_last_of_month(first: time::Date) -> time::Date {
    let mut d = first;
    while let Some(n) = d.next_day() {
        if n.month() != first.month() {
            break;
        }
        d = n;
    }
    d
}

#[tokio::test]
async fn the_qpu_quota_is_enforced_per_tenant_with_the_real_headers() {
    let sim = start(SimConfig {
        quota: Some(Default::default()),
        ..config()
    })
    .await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let url = query_url(&sim, &sub);
    let one_month = cost_body("ActualCost", "2026-10-01", "2026-10-31", "None", &[]);
    for i in 1..=12u32 {
        let r = post(&url, &tok, &one_month).await;
        assert_eq!(r.status, 200, "query {i}");
        assert_eq!(
            r.header("x-ms-ratelimit-microsoft.costmanagement-qpu-consumed"),
            Some("1")
        );
        assert_eq!(
            r.header("x-ms-ratelimit-microsoft.costmanagement-qpu-remaining")
                .map(str::to_string),
            Some(format!(
                "QueriesPerHour:{},QueriesPerMin:{},QueriesPer10Sec:{}",
                600 - i,
                60 - i,
                12 - i
            ))
        );
    }
    let r = post(&url, &tok, &one_month).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "429");
    for h in ["qpu", "entity", "tenant", "clienttype"] {
        let v: u64 = r
            .header(&format!(
                "x-ms-ratelimit-microsoft.costmanagement-{h}-retry-after"
            ))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!((1..=10).contains(&v), "{h} retry-after {v}");
    }
    assert_eq!(
        r.header("x-ms-ratelimit-microsoft.costmanagement-qpu-consumed"),
        Some("0")
    );
    assert_eq!(
        r.header("x-ms-ratelimit-microsoft.costmanagement-qpu-remaining"),
        Some("QueriesPerHour:588,QueriesPerMin:48,QueriesPer10Sec:0")
    );
    // Another customer's tenant is not throttled by this one.
    let tok1 = token(&sim, 1).await;
    let sub1 = sim.credentials(1).subscriptions[0].clone();
    let other = post(&query_url(&sim, &sub1), &tok1, &one_month).await;
    assert_eq!(other.status, 200);
    // A two-month query costs 2 QPU.
    sim.apply_fault(1, sixpence_azure_sim::Fault::ResetQuota)
        .expect("tenant");
    let two = post(
        &query_url(&sim, &sub1),
        &tok1,
        &cost_body("ActualCost", "2026-09-15", "2026-10-15", "None", &[]),
    )
    .await;
    assert_eq!(
        two.header("x-ms-ratelimit-microsoft.costmanagement-qpu-consumed"),
        Some("2")
    );
    assert_eq!(sim.request_count("query"), 15);
}

#[tokio::test]
async fn bad_queries_get_400_not_500() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let url = query_url(&sim, &sub);
    let too_long = cost_body("ActualCost", "2025-10-01", "2026-11-20", "Monthly", &[]);
    let mut three_groups = cost_body("ActualCost", "2026-10-01", "2026-10-31", "None", &[]);
    three_groups["dataset"]["grouping"] = json!([
        {"type": "Dimension", "name": "ServiceName"}, {"type": "Dimension", "name": "ResourceId"},
        {"type": "Dimension", "name": "MeterCategory"}]);
    for body in [
        json!({}),
        json!({"type": "ActualCost"}),
        too_long,
        three_groups,
    ] {
        let r = post(&url, &tok, &body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.json()["error"]["message"].is_string());
    }
}
