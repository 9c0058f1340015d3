//! Every relevant example from azure-rest-api-specs and the identity-platform docs, through the real
//! parsing code, quirks included.

use std::time::{Duration, Instant};

use serde_json::Value;
use time::macros::date;

use super::support::{FakeAzure, Reply, client, fixture, fixture_body};
use crate::azure::client::parse_list;
use crate::azure::cost::{CostDetailsResult, Dimension};
use crate::azure::token::{ClientSecret, parse_refusal, parse_success};
use crate::azure::{
    AzureError, CredentialProblem, Permission, QueryResult, Recommendation, ResourceGraphPage,
    Subscription, classify_permissions,
};

const COST: &str = "azure-rest-api-specs/specification/cost-management/resource-manager/Microsoft.CostManagement/stable/2025-03-01/examples";
const ADVISOR: &str = "azure-rest-api-specs/specification/advisor/resource-manager/Microsoft.Advisor/stable/2025-01-01/examples";
const GRAPH: &str = "azure-rest-api-specs/specification/resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/examples";
const SUBSCRIPTIONS: &str = "azure-rest-api-specs/specification/resources/resource-manager/Microsoft.Resources/subscriptions/examples/2022-12-01";
const PERMISSIONS: &str = "azure-rest-api-specs/specification/authorization/resource-manager/Microsoft.Authorization/preview/2018-01-01-preview/examples/GetPermissions.json";
const TOKEN_DOCS: &str = "docs-extracts/MicrosoftDocs/entra-docs/docs/identity-platform/v2-oauth2-client-creds-grant-flow";

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn query(name: &str) -> QueryResult {
    QueryResult::from_json(&bytes(&fixture_body(&format!("{COST}/{name}"), "200"))).unwrap()
}

#[test]
fn every_query_and_forecast_example_reads_by_column_name() {
    for name in [
        "SubscriptionQuery.json",
        "ResourceGroupQuery.json",
        "BillingAccountQuery.json",
        "SubscriptionForecast.json",
        "ResourceGroupForecast.json",
    ] {
        let result = query(name);
        assert!(!result.rows.is_empty(), "{name}");
        assert_eq!(
            result.cost_column(),
            Some("PreTaxCost"),
            "{name}: alias totalCost is not the column"
        );
        for row in result.rows() {
            let cost = row.cost().unwrap_or_else(|| panic!("{name}: cost"));
            assert!(cost.is_finite(), "{name}");
            let day = row
                .usage_date()
                .unwrap_or_else(|| panic!("{name}: UsageDate"));
            assert_eq!(day.year(), 2018, "{name}");
            assert_eq!(row.currency(), Some("USD"), "{name}");
        }
    }
    let first = query("SubscriptionQuery.json");
    let row = first.rows().next().unwrap();
    assert_eq!(row.text("ResourceGroup"), Some("ScreenSharingTest-peer"));
    assert_eq!(row.usage_date(), Some(date!(2018 - 03 - 31)));
    assert!((row.cost().unwrap() - 2.10333307059661).abs() < 1e-12);
    // The id comes without a leading slash here; it is kept as sent.
    assert!(first.id.as_deref().unwrap().starts_with("subscriptions/"));
}

#[test]
fn forecast_examples_carry_cost_status() {
    let result = query("SubscriptionForecast.json");
    let statuses: Vec<_> = result.rows().filter_map(|r| r.text("CostStatus")).collect();
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| *s == "Forecast" || *s == "Actual"));
}

#[test]
fn grouped_examples_without_a_date_column_still_parse() {
    for name in [
        "SubscriptionQueryGrouping.json",
        "BillingAccountQueryGrouping.json",
    ] {
        let result = query(name);
        assert!(
            result.column("UsageDate").is_none(),
            "{name}: granularity None"
        );
        for row in result.rows() {
            assert!(row.usage_date().is_none());
            assert!(row.text("ResourceGroup").is_some());
            assert!(row.cost().is_some());
        }
    }
}

#[test]
fn billing_account_examples_have_a_next_link_that_is_followed_verbatim() {
    let result = query("BillingAccountQuery.json");
    let link = result.next_link.expect("nextLink");
    assert!(link.contains("api-version=2021-10-01&$skiptoken=AQAAAA%3D%3D"));
    assert!(link.contains("/billingAccounts/70664866/"));
    let url = url::Url::parse(&link).unwrap();
    let operation = crate::azure::allow_list::check(
        &reqwest::Method::POST,
        &url::Url::parse(crate::azure::DEFAULT_ARM_ENDPOINT).unwrap(),
        &url,
    )
    .unwrap();
    assert!(operation.is_cost_management());
    assert!(
        query("SubscriptionQuery.json").next_link.is_none(),
        "null nextLink"
    );
}

#[test]
fn no_content_examples_are_empty_results() {
    for name in [
        "SubscriptionQuery.json",
        "SubscriptionForecast.json",
        "SubscriptionDimensionsList.json",
    ] {
        let whole = fixture(&format!("{COST}/{name}"));
        assert!(
            whole["responses"]["204"].as_object().is_some(),
            "{name} documents a 204"
        );
        assert_eq!(QueryResult::from_json(b"").unwrap(), QueryResult::default());
    }
}

#[test]
fn dimensions_examples_parse() {
    for name in [
        "SubscriptionDimensionsList.json",
        "ResourceGroupDimensionsList.json",
    ] {
        let (dimensions, next) =
            parse_list::<Dimension>(&bytes(&fixture_body(&format!("{COST}/{name}"), "200")))
                .unwrap();
        assert!(!dimensions.is_empty(), "{name}");
        assert!(next.is_none());
        assert!(
            dimensions
                .iter()
                .all(|d| d.category.is_some() && d.grouping_enabled.is_some())
        );
    }
    let (dimensions, _) = parse_list::<Dimension>(&bytes(&fixture_body(
        &format!("{COST}/ResourceGroupDimensionsList.json"),
        "200",
    )))
    .unwrap();
    assert!(
        dimensions
            .iter()
            .any(|d| d.category.as_deref() == Some("ResourceId"))
    );
}

#[test]
fn cost_details_examples_parse_and_hide_their_sas() {
    for name in [
        "GenerateCostDetailsReportBySubscriptionAndTimePeriod.json",
        "CostDetailsOperationResultsBySubscriptionScope.json",
    ] {
        let result =
            CostDetailsResult::from_json(&bytes(&fixture_body(&format!("{COST}/{name}"), "200")))
                .unwrap();
        assert_eq!(result.status, "Completed");
        assert_eq!(result.blobs.len(), 1);
        assert_eq!(result.blobs[0].byte_count, Some(32741));
        assert!(result.blobs[0].link.contains("sig="));
        assert!(
            !format!("{result:?}").contains("sig="),
            "the SAS is not in Debug output"
        );
        let accepted = &fixture(&format!("{COST}/{name}"))["responses"]["202"]["headers"];
        assert_eq!(accepted["Retry-After"], "60");
    }
}

#[tokio::test]
async fn a_cost_details_report_goes_from_pending_to_finished() {
    let server = FakeAzure::start().await;
    let (client, _clock) = client(&server);
    let location = server.at("/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.CostManagement/costDetailsOperationResults/00000000-0000-0000-0000-000000000000?api-version=2025-03-01");
    server.reply([
        Reply::empty(202)
            .header("Location", &location)
            .header("Retry-After", "60"),
        Reply::json(
            200,
            fixture_body(
                &format!("{COST}/CostDetailsOperationResultsBySubscriptionScope.json"),
                "200",
            ),
        ),
    ]);
    let scope = crate::azure::Scope::subscription("00000000-0000-0000-0000-000000000000").unwrap();

    let started = client
        .generate_cost_details_report(
            &scope,
            crate::azure::CostType::ActualCost,
            date!(2020 - 03 - 01),
            date!(2020 - 03 - 15),
        )
        .await
        .unwrap();
    let crate::azure::CostDetailsReport::Pending {
        location,
        retry_after,
    } = started
    else {
        panic!("expected pending: {started:?}");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(60)));
    let done = client.cost_details_status(&location).await.unwrap();
    assert!(
        matches!(done, crate::azure::CostDetailsReport::Finished(ref r) if r.status == "Completed")
    );
    let requests = server.data_requests();
    assert_eq!(
        requests[0].json(),
        serde_json::json!({"metric": "ActualCost", "timePeriod": {"start": "2020-03-01", "end": "2020-03-15"}})
    );
    assert_eq!(requests[1].method, reqwest::Method::GET);
}

#[test]
fn advisor_examples_parse_with_their_quirks() {
    let (recommendations, next) = parse_list::<Recommendation>(&bytes(&fixture_body(
        &format!("{ADVISOR}/ListRecommendations.json"),
        "200",
    )))
    .unwrap();
    assert_eq!(recommendations.len(), 2);
    assert!(
        recommendations[0].id.starts_with("/resourceUri/"),
        "placeholder ids are kept"
    );
    assert_eq!(
        recommendations[0].category.as_deref(),
        Some("HighAvailability")
    );
    assert_eq!(
        recommendations[0].last_updated.as_deref(),
        Some("2017-02-24T22:24:43.3216408Z")
    );
    assert!(
        recommendations[1]
            .resource_id
            .as_deref()
            .unwrap()
            .ends_with("/virtualMachines/xyz")
    );
    assert!(
        recommendations
            .iter()
            .all(|r| r.savings().is_none() && !r.is_cost())
    );
    assert!(
        next.unwrap().contains("api-version=2023-01-01"),
        "nextLink api-version differs"
    );

    let detail: Recommendation = serde_json::from_value(fixture_body(
        &format!("{ADVISOR}/GetRecommendationDetail.json"),
        "200",
    ))
    .unwrap();
    assert_eq!(
        detail.name.as_deref(),
        Some("bd27ddc6-1312-4067-b4af-cbb45e32cfd7")
    );
}

#[test]
fn resource_graph_examples_parse_with_string_booleans_and_skip_tokens() {
    let basic = ResourceGraphPage::from_json(&bytes(&fixture_body(
        &format!("{GRAPH}/ResourcesBasicQuery.json"),
        "200",
    )))
    .unwrap();
    assert_eq!((basic.total_records, basic.count), (Some(3), Some(3)));
    assert!(!basic.result_truncated, "\"false\" is a string");
    assert!(basic.skip_token.is_none());
    let resources = basic.resources();
    assert_eq!(resources[0].tags["tag1"], "Value1");
    assert!(resources[1].tags.is_empty());
    assert_eq!(
        resources[2].kind.as_deref(),
        Some("microsoft.network/publicipaddresses")
    );

    let first = ResourceGraphPage::from_json(&bytes(&fixture_body(
        &format!("{GRAPH}/ResourcesFirstPageQuery.json"),
        "200",
    )))
    .unwrap();
    assert_eq!(first.total_records, Some(386));
    assert_eq!(
        first.skip_token.as_deref(),
        Some("eyAibm8iOiAibHVjayIsICJidXQiOiAibmljZSIsICJ0cnkiOiAiISIgfQ==")
    );
    let next_request =
        &fixture(&format!("{GRAPH}/ResourcesNextPageQuery.json"))["parameters"]["query"];
    assert_eq!(
        next_request["options"]["$skipToken"].as_str(),
        first.skip_token.as_deref()
    );
    let next = ResourceGraphPage::from_json(&bytes(&fixture_body(
        &format!("{GRAPH}/ResourcesNextPageQuery.json"),
        "200",
    )))
    .unwrap();
    assert_ne!(next.skip_token, first.skip_token);
    assert_eq!(next.resources().len(), 3);
}

#[test]
fn subscription_examples_parse() {
    let (subscriptions, next) = parse_list::<Subscription>(&bytes(&fixture_body(
        &format!("{SUBSCRIPTIONS}/GetSubscriptions.json"),
        "200",
    )))
    .unwrap();
    assert_eq!(subscriptions.len(), 2);
    assert_eq!(subscriptions[1].managed_by_tenants.len(), 2);
    assert_eq!(subscriptions[0].spending_limit.as_deref(), Some("Off"));
    assert!(subscriptions.iter().all(Subscription::is_active));
    assert_eq!(next.as_deref(), Some("http://nextlink"));

    let single: Subscription = serde_json::from_value(fixture_body(
        &format!("{SUBSCRIPTIONS}/GetSubscription.json"),
        "200",
    ))
    .unwrap();
    assert!(!single.subscription_id.is_empty());
}

#[tokio::test]
async fn the_placeholder_next_link_of_the_subscriptions_example_is_not_followed() {
    let server = FakeAzure::start().await;
    server.reply([Reply::json(
        200,
        fixture_body(&format!("{SUBSCRIPTIONS}/GetSubscriptions.json"), "200"),
    )]);
    let (client, _clock) = client(&server);

    let err = client.list_subscriptions().await.unwrap_err();

    assert!(matches!(err, AzureError::InvalidResponse(_)), "{err:?}");
    assert_eq!(server.data_hits(), 1);
}

#[test]
fn the_permissions_example_parses_and_means_no_access() {
    let (permissions, next) =
        parse_list::<Permission>(&bytes(&fixture_body(PERMISSIONS, "200"))).unwrap();
    assert_eq!(permissions, vec![Permission::default()]);
    assert_eq!(next.as_deref(), Some("nextlink"), "not a URL");
    let assessment = classify_permissions(&permissions);
    assert!(!assessment.cost_readable && !assessment.reader && !assessment.over_privileged);
}

#[test]
fn the_token_examples_parse() {
    let now = Instant::now();
    let success = fixture(&format!("{TOKEN_DOCS}.success-response.json"));
    let token = parse_success(&bytes(&success), now).unwrap();
    assert_eq!(token.expires_at, now + Duration::from_secs(3599));

    let error = fixture(&format!("{TOKEN_DOCS}.error-response.json"));
    let who = ClientSecret {
        tenant_id: "t".into(),
        client_id: "c".into(),
        secret: secrecy::SecretString::from("s"),
    };
    assert_eq!(
        parse_refusal(&bytes(&error), 400, &who),
        CredentialProblem::Other {
            code: Some(70011),
            error: "invalid_scope".into()
        }
    );
}
