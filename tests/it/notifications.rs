//! Notifications end to end, as they fail in real life: events raised through the real producer
//! port, fanned out by `notify-fanout`, delivered by `notify` (both invoked with the host's
//! envelopes, as the local host does), to loopback receivers standing in for Slack and Teams that
//! are down, slow, throttling (429 + Retry-After) or failing (500) before they recover, and to
//! in-app inboxes read through the API.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sixpence::domain::costs::Micros;
use sixpence::domain::events::{
    AnomalyCause, AnomalyEvent, AnomalyStatus, Event, EventKind, EventSink, RoleEvent, Severity,
    SyncEvent,
};
use sixpence::domain::tenancy::WorkspaceId;
use sixpence::storage::events::QueueEventSink;
use sixpence::storage::{Storage, StorageConnection};
use sixpence_testkit::Azurite;
use uuid::Uuid;

use crate::connections::queue_envelope;
use crate::support::{TestApp, settings, spawn_app_with, token};

/// What a receiver answers, in order; after the script it answers 200.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16, Option<&'static str>),
    Slow(Duration),
}

#[derive(Default)]
struct ReceiverState {
    script: VecDeque<Answer>,
    /// Every request body, whatever the answer.
    requests: Vec<Value>,
    /// Bodies answered with 2xx: what the channel's people saw.
    accepted: Vec<Value>,
}

/// A loopback webhook receiver (Slack or Teams stand-in).
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = {
        let mut s = state.lock().unwrap();
        s.requests.push(body.clone());
        s.script.pop_front()
    };
    match answer {
        Some(Answer::Status(status, retry_after)) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), "no").into_response();
            if let Some(ra) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", ra.parse().unwrap());
            }
            response
        }
        Some(Answer::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            state.lock().unwrap().accepted.push(body);
            (StatusCode::OK, "ok").into_response()
        }
        None => {
            state.lock().unwrap().accepted.push(body);
            (StatusCode::OK, "ok").into_response()
        }
    }
}

impl Receiver {
    /// A receiver for `addr` that is not listening yet ("down").
    pub fn reserve(script: Vec<Answer>) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        Self {
            addr,
            state: Arc::new(Mutex::new(ReceiverState {
                script: script.into(),
                ..Default::default()
            })),
        }
    }

    pub async fn start(script: Vec<Answer>) -> Self {
        let r = Self::reserve(script);
        r.listen().await;
        r
    }

    /// Starts answering on the reserved address ("back up").
    pub async fn listen(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(self.state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn accepted(&self) -> Vec<Value> {
        self.state.lock().unwrap().accepted.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }
}

/// The anomaly gathering window of the test apps (production: two minutes).
const GATHER: Duration = Duration::from_secs(6);

pub struct World {
    pub app: TestApp,
    pub storage: Storage,
    pub owner: String,
    pub workspace: String,
}

pub async fn world() -> World {
    world_with(|_| {}).await
}

/// A world whose app settings `tweak` adjusts (email transport, timeouts).
pub async fn world_with(tweak: impl FnOnce(&mut sixpence::config::Settings)) -> World {
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    let storage = Storage::connect(
        &StorageConnection::parse_connection_string(azurite.connection_string())
            .expect("connection string")
            .with_max_retries(2),
    )
    .expect("storage");
    let mut settings = settings(azurite.connection_string());
    settings.webhooks.allow_loopback = true;
    settings.app_url = Some("https://app.sixpence.test".into());
    settings.notify_retry_base = Duration::from_millis(100);
    settings.notify_gather = GATHER;
    tweak(&mut settings);
    let app = spawn_app_with(azurite.clone(), settings).await;
    let owner = token("owner@contoso.example");
    let workspace = app.create_workspace(&owner, "Contoso").await;
    World {
        app,
        storage,
        owner,
        workspace,
    }
}

impl World {
    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/workspaces/{}{rest}", self.workspace)
    }

    pub fn workspace_id(&self) -> WorkspaceId {
        WorkspaceId::parse(&self.workspace).expect("workspace id")
    }

    pub async fn channel(&self, body: Value) -> Value {
        let answer = self
            .app
            .call("POST", &self.path("/channels"))
            .auth(Some(&self.owner))
            .json(&body)
            .send()
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.body
    }

    pub async fn raise(&self, event: &Event) {
        QueueEventSink::new(self.storage.clone())
            .raise(event)
            .await
            .expect("event raised");
    }

    /// Runs the queue functions as the host would (receive, invoke, delete on 200) until `done`
    /// holds or `limit` passes; returns whether `done` held.
    pub async fn pump(&self, limit: Duration, done: impl Fn() -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            let mut worked = false;
            for (queue, function) in [("events", "notify-fanout"), ("notifications", "notify")] {
                let queue = self.storage.queues().queue(queue).expect("queue");
                let messages = queue
                    .receive(16, Duration::from_secs(60))
                    .await
                    .unwrap_or_default();
                for message in messages {
                    worked = true;
                    let text = message.text.clone().expect("text");
                    let response = self.app.invoke(function, queue_envelope(&text)).await;
                    let status = response.status();
                    assert_eq!(
                        status,
                        200,
                        "{function}: {}",
                        response.text().await.unwrap_or_default()
                    );
                    queue
                        .delete_message(&message.id, &message.pop_receipt)
                        .await
                        .expect("delete");
                }
            }
            if done() && !worked {
                return true;
            }
            if !worked {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
        done()
    }

    pub async fn deliveries(&self) -> Vec<Value> {
        let answer = self
            .app
            .get_as(&self.owner, &self.path("/deliveries"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["items"].as_array().unwrap().clone()
    }
}

pub fn role_event(workspace: WorkspaceId) -> Event {
    let connection = Uuid::new_v4();
    Event::new(
        workspace,
        time::OffsetDateTime::now_utc(),
        Severity::Critical,
        format!("role:{connection}:revoked"),
        EventKind::Role(RoleEvent::CredentialsRevoked {
            connection,
            connection_name: "Contoso production".into(),
            reason: "secretExpired".into(),
            message: "The client secret expired.".into(),
        }),
    )
}

pub fn sync_event(workspace: WorkspaceId) -> Event {
    let sync = SyncEvent {
        connection: Uuid::new_v4(),
        subscription: Uuid::new_v4().to_string(),
        run: Uuid::new_v4(),
        reason: "accessRevoked".into(),
        message: "Sixpence can no longer read this subscription.".into(),
    };
    Event::new(
        workspace,
        time::OffsetDateTime::now_utc(),
        Severity::Warning,
        sync.dedupe_key(),
        EventKind::Sync(sync),
    )
}

fn slack_titles(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| {
            assert_eq!(b["blocks"][0]["type"], "header", "Slack Block Kit: {b}");
            b["blocks"][0]["text"]["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn teams_titles(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "message", "Teams envelope: {b}");
            let card = &b["attachments"][0];
            assert_eq!(
                card["contentType"],
                "application/vnd.microsoft.card.adaptive"
            );
            assert_eq!(card["content"]["type"], "AdaptiveCard");
            card["content"]["body"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_notification_arrives_once_through_down_slow_throttled_and_failing_receivers() {
    let w = world().await;
    // Slack: down at first, then 429 with Retry-After, then a 500, then slow, then healthy.
    let slack = Receiver::reserve(vec![
        Answer::Status(429, Some("1")),
        Answer::Status(500, None),
        Answer::Slow(Duration::from_secs(2)),
    ]);
    // Teams: a 500 and a 429 before it takes messages.
    let teams = Receiver::start(vec![
        Answer::Status(500, None),
        Answer::Status(429, Some("1")),
    ])
    .await;
    let slack_channel = w
        .channel(json!({
            "name": "FinOps Slack", "kind": "slack",
            "webhookUrl": slack.url("/services/T000/B000/abcdefghSECRET"),
            "events": ["role", "sync"], "minSeverity": "warning",
        }))
        .await;
    assert_eq!(
        slack_channel["webhookUrl"],
        format!("http://127.0.0.1/…CRET"),
        "shown back masked"
    );
    assert!(!slack_channel.to_string().contains("abcdefgh"));
    w.channel(json!({
        "name": "Ops Teams", "kind": "teams",
        "webhookUrl": teams.url("/workflows/abc/triggers/manual/paths/invoke"),
        "events": ["role", "sync"], "minSeverity": "info",
    }))
    .await;
    w.channel(json!({"name": "In the app", "kind": "inApp", "events": ["role", "sync"], "minSeverity": "info"}))
        .await;

    let ws = w.workspace_id();
    let role = role_event(ws);
    let sync = sync_event(ws);
    w.raise(&role).await;
    w.raise(&sync).await;
    // The producer raising the same event twice (a redelivered message) changes nothing.
    w.raise(&role).await;

    // Slack is down: the first attempts fail to connect and are retried.
    let tried = w
        .pump(Duration::from_secs(20), || teams.accepted().len() >= 2)
        .await;
    assert!(tried, "Teams got both after its faults");
    let log = w.deliveries().await;
    assert!(
        log.iter().any(|d| d["channelKind"] == "slack"
            && d["status"] == "retrying"
            && d["lastError"] == "could not connect to the receiver"),
        "{log:#?}"
    );
    slack.listen().await;
    let arrived = w
        .pump(Duration::from_secs(60), || slack.accepted().len() >= 2)
        .await;
    assert!(
        arrived,
        "Slack got both after recovering: {}",
        slack.requests()
    );
    // Let anything still queued run out, then count.
    w.pump(Duration::from_secs(3), || false).await;

    let mut slack_titles = slack_titles(&slack.accepted());
    slack_titles.sort();
    assert_eq!(
        slack_titles,
        vec![
            format!("Azure stopped accepting connection Contoso production"),
            format!(
                "Cost sync failed for subscription {}",
                match &sync.kind {
                    EventKind::Sync(s) => s.subscription.clone(),
                    _ => unreachable!(),
                }
            ),
        ]
    );
    assert_eq!(
        teams_titles(&teams.accepted()).len(),
        2,
        "exactly once on Teams"
    );
    assert_eq!(
        slack.requests(),
        4,
        "the 429 and the 500 were really hit, then each message once"
    );

    // The delivery log shows every delivery sent, with its attempts.
    let log = w.deliveries().await;
    let sent: Vec<_> = log.iter().filter(|d| d["status"] == "sent").collect();
    assert_eq!(sent.len(), 6, "{log:#?}");
    assert!(
        log.iter()
            .any(|d| d["channelKind"] == "slack" && d["attempts"].as_u64().unwrap() >= 3)
    );
    assert!(!serde_json::to_string(&log).unwrap().contains("SECRET"));

    // In the app: both, once each, unread until read.
    let inbox = w.app.get_as(&w.owner, &w.path("/notifications")).await;
    assert_eq!(inbox.status, 200, "{}", inbox.text);
    assert_eq!(inbox.body["unread"], 2, "{}", inbox.body);
    let first = inbox.body["items"][0]["id"].as_str().unwrap().to_owned();
    let read = w
        .app
        .call("POST", &w.path(&format!("/notifications/{first}/read")))
        .auth(Some(&w.owner))
        .send()
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["unread"], 1);

    // Raised again inside the cool-down: told nowhere, logged as suppressed.
    let mut again = role_event(ws);
    again.dedupe_key = role.dedupe_key.clone();
    w.raise(&again).await;
    w.pump(Duration::from_secs(3), || false).await;
    assert_eq!(slack.accepted().len(), 2);
    assert_eq!(teams.accepted().len(), 2);
    let log = w.deliveries().await;
    assert_eq!(
        log.iter().filter(|d| d["status"] == "suppressed").count(),
        3,
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gone_webhook_disables_its_channel_and_tells_the_admins() {
    let w = world().await;
    let gone = Receiver::start(vec![Answer::Status(410, None)]).await;
    let channel = w
        .channel(json!({
            "name": "Old Slack", "kind": "slack",
            "webhookUrl": gone.url("/services/T1/B1/gone"),
            "events": ["sync"], "minSeverity": "info",
        }))
        .await;
    w.raise(&sync_event(w.workspace_id())).await;
    w.pump(Duration::from_secs(10), || gone.requests() >= 1)
        .await;
    w.pump(Duration::from_secs(2), || false).await;
    assert_eq!(gone.requests(), 1, "a permanent failure is not retried");

    let id = channel["id"].as_str().unwrap();
    let now = w
        .app
        .get_as(&w.owner, &w.path(&format!("/channels/{id}")))
        .await;
    assert_eq!(now.body["enabled"], false, "{}", now.body);
    assert!(now.body["disabledReason"].as_str().unwrap().contains("410"));
    let inbox = w.app.get_as(&w.owner, &w.path("/notifications")).await;
    assert!(
        inbox.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["title"] == "Notification channel Old Slack was disabled"),
        "{}",
        inbox.body
    );
    // Later events are not sent to a disabled channel.
    w.raise(&sync_event(w.workspace_id())).await;
    w.pump(Duration::from_secs(3), || false).await;
    assert_eq!(gone.requests(), 1);
    let log = w.deliveries().await;
    assert!(log.iter().any(|d| d["status"] == "failed"), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_retry_budget_a_delivery_is_poisoned_with_its_reason() {
    let w = world().await;
    let broken = Receiver::start(vec![Answer::Status(503, None); 12]).await;
    w.channel(json!({
        "name": "Flaky", "kind": "teams",
        "webhookUrl": broken.url("/flaky"),
        "events": ["role"], "minSeverity": "info",
    }))
    .await;
    w.raise(&role_event(w.workspace_id())).await;
    let poison = w
        .storage
        .queues()
        .queue("notifications-poison")
        .expect("queue");
    let found = w
        .pump(Duration::from_secs(90), || broken.requests() >= 8)
        .await;
    assert!(found, "{} attempts", broken.requests());
    w.pump(Duration::from_secs(2), || false).await;
    assert_eq!(broken.requests(), 8, "the retry budget");
    let peeked = poison.peek(8).await.expect("peek");
    assert_eq!(peeked.len(), 1);
    let text: Value = serde_json::from_str(&peeked[0].text.clone().unwrap()).unwrap();
    assert!(
        text["reason"]
            .as_str()
            .unwrap()
            .contains("the receiver answered 503"),
        "{text}"
    );
    let log = w.deliveries().await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 8);
    assert_eq!(log[0]["lastError"], "the receiver answered 503");
}

#[tokio::test]
async fn webhook_urls_outside_the_services_are_refused() {
    let w = world().await;
    for url in [
        "http://hooks.slack.com/services/x",
        "https://hooks.slack.com.evil.example/x",
        "https://169.254.169.254/latest/meta-data",
        "https://user:pw@hooks.slack.com/x",
        "http://10.0.0.5/x",
    ] {
        let answer = w
            .app
            .call("POST", &w.path("/channels"))
            .auth(Some(&w.owner))
            .json(&json!({"name": "x", "kind": "slack", "webhookUrl": url}))
            .send()
            .await;
        answer.assert_problem(400, None);
        assert!(!answer.text.contains(url), "the URL is not echoed");
    }
}

pub fn anomaly_event(workspace: WorkspaceId, scope: &str) -> Event {
    let a = AnomalyEvent {
        anomaly: Uuid::new_v4(),
        status: AnomalyStatus::New,
        scope: scope.to_owned(),
        first_day: time::macros::date!(2026 - 11 - 21),
        last_day: time::macros::date!(2026 - 11 - 21),
        anomaly_kind: "spike".into(),
        actual: Micros(2_345_670_000),
        expected: Micros(1_000_000_000),
        impact: Micros(1_345_670_000),
        impact_percent: Some(134.6),
        currency: "GBP".into(),
        causes: vec![AnomalyCause {
            dimension: "resource".into(),
            label: "vm-batch-07".into(),
            share: 0.72,
            impact: Micros(968_882_400),
        }],
    };
    Event::new(
        workspace,
        time::OffsetDateTime::now_utc(),
        Severity::Warning,
        format!("anomaly:{}:new:1", a.anomaly),
        EventKind::Anomaly(a),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_anomalies_from_one_sync_become_one_digest_per_channel() {
    let w = world().await;
    let slack = Receiver::start(vec![]).await;
    let teams = Receiver::start(vec![]).await;
    for (kind, receiver) in [("slack", &slack), ("teams", &teams)] {
        w.channel(json!({
            "name": kind, "kind": kind, "webhookUrl": receiver.url("/hook"),
            "events": ["anomaly"], "minSeverity": "info",
        }))
        .await;
    }
    let ws = w.workspace_id();
    // Start right after a window opens (windows are aligned to the epoch), so the burst's fan-out
    // finishes well inside one window and the digest count is deterministic.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = Duration::from_millis((now.as_millis() % GATHER.as_millis()) as u64);
    tokio::time::sleep(GATHER - into + Duration::from_millis(100)).await;
    for i in 0..7 {
        w.raise(&anomaly_event(ws, &format!("Resource group rg-{i}")))
            .await;
    }
    let arrived = w
        .pump(Duration::from_secs(30), || {
            !slack.accepted().is_empty() && !teams.accepted().is_empty()
        })
        .await;
    assert!(arrived, "the digests went out");
    w.pump(Duration::from_secs(6), || false).await;
    assert_eq!(slack.accepted().len(), 1, "one Slack message for the burst");
    assert_eq!(teams.accepted().len(), 1, "one Teams message for the burst");
    // All seven are in it.
    assert_eq!(
        slack_titles(&slack.accepted()),
        vec!["7 Sixpence notifications".to_owned()]
    );
    let text = slack.accepted()[0].to_string();
    for i in 0..7 {
        assert!(text.contains(&format!("rg-{i}")), "{text}");
    }
    assert_eq!(
        teams_titles(&teams.accepted()),
        vec!["7 Sixpence notifications".to_owned()]
    );
}
