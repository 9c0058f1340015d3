//! Each fault switches on and off; writes are refused and recorded.

use std::time::{Duration, Instant};

use serde_json::json;
use sixpence_azure_sim::{Fault, Revocation, Role};

use crate::common::*;

fn one_month() -> serde_json::Value {
    cost_body("ActualCost", "2026-10-01", "2026-10-31", "None", &[])
}

#[tokio::test]
async fn throttle_storms_carry_the_real_headers_and_end() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let url = query_url(&sim, &sub);
    sim.apply_fault(
        0,
        Fault::Throttle {
            endpoints: vec!["query".into()],
            requests: Some(2),
            seconds: None,
            retry_after: 17,
            headers: vec![],
        },
    )
    .expect("tenant");
    for _ in 0..2 {
        let r = post(&url, &tok, &one_month()).await;
        assert_eq!(r.status, 429);
        for h in ["qpu", "entity", "tenant", "clienttype"] {
            assert_eq!(
                r.header(&format!(
                    "x-ms-ratelimit-microsoft.costmanagement-{h}-retry-after"
                )),
                Some("17")
            );
        }
        assert_eq!(r.header("retry-after"), Some("17"));
    }
    assert_eq!(
        post(&url, &tok, &one_month()).await.status,
        200,
        "storm over after 2 requests"
    );

    // By time, on Resource Graph, with its own headers.
    let arg = format!(
        "{}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01",
        sim.base_url()
    );
    let q = json!({"query": "Resources | project id"});
    sim.apply_fault(
        0,
        Fault::Throttle {
            endpoints: vec!["resourcegraph".into()],
            requests: None,
            seconds: Some(1),
            retry_after: 1,
            headers: vec![],
        },
    )
    .expect("tenant");
    let r = post(&arg, &tok, &q).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ms-user-quota-remaining"), Some("0"));
    assert_eq!(r.header("x-ms-user-quota-resets-after"), Some("00:00:01"));
    assert_eq!(r.json()["error"]["code"], "RateLimiting");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&arg, &tok, &q).await.status, 200);

    // Only the named header, and ARM endpoints get ARM's throttling body.
    sim.apply_fault(
        0,
        Fault::Throttle {
            endpoints: vec![],
            requests: Some(2),
            seconds: None,
            retry_after: 3,
            headers: vec![sixpence_azure_sim::RetryHeader::ClientType],
        },
    )
    .expect("tenant");
    let r = post(&url, &tok, &one_month()).await;
    assert_eq!(
        r.header("x-ms-ratelimit-microsoft.costmanagement-clienttype-retry-after"),
        Some("3")
    );
    assert_eq!(
        r.header("x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"),
        None
    );
    let r = get(
        &format!("{}/subscriptions?api-version=2022-12-01", sim.base_url()),
        &tok,
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "SubscriptionRequestsThrottled");
    assert_eq!(r.header("retry-after"), Some("3"));
}

#[tokio::test]
async fn server_errors_and_slow_responses_switch_on_and_off() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let advisor = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.Advisor/recommendations?api-version=2025-01-01",
        sim.base_url()
    );
    sim.apply_fault(
        0,
        Fault::ServerError {
            status: 503,
            endpoints: vec!["advisor".into()],
            requests: Some(2),
            seconds: None,
        },
    )
    .expect("tenant");
    for _ in 0..2 {
        let r = get(&advisor, &tok).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("5"));
        assert_eq!(r.json()["error"]["code"], "ServiceUnavailable");
    }
    assert_eq!(get(&advisor, &tok).await.status, 200);
    sim.apply_fault(
        0,
        Fault::ServerError {
            status: 500,
            endpoints: vec![],
            requests: None,
            seconds: None,
        },
    )
    .expect("tenant");
    let r = post(&query_url(&sim, &sub), &tok, &one_month()).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["code"], "InternalServerError");
    sim.clear_faults(0).expect("tenant");
    assert_eq!(
        post(&query_url(&sim, &sub), &tok, &one_month())
            .await
            .status,
        200
    );

    sim.apply_fault(
        0,
        Fault::Slow {
            delay_ms: 300,
            endpoints: vec!["subscriptions".into()],
            requests: Some(1),
            seconds: None,
        },
    )
    .expect("tenant");
    let list = format!("{}/subscriptions?api-version=2022-12-01", sim.base_url());
    let t0 = Instant::now();
    assert_eq!(get(&list, &tok).await.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let t1 = Instant::now();
    assert_eq!(get(&list, &tok).await.status, 200);
    assert!(
        t1.elapsed() < Duration::from_millis(300),
        "one slow request only"
    );
}

#[tokio::test]
async fn revoked_credentials_fail_at_the_token_endpoint_and_on_existing_tokens() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let list = format!("{}/subscriptions?api-version=2022-12-01", sim.base_url());
    assert_eq!(get(&list, &tok).await.status, 200);
    for (reason, code, status) in [
        (Revocation::SecretExpired, 7000222, 401),
        (Revocation::SecretInvalid, 7000215, 401),
    ] {
        sim.apply_fault(0, Fault::RevokeCredentials { reason })
            .expect("tenant");
        let r = token_response(&sim, 0).await;
        assert_eq!(r.status, status);
        let body = r.json();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_codes"], json!([code]));
        let r = get(&list, &tok).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"]["code"], "InvalidAuthenticationToken");
        sim.apply_fault(0, Fault::RestoreCredentials)
            .expect("tenant");
    }
    let fresh = token(&sim, 0).await;
    assert_eq!(get(&list, &fresh).await.status, 200);
    assert_eq!(
        get(&list, &tok).await.status,
        401,
        "revoked tokens stay revoked"
    );
    // The other tenant was never affected.
    let other = token(&sim, 1).await;
    assert_eq!(get(&list, &other).await.status, 200);

    sim.apply_fault(0, Fault::ExpireTokens).expect("tenant");
    let r = get(&list, &fresh).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "ExpiredAuthenticationToken");
}

#[tokio::test]
async fn token_endpoint_errors_have_the_aadsts_codes() {
    let sim = start(config()).await;
    let c = sim.credentials(0);
    let form = |id: &str, secret: &str| token_form(id, secret, &c.scope);
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let wrong_tenant = format!(
        "{}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token",
        sim.base_url()
    );
    let cases = [
        (
            wrong_tenant,
            form(&c.client_id, &c.client_secret),
            400,
            "invalid_request",
            90002,
        ),
        (
            c.token_url.clone(),
            form(&c.client_id, "nope"),
            401,
            "invalid_client",
            7000215,
        ),
        (
            c.token_url.clone(),
            form("11111111-2222-3333-4444-555555555555", &c.client_secret),
            400,
            "unauthorized_client",
            700016,
        ),
    ];
    for (url, body, status, error, code) in cases {
        let r = request("POST", &url, &ct, body.as_bytes()).await;
        assert_eq!(r.status, status, "{code}");
        let v = r.json();
        assert_eq!(v["error"], error);
        assert_eq!(v["error_codes"], json!([code]));
        assert!(
            v["error_description"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("AADSTS{code}: "))
        );
    }
    // The tenant's domain works as well as its id, and a token from one tenant does not open another's subscription.
    let by_domain = format!("{}/{}/oauth2/v2.0/token", sim.base_url(), c.domain);
    assert_eq!(
        request(
            "POST",
            &by_domain,
            &ct,
            form(&c.client_id, &c.client_secret).as_bytes()
        )
        .await
        .status,
        200
    );
    let tok1 = token(&sim, 1).await;
    let r = post(&query_url(&sim, &c.subscriptions[0]), &tok1, &one_month()).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"]["code"],
        "InvalidAuthenticationTokenTenant"
    );
    let r = request(
        "GET",
        &format!("{}/subscriptions?api-version=2022-12-01", sim.base_url()),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "AuthenticationFailed");
    assert!(r.header("www-authenticate").is_some());
    let r = get(&format!("{}/subscriptions", sim.base_url()), &tok1).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "MissingApiVersionParameter");
}

#[tokio::test]
async fn role_faults_change_access_and_permissions() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let subs = sim.credentials(0).subscriptions;
    let sub = subs[0].clone();
    let base = sim.base_url();
    let perms_url = format!(
        "{base}/subscriptions/{sub}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
    );
    let list_url = format!("{base}/subscriptions?api-version=2022-12-01");

    sim.apply_fault(
        0,
        Fault::RemoveRoleAssignment {
            subscription: sub.clone(),
        },
    )
    .expect("sub");
    let r = post(&query_url(&sim, &sub), &tok, &one_month()).await;
    assert_eq!(r.status, 403);
    let err = r.json();
    assert_eq!(err["error"]["code"], "AuthorizationFailed");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Microsoft.CostManagement/query/action")
    );
    let advisor = format!(
        "{base}/subscriptions/{sub}/providers/Microsoft.Advisor/recommendations?api-version=2025-01-01"
    );
    assert_eq!(get(&advisor, &tok).await.status, 403);
    assert_eq!(get(&perms_url, &tok).await.json()["value"], json!([]));
    let listed = get(&list_url, &tok).await.json();
    assert_eq!(listed["value"].as_array().map(Vec::len), Some(2));
    sim.apply_fault(
        0,
        Fault::RestoreRoleAssignment {
            subscription: sub.clone(),
        },
    )
    .expect("sub");
    assert_eq!(
        post(&query_url(&sim, &sub), &tok, &one_month())
            .await
            .status,
        200
    );

    sim.apply_fault(
        0,
        Fault::OverPrivileged {
            subscription: sub.clone(),
            role: Role::Owner,
        },
    )
    .expect("sub");
    let perms = get(&perms_url, &tok).await.json();
    let actions: Vec<String> = perms["value"]
        .as_array()
        .map(|v| {
            v.iter()
                .flat_map(|p| p["actions"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(actions.contains(&"*".to_string()) && actions.contains(&"*/read".to_string()));
    sim.apply_fault(
        0,
        Fault::SetRoles {
            subscription: sub.clone(),
            roles: vec![Role::Reader, Role::ResourceWriter],
        },
    )
    .expect("sub");
    let perms = get(&perms_url, &tok).await.json();
    assert_eq!(
        perms["value"][1]["actions"],
        json!(["*/read", "Microsoft.Resources/*/write"])
    );

    // Cost Management Reader only: costs yes, inventory no.
    sim.apply_fault(
        0,
        Fault::SetRoles {
            subscription: sub.clone(),
            roles: vec![Role::CostManagementReader],
        },
    )
    .expect("sub");
    let perms = get(&perms_url, &tok).await.json();
    assert!(
        perms["value"][0]["actions"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("Microsoft.CostManagement/*/read")))
    );
    assert_eq!(
        post(&query_url(&sim, &sub), &tok, &one_month())
            .await
            .status,
        200
    );
    let arg = post(
        &format!("{base}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01"),
        &tok,
        &json!({"subscriptions": [sub], "query": "Resources"}),
    )
    .await
    .json();
    assert_eq!(arg["totalRecords"], 0);
    sim.clear_faults(0).expect("tenant");
    assert_eq!(
        get(&perms_url, &tok).await.json()["value"][0]["actions"],
        json!(["*/read"])
    );
}

#[tokio::test]
async fn writes_are_refused_and_recorded() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let base = sim.base_url();
    let auth = format!("Bearer {tok}");
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let writes = [
        (
            "PUT",
            format!(
                "{base}/subscriptions/{sub}/providers/Microsoft.CostManagement/exports/e1?api-version=2025-03-01"
            ),
        ),
        (
            "DELETE",
            format!(
                "{base}/subscriptions/{sub}/providers/Microsoft.Consumption/budgets/b1?api-version=2024-08-01"
            ),
        ),
        (
            "POST",
            format!(
                "{base}/subscriptions/{sub}/providers/Microsoft.Advisor/generateRecommendations?api-version=2025-01-01"
            ),
        ),
        (
            "PATCH",
            format!("{base}/subscriptions/{sub}/resourceGroups/rg-shared?api-version=2021-04-01"),
        ),
        (
            "POST",
            format!(
                "{base}/subscriptions/{sub}/providers/Microsoft.CostManagement/generateCostDetailsReport?api-version=2025-03-01"
            ),
        ),
    ];
    assert!(sim.write_attempts().is_empty());
    for (m, u) in &writes {
        let r = request(m, u, &h, b"{}").await;
        assert_eq!(r.status, 405, "{m} {u}");
    }
    let recorded = sim.write_attempts();
    assert_eq!(recorded.len(), writes.len());
    assert_eq!(recorded[0].method, "PUT");
    assert!(recorded[0].path.ends_with("/exports/e1"));
    assert_eq!(sim.request_count("write"), writes.len() as u64);
    // Reads and the read-only POSTs are not writes.
    assert_eq!(
        post(&query_url(&sim, &sub), &tok, &one_month())
            .await
            .status,
        200
    );
    assert_eq!(sim.write_attempts().len(), writes.len());
    assert_eq!(sim.request_count("query"), 1);
    assert_eq!(sim.request_count("token"), 1);
    let counts = get(&format!("{base}/_sim/requests"), &tok).await.json();
    assert_eq!(
        counts["writeAttempts"].as_array().map(Vec::len),
        Some(writes.len())
    );
}

#[tokio::test]
async fn faults_switch_over_the_control_endpoint() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let c = sim.credentials(0);
    let url = query_url(&sim, &c.subscriptions[0]);
    let faults = format!("{}/_sim/faults", sim.base_url());
    let ct = [("Content-Type", "application/json")];
    let on = json!({"tenant": c.tenant_id, "kind": "throttle", "endpoints": ["query"], "retry_after": 9});
    assert_eq!(
        request("POST", &faults, &ct, on.to_string().as_bytes())
            .await
            .status,
        200
    );
    let r = post(&url, &tok, &one_month()).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"),
        Some("9")
    );
    let off = json!({"tenant": c.domain, "kind": "clear"});
    assert_eq!(
        request("POST", &faults, &ct, off.to_string().as_bytes())
            .await
            .status,
        200
    );
    assert_eq!(post(&url, &tok, &one_month()).await.status, 200);
    let bad = request("POST", &faults, &ct, b"{\"kind\":\"nonsense\"}").await;
    assert_eq!(bad.status, 400);
    assert!(
        sim.write_attempts().is_empty(),
        "control calls are not writes"
    );
}
