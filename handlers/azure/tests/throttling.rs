//! Retries, throttling and per-tenant pacing against the loopback Azure, on virtual time.

use std::time::Duration;

use serde_json::json;
use time::macros::date;

use super::support::{
    FakeAzure, OTHER_TENANT, Reply, SUB, TENANT, client, client_for, options, query_page,
};
use crate::azure::{AzureError, CostType, ManualClock, Pacers, QueryDefinition, Scope};

const JITTER: Duration = Duration::from_millis(250);

fn january() -> QueryDefinition {
    QueryDefinition::new(
        CostType::ActualCost,
        date!(2024 - 01 - 01),
        date!(2024 - 01 - 31),
    )
    .unwrap()
}

fn scope() -> Scope {
    Scope::subscription(SUB).unwrap()
}

fn assert_about(actual: Duration, expected: Duration) {
    assert!(
        actual >= expected && actual <= expected + JITTER,
        "waited {actual:?}, expected {expected:?} plus at most {JITTER:?} of jitter"
    );
}

#[tokio::test]
async fn a_429_with_competing_headers_waits_for_the_largest() {
    let server = FakeAzure::start().await;
    server.reply([
        Reply::json(
            429,
            json!({"error":{"code":"429","message":"Too many requests"}}),
        )
        .header("Retry-After", "5")
        .header(
            "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
            "30",
        )
        .header(
            "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after",
            "12",
        )
        .header(
            "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
            "45",
        )
        .header(
            "x-ms-ratelimit-microsoft.costmanagement-clienttype-retry-after",
            "7",
        ),
        Reply::json(200, query_page(None)),
    ]);
    let (client, clock) = client(&server);

    let page = client
        .cost_query(&scope(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap()
        .unwrap();

    assert_eq!(page.rows.len(), 2);
    assert_eq!(server.data_hits(), 2);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    assert_about(sleeps[0], Duration::from_secs(45));
}

#[tokio::test]
async fn a_503_is_retried_after_its_retry_after() {
    let server = FakeAzure::start().await;
    server.reply([
        Reply::json(
            503,
            json!({"error":{"code":"ServiceUnavailable","message":"busy"}}),
        )
        .header("Retry-After", "2"),
        Reply::json(200, json!({"value": []})),
    ]);
    let (client, clock) = client(&server);

    let subscriptions = client.list_subscriptions().await.unwrap();

    assert!(subscriptions.is_empty());
    assert_eq!(server.data_hits(), 2);
    assert_eq!(clock.sleeps().len(), 1);
    assert_about(clock.sleeps()[0], Duration::from_secs(2));
}

#[tokio::test]
async fn other_5xx_back_off_exponentially_then_give_up_with_the_service_error() {
    let server = FakeAzure::start().await;
    server.reply_always(Reply::json(
        500,
        json!({"error":{"code":"InternalServerError","message":"oops"}}),
    ));
    let (client, clock) = client(&server);

    let err = client.list_subscriptions().await.unwrap_err();

    assert!(
        matches!(&err, AzureError::Service { status: 500, code: Some(c), .. } if c == "InternalServerError"),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(server.data_hits(), 5, "max_attempts");
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 4);
    for (sleep, base_ms) in sleeps.iter().zip([500, 1000, 2000, 4000]) {
        assert_about(*sleep, Duration::from_millis(base_ms));
    }
}

#[tokio::test]
async fn an_exhausted_retry_budget_is_a_typed_throttled_error() {
    let server = FakeAzure::start().await;
    server.reply_always(
        Reply::json(
            429,
            json!({"error":{"code":"TooManyRequests","message":"slow down"}}),
        )
        .header(
            "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
            "10",
        ),
    );
    let (client, clock) = client(&server);

    let err = client
        .cost_query(&scope(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap_err();

    assert!(
        matches!(err, AzureError::Throttled { retry_after: Some(d), attempts: 5 } if d == Duration::from_secs(10)),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
    assert_eq!(server.data_hits(), 5);
    assert_eq!(clock.sleeps().len(), 4);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_budget_fails_at_once() {
    let server = FakeAzure::start().await;
    server.reply_always(
        Reply::json(
            429,
            json!({"error":{"code":"TooManyRequests","message":"hourly quota"}}),
        )
        .header(
            "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
            "1800",
        ),
    );
    let (client, clock) = client(&server);

    let err = client
        .cost_query(&scope(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap_err();

    assert!(
        matches!(err, AzureError::Throttled { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1800)));
    assert_eq!(server.data_hits(), 1);
    assert!(clock.sleeps().is_empty(), "no pointless waiting");
}

#[tokio::test]
async fn connection_errors_back_off_then_fail_as_unavailable() {
    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = FakeAzure::start().await;
    let clock = ManualClock::new();
    let client = crate::azure::AzureClient::new(
        url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        super::support::static_token(TENANT),
        Some(options(&clock, &Pacers::default())),
    )
    .unwrap();

    let err = client.list_subscriptions().await.unwrap_err();

    assert!(
        matches!(err, AzureError::Unavailable { attempts: 5, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(clock.sleeps().len(), 4);
    assert_eq!(server.data_hits(), 0);
}

#[tokio::test]
async fn a_low_qpu_remaining_delays_that_tenant_only() {
    let server = FakeAzure::start().await;
    server.reply_always(
        Reply::json(200, query_page(None))
            .header("x-ms-ratelimit-microsoft.costmanagement-qpu-consumed", "1")
            .header(
                "x-ms-ratelimit-microsoft.costmanagement-qpu-remaining",
                "QueriesPerHour:541,QueriesPerMin:0",
            ),
    );
    let clock = ManualClock::new();
    let pacers = Pacers::default();
    let tenant_a = client_for(&server, TENANT, options(&clock, &pacers));
    let tenant_b = client_for(&server, OTHER_TENANT, options(&clock, &pacers));
    let scope = scope();

    tenant_a
        .cost_query(&scope, &january())
        .unwrap()
        .next_page()
        .await
        .unwrap();
    assert!(clock.sleeps().is_empty(), "the first call goes at once");

    tenant_b
        .cost_query(&scope, &january())
        .unwrap()
        .next_page()
        .await
        .unwrap();
    assert!(
        clock.sleeps().is_empty(),
        "tenant B is not held back by tenant A's quota"
    );

    tenant_a
        .cost_query(&scope, &january())
        .unwrap()
        .next_page()
        .await
        .unwrap();
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    assert_about(sleeps[0], Duration::from_secs(60));
    assert_eq!(server.data_hits(), 3);
}

#[tokio::test]
async fn a_429_holds_back_the_next_call_for_the_same_tenant() {
    let server = FakeAzure::start().await;
    server.reply([
        Reply::json(429, json!({"error":{"code":"429","message":"x"}})).header(
            "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
            "1800",
        ),
    ]);
    server.reply_always(Reply::json(200, query_page(None)));
    let clock = ManualClock::new();
    let pacers = Pacers::default();
    let first = client_for(&server, TENANT, options(&clock, &pacers));
    let second = client_for(&server, TENANT, options(&clock, &pacers));
    let other = client_for(&server, OTHER_TENANT, options(&clock, &pacers));

    let err = first
        .cost_query(&scope(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap_err();
    assert!(matches!(err, AzureError::Throttled { .. }));

    // Another connection of the same tenant is held back without calling Azure...
    let err = second
        .cost_query(&scope(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap_err();
    assert!(
        matches!(err, AzureError::Throttled { attempts: 0, retry_after: Some(d) } if d == Duration::from_secs(1800)),
        "{err:?}"
    );
    assert_eq!(server.data_hits(), 1);
    // ...while another tenant goes ahead.
    other
        .cost_query(&scope(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap();
    assert_eq!(server.data_hits(), 2);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn pacing_does_not_apply_to_calls_outside_cost_management() {
    let server = FakeAzure::start().await;
    server.reply_always(Reply::json(200, json!({"value": []})).header(
        "x-ms-ratelimit-microsoft.costmanagement-qpu-remaining",
        "QueriesPerMin:0",
    ));
    let (client, clock) = client(&server);
    for _ in 0..3 {
        client.list_subscriptions().await.unwrap();
    }
    assert!(clock.sleeps().is_empty());
}
