//! End to end through the local host: a real `sixpence` child, a real Azurite, real HTTP.
//!
//! Each test gets its own Azurite and app root (a copy of the repository's `host.json`, with queue
//! settings made fast, and `function-specs/`), so queue and table state never leaks between tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::Value;
use sixpence::storage::{Queue, Storage};
use sixpence_azure_sim::{SimConfig, SimTenant};
use sixpence_local_host::demo::{self, DemoOptions};
use sixpence_local_host::{Event, LocalHost, LocalHostHandle, Options};
use sixpence_testkit::Azurite;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::broadcast;
use uuid::Uuid;

const MAX_DEQUEUE_COUNT: u64 = 3;
/// Generous: the child may still be compiling nothing, but a 2-core CI box is slow.
const PATIENCE: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `sixpence` binary next to ours in the target dir. `cargo test --workspace` (what `make test`
/// runs) builds it, because the `sixpence` package has integration tests. It is not rebuilt from here:
/// a nested `cargo build` resolves features differently and would rebuild the library every run.
fn sixpence_binary() -> anyhow::Result<PathBuf> {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_sixpence-local-host"));
    let binary = ours
        .parent()
        .context("the test binary has no directory")?
        .join(format!("sixpence{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "{} is missing: run `cargo test --workspace`, or `cargo build --bin sixpence` first",
            binary.display()
        );
    }
    Ok(binary)
}

/// A temporary app root: host.json with fast queue settings, the repo's specs, the example settings.
fn app_root() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let mut host: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("host.json"))?)?;
    host["extensions"]["queues"] = serde_json::json!({
        "batchSize": 8,
        "newBatchThreshold": 4,
        "maxPollingInterval": "00:00:00.200",
        "visibilityTimeout": "00:00:00",
        "maxDequeueCount": MAX_DEQUEUE_COUNT,
        "messageEncoding": "base64"
    });
    std::fs::write(
        dir.path().join("host.json"),
        serde_json::to_vec_pretty(&host)?,
    )?;
    let specs = repo_root().join("function-specs");
    for entry in std::fs::read_dir(&specs)? {
        let entry = entry?;
        let spec = entry.path().join("function.json");
        if spec.is_file() {
            let target = dir.path().join("function-specs").join(entry.file_name());
            std::fs::create_dir_all(&target)?;
            std::fs::copy(&spec, target.join("function.json"))?;
        }
    }
    std::fs::copy(
        repo_root().join("local.settings.example.json"),
        dir.path().join("local.settings.example.json"),
    )?;
    Ok(dir)
}

struct Running {
    handle: LocalHostHandle,
    storage: Storage,
    http: reqwest::Client,
    _azurite: Azurite,
    /// The app root (the demo test points the CLI at its settings).
    root: tempfile::TempDir,
}

impl Running {
    async fn start(extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let azurite = Azurite::start().await?;
        let root = app_root()?;
        let mut settings = BTreeMap::from([(
            "AzureWebJobsStorage".to_owned(),
            azurite.connection_string().to_owned(),
        )]);
        for (name, value) in extra {
            settings.insert((*name).to_owned(), (*value).to_owned());
        }
        let handle = LocalHost::start(Options {
            app_root: root.path().to_path_buf(),
            binary: Some(sixpence_binary()?),
            port: 0,
            settings,
        })
        .await?;
        let storage = Storage::connect(&azurite.shared_key_connection()?)?;
        Ok(Self {
            handle,
            storage,
            http: reqwest::Client::builder().no_proxy().build()?,
            _azurite: azurite,
            root,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    async fn health(&self) -> anyhow::Result<Value> {
        let response = self.http.get(self.url("/api/health")).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            bail!("GET /api/health answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Polls health until `check` accepts it.
    async fn health_until(
        &self,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let last = self.health().await;
            if let Ok(health) = &last
                && check(health)
            {
                return Ok(health.clone());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{what}: gave up; last health: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn queue(&self, name: &str) -> anyhow::Result<Queue> {
        Ok(self.storage.queues().queue(name)?)
    }

    async fn stop(self) {
        self.handle.shutdown().await;
    }
}

/// Waits for the first event `pick` accepts.
async fn next_event<T>(
    events: &mut broadcast::Receiver<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .with_context(|| format!("no {what} within {PATIENCE:?}"))??;
        if let Some(found) = pick(&event) {
            return Ok(found);
        }
    }
}

fn probe_message(id: Uuid) -> String {
    let sent_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    serde_json::json!({"version": "1", "id": id, "sent_at": sent_at}).to_string()
}

#[tokio::test]
async fn an_http_request_reaches_its_handler() -> anyhow::Result<()> {
    let running = Running::start(&[]).await?;

    let response = running.http.get(running.url("/api/health")).send().await?;
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await?;
    assert_eq!(body["status"], "ok", "{body}");

    // Methods are respected, and unknown paths are 404s. (Paths are forwarded exactly as
    // received, as the host does, so their case is the handler's business.)
    let status = |path: &'static str, post: bool| {
        let request = if post {
            running.http.post(running.url(path))
        } else {
            running.http.get(running.url(path))
        };
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };
    // Routes carry their whole path (empty route prefix): security.txt is served at the root.
    let security = running
        .http
        .get(running.url("/.well-known/security.txt"))
        .send()
        .await?;
    assert_eq!(security.status(), 200);
    assert!(security.text().await?.contains("Contact: mailto:"));
    assert_eq!(status("/api/health", true).await?, 404);
    assert_eq!(status("/api/nothing-here", false).await?, 404);
    // Envelope routes of the handler are not exposed on the public port.
    assert_eq!(status("/heartbeat", true).await?, 404);

    running.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_queue_message_reaches_its_handler_and_is_deleted() -> anyhow::Result<()> {
    let running = Running::start(&[]).await?;
    let queue = running.queue("queue-probe")?;
    let mut events = running.handle.subscribe();

    // Sent as a producer would: base64, the Functions default encoding.
    let probe = Uuid::new_v4();
    queue.create_if_not_exists().await?;
    let sent = queue.send(&probe_message(probe), None).await?;

    let health = running
        .health_until("the probe is recorded", |h| {
            h["lastQueueProbe"]["probeId"] == Value::String(probe.to_string())
        })
        .await?;
    assert_eq!(health["lastQueueProbe"]["attempts"], 1, "{health}");
    let (count, succeeded) = next_event(&mut events, "the probe's delivery", |e| match e {
        Event::QueueAttempt {
            message_id,
            dequeue_count,
            succeeded,
            ..
        } if *message_id == sent.id => Some((*dequeue_count, *succeeded)),
        _ => None,
    })
    .await?;
    assert_eq!((count, succeeded), (1, true));
    assert!(queue.peek(32).await?.is_empty());
    assert_eq!(queue.approximate_count().await?, 0);

    // The admin API enqueues for a queue function, like the host's.
    let second = Uuid::new_v4();
    let response = running
        .http
        .post(running.url("/admin/functions/queue-probe"))
        .json(&serde_json::json!({ "input": probe_message(second) }))
        .send()
        .await?;
    assert_eq!(response.status(), 202);
    running
        .health_until("the admin probe is recorded", |h| {
            h["lastQueueProbe"]["probeId"] == Value::String(second.to_string())
        })
        .await?;

    running.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_failing_message_ends_in_poison_after_max_dequeue_count() -> anyhow::Result<()> {
    let running = Running::start(&[]).await?;
    let queue = running.queue("queue-probe")?;
    let poison = running.queue("queue-probe-poison")?;
    let mut events = running.handle.subscribe();
    queue.create_if_not_exists().await?;

    // `not json` is a valid delivery that the handler refuses every time.
    let sent = queue.send("not json", None).await?;
    let mut attempts = Vec::new();
    let poisoned_at = next_event(&mut events, "poisoning", |e| match e {
        Event::QueueAttempt {
            message_id,
            dequeue_count,
            invoked,
            succeeded,
            ..
        } if *message_id == sent.id => {
            attempts.push((*dequeue_count, *invoked, *succeeded));
            None
        }
        Event::Poisoned {
            message_id,
            dequeue_count,
            ..
        } if *message_id == sent.id => Some(*dequeue_count),
        _ => None,
    })
    .await?;
    assert_eq!(poisoned_at, MAX_DEQUEUE_COUNT);
    assert_eq!(
        attempts,
        (1..=MAX_DEQUEUE_COUNT)
            .map(|n| (n, true, false))
            .collect::<Vec<_>>()
    );
    let in_poison = poison.peek(32).await?;
    assert_eq!(in_poison.len(), 1, "{in_poison:?}");
    assert_eq!(in_poison[0].text.as_deref(), Some("not json"));
    assert_eq!(
        in_poison[0].raw,
        base64::engine::general_purpose::STANDARD.encode("not json")
    );
    assert_eq!(queue.approximate_count().await?, 0);

    // A message that is not base64 cannot be bound: never invoked, poisoned all the same, unchanged.
    let raw = "this is not base64!";
    let sent = queue.send_raw(raw, None).await?;
    let mut attempts = Vec::new();
    next_event(
        &mut events,
        "poisoning of the undecodable message",
        |e| match e {
            Event::QueueAttempt {
                message_id,
                dequeue_count,
                invoked,
                ..
            } if *message_id == sent.id => {
                attempts.push((*dequeue_count, *invoked));
                None
            }
            Event::Poisoned { message_id, .. } if *message_id == sent.id => Some(()),
            _ => None,
        },
    )
    .await?;
    assert_eq!(
        attempts,
        (1..=MAX_DEQUEUE_COUNT)
            .map(|n| (n, false))
            .collect::<Vec<_>>()
    );
    let raws: Vec<String> = poison.peek(32).await?.into_iter().map(|m| m.raw).collect();
    assert!(raws.contains(&raw.to_owned()), "{raws:?}");
    assert_eq!(queue.approximate_count().await?, 0);

    running.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_timer_fires_on_demand() -> anyhow::Result<()> {
    // The repo's schedule (every five minutes) will not fire during the test.
    let running = Running::start(&[]).await?;
    let before = running.health().await?;
    assert!(before["lastHeartbeat"].is_null(), "{before}");

    let response = running
        .http
        .post(running.url("/admin/functions/heartbeat"))
        .send()
        .await?;
    assert_eq!(response.status(), 202);
    running
        .health_until("the heartbeat is recorded", |h| {
            !h["lastHeartbeat"].is_null()
        })
        .await?;

    // The CLI form calls the same endpoint.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sixpence-local-host"))
        .args([
            "fire",
            "heartbeat",
            "--port",
            &running.handle.port().to_string(),
        ])
        .output()
        .await?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let unknown = running
        .http
        .post(running.url("/admin/functions/no-such-function"))
        .send()
        .await?;
    assert_eq!(unknown.status(), 404);

    running.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_timer_fires_on_its_schedule() -> anyhow::Result<()> {
    let running = Running::start(&[("HEARTBEAT_SCHEDULE", "*/1 * * * * *")]).await?;
    let mut events = running.handle.subscribe();
    for n in 0..2 {
        let succeeded = next_event(&mut events, &format!("scheduled firing {n}"), |e| match e {
            Event::TimerFired {
                function,
                succeeded,
            } if function == "heartbeat" => Some(*succeeded),
            _ => None,
        })
        .await?;
        assert!(succeeded, "scheduled firing {n} failed");
    }
    let first = running
        .health_until("a heartbeat", |h| !h["lastHeartbeat"].is_null())
        .await?;
    let first_at = first["lastHeartbeat"]["at"].clone();
    running
        .health_until("a later heartbeat", |h| {
            h["lastHeartbeat"]["at"] != first_at
        })
        .await?;

    running.stop().await;
    Ok(())
}

/// `make dev`'s demo step, as it runs there: the CLI against a running app pointed at the simulator,
/// then again (here through the library) as a second `make dev` over the same storage would.
#[tokio::test]
async fn the_demo_step_connects_the_simulated_tenant_once() -> anyhow::Result<()> {
    let sim = SimTenant::start(SimConfig::default()).await?;
    let sim_url = sim.base_url();
    let tenant = sim.credentials(0);
    let app_settings = [
        ("SIXPENCE_AZURE_ARM_ENDPOINT", sim_url.as_str()),
        ("SIXPENCE_AZURE_AUTHORITY", sim_url.as_str()),
        ("SIXPENCE_DEV_AUTH", sixpence_testkit::DEV_AUTH),
    ];
    let running = Running::start(&app_settings).await?;

    // The CLI reads the settings as the host does (here from the environment) and signs its own token.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sixpence-local-host"))
        .args(["demo", "--port", &running.handle.port().to_string()])
        .arg("--app-root")
        .arg(running.root.path())
        .args(["--simulator", &sim_url, "--wait", "60"])
        .envs(app_settings)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for expected in [
        format!("\"{}\"", demo::DEMO_WORKSPACE),
        "(created)".to_owned(),
        "state subscriptionsChosen".to_owned(),
        format!("dev-token --user {}", demo::DEMO_USER),
        "/connections".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "no `{expected}` in:\n{stdout}");
    }

    let token = sixpence_testkit::dev_token(demo::DEMO_USER);
    let again = demo::connect_demo(&DemoOptions {
        app_url: running.handle.base_url(),
        simulator_url: sim_url.clone(),
        token: token.clone(),
        patience: PATIENCE,
    })
    .await?;
    assert!(!again.workspace_created, "a second demo workspace");
    assert!(!again.connection_created, "a second demo connection");
    assert!(!again.subscriptions_chosen, "the choice was written again");
    assert!(stdout.contains(&again.workspace_id), "{stdout}");
    assert!(stdout.contains(&again.connection.id), "{stdout}");

    // What a newcomer sees through the API.
    let get = |path: String| {
        let request = running
            .http
            .get(running.url(&path))
            .bearer_auth(&token)
            .send();
        async move {
            let response = request.await?;
            let status = response.status();
            let body: Value = response.json().await?;
            anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
            anyhow::Ok(body)
        }
    };
    let workspaces = get("/api/v1/workspaces".to_owned()).await?;
    let workspaces = workspaces["items"].as_array().context("items")?;
    assert_eq!(workspaces.len(), 1, "{workspaces:?}");
    assert_eq!(workspaces[0]["name"], demo::DEMO_WORKSPACE);
    assert_eq!(workspaces[0]["role"], "owner");
    assert_eq!(workspaces[0]["id"], again.workspace_id.as_str());

    let connections = get(format!(
        "/api/v1/workspaces/{}/connections",
        again.workspace_id
    ))
    .await?;
    let connections = connections["items"].as_array().context("items")?;
    assert_eq!(connections.len(), 1, "{connections:?}");
    let connection = &connections[0];
    assert_eq!(connection["id"], again.connection.id.as_str());
    assert_eq!(connection["state"], "subscriptionsChosen", "{connection}");
    assert_eq!(connection["tenantId"], tenant.tenant_id.as_str());
    let mut selected: Vec<&str> = connection["subscriptions"]
        .as_array()
        .context("subscriptions")?
        .iter()
        .filter(|s| s["selected"] == true)
        .filter_map(|s| s["subscriptionId"].as_str())
        .collect();
    selected.sort_unstable();
    let mut expected: Vec<&str> = tenant.subscriptions.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert!(!expected.is_empty());
    assert_eq!(selected, expected, "{connection}");

    running.stop().await;
    sim.shutdown().await;
    Ok(())
}

/// The demo refuses to hand the simulator's credentials to an app that calls somewhere else.
#[tokio::test]
async fn the_demo_step_refuses_an_app_not_pointed_at_the_simulator() -> anyhow::Result<()> {
    let root = app_root()?;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sixpence-local-host"))
        .args([
            "demo",
            "--port",
            "1",
            "--simulator",
            "http://127.0.0.1:8089",
        ])
        .arg("--app-root")
        .arg(root.path())
        .env(
            "SIXPENCE_AZURE_ARM_ENDPOINT",
            "https://management.azure.com",
        )
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("[demo] FAILED")
            && stderr.contains("SIXPENCE_AZURE_ARM_ENDPOINT is https://management.azure.com"),
        "{stderr}"
    );
    Ok(())
}
