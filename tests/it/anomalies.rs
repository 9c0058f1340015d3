//! Anomaly detection wired into the product, against Azurite and the simulated tenant: a sync
//! followed by `anomaly-detect` finds the simulator's injected spike with its root cause, lists it,
//! raises its event once (a redelivered message changes nothing), and analysts' feedback is
//! audited; the analytics settings round-trip.

use std::time::Duration;

use serde_json::{Value, json};
use sixpence_azure_sim::{AnomalyKind, Metric, SimConfig, SimTenant};
use time::Date;

use crate::connections::queue_envelope;
use crate::costs::{Costs, costs_world};

/// Days before the last synced day within which the chosen spike must end (alerts are for recent
/// anomalies: `domain::anomalies::ALERT_RECENT_DAYS` is 35).
const RECENT: i64 = 30;

/// The simulator places its anomalies by seed and by today's date; the first seed whose tenant has
/// a recent spike worth at least £30 a day (so it passes the default alert thresholds whatever the
/// subscription's size at the resource group or service level).
async fn seed_with_recent_spike() -> (u64, sixpence_azure_sim::Anomaly) {
    for seed in 700..900u64 {
        let sim = SimTenant::start(SimConfig {
            seed,
            tenants: 1,
            subscriptions_per_tenant: 1,
            resources_per_subscription: 6,
            quota: None,
            ..SimConfig::default()
        })
        .await
        .expect("simulator");
        let (_, end) = sim.data_range();
        for a in sim.anomalies() {
            if a.kind != AnomalyKind::Spike {
                continue;
            }
            let Some(last) = a.end else { continue };
            if (end - last).whole_days() > RECENT {
                continue;
            }
            let before = a.start - time::Duration::days(1);
            let by = |day: Date| {
                sim.ground_truth_cost_by(
                    &a.subscription_id,
                    day,
                    day,
                    Metric::AmortizedCost,
                    "ResourceId",
                )
                .expect("subscription")
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&a.series))
                .map(|(_, m)| m.units())
                .unwrap_or(0)
            };
            if by(a.start) - by(before) >= 30 * sixpence_azure_sim::UNITS_PER_GBP {
                return (seed, a);
            }
        }
    }
    panic!("no seed in 700..900 has a recent spike today: widen the range");
}

impl Costs {
    fn ws(&self, rest: &str) -> String {
        format!("/api/v1/workspaces/{}{rest}", self.workspace)
    }

    /// The message the sync sent to `anomaly-detect` (taken off the queue, as the host would).
    async fn changed_days_message(&self) -> String {
        let queue = self
            .storage
            .queues()
            .queue("anomaly-detect")
            .expect("queue");
        let mut got = queue
            .receive(1, Duration::from_secs(600))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1, "the sync announced its changed days");
        got.remove(0).text.expect("text")
    }

    /// Changes the stored anomaly as a restatement would look to the next detection (its first
    /// day's score differs from what the detector finds now) and marks it told as new, so that
    /// detection must update it and decide again whether to tell.
    async fn restate(&self, id: &str) {
        use sixpence::domain::anomalies::{AnomalyStore, Notified};
        let store = sixpence::storage::anomalies::TableAnomalyStore::new(self.storage.clone());
        let workspace =
            sixpence::domain::tenancy::WorkspaceId::parse(&self.workspace).expect("workspace");
        let id = uuid::Uuid::parse_str(id).expect("anomaly id");
        let mut anomaly = store
            .get(workspace, id)
            .await
            .expect("read")
            .expect("stored")
            .value;
        anomaly.episode.days[0].score += 1.0;
        anomaly.notified = Some(Notified {
            status: sixpence::domain::events::AnomalyStatus::New,
            revision: anomaly.episode.revision,
        });
        store.save(workspace, &anomaly).await.expect("saved");
    }

    async fn detect(&self, message: &str) {
        let response = self
            .app
            .invoke("anomaly-detect", queue_envelope(message))
            .await;
        let status = response.status().as_u16();
        assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());
    }

    async fn anomalies(&self, query: &str) -> Vec<Value> {
        let answer = self
            .app
            .get_as(
                &self.owner,
                &self.ws(&format!("/anomalies?limit=200&{query}")),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["items"].as_array().expect("items").clone()
    }

    /// Every event raised so far (received with a long invisibility, so a second call sees only
    /// new ones), and how many the queue holds in all.
    async fn take_events(&self) -> Vec<Value> {
        let queue = self.storage.queues().queue("events").expect("queue");
        let mut out = Vec::new();
        loop {
            let batch = queue
                .receive(32, Duration::from_secs(3600))
                .await
                .expect("receive");
            if batch.is_empty() {
                return out;
            }
            out.extend(
                batch
                    .into_iter()
                    .map(|m| serde_json::from_str(&m.text.expect("text")).expect("event JSON")),
            );
        }
    }
}

fn overlaps(a: &Value, from: Date, to: Date) -> bool {
    let day = |k: &str| a[k].as_str().expect("day").to_owned();
    day("firstDay") <= to.to_string() && day("lastDay") >= from.to_string()
}

#[tokio::test]
async fn a_sync_then_detection_finds_the_spike_with_its_cause_once_and_feedback_is_audited() {
    let (seed, spike) = seed_with_recent_spike().await;
    let spike_end = spike.end.expect("a spike ends");
    let w = costs_world(seed, 1).await;
    w.sync_all().await;
    let message = w.changed_days_message().await;
    w.detect(&message).await;

    // The spike is listed, up, on its days, its root cause the resource that spiked.
    let listed = w.anomalies("").await;
    let resource = spike.series.to_ascii_lowercase();
    let found: Vec<&Value> = listed
        .iter()
        .filter(|a| a["direction"] == "up" && overlaps(a, spike.start, spike_end))
        .filter(|a| a["causes"]["resource"][0]["key"] == resource.as_str())
        .collect();
    assert!(
        !found.is_empty(),
        "the spike of {resource} on {}..{spike_end} is found: {listed:#?}",
        spike.start
    );
    for a in &found {
        let top = &a["causes"]["resource"][0];
        assert!(top["share"].as_f64().expect("share") > 0.5, "{a:#}");
        for (dimension, causes) in a["causes"].as_object().expect("causes") {
            let shares: f64 = causes
                .as_array()
                .expect("list")
                .iter()
                .map(|c| c["share"].as_f64().expect("share"))
                .sum();
            assert!((shares - 1.0).abs() < 1e-6, "{dimension}: {shares}");
        }
    }
    let name = resource.rsplit('/').next().expect("name");
    let detail = w
        .app
        .get_as(
            &w.owner,
            &w.ws(&format!(
                "/anomalies/{}",
                found[0]["id"].as_str().expect("id")
            )),
        )
        .await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    assert_eq!(detail.body["id"], found[0]["id"]);

    // One alert for the spike (the most general level that passes the thresholds), naming it.
    let events = w.take_events().await;
    let anomaly_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"]["kind"]["kind"] == "anomaly")
        .collect();
    let about_spike: Vec<&&Value> = anomaly_events
        .iter()
        .filter(|e| {
            let a = &e["event"]["kind"];
            found.iter().any(|f| f["id"] == a["anomaly"])
        })
        .collect();
    assert_eq!(about_spike.len(), 1, "{anomaly_events:#?}");
    let event = &about_spike[0]["event"];
    assert_eq!(event["kind"]["status"], "new");
    assert!(
        event["kind"]["causes"][0]["label"]
            .as_str()
            .is_some_and(|l| l.starts_with(name)),
        "{event:#}"
    );
    assert!(
        event["dedupeKey"]
            .as_str()
            .is_some_and(|k| k.starts_with(&format!(
                "anomaly:{}:new:",
                event["kind"]["anomaly"].as_str().unwrap_or_default()
            ))),
        "{event:#}"
    );
    // Every notified anomaly was told exactly once.
    let notified = listed.iter().filter(|a| !a["notified"].is_null()).count();
    assert_eq!(notified, anomaly_events.len(), "{listed:#?}");

    // Redelivery: nothing new stored, nothing raised.
    w.detect(&message).await;
    assert_eq!(w.anomalies("").await, listed);
    assert!(
        w.take_events().await.is_empty(),
        "a redelivery raises nothing"
    );
    // The next night re-reads only the last days (the ones Azure restates): they are the same
    // anomalies, not new ones.
    let mut nightly: Value = serde_json::from_str(&message).expect("message JSON");
    let days = nightly["days"].as_array().expect("days").clone();
    nightly["days"] = Value::Array(days[days.len() - 5..].to_vec());
    nightly["run"] = json!(uuid::Uuid::new_v4());
    w.detect(&nightly.to_string()).await;
    assert_eq!(w.anomalies("").await, listed);
    assert!(
        w.take_events().await.is_empty(),
        "re-reading the last days raises nothing"
    );
    // A message this binary cannot read fails every attempt (so the host poisons it), saying why.
    let mut unknown: Value = serde_json::from_str(&message).expect("message JSON");
    unknown["version"] = json!(2);
    let response = w
        .app
        .invoke("anomaly-detect", queue_envelope(&unknown.to_string()))
        .await;
    assert_eq!(response.status(), 500);
    let answer: Value = response.json().await.expect("json");
    assert!(
        answer["Logs"][0]
            .as_str()
            .is_some_and(|l| l.contains("anomaly-detect message version 2")),
        "{answer}"
    );
    assert_eq!(w.anomalies("").await, listed);

    // Filters.
    let id = found[0]["id"].clone();
    let level = found[0]["level"].as_str().expect("level");
    let value = found[0]["value"].as_str().expect("value");
    let scoped = w
        .anomalies(&format!("scope={level}:{}", crate::support::api::q(value)))
        .await;
    assert!(scoped.iter().any(|a| a["id"] == id));
    assert!(scoped.iter().all(|a| a["level"] == level));
    let huge = w.anomalies("minImpact=100000000").await;
    assert!(huge.is_empty(), "{huge:#?}");
    let window = w
        .anomalies(&format!("from={}&to={}", spike.start, spike_end))
        .await;
    assert!(window.iter().any(|a| a["id"] == id));
    assert!(window.iter().all(|a| overlaps(a, spike.start, spike_end)));
    for bad in [
        "status=gone",
        "scope=tenant",
        "from=yesterday",
        "minImpact=1e9",
        "colour=red",
    ] {
        let answer = w
            .app
            .get_as(&w.owner, &w.ws(&format!("/anomalies?{bad}")))
            .await;
        answer.assert_problem(400, Some("invalid-request"));
    }

    // A restated day of the alerted anomaly is told (its end, or its update)...
    let alerted = event["kind"]["anomaly"]
        .as_str()
        .expect("anomaly")
        .to_owned();
    w.restate(&alerted).await;
    w.detect(&message).await;
    let told = w.take_events().await;
    assert_eq!(told.len(), 1, "{told:#?}");
    assert_eq!(told[0]["event"]["kind"]["anomaly"], alerted.as_str());
    assert_ne!(told[0]["event"]["kind"]["status"], "new");

    // Feedback: recorded, shown, audited once; the anomaly stops alerting.
    let id = json!(alerted);
    let before = w.app.audit_records(&w.owner, &w.workspace).await.len();
    let answer = w
        .app
        .call(
            "POST",
            &w.ws(&format!("/anomalies/{}/feedback", id.as_str().expect("id"))),
        )
        .auth(Some(&w.owner))
        .json(&json!({"verdict": "expected", "note": "Load test"}))
        .send()
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["feedback"]["verdict"], "expected");
    let records = w.app.audit_records(&w.owner, &w.workspace).await;
    assert_eq!(records.len(), before + 1);
    assert_eq!(records[0]["action"], "anomaly.feedback");
    assert_eq!(
        records[0]["target"],
        format!("anomaly/{}", id.as_str().expect("id"))
    );
    assert_eq!(
        records[0]["changes"],
        json!([{"field": "feedback", "from": null, "to": "expected"}])
    );
    // Detection again keeps the feedback; the same restatement now updates it without a word.
    let revision = |list: &[Value]| {
        list.iter().find(|a| a["id"] == id).expect("still listed")["revision"]
            .as_u64()
            .expect("revision")
    };
    let first = revision(&w.anomalies("").await);
    w.restate(&alerted).await;
    w.detect(&message).await;
    let after = w.anomalies("").await;
    let kept = after.iter().find(|a| a["id"] == id).expect("still listed");
    assert_eq!(kept["feedback"]["verdict"], "expected");
    assert!(
        revision(&after) > first,
        "the anomaly was updated: {kept:#}"
    );
    assert!(
        w.take_events().await.is_empty(),
        "expected spend is not alerted"
    );
    let unknown = w
        .app
        .call(
            "POST",
            &w.ws(&format!("/anomalies/{}/feedback", uuid::Uuid::new_v4())),
        )
        .auth(Some(&w.owner))
        .json(&json!({"verdict": "expected"}))
        .send()
        .await;
    unknown.assert_problem(404, Some("not-found"));
}

#[tokio::test]
async fn analytics_settings_default_on_purpose_round_trip_and_refuse_nonsense() {
    let app = crate::support::spawn_app().await;
    let owner = crate::support::token("owner@contoso.example");
    let workspace = app.create_workspace(&owner, "Contoso").await;
    let path = format!("/api/v1/workspaces/{workspace}/analytics-settings");
    let defaults = app.get_as(&owner, &path).await;
    assert_eq!(defaults.status, 200, "{}", defaults.text);
    assert_eq!(
        defaults.body,
        json!({
            "sensitivity": "medium",
            "minImpact": "10.000000",
            "minImpactPercent": 10.0,
            "dimensions": ["subscription", "resourceGroup", "service"],
        })
    );
    let wanted = json!({
        "sensitivity": "high",
        "minImpact": "250.50",
        "minImpactPercent": 5.0,
        "dimensions": ["subscription", "service"],
    });
    let put = app
        .call("PUT", &path)
        .auth(Some(&owner))
        .json(&wanted)
        .send()
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let read = app.get_as(&owner, &path).await;
    assert_eq!(read.body["minImpact"], "250.500000");
    assert_eq!(read.body["sensitivity"], "high");
    assert_eq!(read.body["dimensions"], json!(["subscription", "service"]));
    for bad in [
        json!({"sensitivity": "extreme", "minImpact": "1", "minImpactPercent": 1.0, "dimensions": ["service"]}),
        json!({"sensitivity": "low", "minImpact": "-1", "minImpactPercent": 1.0, "dimensions": ["service"]}),
        json!({"sensitivity": "low", "minImpact": "1", "minImpactPercent": -1.0, "dimensions": ["service"]}),
        json!({"sensitivity": "low", "minImpact": "1", "minImpactPercent": 1.0, "dimensions": []}),
        json!({"sensitivity": "low", "minImpact": "1", "minImpactPercent": 1.0, "dimensions": ["tenant"]}),
    ] {
        let answer = app
            .call("PUT", &path)
            .auth(Some(&owner))
            .json(&bad)
            .send()
            .await;
        answer.assert_problem(400, None);
    }
}

/// Stores one anomaly in `workspace` directly (for route tests that need one to exist); its id.
pub(crate) async fn seed_anomaly(app: &crate::support::TestApp, workspace: &str) -> String {
    let day = Date::from_calendar_date(2026, time::Month::March, 3).expect("date");
    seed_anomaly_on(app, workspace, day).await
}

/// Stores one one-day anomaly on `day` in `workspace` directly; its id.
async fn seed_anomaly_on(app: &crate::support::TestApp, workspace: &str, day: Date) -> String {
    use sixpence::domain::anomalies::{Anomaly, AnomalyStore, Level, RootCauses, State};
    use sixpence_analytics::episode::{Episode, EpisodeDay, EpisodeId, EpisodeStatus};
    use sixpence_analytics::{AnomalyKind, Direction};
    let storage = sixpence::storage::Storage::connect(
        &sixpence::storage::StorageConnection::parse_connection_string(
            app._azurite.connection_string(),
        )
        .expect("connection string"),
    )
    .expect("storage");
    let store = sixpence::storage::anomalies::TableAnomalyStore::new(storage);
    let workspace = sixpence::domain::tenancy::WorkspaceId::parse(workspace).expect("workspace id");
    let flagged = EpisodeDay {
        date: day,
        kind: AnomalyKind::Spike,
        actual: 500.0,
        expected: 100.0,
        impact: 400.0,
        score: 12.0,
    };
    let id = uuid::Uuid::new_v4();
    let anomaly = Anomaly {
        id,
        subscription: "00000000-0000-0000-0000-000000000001".into(),
        level: Level::Subscription,
        value: "00000000-0000-0000-0000-000000000001".into(),
        currency: "GBP".into(),
        state: State::Closed,
        episode: Episode {
            id: EpisodeId {
                series: "sub:00000000-0000-0000-0000-000000000001".into(),
                opened_on: day,
            },
            direction: Direction::Up,
            kind: AnomalyKind::Spike,
            start: day,
            end: day,
            peak: flagged.clone(),
            cumulative_impact: 400.0,
            cumulative_expected: 100.0,
            days: vec![flagged],
            status: EpisodeStatus::Closed,
            revision: 0,
        },
        causes: RootCauses::default(),
        notified: None,
        feedback: None,
    };
    store.save(workspace, &anomaly).await.expect("seeded");
    id.to_string()
}

#[tokio::test]
async fn paging_through_anomalies_neither_skips_nor_repeats_when_one_arrives_between_pages() {
    let app = crate::support::spawn_app().await;
    let owner = crate::support::token("owner@contoso.example");
    let workspace = app.create_workspace(&owner, "Contoso").await;
    let day = |d: u8| Date::from_calendar_date(2026, time::Month::March, d).expect("date");
    let mut ids = Vec::new();
    for d in 1..=5 {
        ids.push(seed_anomaly_on(&app, &workspace, day(d)).await);
    }
    ids.reverse(); // newest first, as listed
    let page = |cursor: Option<String>| {
        let path = match cursor {
            Some(c) => format!("/api/v1/workspaces/{workspace}/anomalies?limit=2&cursor={c}"),
            None => format!("/api/v1/workspaces/{workspace}/anomalies?limit=2"),
        };
        let (app, owner) = (&app, owner.clone());
        async move {
            let answer = app.get_as(&owner, &path).await;
            assert_eq!(answer.status, 200, "{}", answer.text);
            let got: Vec<String> = answer.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|a| a["id"].as_str().expect("id").to_owned())
                .collect();
            (got, answer.body["nextCursor"].as_str().map(str::to_owned))
        }
    };
    let (first, cursor) = page(None).await;
    assert_eq!(first, ids[..2]);
    // A newer anomaly arrives: it belongs before the first page, so later pages do not shift.
    seed_anomaly_on(&app, &workspace, day(9)).await;
    let (second, cursor) = page(cursor).await;
    assert_eq!(second, ids[2..4]);
    let (third, cursor) = page(cursor).await;
    assert_eq!(third, ids[4..]);
    assert_eq!(cursor, None);

    app.get_as(
        &owner,
        &format!("/api/v1/workspaces/{workspace}/anomalies?cursor=bm9wZQ"),
    )
    .await
    .assert_problem(400, Some("invalid-request"));
}
