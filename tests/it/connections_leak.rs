//! "Secrets never appear in API responses, logs, errors or audit records": the real binary, at
//! debug log level, through a whole onboarding (a wrong secret, a rotation, verification, choosing
//! subscriptions, an over-privileged principal, a revocation found by the health check), then a
//! search of everything it produced for the secrets it was given.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sixpence::storage::{Storage, StorageConnection};
use sixpence_azure_sim::{Fault, Revocation, Role, SimConfig, SimTenant};

use crate::connections::queue_envelope;

const BINARY: &str = env!("CARGO_BIN_EXE_sixpence");
const WRONG_SECRET: &str = "Wr0ng~secret~that~must~never~leak~4c1d";

struct Seen {
    texts: Vec<String>,
}

impl Seen {
    fn add(&mut self, what: &str, text: impl Into<String>) {
        self.texts.push(format!("[{what}] {}", text.into()));
    }
}

async fn call(
    http: &reqwest::Client,
    seen: &mut Seen,
    method: reqwest::Method,
    url: String,
    bearer: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method.clone(), &url).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    seen.add("headers", format!("{:?}", response.headers()));
    let text = response.text().await.expect("body");
    seen.add(&format!("{method} {url} -> {status}"), text.clone());
    assert!(
        status.is_success(),
        "{method} {url} answered {status}: {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test]
async fn no_secret_appears_in_responses_logs_errors_audit_records_events_or_storage() {
    let sim = SimTenant::start(SimConfig::default())
        .await
        .expect("sim starts");
    let azurite = sixpence_testkit::Azurite::start()
        .await
        .expect("Azurite starts");
    let credentials = sim.credentials(0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("AzureWebJobsStorage", azurite.connection_string())
        .env("SIXPENCE_ENVIRONMENT", "development")
        .env("SIXPENCE_DEV_AUTH", sixpence_testkit::DEV_AUTH)
        .env("SIXPENCE_DATA_KEYS", sixpence::config::DEV_DATA_KEYS)
        .env("SIXPENCE_AZURE_ARM_ENDPOINT", sim.base_url())
        .env("SIXPENCE_AZURE_AUTHORITY", sim.base_url())
        // As much as the app ever logs, dependencies included.
        .env("SIXPENCE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let err_text = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while http.get(format!("{base}/")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "no readiness");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let mut seen = Seen { texts: Vec::new() };
    let owner = sixpence_testkit::dev_token("owner@contoso.example");
    let workspace = call(
        &http,
        &mut seen,
        reqwest::Method::POST,
        format!("{base}/api/v1/workspaces"),
        &owner,
        Some(json!({ "name": "Leak check" })),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ws = format!("{base}/api/v1/workspaces/{workspace}");
    let sub = credentials.subscriptions[0].clone();
    sim.apply_fault(
        0,
        Fault::OverPrivileged {
            subscription: sub.clone(),
            role: Role::Contributor,
        },
    )
    .expect("fault");

    // A wrong secret first (failed), then the right one through rotation, with an Idempotency-Key
    // so the recorded response is searched too.
    let created = http
        .post(format!("{ws}/connections"))
        .bearer_auth(&owner)
        .header("idempotency-key", "leak-check-1")
        .json(&json!({
            "name": "Contoso",
            "tenantId": credentials.tenant_id,
            "clientId": credentials.client_id,
            "clientSecret": WRONG_SECRET,
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    seen.add("create", created.to_string());
    assert_eq!(created["state"], "failed", "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let connection = format!("{ws}/connections/{id}");
    let rotated = call(
        &http,
        &mut seen,
        reqwest::Method::PUT,
        format!("{connection}/secret"),
        &owner,
        Some(json!({ "clientSecret": credentials.client_secret })),
    )
    .await;
    assert_eq!(rotated["state"], "verified", "{rotated}");
    assert_eq!(rotated["overPrivileged"], true);
    call(
        &http,
        &mut seen,
        reqwest::Method::PUT,
        format!("{connection}/subscriptions"),
        &owner,
        Some(json!({ "subscriptionIds": [sub] })),
    )
    .await;
    call(
        &http,
        &mut seen,
        reqwest::Method::POST,
        format!("{connection}/verify"),
        &owner,
        None,
    )
    .await;

    // The customer revokes the secret; the health check finds it.
    sim.apply_fault(
        0,
        Fault::RevokeCredentials {
            reason: Revocation::SecretExpired,
        },
    )
    .expect("fault");
    let check = serde_json::to_string(&json!({
        "version": 1, "workspace": workspace, "connection": id
    }))
    .expect("json");
    let answer = http
        .post(format!("{base}/connection-check"))
        .header("content-type", "application/json")
        .body(queue_envelope(&check))
        .send()
        .await
        .expect("invoke");
    assert_eq!(answer.status(), 200);
    seen.add("connection-check", answer.text().await.expect("text"));
    let revoked = call(
        &http,
        &mut seen,
        reqwest::Method::GET,
        connection.clone(),
        &owner,
        None,
    )
    .await;
    assert_eq!(revoked["state"], "revoked", "{revoked}");
    // An error answer: verifying a revoked connection whose secret is still refused.
    let refused = http
        .post(format!("{connection}/verify"))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("verify");
    seen.add("verify while revoked", refused.text().await.expect("text"));

    let audit = call(
        &http,
        &mut seen,
        reqwest::Method::GET,
        format!("{ws}/audit?limit=200"),
        &owner,
        None,
    )
    .await;
    assert!(
        audit["items"].as_array().is_some_and(|a| a.len() >= 5),
        "{audit}"
    );

    // Everything in storage: every table's rows, the events queue.
    let storage = Storage::connect(
        &StorageConnection::parse_connection_string(azurite.connection_string()).expect("conn"),
    )
    .expect("storage");
    for table in sixpence::storage::names::TABLES {
        let rows: Vec<sixpence::storage::table::Entity<Value>> = storage
            .tables()
            .table(table)
            .expect("table")
            .query_all(&sixpence::storage::table::Query::all())
            .await
            .expect("rows");
        for row in rows {
            seen.add(&format!("table {table}"), row.properties.to_string());
        }
    }
    let events = storage
        .queues()
        .queue("events")
        .expect("queue")
        .peek(32)
        .await
        .expect("peek");
    assert!(events.len() >= 2, "over-privileged and revoked events");
    for event in events {
        seen.add("event", event.raw.clone());
        seen.add("event", event.text.unwrap_or_default());
    }

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let _ = child.wait();
    for line in out_lines.join().expect("stdout reader") {
        seen.add("log", line);
    }
    seen.add("stderr", err_text.join().expect("stderr reader"));

    let logs = seen.texts.iter().filter(|t| t.starts_with("[log]")).count();
    assert!(logs > 20, "debug logging produced only {logs} lines");
    for secret in [WRONG_SECRET, credentials.client_secret.as_str()] {
        let leaks: Vec<&String> = seen.texts.iter().filter(|t| t.contains(secret)).collect();
        assert!(leaks.is_empty(), "a secret leaked: {leaks:#?}");
    }
    // Bearer tokens (ours and the simulated Azure ones) are secrets too.
    let bearer_leaks: Vec<&String> = seen
        .texts
        .iter()
        .filter(|t| t.contains(&owner) || t.contains("sim."))
        .filter(|t| t.starts_with("[log]") || t.starts_with("[stderr]") || t.starts_with("[table"))
        .collect();
    assert!(bearer_leaks.is_empty(), "a token leaked: {bearer_leaks:#?}");
}
