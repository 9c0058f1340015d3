//! Same seed, same data; another seed, other data.

use serde_json::Value;
use sixpence_azure_sim::{AnomalyKind, Metric, SimConfig};
use time::macros::date;

use crate::common::*;

async fn snapshot(seed: u64) -> (Value, Vec<Value>, Value, String) {
    let sim = start(SimConfig { seed, ..config() }).await;
    let tok = token(&sim, 0).await;
    let c = sim.credentials(0);
    let truth = serde_json::to_value(sim.ground_truth()).expect("serializes");
    let body = cost_body(
        "AmortizedCost",
        "2026-07-01",
        "2026-07-31",
        "Daily",
        &[("Dimension", "ResourceId")],
    );
    let (_, rows, _) = query_all(&query_url(&sim, &c.subscriptions[0]), &tok, &body).await;
    let arg = post(
        &format!(
            "{}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01",
            sim.base_url()
        ),
        &tok,
        &serde_json::json!({"query": "Resources", "options": {"$top": 1000}}),
    )
    .await
    .json();
    (
        truth,
        rows,
        arg["data"].clone(),
        format!("{}|{}|{}", c.tenant_id, c.client_id, c.client_secret),
    )
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data() {
    let a = snapshot(7).await;
    let b = snapshot(7).await;
    assert_eq!(a, b);
    let c = snapshot(8).await;
    assert_ne!(a.0, c.0);
    assert_ne!(a.1, c.1);
    assert_ne!(a.3, c.3);
}

#[tokio::test]
async fn the_data_has_history_patterns_and_every_anomaly_kind() {
    let sim = start(config()).await;
    let truth = sim.ground_truth();
    assert_eq!(truth.tenants.len(), 2);
    let kinds: Vec<AnomalyKind> = truth.tenants[0].anomalies.iter().map(|a| a.kind).collect();
    for k in [
        AnomalyKind::Spike,
        AnomalyKind::Drop,
        AnomalyKind::NewService,
        AnomalyKind::RemovedService,
        AnomalyKind::LevelShift,
    ] {
        assert!(kinds.contains(&k), "{k:?} injected");
    }
    let (start_day, end_day) = sim.data_range();
    assert!((end_day - start_day).whole_days() >= 13 * 30, "13+ months");
    let sub = &truth.tenants[0].subscriptions[0].subscription_id;
    // A spike is visible in its series.
    let spike = truth.tenants[0]
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::Spike)
        .expect("spike");
    let series = |d| {
        sim.ground_truth_cost_by(
            &spike.subscription_id,
            d,
            d,
            Metric::ActualCost,
            "ResourceId",
        )
        .and_then(|m| m.get(&spike.series).copied())
        .map(|m| m.units())
        .unwrap_or(0)
    };
    let before = series(spike.start - time::Duration::days(7));
    assert!(series(spike.start) > 3 * before, "spike visible");
    // Weekly pattern: weekends cheaper than weekdays on average, and slow growth year on year.
    let total = |from, to| {
        sim.ground_truth_cost(sub, from, to, Metric::AmortizedCost)
            .map(|m| m.units())
            .unwrap_or(0)
    };
    let sat_sun = total(date!(2026 - 10 - 10), date!(2026 - 10 - 11));
    let tue_wed = total(date!(2026 - 10 - 13), date!(2026 - 10 - 14));
    assert!(
        sat_sun < tue_wed,
        "weekends cheaper: {sat_sun} vs {tue_wed}"
    );
    let _ = total(date!(2025 - 10 - 01), date!(2025 - 10 - 31));
}
