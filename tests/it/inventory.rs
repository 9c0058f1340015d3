//! Resource inventory and Advisor recommendations, synced from the simulated tenant into Azurite
//! and read back through the tenant API: paging, replace-the-set, repeats and concurrent runs,
//! faults mid-paging, a Cost-Management-Reader-only subscription, filters and savings totals.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use sixpence::azure::{AzureClient, AzureEndpoints, GraphResource, Recommendation};
use sixpence::domain::connections::{ConnectionStore, Credentials, SubscriptionAccess};
use sixpence::domain::inventory::{InventoryFilter, InventoryItem, InventoryStore, Replaced};
use sixpence::domain::store::PageRequest;
use sixpence::domain::tenancy::WorkspaceId;
use sixpence::inventory::{
    NEEDS_READER, PartOptions, PartOutcome, PartReport, sync_inventory, sync_subscription_extras,
};
use sixpence::storage::Query;
use sixpence::storage::inventory::{TableInventoryStore, TableRecommendationStore};
use sixpence_azure_sim::{Fault, Role};

use crate::connections::{World, world};

struct Rig {
    w: World,
    workspace: WorkspaceId,
    endpoints: AzureEndpoints,
    inventory: TableInventoryStore,
    recommendations: TableRecommendationStore,
}

async fn rig() -> Rig {
    let w = world().await;
    let base = url::Url::parse(&w.sim().base_url()).expect("simulator URL");
    Rig {
        workspace: WorkspaceId::parse(&w.workspace).expect("workspace id"),
        endpoints: AzureEndpoints {
            arm: base.clone(),
            authority: base,
        },
        inventory: TableInventoryStore::new(w.storage.clone()),
        recommendations: TableRecommendationStore::new(w.storage.clone()),
        w,
    }
}

impl Rig {
    fn credentials(&self) -> Credentials {
        let c = self.w.sim().credentials(0);
        Credentials {
            tenant_id: c.tenant_id,
            client_id: c.client_id,
            secret: SecretString::from(c.client_secret),
        }
    }

    fn client(&self) -> AzureClient {
        self.endpoints
            .client(&self.credentials())
            .expect("client builds")
    }

    fn subscription(&self, i: usize) -> String {
        self.w.sim().credentials(0).subscriptions[i].to_ascii_lowercase()
    }

    /// What the tenant holds, read independently of the sync (one big page).
    async fn truth(&self, subscription: &str) -> (Vec<GraphResource>, Vec<Recommendation>) {
        let client = self.client();
        let mut pages = client.list_resources(subscription).expect("query");
        let mut resources = Vec::new();
        while let Some(page) = pages.next_page().await.expect("resource graph page") {
            resources.extend(page.resources());
        }
        let recommendations = client
            .advisor_recommendations(subscription, None)
            .expect("advisor")
            .collect_all()
            .await
            .expect("advisor pages");
        (resources, recommendations)
    }

    async fn sync(
        &self,
        access: &SubscriptionAccess,
        page_size: u32,
    ) -> (PartOutcome, PartOutcome) {
        let report = sync_subscription_extras(
            &self.endpoints,
            &self.credentials(),
            &self.inventory,
            &self.recommendations,
            self.workspace,
            access,
            PartOptions { page_size },
        )
        .await;
        (report.inventory, report.recommendations)
    }

    async fn stored(&self, subscription: &str) -> Vec<InventoryItem> {
        let filter = InventoryFilter {
            subscription: Some(subscription.to_owned()),
            ..InventoryFilter::default()
        };
        let page = self
            .inventory
            .list(
                self.workspace,
                &filter,
                PageRequest {
                    after: None,
                    limit: 10_000,
                },
            )
            .await
            .expect("list");
        assert!(page.next.is_none());
        page.items
    }

    /// Every physical row of the subscription's inventory partition (all generations).
    async fn raw_rows(&self, subscription: &str) -> usize {
        self.w
            .storage
            .tables()
            .table("inventory")
            .expect("table")
            .query_all::<Value>(&Query::partition(&format!(
                "{}:{subscription}",
                self.workspace
            )))
            .await
            .expect("query")
            .len()
    }

    async fn get(&self, rest: &str) -> crate::support::api::Answer {
        self.w.app.get_as(&self.w.owner, &self.w.path(rest)).await
    }

    /// Every page of a resources listing.
    async fn all_resources(&self, query: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let mut path = format!("/resources?limit=10{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let answer = self.get(&path).await;
            assert_eq!(answer.status, 200, "{}", answer.text);
            items.extend(answer.body["items"].as_array().expect("items").clone());
            match answer.body["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
        panic!("the listing never ended");
    }
}

fn access(subscription: &str, reader: bool) -> SubscriptionAccess {
    SubscriptionAccess {
        subscription_id: subscription.to_owned(),
        display_name: None,
        azure_state: Some("Enabled".into()),
        active: true,
        can_read_costs: true,
        can_read_resources: reader,
        excess_actions: Vec::new(),
        selected: true,
    }
}

fn synced(outcome: PartOutcome) -> PartReport {
    match outcome {
        PartOutcome::Synced(report) => report,
        other => panic!("expected a synced part, got {other:?}"),
    }
}

fn cents(recommendations: &[Recommendation]) -> (i64, usize) {
    let mut total = 0;
    let mut n = 0;
    for s in recommendations.iter().filter_map(Recommendation::savings) {
        total += s.amount.map_or(0, |a| (a * 100.0).round() as i64);
        n += 1;
    }
    (total, n)
}

#[tokio::test]
async fn inventory_and_recommendations_sync_page_by_page_and_the_api_filters_and_totals_them() {
    let r = rig().await;
    let sub = r.subscription(0);
    let (resources, recommendations) = r.truth(&sub).await;
    assert!(resources.len() > 20, "the simulator has a real estate");

    // Small pages: many Resource Graph round trips (and the simulator's quota of 15 queries per
    // 5 s is hit mid-paging, which the client waits out).
    let (inventory, recs) = r.sync(&access(&sub, true), 2).await;
    let inventory = synced(inventory);
    assert_eq!(inventory.rows, resources.len());
    assert_eq!(inventory.pages as usize, resources.len().div_ceil(2));
    assert!(!inventory.superseded);
    let recs = synced(recs);
    assert_eq!(recs.rows, recommendations.len());
    assert!(recs.pages > 1, "Advisor pages with nextLink");

    // Through the API, ten at a time: every resource exactly once, with its fields.
    let listed = r.all_resources("").await;
    let ids: BTreeSet<String> = listed
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_ascii_lowercase())
        .collect();
    let wanted: BTreeSet<String> = resources
        .iter()
        .map(|g| g.id.to_ascii_lowercase())
        .collect();
    assert_eq!(ids.len(), listed.len(), "no duplicates across pages");
    assert_eq!(ids, wanted);
    let vm = resources
        .iter()
        .find(|g| g.kind.as_deref() == Some("microsoft.compute/virtualmachines"))
        .expect("a VM");
    let shown = listed
        .iter()
        .find(|i| i["id"] == vm.id.as_str())
        .expect("the VM listed");
    assert_eq!(shown["name"], vm.name.clone().unwrap_or_default().as_str());
    assert_eq!(shown["type"], "microsoft.compute/virtualmachines");
    assert_eq!(shown["subscriptionId"], sub.as_str());
    assert_eq!(
        shown["location"],
        vm.location.clone().unwrap_or_default().as_str()
    );
    assert_eq!(
        shown["resourceGroup"],
        vm.resource_group.clone().unwrap_or_default().as_str()
    );
    assert!(
        ["running", "deallocated"].contains(&shown["powerState"].as_str().expect("power state")),
        "{shown}"
    );
    for (k, v) in &vm.tags {
        assert_eq!(shown["tags"][k], v.as_str());
    }
    let storage_account = listed
        .iter()
        .find(|i| i["type"] == "microsoft.storage/storageaccounts")
        .expect("a storage account");
    assert!(storage_account.get("powerState").is_none());
    assert!(storage_account["sku"].is_string());

    // Filters, each checked against the tenant's own data.
    let count = |f: &dyn Fn(&GraphResource) -> bool| resources.iter().filter(|g| f(g)).count();
    let vms = r
        .all_resources("&type=Microsoft.Compute/virtualMachines")
        .await;
    assert_eq!(
        vms.len(),
        count(&|g| g.kind.as_deref() == Some("microsoft.compute/virtualmachines"))
    );
    let group = vm.resource_group.clone().expect("group");
    let in_group = r.all_resources(&format!("&resourceGroup={group}")).await;
    assert_eq!(
        in_group.len(),
        count(&|g| g.resource_group.as_deref() == Some(group.as_str()))
    );
    let location = vm.location.clone().expect("location");
    let here = r
        .all_resources(&format!("&location={location}&subscription={sub}"))
        .await;
    assert_eq!(
        here.len(),
        count(&|g| g.location.as_deref() == Some(location.as_str()))
    );
    let (tag_key, tag_value) = vm.tags.iter().next().expect("the VM has tags");
    let tagged = r
        .all_resources(&format!(
            "&tag={}",
            url::form_urlencoded::byte_serialize(format!("tag:{tag_key}={tag_value}").as_bytes())
                .collect::<String>()
        ))
        .await;
    assert_eq!(
        tagged.len(),
        count(&|g| g.tags.get(tag_key) == Some(tag_value))
    );
    assert!(!tagged.is_empty());
    let elsewhere = r
        .all_resources(&format!("&subscription={}", r.subscription(1)))
        .await;
    assert!(
        elsewhere.is_empty(),
        "only synced subscriptions have resources"
    );
    // Another workspace of the same owner sees none of it.
    let other = r.w.app.create_workspace(&r.w.owner, "Other").await;
    for rest in ["resources", "recommendations"] {
        let answer =
            r.w.app
                .get_as(&r.w.owner, &format!("/api/v1/workspaces/{other}/{rest}"))
                .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body["items"], serde_json::json!([]), "{rest}");
    }

    // Recommendations: all of them, then Cost ones with their savings total per currency.
    let all = r.get("/recommendations").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(
        all.body["items"].as_array().expect("items").len(),
        recommendations.len()
    );
    let cost = r.get("/recommendations?category=cost").await;
    assert_eq!(cost.status, 200, "{}", cost.text);
    let cost_items = cost.body["items"].as_array().expect("items");
    let cost_truth: Vec<Recommendation> = recommendations
        .iter()
        .filter(|x| x.is_cost())
        .cloned()
        .collect();
    assert_eq!(cost_items.len(), cost_truth.len());
    assert!(
        !cost_items.is_empty(),
        "the simulator has Cost recommendations"
    );
    let sample = &cost_items[0];
    assert_eq!(sample["category"], "Cost");
    assert!(sample["problem"].is_string() && sample["solution"].is_string());
    assert!(sample["impactedName"].is_string() && sample["resourceId"].is_string());
    assert_eq!(sample["savings"]["currency"], "GBP");
    let (want_cents, contributing) = cents(&cost_truth);
    let totals = cost.body["totalSavings"].as_array().expect("totals");
    assert_eq!(totals.len(), 1, "{totals:?}");
    assert_eq!(totals[0]["currency"], "GBP");
    assert_eq!(
        (totals[0]["amount"].as_f64().expect("amount") * 100.0).round() as i64,
        want_cents
    );
    assert_eq!(totals[0]["recommendations"], contributing);
    let high = r.get("/recommendations?impact=HIGH&category=Cost").await;
    assert!(
        high.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["impact"] == "High" && i["category"] == "Cost")
    );
    let other_sub = r
        .get(&format!(
            "/recommendations?subscription={}",
            r.subscription(1)
        ))
        .await;
    assert_eq!(other_sub.body["items"].as_array().expect("items").len(), 0);
    assert_eq!(other_sub.body["totalSavings"], serde_json::json!([]));

    // Bad filters are problems the client can act on.
    for bad in [
        "/recommendations?category=Costs",
        "/recommendations?impact=urgent",
        "/recommendations?subscription=not-a-guid",
        "/recommendations?sort=savings",
        "/resources?tag=env",
        "/resources?resourcegroup=x",
        "/resources?limit=0",
        "/resources?limit=ten",
        "/resources?cursor=garbage",
        "/resources?type=a&type=b",
    ] {
        r.get(bad)
            .await
            .assert_problem(400, Some("invalid-request"));
    }
    // A cursor from one filtered listing does not work on another.
    let first = r.get("/resources?limit=1").await;
    let cursor = first.body["nextCursor"].as_str().expect("cursor");
    r.get(&format!("/resources?limit=1&type=x&cursor={cursor}"))
        .await
        .assert_problem(400, Some("invalid-request"));
}

#[tokio::test]
async fn a_resync_replaces_the_set_repeats_are_identical_and_concurrent_runs_never_mix() {
    let r = rig().await;
    let sub = r.subscription(0);
    let (resources, _) = r.truth(&sub).await;
    // A previous sync saw a resource since deleted in Azure, and an older name of a real one.
    let gone = InventoryItem {
        subscription: sub.clone(),
        id: format!(
            "/subscriptions/{sub}/resourceGroups/rg-old/providers/Microsoft.Web/sites/deleted-app"
        ),
        name: "deleted-app".into(),
        resource_type: "microsoft.web/sites".into(),
        resource_group: Some("rg-old".into()),
        location: Some("uksouth".into()),
        sku: None,
        sku_tier: None,
        tags: BTreeMap::new(),
        power_state: None,
    };
    let mut renamed = sixpence::inventory::inventory_item(&sub, resources[0].clone());
    renamed.name = "old-name".into();
    let before = r
        .inventory
        .replace(r.workspace, &sub, vec![gone.clone(), renamed])
        .await
        .expect("replace");
    assert_eq!(before, Replaced::Current { rows: 2 });

    synced(r.sync(&access(&sub, true), 50).await.0);
    let first = r.stored(&sub).await;
    assert_eq!(first.len(), resources.len());
    assert!(
        !first.iter().any(|i| i.id == gone.id),
        "a deleted resource disappears"
    );
    assert!(!first.iter().any(|i| i.name == "old-name"));
    assert_eq!(
        r.raw_rows(&sub).await,
        resources.len(),
        "the old set's rows are gone"
    );

    // A repeat (a redelivered message) leaves exactly the same listing and no extra rows.
    synced(r.sync(&access(&sub, true), 50).await.0);
    assert_eq!(r.stored(&sub).await, first);
    assert_eq!(r.raw_rows(&sub).await, resources.len());

    // Two workers on the same subscription at once: one set wins whole.
    let client_a = r.client();
    let client_b = r.client();
    let (a, b) = tokio::join!(
        sync_inventory(
            &client_a,
            &r.inventory,
            r.workspace,
            &sub,
            PartOptions { page_size: 10 }
        ),
        sync_inventory(
            &client_b,
            &r.inventory,
            r.workspace,
            &sub,
            PartOptions { page_size: 10 }
        ),
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert!(!(a.superseded && b.superseded), "someone wins");
    assert_eq!(r.stored(&sub).await, first);
    assert_eq!(
        r.raw_rows(&sub).await,
        resources.len(),
        "the loser's rows are discarded"
    );

    // Racing replaces of different sets: the listing is one of them, never a mix.
    let half: Vec<InventoryItem> = first.iter().take(first.len() / 2).cloned().collect();
    let (x, y) = tokio::join!(
        r.inventory.replace(r.workspace, &sub, first.clone()),
        r.inventory.replace(r.workspace, &sub, half.clone()),
    );
    x.expect("x");
    y.expect("y");
    let now = r.stored(&sub).await;
    assert!(
        now == first || now == half,
        "a mix of two sets: {} rows",
        now.len()
    );
    assert_eq!(r.raw_rows(&sub).await, now.len());
}

#[tokio::test]
async fn a_fault_mid_paging_keeps_the_previous_set_and_the_retry_converges() {
    let r = rig().await;
    let sub = r.subscription(0);
    let (resources, _) = r.truth(&sub).await;
    synced(r.sync(&access(&sub, true), 1000).await.0);
    let before = r.stored(&sub).await;
    let stale = InventoryItem {
        name: "renamed-since".into(),
        ..before[0].clone()
    };
    let mut edited = before.clone();
    edited[0] = stale;
    r.inventory
        .replace(r.workspace, &sub, edited.clone())
        .await
        .expect("replace");

    // Slow pages, then Resource Graph starts failing with 500s part-way through the paging.
    r.w.sim()
        .apply_fault(
            0,
            Fault::Slow {
                delay_ms: 150,
                endpoints: vec!["resourcegraph".into()],
                requests: None,
                seconds: None,
            },
        )
        .expect("fault");
    let client = r.client();
    let run = sync_inventory(
        &client,
        &r.inventory,
        r.workspace,
        &sub,
        PartOptions { page_size: 2 },
    );
    let fail_later = async {
        tokio::time::sleep(Duration::from_millis(900)).await;
        r.w.sim()
            .apply_fault(
                0,
                Fault::ServerError {
                    status: 500,
                    endpoints: vec!["resourcegraph".into()],
                    requests: None,
                    seconds: None,
                },
            )
            .expect("fault");
    };
    let (failed, ()) = tokio::join!(run, fail_later);
    let err = failed.expect_err("the run fails");
    assert!(err.transient, "{err:?}");
    assert!(!err.access_denied);
    assert!(err.message.contains("try again later"), "{}", err.message);
    assert_eq!(
        r.stored(&sub).await,
        edited,
        "the previous set is untouched"
    );

    // The retry (the message redelivered) converges on Azure's set.
    r.w.sim().clear_faults(0).expect("clear");
    let report = synced(r.sync(&access(&sub, true), 2).await.0);
    assert_eq!(report.rows, resources.len());
    assert_eq!(r.stored(&sub).await, before);
    assert_eq!(r.raw_rows(&sub).await, resources.len());
}

#[tokio::test]
async fn a_cost_reader_only_subscription_skips_inventory_and_keeps_the_connection() {
    let r = rig().await;
    let subs = r.w.sim().credentials(0).subscriptions;
    r.w.sim()
        .apply_fault(
            0,
            Fault::SetRoles {
                subscription: subs[1].clone(),
                roles: vec![Role::CostManagementReader],
            },
        )
        .expect("roles");
    let created = r.w.connect(&r.w.create_body(None)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let connections =
        sixpence::storage::azure_connections::TableConnectionStore::new(r.w.storage.clone())
            .list(r.workspace)
            .await
            .expect("connections");
    let cost_only = connections[0]
        .value
        .subscriptions
        .iter()
        .find(|s| s.subscription_id.eq_ignore_ascii_case(&subs[1]))
        .expect("the subscription")
        .clone();
    assert!(cost_only.can_read_costs && !cost_only.can_read_resources);

    let (inventory, recommendations) = r.sync(&cost_only, 1000).await;
    match inventory {
        PartOutcome::Skipped { reason } => {
            assert_eq!(reason, NEEDS_READER);
            assert!(reason.starts_with("skipped: needs Reader"));
        }
        other => panic!("inventory should be skipped: {other:?}"),
    }
    // Cost Management Reader includes Advisor's read permission.
    synced(recommendations);
    assert!(r.stored(&subs[1].to_ascii_lowercase()).await.is_empty());

    // Why the skip matters: Resource Graph answers a Cost-Management-Reader-only principal with
    // the rows it may read, i.e. none (or a 403), so syncing anyway would empty the inventory.
    match sync_inventory(
        &r.client(),
        &r.inventory,
        r.workspace,
        &subs[1],
        PartOptions::default(),
    )
    .await
    {
        Ok(report) => assert_eq!(report.rows, 0),
        Err(err) => assert!(err.access_denied, "{err:?}"),
    }

    // A 403 in these parts affects only their own client: the error says what to fix, the part's
    // client stops calling, and the cost sync's client (another instance) keeps working.
    r.w.sim()
        .apply_fault(
            0,
            Fault::RemoveRoleAssignment {
                subscription: subs[2].clone(),
            },
        )
        .expect("fault");
    let cost_client = r.client();
    let (_, recommendations) = r
        .sync(&access(&subs[2].to_ascii_lowercase(), true), 1000)
        .await;
    match recommendations {
        PartOutcome::Failed(err) => {
            assert!(err.access_denied && !err.transient, "{err:?}");
            assert!(err.message.contains("Reader"), "{}", err.message);
        }
        other => panic!("expected a 403: {other:?}"),
    }
    let own = r.client();
    let err =
        sixpence::inventory::sync_recommendations(&own, &r.recommendations, r.workspace, &subs[2])
            .await
            .expect_err("403");
    assert!(err.access_denied);
    assert!(own.is_revoked(), "the part's client stops calling");
    assert!(!cost_client.is_revoked());
    cost_client
        .advisor_recommendations(&subs[0], None)
        .expect("advisor")
        .collect_all()
        .await
        .expect("the cost client still works");

    let connection = r.w.get_connection(&id).await;
    assert_ne!(connection["state"], "revoked", "{connection}");
    assert_ne!(connection["state"], "failed", "{connection}");
}
