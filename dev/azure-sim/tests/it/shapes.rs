//! Responses have the fixtures' shapes: same keys, nesting and JSON value types.

use serde_json::{Value, json};

use crate::common::*;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `fixture` is in `ours` (except `skip`), `ours` has no keys beyond the fixture's and
/// `extra`, and values have the same JSON types (a `null` in the fixture matches anything).
fn assert_shape(fixture: &Value, ours: &Value, extra: &[&str], skip: &[&str], path: &str) {
    match (fixture, ours) {
        (Value::Null, _) => {}
        // Free-form maps: only the type matters.
        (Value::Object(_), Value::Object(_)) if path.ends_with(".tags") => {}
        (Value::Object(f), Value::Object(o)) => {
            for (k, fv) in f {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                let ov = o.get(k).unwrap_or_else(|| {
                    panic!(
                        "{path}: missing key {k:?}; ours has {:?}",
                        o.keys().collect::<Vec<_>>()
                    )
                });
                assert_shape(fv, ov, extra, skip, &format!("{path}.{k}"));
            }
            for k in o.keys() {
                assert!(
                    f.contains_key(k) || extra.contains(&k.as_str()) || skip.contains(&k.as_str()),
                    "{path}: unexpected key {k:?}"
                );
            }
        }
        (Value::Array(f), Value::Array(o)) => {
            if let Some(f0) = f.first() {
                for (i, ov) in o.iter().enumerate() {
                    let fv = f.get(i).unwrap_or(f0);
                    assert_shape(fv, ov, extra, skip, &format!("{path}[{i}]"));
                }
            }
        }
        (f, o) => assert_eq!(kind(f), kind(o), "{path}: fixture {f} vs ours {o}"),
    }
}

fn response(fixture: &Value) -> &Value {
    &fixture["responses"]["200"]["body"]
}

#[tokio::test]
async fn token_success_and_error_bodies_match_the_docs() {
    let sim = start(config()).await;
    let ok = token_response(&sim, 0).await;
    assert_eq!(ok.status, 200);
    let success = fixture(
        "docs-extracts/MicrosoftDocs/entra-docs/docs/identity-platform/v2-oauth2-client-creds-grant-flow.success-response.json",
    );
    assert_shape(&success, &ok.json(), &["ext_expires_in"], &[], "token");
    assert!(
        ok.json()["expires_in"].is_u64(),
        "expires_in is a number on v2.0"
    );

    let c = sim.credentials(0);
    let bad_scope = request(
        "POST",
        &c.token_url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        token_form(
            &c.client_id,
            &c.client_secret,
            "https://foo.microsoft.com/.default",
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(bad_scope.status, 400);
    let error = fixture(
        "docs-extracts/MicrosoftDocs/entra-docs/docs/identity-platform/v2-oauth2-client-creds-grant-flow.error-response.json",
    );
    let body = bad_scope.json();
    assert_shape(&error, &body, &[], &[], "token error");
    assert_eq!(body["error"], "invalid_scope");
    assert_eq!(body["error_codes"], json!([70011]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .starts_with("AADSTS70011: ")
    );
}

#[tokio::test]
async fn subscriptions_and_permissions_match_the_examples() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let base = sim.base_url();
    let list = get(
        &format!("{base}/subscriptions?api-version=2022-12-01"),
        &tok,
    )
    .await;
    assert_eq!(list.status, 200);
    let fx = fixture(
        "azure-rest-api-specs/specification/resources/resource-manager/Microsoft.Resources/subscriptions/examples/2022-12-01/GetSubscriptions.json",
    );
    let ours = list.json();
    assert_eq!(ours["value"].as_array().map(Vec::len), Some(3));
    assert_shape(response(&fx), &ours, &[], &["nextLink"], "subscriptions");

    let sub = &sim.credentials(0).subscriptions[0];
    let one = get(
        &format!("{base}/subscriptions/{sub}?api-version=2022-12-01"),
        &tok,
    )
    .await;
    let fx = fixture(
        "azure-rest-api-specs/specification/resources/resource-manager/Microsoft.Resources/subscriptions/examples/2022-12-01/GetSubscription.json",
    );
    assert_shape(response(&fx), &one.json(), &[], &[], "subscription");

    let perms = get(
        &format!("{base}/subscriptions/{sub}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"),
        &tok,
    )
    .await;
    assert_eq!(perms.status, 200);
    let fx = fixture(
        "azure-rest-api-specs/specification/authorization/resource-manager/Microsoft.Authorization/preview/2018-01-01-preview/examples/GetPermissions.json",
    );
    let ours = perms.json();
    assert_shape(response(&fx), &ours, &[], &["nextLink"], "permissions");
    assert_eq!(
        ours["value"][0]["actions"],
        json!(["*/read"]),
        "Reader by default"
    );
}

#[tokio::test]
async fn cost_queries_match_the_examples() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let url = query_url(&sim, &sub);

    // The examples' own request bodies are accepted as sent.
    for name in ["SubscriptionQuery.json", "SubscriptionQueryGrouping.json"] {
        let fx = fixture(&format!("{COST_EXAMPLES}/{name}"));
        let r = post(&url, &tok, &fx["parameters"]["parameters"]).await;
        assert_eq!(
            r.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_shape(response(&fx), &r.json(), &[], &["rows", "columns"], name);
    }

    // Grouped by ResourceGroup, granularity None: the columns are exactly the example's.
    let fx = fixture(&format!("{COST_EXAMPLES}/SubscriptionQueryGrouping.json"));
    let r = post(&url, &tok, &fx["parameters"]["parameters"])
        .await
        .json();
    assert_eq!(
        r["properties"]["columns"],
        response(&fx)["properties"]["columns"]
    );
    assert_shape(response(&fx), &r, &[], &[], "grouping");
    assert!(!r["properties"]["rows"].as_array().is_none_or(Vec::is_empty));

    // Daily, grouped by ResourceGroup: columns and row value types like SubscriptionQuery.json.
    let fx = fixture(&format!("{COST_EXAMPLES}/SubscriptionQuery.json"));
    let mut body = cost_body(
        "Usage",
        "2026-10-01",
        "2026-10-31",
        "Daily",
        &[("Dimension", "ResourceGroup")],
    );
    body["dataset"]["aggregation"]["totalCost"]["name"] = json!("PreTaxCost");
    let r = post(&url, &tok, &body).await;
    let ours = r.json();
    assert_eq!(
        ours["properties"]["columns"],
        response(&fx)["properties"]["columns"]
    );
    assert_shape(response(&fx), &ours, &[], &[], "daily");
    let first = &ours["properties"]["rows"][0];
    assert!(first[2].is_u64(), "UsageDate is a yyyymmdd number: {first}");
    assert!((20261001..=20261031).contains(&first[2].as_u64().unwrap_or(0)));
    assert_eq!(first[3], "GBP");

    // A paged response has a nextLink URL like BillingAccountQuery.json (api-version 2021-10-01, %-encoded token).
    let r = post(&format!("{url}&$top=3"), &tok, &body).await.json();
    let link = r["properties"]["nextLink"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(link.starts_with(&format!("{}/subscriptions/{sub}/providers/Microsoft.CostManagement/Query?api-version=2021-10-01&$skiptoken=", sim.base_url())), "{link}");
}

#[tokio::test]
async fn forecast_matches_the_example() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let url = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.CostManagement/forecast?api-version=2025-03-01",
        sim.base_url()
    );
    let fx = fixture(&format!("{COST_EXAMPLES}/SubscriptionForecast.json"));
    let r = post(&url, &tok, &fx["parameters"]["parameters"]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let mut body = fx["parameters"]["parameters"].clone();
    body["timePeriod"] =
        json!({"from": "2026-11-20T00:00:00+00:00", "to": "2026-12-31T23:59:59+00:00"});
    body["dataset"]["aggregation"]["totalCost"]["name"] = json!("PreTaxCost");
    body["dataset"].as_object_mut().map(|d| d.remove("filter"));
    body["includeActualCost"] = json!(true);
    let ours = post(&url, &tok, &body).await.json();
    assert_eq!(
        ours["properties"]["columns"],
        response(&fx)["properties"]["columns"]
    );
    assert_shape(response(&fx), &ours, &[], &[], "forecast");
    let rows = ours["properties"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let statuses: Vec<&str> = rows.iter().filter_map(|r| r[2].as_str()).collect();
    assert!(statuses.contains(&"Actual") && statuses.contains(&"Forecast"));
    // Actual up to yesterday (22 Nov), forecast from today.
    for r in &rows {
        let day = r[1].as_u64().unwrap_or(0);
        assert_eq!(r[2] == "Forecast", day >= 20261123, "{r}");
    }
}

#[tokio::test]
async fn resource_graph_matches_the_paging_examples() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let url = format!(
        "{}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01",
        sim.base_url()
    );
    let first = fixture(
        "azure-rest-api-specs/specification/resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/examples/ResourcesFirstPageQuery.json",
    );
    let mut req = first["parameters"]["query"].clone();
    req["subscriptions"] = json!(sim.credentials(0).subscriptions);
    let r = post(&url, &tok, &req).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-ms-user-quota-remaining").is_none(),
        "quota off in this config"
    );
    let ours = r.json();
    assert_shape(response(&first), &ours, &[], &[], "arg first page");
    assert_eq!(ours["resultTruncated"], "false");
    assert_eq!(ours["count"], 3);

    let next = fixture(
        "azure-rest-api-specs/specification/resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/examples/ResourcesNextPageQuery.json",
    );
    let mut req2 = next["parameters"]["query"].clone();
    req2["subscriptions"] = req["subscriptions"].clone();
    req2["options"]["$skipToken"] = ours["$skipToken"].clone();
    req2["options"]["$top"] = json!(3);
    let ours2 = post(&url, &tok, &req2).await.json();
    assert_shape(response(&next), &ours2, &[], &[], "arg next page");

    // Without a projection: the full row, with a VM power state.
    let full = post(
        &url,
        &tok,
        &json!({"subscriptions": req["subscriptions"], "query": "Resources | where type =~ 'microsoft.compute/virtualmachines'",
                "options": {"$top": 1000}}),
    )
    .await
    .json();
    let vms = full["data"].as_array().cloned().unwrap_or_default();
    assert!(!vms.is_empty());
    for vm in &vms {
        assert_eq!(vm["type"], "microsoft.compute/virtualmachines");
        let code = vm["properties"]["extended"]["instanceView"]["powerState"]["code"]
            .as_str()
            .unwrap_or_default();
        assert!(
            code == "PowerState/running" || code == "PowerState/deallocated",
            "{code}"
        );
        for k in [
            "id",
            "name",
            "location",
            "resourceGroup",
            "subscriptionId",
            "tags",
            "sku",
            "properties",
        ] {
            assert!(vm.get(k).is_some(), "missing {k}");
        }
    }
}

#[tokio::test]
async fn advisor_matches_the_example_with_string_savings() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let url = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.Advisor/recommendations?api-version=2025-01-01&$top=1000",
        sim.base_url()
    );
    let fx = fixture(
        "azure-rest-api-specs/specification/advisor/resource-manager/Microsoft.Advisor/stable/2025-01-01/examples/ListRecommendations.json",
    );
    let r = get(&url, &tok).await;
    assert_eq!(r.status, 200);
    let ours = r.json();
    // The example wraps actions and remediation in `additionalProperties`; the spec's extra fields are allowed.
    assert_shape(
        response(&fx),
        &ours,
        &[
            "recommendationTypeId",
            "extendedProperties",
            "suppressionIds",
            "source",
        ],
        &["nextLink", "remediation", "actions", "action"],
        "advisor",
    );
    let cost: Vec<&Value> = ours["value"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|r| r["properties"]["category"] == "Cost")
                .collect()
        })
        .unwrap_or_default();
    assert!(!cost.is_empty(), "cost recommendations present");
    for r in cost {
        let ext = &r["properties"]["extendedProperties"];
        for k in ["savingsAmount", "annualSavingsAmount", "savingsCurrency"] {
            assert!(ext[k].is_string(), "{k} is a string: {ext}");
        }
        let monthly: f64 = ext["savingsAmount"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        assert!(monthly > 0.0);
        assert_eq!(ext["savingsCurrency"], "GBP");
    }
}
