//! The funnel's promises: the allow-list, revocation, tokens, and paging, against the loopback Azure.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use time::macros::date;

use super::support::{
    CLIENT_ID, FakeAzure, Reply, SECRET, SUB, TENANT, TOKEN, client, fixture, query_page,
};
use crate::azure::{
    AzureError, CostType, CredentialProblem, QueryDefinition, ResourceGraphQuery, Scope,
};

const BUDGET_FIXTURE: &str = "azure-rest-api-specs/specification/consumption/resource-manager/Microsoft.Consumption/stable/2024-08-01/examples/Budget.json";

fn january() -> QueryDefinition {
    QueryDefinition::new(
        CostType::ActualCost,
        date!(2024 - 01 - 01),
        date!(2024 - 01 - 31),
    )
    .unwrap()
}

#[tokio::test]
async fn writes_are_refused_without_a_single_request() {
    let server = FakeAzure::start().await;
    server.reply_always(Reply::json(200, json!({})));
    let (client, _clock) = client(&server);
    let budget = fixture(BUDGET_FIXTURE);
    let budget_body = budget["parameters"]["parameters"].clone();
    let attempts = [
        (
            Method::PUT,
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.Consumption/budgets/TestBudget?api-version=2024-08-01"
            ),
            Some(budget_body),
        ),
        (
            Method::POST,
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
            ),
            Some(
                json!({"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "principalId": CLIENT_ID}}),
            ),
        ),
        (
            Method::PUT,
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/x?api-version=2022-04-01"
            ),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/subscriptions/{SUB}/resourceGroups/rg?api-version=2021-04-01"),
            None,
        ),
        (
            Method::POST,
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.CostManagement/exports/e/run?api-version=2025-03-01"
            ),
            None,
        ),
        (
            Method::POST,
            format!(
                "/subscriptions/{SUB}/providers/Microsoft.Advisor/generateRecommendations?api-version=2025-01-01"
            ),
            None,
        ),
    ];

    for (method, path, body) in attempts {
        let url = url::Url::parse(&server.at(&path)).unwrap();
        let err = client
            .send(method.clone(), url, body.as_ref(), 1.0)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AzureError::WriteRefused { .. }),
            "{method} {path}: {err:?}"
        );
    }

    assert_eq!(server.data_hits(), 0, "nothing reached ARM");
    assert_eq!(server.token_hits(), 0, "not even a token was fetched");
}

#[tokio::test]
async fn a_401_marks_the_connection_revoked_and_later_calls_do_no_io() {
    let server = FakeAzure::start().await;
    server.reply_always(Reply::json(
        401,
        json!({"error":{"code":"InvalidAuthenticationToken","message":"The access token is invalid."}}),
    ));
    let (client, _clock) = client(&server);

    let err = client.list_subscriptions().await.unwrap_err();
    assert!(
        matches!(&err, AzureError::AccessRevoked { status: 401, code: Some(c) } if c == "InvalidAuthenticationToken"),
        "{err:?}"
    );
    assert!(client.is_revoked());
    assert_eq!(server.data_hits(), 1, "no retry storm");

    let again = client
        .cost_query(&Scope::subscription(SUB).unwrap(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        AzureError::AccessRevoked { status: 401, .. }
    ));
    let clone = client.clone();
    assert!(clone.is_revoked(), "clones share the state");
    assert!(clone.permissions(SUB).await.is_err());
    assert_eq!(server.data_hits(), 1, "revoked calls touch nothing");
    assert_eq!(server.token_hits(), 1);
}

#[tokio::test]
async fn a_403_after_a_removed_role_is_revoked_with_a_customer_message() {
    let server = FakeAzure::start().await;
    server.reply([Reply::json(
        403,
        json!({"error":{"code":"AuthorizationFailed","message":"The client does not have authorization to perform action 'Microsoft.CostManagement/query/read'."}}),
    )]);
    let (client, _clock) = client(&server);

    let err = client
        .cost_query(&Scope::subscription(SUB).unwrap(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap_err();

    assert!(matches!(err, AzureError::AccessRevoked { status: 403, .. }));
    assert!(
        err.customer_message()
            .contains("Reader and Cost Management Reader")
    );
    assert!(client.is_revoked());
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_is_not_a_revocation() {
    let server = FakeAzure::start().await;
    server.reply([
        Reply::json(
            401,
            json!({"error":{"code":"ExpiredAuthenticationToken","message":"expired"}}),
        ),
        Reply::json(200, json!({"value": []})),
    ]);
    let (client, _clock) = client(&server);

    client.list_subscriptions().await.unwrap();

    assert!(!client.is_revoked());
    assert_eq!(server.token_hits(), 2);
}

#[tokio::test]
async fn the_token_request_and_the_bearer_header_are_as_documented() {
    let server = FakeAzure::start().await;
    server.reply_always(Reply::json(200, json!({"value": []})));
    let (client, _clock) = client(&server);

    client.list_subscriptions().await.unwrap();

    let token_request = &server.token_requests()[0];
    assert_eq!(token_request.method, Method::POST);
    assert_eq!(token_request.uri, format!("/{TENANT}/oauth2/v2.0/token"));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token_request.body)
        .into_owned()
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("grant_type"), Some("client_credentials"));
    assert_eq!(field("client_id"), Some(CLIENT_ID));
    assert_eq!(field("client_secret"), Some(SECRET));
    assert_eq!(
        field("scope"),
        Some(format!("{}/.default", server.url.as_str().trim_end_matches('/')).as_str())
    );

    let data = &server.data_requests()[0];
    assert_eq!(
        data.headers["authorization"].to_str().unwrap(),
        format!("Bearer {TOKEN}")
    );
    assert_eq!(data.uri, "/subscriptions?api-version=2022-12-01");
}

#[tokio::test]
async fn concurrent_calls_share_one_token_refresh() {
    let server = FakeAzure::start().await;
    server.reply_always(Reply::json(200, json!({"value": []})));
    let (client, clock) = client(&server);

    let calls = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.list_subscriptions().await })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    assert_eq!(server.token_hits(), 1, "one refresh for twenty callers");

    // Cached until five minutes before expiry (3599 s), then refreshed.
    clock.advance(Duration::from_secs(3599 - 300 - 1));
    client.list_subscriptions().await.unwrap();
    assert_eq!(server.token_hits(), 1);
    clock.advance(Duration::from_secs(2));
    client.list_subscriptions().await.unwrap();
    assert_eq!(server.token_hits(), 2);
}

#[tokio::test]
async fn aadsts_refusals_become_customer_actionable_and_sticky() {
    let cases = [
        (400, 90002, "Directory (tenant) ID"),
        (401, 7000215, "Value (not its Secret ID)"),
        (401, 7000222, "has expired"),
        (400, 700016, "Application (client) ID"),
    ];
    for (status, code, advice) in cases {
        let server = FakeAzure::start().await;
        server.token_reply([Reply::json(
            status,
            json!({
                "error": if status == 401 { "invalid_client" } else { "unauthorized_client" },
                "error_description": format!("AADSTS{code}: something went wrong.\r\nTrace ID: x"),
                "error_codes": [code],
                "timestamp": "2024-01-01 00:00:00Z",
                "trace_id": "t",
                "correlation_id": "c",
            }),
        )]);
        let (client, _clock) = client(&server);

        let err = client.list_subscriptions().await.unwrap_err();
        let AzureError::Credentials(problem) = &err else {
            panic!("AADSTS{code}: {err:?}");
        };
        assert_ne!(*problem, CredentialProblem::Unavailable);
        let message = err.customer_message();
        assert!(message.contains(advice), "AADSTS{code}: {message}");
        for text in [
            format!("{err}"),
            format!("{err:?}"),
            message,
            format!("{client:?}"),
        ] {
            assert!(!text.contains(SECRET), "the secret leaked: {text}");
            assert!(!text.contains(TOKEN), "the token leaked: {text}");
        }

        assert!(client.is_revoked(), "a refused credential is sticky");
        assert!(matches!(
            client.list_subscriptions().await,
            Err(AzureError::Credentials(_))
        ));
        assert_eq!(
            server.token_hits(),
            1,
            "AADSTS{code}: no second token request"
        );
        assert_eq!(server.data_hits(), 0);
    }
}

#[tokio::test]
async fn callers_queued_behind_a_refused_token_do_not_ask_again() {
    let server = FakeAzure::start().await;
    server.token_reply([Reply::json(
        401,
        json!({"error": "invalid_client", "error_description": "AADSTS7000222: expired", "error_codes": [7000222]}),
    )]);
    let (client, _clock) = client(&server);

    let calls = (0..10).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.list_subscriptions().await })
    });
    for call in futures::future::join_all(calls).await {
        assert!(matches!(
            call.unwrap(),
            Err(AzureError::Credentials(CredentialProblem::SecretExpired))
        ));
    }
    assert_eq!(server.token_hits(), 1);
}

#[tokio::test]
async fn a_missing_subscription_is_none_and_bad_ids_are_refused_up_front() {
    let server = FakeAzure::start().await;
    server.reply([Reply::json(
        404,
        json!({"error":{"code":"SubscriptionNotFound","message":"not found"}}),
    )]);
    let (client, _clock) = client(&server);

    assert_eq!(client.get_subscription(SUB).await.unwrap(), None);
    assert!(!client.is_revoked());
    for bad in ["", "..", "a/b", "a?b", "x%2F..%2Fy"] {
        assert!(
            matches!(
                client.get_subscription(bad).await,
                Err(AzureError::InvalidRequest(_))
            ),
            "{bad:?}"
        );
        assert!(client.advisor_recommendations(bad, None).is_err());
    }
    assert_eq!(server.data_hits(), 1);
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_transient_not_sticky() {
    let server = FakeAzure::start().await;
    server.token_reply((0..5).map(|_| Reply::raw(503, "busy").header("Retry-After", "1")));
    server.reply_always(Reply::json(200, json!({"value": []})));
    let (client, _clock) = client(&server);

    let err = client.list_subscriptions().await.unwrap_err();
    assert!(matches!(
        err,
        AzureError::Credentials(CredentialProblem::Unavailable)
    ));
    assert!(err.is_transient());
    assert!(!client.is_revoked());

    client.list_subscriptions().await.unwrap();
}

#[tokio::test]
async fn cost_paging_re_posts_the_same_body_to_the_next_link() {
    let server = FakeAzure::start().await;
    let next = server.at(&format!(
        "/subscriptions/{SUB}/providers/Microsoft.CostManagement/Query?api-version=2021-10-01&$skiptoken=AQAAAA%3D%3D"
    ));
    server.reply([
        Reply::json(200, query_page(Some(next))),
        Reply::json(200, query_page(None)),
    ]);
    let (client, _clock) = client(&server);
    let mut pages = client
        .cost_query(&Scope::subscription(SUB).unwrap(), &january())
        .unwrap();

    let mut rows = 0;
    while let Some(page) = pages.next_page().await.unwrap() {
        for row in page.rows() {
            assert!(row.cost().is_some() && row.usage_date().is_some());
            rows += 1;
        }
    }

    assert_eq!(rows, 4);
    let requests = server.data_requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.method == Method::POST));
    assert_eq!(
        requests[0].uri,
        format!(
            "/subscriptions/{SUB}/providers/Microsoft.CostManagement/query?api-version=2025-03-01"
        )
    );
    assert!(
        requests[1].uri.contains("$skiptoken=AQAAAA%3D%3D"),
        "followed verbatim"
    );
    assert_eq!(
        requests[0].json(),
        requests[1].json(),
        "same body on every page"
    );
    assert_eq!(requests[0].json(), january().to_json());
}

#[tokio::test]
async fn a_next_link_outside_arm_is_never_followed() {
    let server = FakeAzure::start().await;
    server.reply([Reply::json(
        200,
        query_page(Some(
            "https://attacker.example/subscriptions/x/providers/Microsoft.CostManagement/query"
                .into(),
        )),
    )]);
    let (client, _clock) = client(&server);
    let mut pages = client
        .cost_query(&Scope::subscription(SUB).unwrap(), &january())
        .unwrap();

    let err = pages.next_page().await.unwrap_err();

    assert!(matches!(err, AzureError::InvalidResponse(_)), "{err:?}");
    assert_eq!(server.data_hits(), 1);
}

#[tokio::test]
async fn a_204_is_an_empty_result() {
    let server = FakeAzure::start().await;
    server.reply([Reply::empty(204)]);
    let (client, _clock) = client(&server);

    let page = client
        .cost_query(&Scope::subscription(SUB).unwrap(), &january())
        .unwrap()
        .next_page()
        .await
        .unwrap()
        .unwrap();

    assert!(page.is_empty() && page.columns.is_empty() && page.next_link.is_none());
}

#[tokio::test]
async fn resource_graph_pages_with_the_skip_token_in_the_options() {
    let server = FakeAzure::start().await;
    server.reply([
        Reply::json(
            200,
            json!({"totalRecords": 3, "count": 2, "resultTruncated": "false", "$skipToken": "tok-1", "facets": [],
                   "data": [{"id": "/subscriptions/s/a", "name": "a"}, {"id": "/subscriptions/s/b", "name": "b"}]}),
        ),
        Reply::json(
            200,
            json!({"totalRecords": 3, "count": 1, "resultTruncated": "false", "facets": [],
                   "data": [{"id": "/subscriptions/s/c", "name": "c", "tags": null}]}),
        ),
    ]);
    let (client, _clock) = client(&server);

    let mut pages = client.list_resources(SUB).unwrap();
    let mut ids = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        ids.extend(page.resources().into_iter().map(|r| r.id));
    }

    assert_eq!(
        ids,
        [
            "/subscriptions/s/a",
            "/subscriptions/s/b",
            "/subscriptions/s/c"
        ]
    );
    let requests = server.data_requests();
    assert_eq!(
        requests[0].uri,
        "/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01"
    );
    let (first, second) = (requests[0].json(), requests[1].json());
    assert_eq!(first["subscriptions"], json!([SUB]));
    assert!(first["options"].get("$skipToken").is_none());
    assert_eq!(second["options"]["$skipToken"], "tok-1");
    assert_eq!(first["query"], second["query"], "same query on every page");
}

#[tokio::test]
async fn advisor_pages_follow_next_link_with_get() {
    let server = FakeAzure::start().await;
    let next = server.at(&format!(
        "/subscriptions/{SUB}/providers/Microsoft.Advisor/recommendations?api-version=2023-01-01&$top=10&$skiptoken=skiptoken"
    ));
    server.reply([
        Reply::json(200, json!({"nextLink": next, "value": [{"id": "/r/1", "properties": {"category": "Cost", "extendedProperties": {"savingsAmount": 12}}}]})),
        Reply::json(200, json!({"value": [{"id": "/r/2", "properties": {"category": "Security"}}]})),
    ]);
    let (client, _clock) = client(&server);

    let all = client
        .advisor_recommendations(SUB, Some("Category eq 'Cost'"))
        .unwrap()
        .collect_all()
        .await
        .unwrap();

    assert_eq!(all.len(), 2);
    assert_eq!(all[0].savings().and_then(|s| s.amount), Some(12.0));
    let requests = server.data_requests();
    assert!(requests.iter().all(|r| r.method == Method::GET));
    assert!(
        requests[0].uri.contains("%24filter=Category+eq+%27Cost%27")
            || requests[0].uri.contains("$filter="),
        "{}",
        requests[0].uri
    );
    assert!(requests[1].uri.contains("api-version=2023-01-01"));
}

#[tokio::test]
async fn http_endpoints_other_than_loopback_are_refused() {
    let err = crate::azure::AzureClient::new(
        url::Url::parse("http://management.azure.com").unwrap(),
        super::support::static_token(TENANT),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, AzureError::Config(_)));
}

#[tokio::test]
async fn resource_graph_needs_a_subscription() {
    let server = FakeAzure::start().await;
    let (client, _clock) = client(&server);
    assert!(
        client
            .resource_graph(ResourceGraphQuery {
                subscriptions: vec![],
                query: "Resources".into(),
                page_size: None,
            })
            .is_err()
    );
}
