//! Large mode: over a million cost rows for one subscription, generated lazily with bounded memory.
//! Its own test binary so the memory reading is not disturbed by other tests.

use serde_json::json;
use sixpence_azure_sim::{LargeMode, Metric, SimConfig, SimTenant};
use time::macros::date;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resident set size in KiB (Linux; elsewhere the memory bound is not measured).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn large_mode_streams_over_a_million_rows_in_bounded_memory() {
    let sim = SimTenant::start(SimConfig {
        seed: 3,
        today: Some(date!(2026 - 11 - 23)),
        quota: None,
        large: Some(LargeMode::million_rows()),
        ..SimConfig::default()
    })
    .await
    .expect("starts");
    let sub = sim.credentials(0).subscriptions[0].clone();
    let (from, to) = sim.data_range();
    let before = rss_kib();
    let rows = sim
        .count_cost_rows(&sub, from, to, Metric::ActualCost)
        .expect("sub");
    assert!(rows >= 1_000_000, "{rows} rows");
    let total: i64 = sim
        .cost_rows(
            &sub,
            date!(2026 - 10 - 01),
            date!(2026 - 10 - 31),
            Metric::ActualCost,
        )
        .expect("sub")
        .map(|r| r.amount.units())
        .sum();
    assert_eq!(
        Some(total),
        sim.ground_truth_cost(
            &sub,
            date!(2026 - 10 - 01),
            date!(2026 - 10 - 31),
            Metric::ActualCost
        )
        .map(|m| m.units())
    );
    if let (Some(b), Some(a)) = (before, rss_kib()) {
        assert!(
            a.saturating_sub(b) < 32 * 1024,
            "RSS grew {} KiB while streaming",
            a - b
        );
    }

    // Over HTTP the first page comes back without materialising the month.
    let c = sim.credentials(0);
    let form = format!(
        "client_id={}&client_secret={}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&grant_type=client_credentials",
        c.client_id, c.client_secret
    );
    let token_body = http(&c.token_url, "", form.as_bytes()).await;
    let token: serde_json::Value = serde_json::from_str(&token_body).expect("token JSON");
    let body = json!({"type": "ActualCost", "timeframe": "Custom",
        "timePeriod": {"from": "2026-10-01", "to": "2026-10-31"},
        "dataset": {"granularity": "Daily", "grouping": [{"type": "Dimension", "name": "ResourceId"}]}});
    let page = http(
        &format!("{}/subscriptions/{sub}/providers/Microsoft.CostManagement/query?api-version=2025-03-01", sim.base_url()),
        token["access_token"].as_str().unwrap_or_default(),
        body.to_string().as_bytes(),
    )
    .await;
    let page: serde_json::Value = serde_json::from_str(&page).expect("page JSON");
    assert_eq!(
        page["properties"]["rows"].as_array().map(Vec::len),
        Some(1000)
    );
    assert!(page["properties"]["nextLink"].is_string());
}

async fn http(url: &str, token: &str, body: &[u8]) -> String {
    let rest = url.strip_prefix("http://").expect("http");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}
