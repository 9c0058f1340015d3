//! Workspace exports end to end against Azurite and the simulated tenant: an owner asks, the
//! `export` function builds the archive, the download is a zip whose manifest matches its files and
//! whose `costs.csv` (FOCUS columns) reconciles to the simulator's ground truth; webhook URLs never
//! appear in it; viewers, analysts and other workspaces cannot reach it; it expires into 410; the
//! request and the download are audited; a bad message is poisoned.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sixpence_azure_sim::Metric;
use sixpence_testkit::Azurite;

use crate::connections::queue_envelope;
use crate::costs::costs_world;
use crate::support::api::Answer;
use crate::support::{TestApp, settings, spawn_app_with, token};

const FOCUS_HEADER: &[&str] = &[
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "BillingCurrency",
    "BilledCost",
    "EffectiveCost",
    "ProviderName",
    "SubAccountId",
    "ResourceId",
    "ResourceName",
    "ServiceName",
    "x_ResourceGroupName",
];

const SLACK_URL: &str = "https://hooks.slack.com/services/T0EXPORT/B0EXPORT/exportSECRETtoken42";

async fn request(app: &TestApp, bearer: &str, workspace: &str) -> Answer {
    app.call("POST", &format!("/api/v1/workspaces/{workspace}/exports"))
        .auth(Some(bearer))
        .send()
        .await
}

/// Runs the `export` function on the message the API enqueued for `export`.
async fn run_export(app: &TestApp, workspace: &str, export: &str) -> u16 {
    let message = json!({"version": 1, "workspace": workspace, "export": export}).to_string();
    let response = app.invoke("export", queue_envelope(&message)).await;
    let status = response.status().as_u16();
    assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());
    status
}

async fn download(app: &TestApp, bearer: &str, workspace: &str, export: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!(
            "/api/v1/workspaces/{workspace}/exports/{export}/download"
        )))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("download reaches the app")
}

fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a valid zip");
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("entry");
        let mut content = Vec::new();
        file.read_to_end(&mut content).expect("entry reads");
        files.insert(file.name().expect("UTF-8 name").to_string(), content);
    }
    files
}

fn micros(text: &str) -> i64 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = format!("{frac:0<6}");
    sign * (whole.parse::<i64>().expect("whole") * 1_000_000
        + frac[..6].parse::<i64>().expect("fraction"))
}

#[tokio::test]
async fn an_owner_exports_the_workspace_and_its_costs_reconcile_in_focus_columns() {
    let w = costs_world(10_101, 1).await;
    w.sync_all().await;
    let app = &w.app;
    let ws = &w.workspace;

    // Something in every part: a Slack channel (its URL must never leave), a viewer and an analyst.
    let channel = app
        .call("POST", &format!("/api/v1/workspaces/{ws}/channels"))
        .auth(Some(&w.owner))
        .json(
            &json!({"name": "FinOps Slack", "kind": "slack", "webhookUrl": SLACK_URL,
            "events": ["sync"], "minSeverity": "warning"}),
        )
        .send()
        .await;
    assert_eq!(channel.status, 201, "{}", channel.text);
    let viewer = token("viewer@contoso.example");
    app.join(&w.owner, ws, "viewer@contoso.example", "viewer")
        .await;
    let analyst = token("analyst@contoso.example");
    app.join(&w.owner, ws, "analyst@contoso.example", "analyst")
        .await;

    // Viewers and analysts may not export.
    request(app, &viewer, ws).await.assert_problem(403, None);
    request(app, &analyst, ws).await.assert_problem(403, None);

    let asked = request(app, &w.owner, ws).await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    assert_eq!(asked.body["status"], "queued");
    let id = asked.body["id"].as_str().expect("id").to_owned();
    let location = asked.header("location").expect("Location").to_owned();
    assert_eq!(location, format!("/api/v1/workspaces/{ws}/exports/{id}"));
    // One at a time.
    request(app, &w.owner, ws).await.assert_problem(409, None);
    // Not downloadable before it is built.
    assert_eq!(download(app, &w.owner, ws, &id).await.status(), 409);

    run_export(app, ws, &id).await;
    let ready = app.get_as(&w.owner, &location).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready", "{}", ready.body);
    assert!(ready.body["expiresAt"].as_str().is_some());
    let listed = app
        .get_as(&w.owner, &format!("/api/v1/workspaces/{ws}/exports"))
        .await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());

    let response = download(app, &w.owner, ws, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/zip"
    );
    let bytes = response.bytes().await.expect("body");
    assert_eq!(Some(bytes.len() as u64), ready.body["size"].as_u64());
    let files = unzip(&bytes);

    // The manifest lists every other file, with its rows and hash.
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    assert_eq!(manifest["workspace"], ws.as_str());
    assert_eq!(manifest["export"], id.as_str());
    assert_eq!(manifest["schemaVersion"], 1);
    let listed_files: Vec<&str> = manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    for expected in [
        "costs.csv",
        "inventory.jsonl",
        "recommendations.jsonl",
        "anomalies.jsonl",
        "budgets.jsonl",
        "members.jsonl",
        "channels.jsonl",
        "audit.jsonl",
    ] {
        assert!(
            listed_files.contains(&expected),
            "{expected} in {listed_files:?}"
        );
    }
    assert_eq!(files.len(), listed_files.len() + 1, "{:?}", files.keys());
    for entry in manifest["files"].as_array().expect("files") {
        let name = entry["name"].as_str().expect("name");
        let content = &files[name];
        let hash: String = Sha256::digest(content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(entry["sha256"], hash.as_str(), "{name}");
        let lines = content.iter().filter(|b| **b == b'\n').count() as u64;
        let header = u64::from(name.ends_with(".csv"));
        assert_eq!(entry["rows"].as_u64(), Some(lines - header), "{name}");
    }
    // The API's summary is the manifest's.
    assert_eq!(
        ready.body["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| (f["name"].clone(), f["rows"].clone()))
            .collect::<Vec<_>>(),
        manifest["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| (f["name"].clone(), f["rows"].clone()))
            .collect::<Vec<_>>()
    );

    // costs.csv: FOCUS column names, and totals equal to the simulator's, to the micro-pound.
    let mut reader = csv::Reader::from_reader(files["costs.csv"].as_slice());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, FOCUS_HEADER);
    let mut billed: BTreeMap<String, i64> = BTreeMap::new();
    let mut effective: BTreeMap<String, i64> = BTreeMap::new();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.expect("row");
        rows += 1;
        let sub = record[6]
            .strip_prefix("/subscriptions/")
            .expect("SubAccountId")
            .to_owned();
        assert!(record[0].ends_with("T00:00:00Z"), "{:?}", &record[0]);
        assert_eq!(&record[2], "GBP");
        assert_eq!(&record[5], "Microsoft");
        *billed.entry(sub.clone()).or_default() += micros(&record[3]);
        *effective.entry(sub).or_default() += micros(&record[4]);
    }
    assert!(rows > 100, "{rows} cost rows");
    let (from, to) = w.sim.data_range();
    for sub in &w.subscriptions {
        let actual = w
            .sim
            .ground_truth_cost(sub, from, to, Metric::ActualCost)
            .expect("sub");
        let amortized = w
            .sim
            .ground_truth_cost(sub, from, to, Metric::AmortizedCost)
            .expect("sub");
        assert_eq!(billed[sub], actual.units() * 100, "BilledCost of {sub}");
        assert_eq!(
            effective[sub],
            amortized.units() * 100,
            "EffectiveCost of {sub}"
        );
    }

    // Channels are there, masked; the webhook URL is nowhere in the archive.
    let channels = String::from_utf8(files["channels.jsonl"].clone()).expect("utf-8");
    assert!(channels.contains("FinOps Slack"), "{channels}");
    for (name, content) in &files {
        let text = String::from_utf8_lossy(content);
        assert!(
            !text.contains("exportSECRETtoken42") && !text.contains("T0EXPORT"),
            "{name} holds the webhook URL"
        );
    }
    let members = String::from_utf8(files["members.jsonl"].clone()).expect("utf-8");
    assert_eq!(members.lines().count(), 3, "{members}");
    let inventory = String::from_utf8(files["inventory.jsonl"].clone()).expect("utf-8");
    assert!(inventory.lines().count() >= 1, "the synced resources");
    let audit = String::from_utf8(files["audit.jsonl"].clone()).expect("utf-8");
    assert!(audit.contains("export.request"), "{audit}");

    // A redelivered message does not rebuild a ready export.
    run_export(app, ws, &id).await;
    let again = app.get_as(&w.owner, &location).await;
    assert_eq!(again.body["readyAt"], ready.body["readyAt"]);
    assert_eq!(again.body["size"], ready.body["size"]);

    // Audited: the request and the download, by the owner.
    let owner_id = app.user_id(&w.owner).await;
    let records = app.audit_records(&w.owner, ws).await;
    for action in ["export.request", "export.download"] {
        let record = records
            .iter()
            .find(|r| r["action"] == action && r["outcome"] == "succeeded")
            .unwrap_or_else(|| panic!("{action} audited: {records:?}"));
        assert_eq!(record["actor"], owner_id.as_str());
        assert_eq!(record["target"], format!("export/{id}"));
    }

    // Another workspace's owner cannot reach it, by either workspace's path.
    let stranger = token("stranger@fabrikam.example");
    let theirs = app.create_workspace(&stranger, "Fabrikam").await;
    assert_eq!(download(app, &stranger, ws, &id).await.status(), 404);
    assert_eq!(download(app, &stranger, &theirs, &id).await.status(), 404);
    app.get_as(
        &stranger,
        &format!("/api/v1/workspaces/{theirs}/exports/{id}"),
    )
    .await
    .assert_problem(404, None);
    // Nor can the viewer of this one.
    assert_eq!(download(app, &viewer, ws, &id).await.status(), 403);
}

#[tokio::test]
async fn an_expired_export_answers_410_and_its_archive_is_deleted() {
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    let storage = sixpence::storage::Storage::connect(
        &sixpence::storage::StorageConnection::parse_connection_string(azurite.connection_string())
            .expect("connection string")
            .with_max_retries(2),
    )
    .expect("storage");
    let mut config = settings(azurite.connection_string());
    // Expires the moment it is ready.
    config.export_ttl = std::time::Duration::ZERO;
    let app = spawn_app_with(azurite, config).await;
    let owner = token("owner@expiry.example");
    let ws = app.create_workspace(&owner, "Expiry").await;

    let asked = request(&app, &owner, &ws).await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let id = asked.body["id"].as_str().expect("id").to_owned();
    run_export(&app, &ws, &id).await;
    let container = storage
        .blobs()
        .container(sixpence::storage::names::EXPORTS_CONTAINER)
        .expect("container");
    let blobs = container.list(&format!("{ws}/{id}/")).await.expect("list");
    assert_eq!(blobs.len(), 2, "archive and manifest: {blobs:?}");

    let got = app
        .get_as(&owner, &format!("/api/v1/workspaces/{ws}/exports/{id}"))
        .await;
    assert_eq!(got.body["status"], "expired", "{}", got.body);
    assert!(got.body.get("download").is_none());
    let gone = app
        .call(
            "GET",
            &format!("/api/v1/workspaces/{ws}/exports/{id}/download"),
        )
        .auth(Some(&owner))
        .send()
        .await;
    gone.assert_problem(410, Some("gone"));
    assert!(
        container
            .list(&format!("{ws}/{id}/"))
            .await
            .expect("list")
            .is_empty(),
        "the archive is deleted"
    );
    let records = app.audit_records(&owner, &ws).await;
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "export.download" && r["outcome"] == "rejected"),
        "{records:?}"
    );
    // Once expired, a new export may be asked for.
    assert_eq!(request(&app, &owner, &ws).await.status, 202);
}

#[tokio::test]
async fn a_message_the_export_function_cannot_read_is_poisoned_with_its_reason() {
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    let app = spawn_app_with(azurite.clone(), settings(azurite.connection_string())).await;
    for (message, reason) in [
        (
            json!({"version": 2, "workspace": uuid::Uuid::new_v4(), "export": uuid::Uuid::new_v4()})
                .to_string(),
            "export message version 2",
        ),
        ("not json".to_owned(), "not a export message"),
    ] {
        let response = app.invoke("export", queue_envelope(&message)).await;
        assert_eq!(response.status(), 500);
        let answer: Value = response.json().await.expect("json");
        assert!(
            answer["Logs"][0]
                .as_str()
                .is_some_and(|l| l.contains(reason)),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_export_whose_worker_crashed_mid_way_is_rebuilt_whole_on_redelivery() {
    use sixpence::domain::exports::{ExportStatus, ExportStore as _};
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    let storage = sixpence::storage::Storage::connect(
        &sixpence::storage::StorageConnection::parse_connection_string(azurite.connection_string())
            .expect("connection string")
            .with_max_retries(2),
    )
    .expect("storage");
    let app = spawn_app_with(azurite.clone(), settings(azurite.connection_string())).await;
    let owner = token("owner@crash.example");
    let ws = app.create_workspace(&owner, "Crash").await;
    let asked = request(&app, &owner, &ws).await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let id = asked.body["id"].as_str().expect("id").to_owned();

    // A first attempt marked it running, staged part of an archive, and died.
    let store = sixpence::storage::exports::TableExportStore::new(storage.clone());
    let workspace = sixpence::domain::tenancy::WorkspaceId::parse(&ws).expect("workspace id");
    let export_id = uuid::Uuid::parse_str(&id).expect("export id");
    let current = store
        .get(workspace, export_id)
        .await
        .expect("read")
        .expect("the record");
    let mut running = current.value.clone();
    running.status = ExportStatus::Running;
    store
        .update(&running, &current.version)
        .await
        .expect("mark");
    let container = storage
        .blobs()
        .container(sixpence::storage::names::EXPORTS_CONTAINER)
        .expect("container");
    for block in [b"00000000", b"00000001"] {
        container
            .stage_block(
                &running.archive_blob(),
                block,
                bytes::Bytes::from_static(b"half an archive"),
            )
            .await
            .expect("stage");
    }
    let seen = app
        .get_as(&owner, &format!("/api/v1/workspaces/{ws}/exports/{id}"))
        .await;
    assert_eq!(seen.body["status"], "running");

    // The redelivered message builds it again, whole.
    run_export(&app, &ws, &id).await;
    let ready = app
        .get_as(&owner, &format!("/api/v1/workspaces/{ws}/exports/{id}"))
        .await;
    assert_eq!(ready.body["status"], "ready", "{}", ready.body);
    let response = download(&app, &owner, &ws, &id).await;
    assert_eq!(response.status(), 200);
    let files = unzip(&response.bytes().await.expect("body"));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    assert_eq!(manifest["export"], id.as_str());
    let members = String::from_utf8(files["members.jsonl"].clone()).expect("utf-8");
    assert_eq!(members.lines().count(), 1, "{members}");
}
