//! Email notifications end to end, as they fail in real life: through a loopback Microsoft Graph
//! `sendMail` stand-in (shaped after the documented MIME request: `POST
//! /v1.0/users/{sender}/sendMail`, `Content-Type: text/plain`, a base64 RFC 5322 message, answered
//! `202 Accepted`; errors as `{"error":{"code","message"}}`) and through a real SMTP server
//! (Python's aiosmtpd, see support/smtp_sink.py) that is down, slow, throttling or failing before
//! it recovers. Also: daily-digest channels and receivers slower than the send timeout.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use sixpence::config::EmailTransport;
use tokio::io::AsyncBufReadExt as _;

use crate::notifications::{
    Answer, Receiver, World, anomaly_event, role_event, sync_event, world_with,
};

const SENDER: &str = "alerts@sixpence.test";
const GRAPH_TOKEN: &str = "graph-test-token";

/// Hands out a fixed token, as the app's managed identity would.
#[derive(Debug)]
struct TestGraphToken;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for TestGraphToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        assert_eq!(scopes, ["https://graph.microsoft.com/.default"]);
        Ok(azure_core::credentials::AccessToken::new(
            GRAPH_TOKEN,
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

/// What the Graph stand-in answers, in order; after the script, `202 Accepted`.
#[derive(Debug, Clone)]
enum GraphAnswer {
    Status(u16, Option<&'static str>),
    Error(u16, &'static str),
    Slow(Duration),
}

#[derive(Default)]
struct GraphState {
    script: VecDeque<GraphAnswer>,
    requests: usize,
    /// The MIME messages answered 202 (what the recipients got).
    accepted: Vec<String>,
}

#[derive(Clone)]
struct GraphStandIn {
    addr: SocketAddr,
    state: Arc<Mutex<GraphState>>,
}

async fn send_mail(
    State(state): State<Arc<Mutex<GraphState>>>,
    axum::extract::Path(user): axum::extract::Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let error = |status: StatusCode, code: &str, message: &str| {
        (
            status,
            axum::Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {GRAPH_TOKEN}"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        );
    }
    if user != SENDER {
        return error(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            "The requested user is invalid.",
        );
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("text/plain") {
        return error(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalid",
            "MIME content must be sent as text/plain.",
        );
    }
    let Ok(mime) = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        );
    };
    let answer = {
        let mut s = state.lock().unwrap();
        s.requests += 1;
        s.script.pop_front()
    };
    match answer {
        Some(GraphAnswer::Status(status, retry_after)) => {
            let mut response = error(
                StatusCode::from_u16(status).unwrap(),
                "ServiceUnavailable",
                "Try later.",
            );
            if let Some(ra) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", ra.parse().unwrap());
            }
            return response;
        }
        Some(GraphAnswer::Error(status, code)) => {
            return error(StatusCode::from_u16(status).unwrap(), code, "Refused.");
        }
        Some(GraphAnswer::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    // Recipients refused by Exchange (a malformed or rejected address) are told at once.
    if mime.contains("nobody@") {
        return error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid.",
        );
    }
    state.lock().unwrap().accepted.push(mime);
    StatusCode::ACCEPTED.into_response()
}

impl GraphStandIn {
    fn reserve(script: Vec<GraphAnswer>) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        Self {
            addr,
            state: Arc::new(Mutex::new(GraphState {
                script: script.into(),
                ..Default::default()
            })),
        }
    }

    async fn listen(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let app = axum::Router::new()
            .route(
                "/v1.0/users/{user}/sendMail",
                axum::routing::post(send_mail),
            )
            .with_state(self.state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).unwrap()
    }

    fn accepted(&self) -> Vec<String> {
        self.state.lock().unwrap().accepted.clone()
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

/// The repository's `.venv` Python with aiosmtpd, or a failure saying how to get it.
fn python_with_aiosmtpd() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let has = std::process::Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "the email tests need aiosmtpd in {}: run `python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt` \
         (make test / scripts/test.sh do it)",
        python.display()
    );
    python
}

/// A real SMTP server (aiosmtpd) on a loopback port.
struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    script: String,
    child: Option<tokio::process::Child>,
}

impl SmtpSink {
    /// Reserves a port; the server is "down" until [`SmtpSink::listen`].
    fn reserve(script: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            script: script.join(","),
            child: None,
        }
    }

    async fn start(script: &[&str]) -> Self {
        let mut sink = Self::reserve(script);
        sink.listen().await;
        sink
    }

    async fn listen(&mut self) {
        let python = python_with_aiosmtpd();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/smtp_sink.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .arg(&self.script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the SMTP sink starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP sink is ready in time")
            .expect("the SMTP sink's output");
        assert_eq!(ready.as_deref(), Some("READY"));
        self.child = Some(child);
    }

    fn url(&self) -> secrecy::SecretString {
        secrecy::SecretString::from(format!("smtp://127.0.0.1:{}?tls=none", self.port))
    }

    /// The accepted messages, in order.
    fn accepted(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in 1.. {
            let path = self.dir.path().join(format!("{n}.eml"));
            match std::fs::read(&path) {
                Ok(bytes) => out.push(String::from_utf8_lossy(&bytes).into_owned()),
                Err(_) => break,
            }
        }
        out
    }

    fn attempts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("attempts"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

fn graph_world(stand_in: &GraphStandIn) -> impl FnOnce(&mut sixpence::config::Settings) {
    let url = stand_in.url();
    move |settings| {
        settings.mail_sender = Some(SENDER.into());
        settings.email.transport = EmailTransport::Graph;
        settings.email.graph_url = url;
        settings.email.graph_credential = Some(Arc::new(TestGraphToken));
    }
}

fn smtp_world(sink: &SmtpSink) -> impl FnOnce(&mut sixpence::config::Settings) {
    let url = sink.url();
    move |settings| {
        settings.mail_sender = Some(SENDER.into());
        settings.email.transport = EmailTransport::Smtp;
        settings.smtp_url = Some(url);
    }
}

async fn email_channel(w: &World, recipients: &[&str], extra: Value) -> Value {
    let mut body = json!({
        "name": "FinOps email", "kind": "email", "recipients": recipients,
        "events": ["role", "sync", "anomaly", "budget"], "minSeverity": "info",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    w.channel(body).await
}

/// Decodes a MIME message's parts enough to check them: (subject, text part, HTML part).
fn parts(mime: &str) -> (String, String, String) {
    let message = mime.replace("\r\n", "\n");
    let subject = message
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_owned();
    let part = |content_type: &str| -> String {
        let start = message
            .find(&format!("Content-Type: {content_type}"))
            .unwrap_or_else(|| panic!("a {content_type} part: {message}"));
        let rest = &message[start..];
        let headers_end = rest.find("\n\n").unwrap();
        let headers = &rest[..headers_end];
        let body = &rest[headers_end + 2..];
        let body = &body[..body.find("\n--").unwrap_or(body.len())];
        if headers.contains("Content-Transfer-Encoding: base64") {
            let joined: String = body.lines().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(joined.trim())
                    .unwrap(),
            )
            .unwrap()
        } else if headers.contains("quoted-printable") {
            decode_qp(body)
        } else {
            body.to_owned()
        }
    };
    (subject, part("text/plain"), part("text/html"))
}

fn decode_qp(body: &str) -> String {
    let mut out = Vec::new();
    let bytes = body.replace("=\n", "");
    let b = bytes.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&bytes[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn assert_reads_well(mime: &str, sender: &str) {
    assert!(mime.contains("multipart/alternative"), "{mime}");
    assert!(mime.contains(&format!("From: {sender}")), "{mime}");
    assert!(mime.contains("Message-ID: <"), "{mime}");
    let (subject, text, html) = parts(mime);
    assert!(!subject.is_empty(), "{mime}");
    assert!(!text.contains('<'), "the text part is plain: {text}");
    // Made for a phone: a viewport, no fixed widths beyond a phone's, the facts as text.
    assert!(html.contains("<html"), "{html}");
    assert!(html.contains("viewport"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graph_email_arrives_once_through_down_throttled_failing_and_slow_graph() {
    let graph = GraphStandIn::reserve(vec![
        GraphAnswer::Status(429, Some("1")),
        GraphAnswer::Status(503, None),
        GraphAnswer::Error(500, "ErrorInternalServerError"),
        GraphAnswer::Slow(Duration::from_millis(300)),
    ]);
    let w = world_with(graph_world(&graph)).await;
    email_channel(
        &w,
        &["finops@contoso.example", "cfo@contoso.example"],
        json!({}),
    )
    .await;
    let ws = w.workspace_id();
    let role = role_event(ws);
    w.raise(&role).await;
    w.raise(&sync_event(ws)).await;
    w.raise(&role).await;

    // Graph is down: the first attempts cannot connect (briefly: the retry budget is 8 attempts).
    w.pump(Duration::from_millis(2500), || false).await;
    let log = w.deliveries().await;
    assert!(
        log.iter().any(|d| d["channelKind"] == "email"
            && d["status"] == "retrying"
            && d["lastError"] == "could not connect to Microsoft Graph"),
        "{log:#?}"
    );
    graph.listen().await;
    let arrived = w
        .pump(Duration::from_secs(60), || graph.accepted().len() >= 2)
        .await;
    assert!(arrived, "both arrived: {} requests", graph.requests());
    w.pump(Duration::from_secs(3), || false).await;
    let accepted = graph.accepted();
    assert_eq!(accepted.len(), 2, "exactly once each");
    assert_eq!(
        graph.requests(),
        5,
        "the 429, 503 and 500 were hit, then one each (the slow one accepted)"
    );
    let mut subjects: Vec<String> = accepted.iter().map(|m| parts(m).0).collect();
    subjects.sort();
    assert!(
        subjects[0].contains("Azure stopped accepting connection Contoso production"),
        "{subjects:?}"
    );
    for mime in &accepted {
        assert_reads_well(mime, SENDER);
        assert!(mime.contains("finops@contoso.example") && mime.contains("cfo@contoso.example"));
    }
    let role_mail = accepted
        .iter()
        .find(|m| parts(m).0.contains("Azure stopped accepting"))
        .unwrap();
    let (_, text, html) = parts(role_mail);
    assert!(text.contains("The client secret expired."), "{text}");
    assert!(html.contains("The client secret expired."), "{html}");
    let log = w.deliveries().await;
    assert_eq!(
        log.iter().filter(|d| d["status"] == "sent").count(),
        2,
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graph_refusing_the_recipients_disables_the_email_channel() {
    let graph = GraphStandIn::reserve(vec![]);
    graph.listen().await;
    let w = world_with(graph_world(&graph)).await;
    let channel = email_channel(&w, &["nobody@contoso.example"], json!({"name": "Old list"})).await;
    w.raise(&sync_event(w.workspace_id())).await;
    w.pump(Duration::from_secs(10), || graph.requests() >= 1)
        .await;
    w.pump(Duration::from_secs(2), || false).await;
    assert_eq!(graph.requests(), 1, "a permanent failure is not retried");
    let id = channel["id"].as_str().unwrap();
    let now = w
        .app
        .get_as(&w.owner, &w.path(&format!("/channels/{id}")))
        .await;
    assert_eq!(now.body["enabled"], false, "{}", now.body);
    assert!(
        now.body["disabledReason"]
            .as_str()
            .unwrap()
            .contains("ErrorInvalidRecipients"),
        "{}",
        now.body
    );
    let inbox = w.app.get_as(&w.owner, &w.path("/notifications")).await;
    assert!(
        inbox.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["title"] == "Notification channel Old list was disabled"),
        "{}",
        inbox.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_email_arrives_once_through_a_down_failing_and_slow_mail_server() {
    // A real SMTP server: down at first, then 451 twice (try later), then slow, then healthy.
    let mut sink = SmtpSink::reserve(&["451", "421", "slow:0.5"]);
    let w = world_with(smtp_world(&sink)).await;
    email_channel(&w, &["finops@contoso.example"], json!({})).await;
    let ws = w.workspace_id();
    let role = role_event(ws);
    w.raise(&role).await;
    w.raise(&sync_event(ws)).await;
    w.raise(&role).await;

    w.pump(Duration::from_millis(2500), || false).await;
    let log = w.deliveries().await;
    assert!(
        log.iter().any(|d| d["channelKind"] == "email"
            && d["status"] == "retrying"
            && d["lastError"] == "could not talk to the mail server"),
        "{log:#?}"
    );
    sink.listen().await;
    let arrived = w
        .pump(Duration::from_secs(60), || sink.accepted().len() >= 2)
        .await;
    assert!(arrived, "both arrived after {} attempts", sink.attempts());
    w.pump(Duration::from_secs(3), || false).await;
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 2, "exactly once each");
    assert_eq!(
        sink.attempts(),
        4,
        "the 451 and the 421 were hit, then one each"
    );
    for mime in &accepted {
        assert_reads_well(mime, SENDER);
    }
    // Message-IDs are distinct per notification and stable per delivery.
    let ids: std::collections::HashSet<_> = accepted
        .iter()
        .map(|m| {
            m.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_smtp_server_refusing_the_mailbox_disables_the_email_channel() {
    let sink = SmtpSink::start(&[]).await;
    let w = world_with(smtp_world(&sink)).await;
    let channel = email_channel(&w, &["nobody@contoso.example"], json!({"name": "Gone"})).await;
    w.raise(&sync_event(w.workspace_id())).await;
    let id = channel["id"].as_str().unwrap().to_owned();
    let disabled = || async {
        let now = w
            .app
            .get_as(&w.owner, &w.path(&format!("/channels/{id}")))
            .await;
        now.body["enabled"] == false
    };
    w.pump(Duration::from_secs(6), || false).await;
    assert!(disabled().await, "the channel is disabled");
    let now = w
        .app
        .get_as(&w.owner, &w.path(&format!("/channels/{id}")))
        .await;
    assert!(
        now.body["disabledReason"].as_str().unwrap().contains("550"),
        "{}",
        now.body
    );
    assert!(sink.accepted().is_empty());
    let log = w.deliveries().await;
    assert_eq!(log[0]["status"], "failed", "{log:#?}");
    assert_eq!(log[0]["attempts"], 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_slower_than_the_timeout_gets_one_copy() {
    // The receiver answers after 1.5 s; the send timeout is 1 s: the attempt counts as transient,
    // the request runs on (to 2 s), the late 200 marks it sent, and the retry finds it done.
    let slow = Receiver::start(vec![Answer::Slow(Duration::from_millis(1500))]).await;
    let w = world_with(|s| s.notify_send_timeout = Duration::from_secs(1)).await;
    w.channel(json!({
        "name": "Slow Slack", "kind": "slack",
        "webhookUrl": slow.url("/services/T0/B0/slow"),
        "events": ["sync"], "minSeverity": "info",
    }))
    .await;
    w.raise(&sync_event(w.workspace_id())).await;
    w.pump(Duration::from_secs(10), || slow.accepted().len() == 1)
        .await;
    // Past the retry's due time (late cap + 1 s after the timeout) and then some.
    w.pump(Duration::from_secs(5), || false).await;
    assert_eq!(slow.accepted().len(), 1, "one copy");
    assert_eq!(slow.requests(), 1, "no second request");
    let log = w.deliveries().await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["status"], "sent", "{log:#?}");
    assert_eq!(log[0]["attempts"], 1, "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daily_digest_channel_gets_one_message_for_the_day() {
    let daily = Receiver::start(vec![]).await;
    let instant = Receiver::start(vec![]).await;
    let w = world_with(|_| {}).await;
    let channel = w
        .channel(json!({
            "name": "Daily", "kind": "slack", "cadence": "dailyDigest",
            "webhookUrl": daily.url("/services/T0/B0/daily"),
            "events": ["role", "sync", "anomaly"], "minSeverity": "info",
        }))
        .await;
    assert_eq!(channel["cadence"], "dailyDigest", "{channel}");
    w.channel(json!({
        "name": "Instant", "kind": "slack",
        "webhookUrl": instant.url("/services/T0/B0/now"),
        "events": ["role", "sync"], "minSeverity": "info",
    }))
    .await;
    let ws = w.workspace_id();
    w.raise(&role_event(ws)).await;
    w.raise(&sync_event(ws)).await;
    w.raise(&anomaly_event(ws, "Resource group rg-daily")).await;
    w.pump(Duration::from_secs(10), || instant.accepted().len() >= 2)
        .await;
    w.pump(Duration::from_secs(2), || false).await;
    assert_eq!(
        instant.accepted().len(),
        2,
        "the instant channel is told at once"
    );
    assert!(
        daily.accepted().is_empty(),
        "the daily channel waits for the morning"
    );

    // The morning: the queue hands `notify` the digest message it was given a day's delay for
    // (Azure's queue does the waiting; here the test delivers it). Today's window, or tomorrow's
    // when the events fell into it just before midnight: the other one is empty and sends nothing.
    let id = channel["id"].as_str().unwrap();
    let today = time::OffsetDateTime::now_utc().unix_timestamp() / 86_400 * 86_400;
    for window in [today, today + 86_400] {
        let message = json!({
            "version": 1, "workspace": w.workspace, "channel": id,
            "delivery": {"source": "digest", "window": window},
        })
        .to_string();
        for _ in 0..2 {
            // Delivered twice: a redelivered message changes nothing.
            let response = w
                .app
                .invoke("notify", crate::connections::queue_envelope(&message))
                .await;
            assert_eq!(response.status(), 200);
        }
    }
    w.pump(Duration::from_secs(2), || false).await;
    let got = daily.accepted();
    assert_eq!(got.len(), 1, "one digest for the day");
    let text = got[0].to_string();
    assert!(text.contains("3 Sixpence notifications"), "{text}");
    assert!(text.contains("rg-daily"), "{text}");
    assert!(
        text.contains("Azure stopped accepting connection"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_inbox_and_the_delivery_log_page_with_cursors() {
    let w = world_with(|_| {}).await;
    w.channel(
        json!({"name": "In the app", "kind": "inApp", "events": ["sync"], "minSeverity": "info"}),
    )
    .await;
    let ws = w.workspace_id();
    for _ in 0..5 {
        w.raise(&sync_event(ws)).await;
    }
    let inbox_total = || async {
        let a = w.app.get_as(&w.owner, &w.path("/notifications")).await;
        a.body["items"].as_array().unwrap().len()
    };
    for _ in 0..40 {
        w.pump(Duration::from_millis(500), || false).await;
        if inbox_total().await == 5 {
            break;
        }
    }
    for (listing, key) in [("/notifications", "id"), ("/deliveries", "key")] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                None => w.path(&format!("{listing}?limit=2")),
                Some(c) => w.path(&format!("{listing}?limit=2&cursor={c}")),
            };
            let page = w.app.get_as(&w.owner, &path).await;
            assert_eq!(page.status, 200, "{}", page.text);
            pages += 1;
            for item in page.body["items"].as_array().unwrap() {
                seen.push(item[key].as_str().unwrap().to_owned());
            }
            match page.body["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, 3, "{listing}: 2 + 2 + 1");
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (5, 5), "{listing}: {seen:?}");
    }
    // A cursor of one listing is refused on another.
    let page = w.app.get_as(&w.owner, &w.path("/deliveries?limit=2")).await;
    let cursor = page.body["nextCursor"].as_str().unwrap();
    let answer = w
        .app
        .get_as(
            &w.owner,
            &w.path(&format!("/notifications?cursor={cursor}")),
        )
        .await;
    answer.assert_problem(400, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_local_run_reads_its_email_at_the_simulated_tenant() {
    // As `make dev` runs it: development, Graph at the simulated tenant over loopback http, no
    // managed identity (the development token is used).
    let sim = sixpence_azure_sim::SimTenant::start(sixpence_azure_sim::SimConfig::default())
        .await
        .expect("the simulated tenant starts");
    let base = url::Url::parse(&sim.base_url()).unwrap();
    let w = world_with(move |s| {
        s.mail_sender = Some("notifications@sixpence.localhost".into());
        s.email.transport = EmailTransport::Graph;
        s.email.graph_url = base;
        s.email.graph_credential = None;
    })
    .await;
    email_channel(&w, &["dev@contoso.example"], json!({})).await;
    w.raise(&role_event(w.workspace_id())).await;
    let mail_url = format!("{}/_sim/mail", sim.base_url().trim_end_matches('/'));
    let read = || async {
        reqwest::get(&mail_url)
            .await
            .expect("GET /_sim/mail")
            .json::<Value>()
            .await
            .expect("JSON")
    };
    let mut mail = Value::Null;
    for _ in 0..20 {
        w.pump(Duration::from_millis(500), || false).await;
        mail = read().await;
        if !mail["value"].as_array().unwrap().is_empty() {
            break;
        }
    }
    let value = mail["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{mail:#}");
    assert_eq!(value[0]["sender"], "notifications@sixpence.localhost");
    assert_eq!(value[0]["to"], "dev@contoso.example");
    assert!(
        value[0]["subject"]
            .as_str()
            .unwrap()
            .contains("Azure stopped accepting connection"),
        "{mail:#}"
    );
    assert_reads_well(
        value[0]["mime"].as_str().unwrap(),
        "notifications@sixpence.localhost",
    );
}
