//! The cost sync and the costs API against Azurite and the simulated tenant: a full sync reconciles to
//! the simulator's ground truth exactly, for every grouping and both metrics; re-running, crashing
//! or failing part-way and retrying leaves exactly the clean numbers; a revoked principal stops the
//! sync with one role event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sixpence::storage::{Storage, StorageConnection};
use sixpence_azure_sim::{Fault, Metric, SimConfig, SimTenant};
use sixpence_testkit::Azurite;

use crate::connections::queue_envelope;
use crate::support::{TestApp, settings, spawn_app_with, token};

pub(crate) struct Costs {
    pub(crate) app: TestApp,
    pub(crate) sim: Arc<SimTenant>,
    pub(crate) storage: Storage,
    pub(crate) owner: String,
    pub(crate) workspace: String,
    pub(crate) connection: String,
    pub(crate) subscriptions: Vec<String>,
}

/// An app whose Azure is a small simulated tenant, one connection, `subscriptions` chosen. The
/// simulator enforces no quota, but the app still paces at the documented 60 QPU a minute, so a
/// backfill (84 QPU) takes about 90 s: tests use few subscriptions, and each its own seed, so their
/// tenants (and the process-wide per-tenant pacers) differ and tests do not wait for each other.
pub(crate) async fn costs_world(seed: u64, subscriptions: usize) -> Costs {
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    let storage = Storage::connect(
        &StorageConnection::parse_connection_string(azurite.connection_string())
            .expect("connection string")
            .with_max_retries(2),
    )
    .expect("storage");
    let sim = Arc::new(
        SimTenant::start(SimConfig {
            seed,
            tenants: 1,
            subscriptions_per_tenant: subscriptions,
            resources_per_subscription: 6,
            quota: None,
            ..SimConfig::default()
        })
        .await
        .expect("simulator"),
    );
    let mut settings = settings(azurite.connection_string());
    let base = url::Url::parse(&sim.base_url()).expect("url");
    settings.azure = sixpence::azure::AzureEndpoints {
        arm: base.clone(),
        authority: base,
    };
    let app = spawn_app_with(azurite, settings).await;
    let owner = token("owner@contoso.example");
    let workspace = app.create_workspace(&owner, "Contoso").await;
    let c = sim.credentials(0);
    let created = app
        .call(
            "POST",
            &format!("/api/v1/workspaces/{workspace}/connections"),
        )
        .auth(Some(&owner))
        .json(&json!({
            "name": "Contoso production",
            "tenantId": c.tenant_id,
            "clientId": c.client_id,
            "clientSecret": c.client_secret,
        }))
        .send()
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let connection = created.body["id"].as_str().expect("id").to_owned();
    let chosen = app
        .call(
            "PUT",
            &format!("/api/v1/workspaces/{workspace}/connections/{connection}/subscriptions"),
        )
        .auth(Some(&owner))
        .json(&json!({ "subscriptionIds": c.subscriptions }))
        .send()
        .await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    Costs {
        app,
        sim,
        storage,
        owner,
        workspace,
        connection,
        subscriptions: c
            .subscriptions
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
    }
}

impl Costs {
    fn message(&self, subscription: &str) -> String {
        json!({
            "version": 1,
            "workspace": self.workspace,
            "connection": self.connection,
            "subscription": subscription,
            "night": self.sim.today().to_string(),
        })
        .to_string()
    }

    pub(crate) async fn sync(&self, subscription: &str) -> u16 {
        let response = self
            .app
            .invoke("cost-sync", queue_envelope(&self.message(subscription)))
            .await;
        let status = response.status().as_u16();
        assert!(
            status == 200 || status >= 500,
            "{status}: {}",
            response.text().await.unwrap_or_default()
        );
        status
    }

    pub(crate) async fn sync_all(&self) {
        for sub in &self.subscriptions {
            assert_eq!(self.sync(sub).await, 200, "sync of {sub}");
        }
    }

    fn range(&self) -> (String, String) {
        let (from, to) = self.sim.data_range();
        (from.to_string(), to.to_string())
    }

    async fn get(&self, query: &str) -> crate::support::api::Answer {
        self.app
            .get_as(
                &self.owner,
                &format!("/api/v1/workspaces/{}/costs?{query}", self.workspace),
            )
            .await
    }

    /// `groupBy` totals over the whole data range, in micro-units.
    async fn totals(&self, group_by: &str, metric: &str) -> BTreeMap<String, i64> {
        let (from, to) = self.range();
        let answer = self
            .get(&format!(
                "from={from}&to={to}&granularity=monthly&groupBy={group_by}&metric={metric}"
            ))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let mut out = BTreeMap::new();
        let mut sum = 0;
        for row in answer.body["rows"].as_array().expect("rows") {
            let micros = micros(row["cost"].as_str().expect("cost"));
            sum += micros;
            *out.entry(row["key"].as_str().expect("key").to_owned())
                .or_insert(0) += micros;
        }
        assert_eq!(sum, micros(answer.body["total"].as_str().expect("total")));
        out.retain(|_, v| *v != 0);
        out
    }

    /// Every grouping's totals for both metrics: what "the same numbers" means.
    async fn snapshot(&self) -> Vec<BTreeMap<String, i64>> {
        let mut out = Vec::new();
        for metric in ["actual", "amortized"] {
            for g in GROUPINGS {
                out.push(self.totals(g, metric).await);
            }
        }
        out
    }

    /// The simulator's exact totals by a Cost Management dimension, in micro-units.
    fn truth(&self, dimension: &str, metric: Metric) -> BTreeMap<String, i64> {
        let (from, to) = self.sim.data_range();
        let mut out = BTreeMap::new();
        for sub in &self.subscriptions {
            if dimension == "Subscription" {
                let m = self
                    .sim
                    .ground_truth_cost(sub, from, to, metric)
                    .expect("sub");
                out.insert(sub.clone(), m.units() * 100);
                continue;
            }
            for (key, money) in self
                .sim
                .ground_truth_cost_by(sub, from, to, metric, dimension)
                .expect("dimension")
            {
                // Resource groups and ids compare without case (the API lower-cases them).
                let key = if matches!(dimension, "ResourceGroupName" | "ResourceId") {
                    key.to_ascii_lowercase()
                } else {
                    key
                };
                *out.entry(key).or_insert(0) += money.units() * 100;
            }
        }
        out.retain(|_, v| *v != 0);
        out
    }
}

const GROUPINGS: [&str; 6] = [
    "subscription",
    "resourceGroup",
    "service",
    "meterCategory",
    "resource",
    "chargeType",
];

fn micros(text: &str) -> i64 {
    let negative = text.starts_with('-');
    let (whole, frac) = text
        .trim_start_matches('-')
        .split_once('.')
        .expect("decimal");
    let v = whole.parse::<i64>().expect("whole") * 1_000_000 + frac.parse::<i64>().expect("frac");
    if negative { -v } else { v }
}

#[tokio::test]
async fn a_full_sync_reconciles_to_the_ground_truth_for_every_grouping_and_metric() {
    let w = costs_world(601, 2).await;
    w.sync_all().await;
    for (metric, sim_metric) in [
        ("actual", Metric::ActualCost),
        ("amortized", Metric::AmortizedCost),
    ] {
        for (group_by, dimension) in [
            ("subscription", "Subscription"),
            ("resourceGroup", "ResourceGroupName"),
            ("service", "ServiceName"),
            ("meterCategory", "MeterCategory"),
            ("resource", "ResourceId"),
            ("chargeType", "ChargeType"),
        ] {
            assert_eq!(
                w.totals(group_by, metric).await,
                w.truth(dimension, sim_metric),
                "{group_by} / {metric}"
            );
        }
    }
    // Runs are recorded, newest first, and the subscriptions show their last sync.
    let runs = w
        .app
        .get_as(
            &w.owner,
            &format!("/api/v1/workspaces/{}/syncs", w.workspace),
        )
        .await;
    assert_eq!(runs.status, 200, "{}", runs.text);
    let items = runs.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|r| r["status"] == "succeeded" && r["backfill"] == true)
    );
    assert_eq!(items[0]["subscription"], w.subscriptions[1].as_str());
    assert_eq!(items[0]["qpu"], 84);
    let subs = w
        .app
        .get_as(
            &w.owner,
            &format!("/api/v1/workspaces/{}/subscriptions", w.workspace),
        )
        .await;
    assert_eq!(subs.status, 200, "{}", subs.text);
    assert!(
        subs.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|s| s["lastSync"]["status"] == "succeeded")
    );
    // Raw pages were kept, gzipped, under the workspace.
    let blobs = w
        .storage
        .blobs()
        .container("raw-cost-pages")
        .expect("container")
        .list(&format!("{}/{}/", w.workspace, w.subscriptions[0]))
        .await
        .expect("list");
    assert!(blobs.len() >= 84, "{} raw pages", blobs.len());
    // Anomaly detection and budgets are told.
    for queue in ["anomaly-detect", "budget-check"] {
        let messages = w
            .storage
            .queues()
            .queue(queue)
            .expect("queue")
            .peek(32)
            .await
            .expect("peek");
        assert_eq!(messages.len(), 2, "{queue}");
        let body: Value =
            serde_json::from_str(messages[0].text.as_deref().expect("text")).expect("json");
        assert_eq!(body["version"], 1);
        assert!(body["days"].as_array().is_some_and(|d| !d.is_empty()));
    }
    // The connection reached its first sync.
    let connection = w
        .app
        .get_as(
            &w.owner,
            &format!(
                "/api/v1/workspaces/{}/connections/{}",
                w.workspace, w.connection
            ),
        )
        .await;
    assert_eq!(
        connection.body["state"], "firstSyncDone",
        "{}",
        connection.text
    );
    // CSV, and a bad parameter named in a problem.
    let (from, to) = w.range();
    let csv = w
        .app
        .call(
            "GET",
            &format!(
                "/api/v1/workspaces/{}/costs?from={from}&to={to}&groupBy=service&granularity=monthly",
                w.workspace
            ),
        )
        .auth(Some(&w.owner))
        .header("accept", "text/csv")
        .send()
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.header("content-type")
            .is_some_and(|c| c.starts_with("text/csv"))
    );
    assert!(
        csv.text.starts_with("period,group,cost,currency\n"),
        "{}",
        csv.text
    );
    let bad = w.get(&format!("from={from}&to={to}&groupBy=colour")).await;
    bad.assert_problem(400, Some("invalid-request"));
    assert!(bad.text.contains("groupBy"), "{}", bad.text);
    let bad = w
        .get(&format!(
            "from={from}&to={to}&groupBy=service&chargeType=Usage"
        ))
        .await;
    bad.assert_problem(400, Some("invalid-request"));
}

#[tokio::test]
async fn the_same_message_twice_and_runs_cut_short_then_retried_leave_the_clean_numbers() {
    let w = costs_world(602, 1).await;
    // A backfill cut short (slow Azure, the invocation dropped after 2 s, a few months written),
    // then retried: still a full backfill, so no month is left out.
    w.sim
        .apply_fault(
            0,
            Fault::Slow {
                delay_ms: 100,
                endpoints: vec!["query".into()],
                requests: None,
                seconds: None,
            },
        )
        .expect("fault");
    let _ = tokio::time::timeout(Duration::from_secs(2), w.sync(&w.subscriptions[0])).await;
    w.sim.clear_faults(0).expect("clear");
    w.sync_all().await;
    assert_eq!(
        w.totals("service", "amortized").await,
        w.truth("ServiceName", Metric::AmortizedCost)
    );
    assert_eq!(
        w.totals("resource", "actual").await,
        w.truth("ResourceId", Metric::ActualCost)
    );
    let clean = w.snapshot().await;

    // Delivered again: a nightly re-read replaces, never adds.
    w.sync_all().await;
    assert_eq!(w.snapshot().await, clean, "after a redelivery");

    // A 5xx storm mid-paging that outlasts the client's retries: the run fails, the message
    // returns; nothing changed, and the retry converges.
    w.sim
        .apply_fault(
            0,
            Fault::ServerError {
                status: 500,
                endpoints: vec!["query".into()],
                requests: None,
                seconds: None,
            },
        )
        .expect("fault");
    let failed = tokio::time::timeout(Duration::from_secs(5), w.sync(&w.subscriptions[0])).await;
    // Either the client gave up (5xx answer) or we cut the invocation (a crash): both are retried.
    if let Ok(status) = failed {
        assert!(status >= 500);
    }
    w.sim.clear_faults(0).expect("clear");
    assert_eq!(w.snapshot().await, clean, "after a failed run");
    w.sync_all().await;
    assert_eq!(w.snapshot().await, clean, "after the retry");

    // Crashes at several points of a run: slow Azure answers, and the invocation dropped after
    // 0.3 s, 1 s and 2 s (between raw-page writes, row writes and pointer switches).
    for cut in [300, 1_000, 2_000] {
        w.sim
            .apply_fault(
                0,
                Fault::Slow {
                    delay_ms: 150,
                    endpoints: vec!["query".into()],
                    requests: None,
                    seconds: None,
                },
            )
            .expect("fault");
        let _ = tokio::time::timeout(Duration::from_millis(cut), w.sync(&w.subscriptions[0])).await;
        w.sim.clear_faults(0).expect("clear");
        assert_eq!(w.snapshot().await, clean, "after a crash at {cut} ms");
    }
    // Two workers on the same subscription at once.
    let (a, b) = tokio::join!(w.sync(&w.subscriptions[0]), w.sync(&w.subscriptions[0]));
    assert_eq!((a, b), (200, 200));
    assert_eq!(w.snapshot().await, clean, "after two concurrent workers");
    // A throttle storm the client rides out.
    w.sim
        .apply_fault(
            0,
            Fault::Throttle {
                endpoints: vec!["query".into()],
                requests: Some(3),
                seconds: None,
                retry_after: 1,
                headers: vec![],
            },
        )
        .expect("fault");
    assert_eq!(w.sync(&w.subscriptions[0]).await, 200);
    assert_eq!(w.snapshot().await, clean, "after a throttle storm");
}

#[tokio::test]
async fn a_refused_principal_revokes_the_connection_with_one_role_event_and_completes() {
    let w = costs_world(603, 1).await;
    w.sync_all().await;
    let clean = w.snapshot().await;
    w.sim
        .apply_fault(
            0,
            Fault::RemoveRoleAssignment {
                subscription: w.subscriptions[0].clone(),
            },
        )
        .expect("fault");
    // The message completes (200): no retry storm against a tenant that refuses us.
    assert_eq!(w.sync(&w.subscriptions[0]).await, 200);
    let queries = w.sim.request_count("query");
    // Revoked: the next message does not call Azure at all.
    assert_eq!(w.sync(&w.subscriptions[0]).await, 200);
    assert_eq!(w.sim.request_count("query"), queries);

    let events: Vec<Value> = w
        .storage
        .queues()
        .queue("events")
        .expect("queue")
        .peek(32)
        .await
        .expect("peek")
        .into_iter()
        .map(|m| {
            serde_json::from_str::<Value>(&m.text.expect("text")).expect("json")["event"].clone()
        })
        .collect();
    let roles: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"]["kind"] == "role")
        .collect();
    assert_eq!(roles.len(), 1, "{events:?}");
    let syncs: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"]["kind"] == "sync")
        .collect();
    assert_eq!(syncs.len(), 1, "{events:?}");
    let runs = w
        .app
        .get_as(
            &w.owner,
            &format!("/api/v1/workspaces/{}/syncs", w.workspace),
        )
        .await;
    assert_eq!(runs.body["items"][0]["status"], "failed", "{}", runs.text);
    assert!(
        runs.body["items"][0]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    // What was synced before stays.
    assert_eq!(w.snapshot().await, clean);
}

/// Costs by tag: a workspace that chooses tag keys after its first sync gets them with 13 months of
/// history from the next sync, never a half answer in between.
#[tokio::test]
async fn tag_keys_chosen_later_arrive_with_full_history_and_reconcile_per_value() {
    let w = costs_world(604, 1).await;
    w.sync_all().await;
    let (from, to) = w.range();
    let by_env = format!("from={from}&to={to}&granularity=monthly&groupBy=tag:env");

    // A key the workspace does not sync is named in a 400.
    let refused = w.get(&by_env).await;
    refused.assert_problem(400, Some("invalid-request"));
    assert!(refused.text.contains("costTagKeys"), "{}", refused.text);

    // Choosing keys is validated, audited and shown on the workspace.
    let patch = |keys: Value| {
        w.app
            .call("PATCH", &format!("/api/v1/workspaces/{}", w.workspace))
            .auth(Some(&w.owner))
            .json(&json!({ "costTagKeys": keys }))
            .send()
    };
    patch(json!(["env", "a/b"]))
        .await
        .assert_problem(400, Some("invalid-request"));
    let chosen = patch(json!(["env", "costCenter"])).await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    assert_eq!(chosen.body["costTagKeys"], json!(["env", "costCenter"]));

    // The months synced before hold no tag values: a clear 409 instead of everything "untagged".
    let early = w.get(&by_env).await;
    early.assert_problem(409, None);
    assert!(early.text.contains("next sync"), "{}", early.text);

    // The next sync re-reads the history with the tag views: 14 months × 5 views × 2 metrics.
    w.sync_all().await;
    let runs = w
        .app
        .get_as(
            &w.owner,
            &format!("/api/v1/workspaces/{}/syncs", w.workspace),
        )
        .await;
    assert_eq!(runs.body["items"][0]["backfill"], true, "{}", runs.text);
    assert_eq!(runs.body["items"][0]["qpu"], 140, "{}", runs.text);

    for (metric, sim_metric) in [
        ("actual", Metric::ActualCost),
        ("amortized", Metric::AmortizedCost),
    ] {
        for key in ["env", "costCenter"] {
            let (sim_from, sim_to) = w.sim.data_range();
            let mut truth: BTreeMap<String, i64> = w
                .sim
                .ground_truth_cost_by_tag(&w.subscriptions[0], sim_from, sim_to, sim_metric, key)
                .expect("subscription")
                .into_iter()
                .map(|(k, v)| (k, v.units() * 100))
                .collect();
            truth.retain(|_, v| *v != 0);
            assert!(truth.len() >= 2, "{key}: {truth:?}");
            assert_eq!(
                w.totals(&format!("tag:{key}"), metric).await,
                truth,
                "{key} / {metric}"
            );
        }
    }
    // The tag grouping covers every cost: its total is the subscription's.
    assert_eq!(
        w.totals("tag:env", "actual").await.values().sum::<i64>(),
        w.totals("subscription", "actual")
            .await
            .values()
            .sum::<i64>()
    );
    // A tag filter combines with the resource dimensions, not with another view's dimension.
    let prod = w
        .get(&format!(
            "from={from}&to={to}&granularity=monthly&groupBy=resourceGroup&tag:env=prod"
        ))
        .await;
    assert_eq!(prod.status, 200, "{}", prod.text);
    assert_eq!(
        micros(prod.body["total"].as_str().expect("total")),
        w.totals("tag:env", "actual").await["prod"]
    );
    w.get(&format!("from={from}&to={to}&groupBy=service&tag:env=prod"))
        .await
        .assert_problem(400, Some("invalid-request"));
}
