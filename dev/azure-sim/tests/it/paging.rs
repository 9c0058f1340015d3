//! nextLink and $skipToken paging return every row exactly once.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn cost_next_links_return_every_row_once() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let url = query_url(&sim, &sub);
    let body = cost_body(
        "ActualCost",
        "2026-09-01",
        "2026-10-31",
        "Daily",
        &[("Dimension", "ResourceId")],
    );

    let (cols, whole, pages) = query_all(&format!("{url}&$top=100000"), &tok, &body).await;
    assert_eq!(pages, 1);
    let (cols2, paged, pages) = query_all(&format!("{url}&$top=97"), &tok, &body).await;
    assert_eq!(cols, cols2);
    assert!(pages > 10, "small pages: {pages}");
    assert_eq!(paged, whole, "same rows in the same order");
    let (id, day) = (col(&cols, "ResourceId"), col(&cols, "UsageDate"));
    let keys: BTreeSet<(String, u64)> = paged
        .iter()
        .map(|r| {
            (
                r[id].as_str().unwrap_or_default().to_string(),
                r[day].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(keys.len(), paged.len(), "no row twice");

    // Default page size (config: 1000) pages too.
    let (_, default_paged, pages) = query_all(&url, &tok, &body).await;
    assert!(pages >= 2);
    assert_eq!(default_paged, whole);
}

#[tokio::test]
async fn a_next_link_needs_the_same_body() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let sub = sim.credentials(0).subscriptions[0].clone();
    let body = cost_body(
        "ActualCost",
        "2026-10-01",
        "2026-10-31",
        "Daily",
        &[("Dimension", "ServiceName")],
    );
    let first = post(&format!("{}&$top=5", query_url(&sim, &sub)), &tok, &body)
        .await
        .json();
    let link = first["properties"]["nextLink"]
        .as_str()
        .expect("next link")
        .to_string();

    let bare = request(
        "POST",
        &link,
        &[("Authorization", &format!("Bearer {tok}"))],
        b"",
    )
    .await;
    assert_eq!(bare.status, 400);
    assert_eq!(
        bare.json()["error"]["message"],
        "Invalid query definition, Dataset is invalid or not supplied"
    );
    let other = cost_body(
        "AmortizedCost",
        "2026-10-01",
        "2026-10-31",
        "Daily",
        &[("Dimension", "ServiceName")],
    );
    assert_eq!(
        post(&link, &tok, &other).await.status,
        400,
        "token bound to its query"
    );
    assert_eq!(post(&link, &tok, &body).await.status, 200);
}

#[tokio::test]
async fn resource_graph_skip_tokens_return_every_resource_once() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    let subs = sim.credentials(0).subscriptions;
    let url = format!(
        "{}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01",
        sim.base_url()
    );
    let query = "Resources | project id, name, type, location, tags";
    let all = post(
        &url,
        &tok,
        &json!({"subscriptions": subs, "query": query, "options": {"$top": 1000}}),
    )
    .await
    .json();
    let total = all["totalRecords"].as_u64().unwrap_or(0) as usize;
    assert!(total >= 100, "three subscriptions of resources: {total}");
    assert!(all.get("$skipToken").is_none());

    let mut ids = Vec::new();
    let mut skip: Option<Value> = None;
    let mut pages = 0;
    loop {
        let mut options = json!({"$top": 7});
        if let Some(s) = &skip {
            options["$skipToken"] = s.clone();
        }
        let page = post(
            &url,
            &tok,
            &json!({"subscriptions": subs, "query": query, "options": options}),
        )
        .await;
        assert_eq!(page.status, 200);
        let page = page.json();
        assert_eq!(page["totalRecords"].as_u64(), Some(total as u64));
        let data = page["data"].as_array().cloned().unwrap_or_default();
        assert_eq!(page["count"].as_u64(), Some(data.len() as u64));
        ids.extend(
            data.iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_string()),
        );
        pages += 1;
        match page.get("$skipToken") {
            Some(s) => skip = Some(s.clone()),
            None => break,
        }
    }
    assert_eq!(pages, total.div_ceil(7));
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), total);
    let expected: Vec<String> = all["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids, expected);

    // A KQL subscription filter narrows the scope; the table format has columns and rows.
    let one = post(
        &url,
        &tok,
        &json!({"subscriptions": subs, "query": format!("Resources | where subscriptionId == '{}' | project id, name", subs[1]),
                "options": {"$top": 1000, "resultFormat": "table"}}),
    )
    .await
    .json();
    let rows = one["data"]["rows"].as_array().cloned().unwrap_or_default();
    assert!(!rows.is_empty() && rows.len() < total);
    assert_eq!(one["data"]["columns"][0]["name"], "id");
    assert!(
        rows.iter()
            .all(|r| r[0].as_str().unwrap_or_default().contains(&subs[1]))
    );
}

#[tokio::test]
async fn advisor_next_links_return_every_recommendation_once() {
    let sim = start(config()).await;
    let tok = token(&sim, 0).await;
    for sub in sim.credentials(0).subscriptions {
        let base = format!(
            "{}/subscriptions/{sub}/providers/Microsoft.Advisor/recommendations?api-version=2025-01-01",
            sim.base_url()
        );
        let all = get(&format!("{base}&$top=1000"), &tok).await.json();
        let expected: Vec<Value> = all["value"].as_array().cloned().unwrap_or_default();
        let mut got = Vec::new();
        let mut next = Some(base.clone());
        while let Some(u) = next {
            let page = get(&u, &tok).await;
            assert_eq!(page.status, 200);
            let page = page.json();
            got.extend(page["value"].as_array().cloned().unwrap_or_default());
            next = page["nextLink"].as_str().map(str::to_string);
            if let Some(n) = &next {
                assert!(n.contains("api-version=2023-01-01"), "{n}");
            }
        }
        assert!(expected.len() > 5, "more than one page of 5");
        assert_eq!(got, expected);
        let cost = get(
            &format!("{base}&$filter=Category%20eq%20'Cost'&$top=1000"),
            &tok,
        )
        .await
        .json();
        assert!(cost["value"].as_array().is_some_and(
            |v| !v.is_empty() && v.iter().all(|r| r["properties"]["category"] == "Cost")
        ));
    }
}
