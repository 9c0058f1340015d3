//! Notifications delivered per second to a loopback webhook receiver, and the latency the queue
//! hop adds.
//!
//! ```text
//! cargo bench --bench notify_throughput
//! SIXPENCE_BENCH_NOTIFICATIONS=1000 SIXPENCE_BENCH_WORKERS=16 cargo bench --bench notify_throughput
//! ```
//!
//! Starts a real Azurite and the app in-process (like the integration tests), a loopback receiver
//! standing in for Slack that answers 200 at once, and one Slack channel. Then it measures:
//!
//! - **direct**: the renderer's payload POSTed straight to the receiver with the same guarded
//!   webhook client (`SIXPENCE_BENCH_NOTIFICATIONS` posts, `SIXPENCE_BENCH_WORKERS` at a time):
//!   the floor, with no queue and no storage;
//! - **notify**: as many `notifications` queue messages, each invoked on the `notify` function with
//!   the host's envelope (channel read, delivery-record claim, send, mark sent), the same
//!   concurrency: deliveries/second and p50/p99 per invocation;
//! - **queue hop**: one message at a time, the time from enqueueing a `notifications` message to
//!   the receiver having it, when a poller (like the host's, with no back-off) receives it and
//!   invokes `notify` at once, minus the `notify` invocation itself: what the hop through Queue
//!   Storage adds (send + receive + delete round trips, against Azurite on this machine).
//!
//! Everything shares this machine's cores; compare runs on the same machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sixpence::app::App;
use sixpence::domain::events::{Event, EventKind, Severity, SyncEvent};
use sixpence::domain::tenancy::WorkspaceId;
use sixpence::notify::{
    DeliverySource, NOTIFY_MESSAGE_VERSION, NotifyMessage, WebhookClient, WebhookPolicy, render,
};
use sixpence::storage::{Storage, StorageConnection};
use sixpence_testkit::{Azurite, app_settings as settings, dev_token as token};
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn envelope(text: &str) -> String {
    let once = serde_json::to_string(text).expect("encode");
    json!({"Data": {"message": once}, "Metadata": {"DequeueCount": "1", "Id": "\"m\""}}).to_string()
}

fn sync_event(workspace: WorkspaceId) -> Event {
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let n = env_usize("SIXPENCE_BENCH_NOTIFICATIONS", 400);
    let workers = env_usize("SIXPENCE_BENCH_WORKERS", 8);
    let hops = env_usize("SIXPENCE_BENCH_HOPS", 30);

    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    sixpence::storage::install_crypto_provider();
    let mut config = settings(azurite.connection_string());
    config.webhooks.allow_loopback = true;
    let app = App::build(config).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let storage = Storage::connect(
        &StorageConnection::parse_connection_string(azurite.connection_string())
            .expect("connection string"),
    )
    .expect("storage");

    // The receiver: counts what it accepted.
    let received = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!(
        "http://{}/services/T0/B0/bench",
        listener.local_addr().unwrap()
    );
    let counter = received.clone();
    let receiver = axum::Router::new().fallback(axum::routing::post(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });

    let http = reqwest::Client::new();
    let owner = token("bench-owner@contoso.example");
    let created: serde_json::Value = http
        .post(format!("{base}/api/v1/workspaces"))
        .bearer_auth(&owner)
        .json(&json!({"name": "Bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws = created["id"].as_str().expect("workspace id").to_owned();
    let channel: serde_json::Value = http
        .post(format!("{base}/api/v1/workspaces/{ws}/channels"))
        .bearer_auth(&owner)
        .json(&json!({"name": "Bench", "kind": "slack", "webhookUrl": hook, "events": ["sync"], "minSeverity": "info"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let channel_id = channel["id"].as_str().expect("channel id").to_owned();
    let workspace = WorkspaceId::parse(&ws).unwrap();
    let message = |event: Event| NotifyMessage {
        version: NOTIFY_MESSAGE_VERSION,
        workspace,
        channel: sixpence::domain::notifications::ChannelId::parse(&channel_id).unwrap(),
        delivery: DeliverySource::Event {
            event: Box::new(event),
        },
    };

    // Direct posts: the floor.
    let client = WebhookClient::new(WebhookPolicy {
        extra_hosts: vec![],
        allow_loopback: true,
    })
    .unwrap();
    let payload = render::slack(&[render::message(&sync_event(workspace), None)]);
    let direct = run(n, workers, |_| {
        let client = client.clone();
        let payload = payload.clone();
        let hook = hook.clone();
        async move {
            let outcome = client
                .post(
                    &hook,
                    sixpence::domain::notifications::ChannelKind::Slack,
                    &payload,
                )
                .await;
            assert_eq!(
                outcome,
                sixpence::domain::notifications::SendOutcome::Delivered
            );
        }
    })
    .await;

    // Through the notify function (storage claim + send + mark), invoked as the host does.
    let before = received.load(Ordering::SeqCst);
    let texts: Vec<String> = (0..n)
        .map(|_| serde_json::to_string(&message(sync_event(workspace))).unwrap())
        .collect();
    let texts = Arc::new(texts);
    let notify = run(n, workers, |i| {
        let http = http.clone();
        let base = base.clone();
        let texts = texts.clone();
        async move {
            let response = http
                .post(format!("{base}/notify"))
                .header("content-type", "application/json")
                .header("x-azure-functions-invocationid", Uuid::new_v4().to_string())
                .body(envelope(&texts[i]))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    })
    .await;
    assert_eq!(
        received.load(Ordering::SeqCst) - before,
        n,
        "each delivered once"
    );

    // The queue hop, one message at a time.
    let queue = storage.queues().queue("notifications").unwrap();
    let mut hop = Vec::with_capacity(hops);
    let mut invoke_only = Vec::with_capacity(hops);
    for _ in 0..hops {
        let text = serde_json::to_string(&message(sync_event(workspace))).unwrap();
        let target = received.load(Ordering::SeqCst) + 1;
        let started = Instant::now();
        queue.send(&text, None).await.unwrap();
        let got = loop {
            let got = queue.receive(1, Duration::from_secs(30)).await.unwrap();
            if !got.is_empty() {
                break got;
            }
        };
        let message = &got[0];
        let invoked = Instant::now();
        let response = http
            .post(format!("{base}/notify"))
            .header("content-type", "application/json")
            .header("x-azure-functions-invocationid", Uuid::new_v4().to_string())
            .body(envelope(message.text.as_deref().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let invocation = invoked.elapsed();
        queue
            .delete_message(&message.id, &message.pop_receipt)
            .await
            .unwrap();
        let total = started.elapsed();
        assert_eq!(received.load(Ordering::SeqCst), target);
        hop.push(total - invocation);
        invoke_only.push(invocation);
    }
    hop.sort();
    invoke_only.sort();

    println!();
    println!("notifications to a loopback Slack receiver ({n} each, {workers} at a time)");
    println!("| case | per second | p50 | p99 |");
    println!("|---|---|---|---|");
    for (name, m) in [
        ("direct webhook POST", &direct),
        ("notify function (claim, send, mark)", &notify),
    ] {
        println!(
            "| {name} | {:.0} | {} | {} |",
            n as f64 / m.0.as_secs_f64(),
            ms(percentile(&m.1, 0.5)),
            ms(percentile(&m.1, 0.99))
        );
    }
    println!();
    println!(
        "queue hop (send + receive + delete on Queue Storage, {hops} sequential): p50 {}, p99 {}; notify invocation itself p50 {}",
        ms(percentile(&hop, 0.5)),
        ms(percentile(&hop, 0.99)),
        ms(percentile(&invoke_only, 0.5)),
    );
    let _ = stop.send(());
}

/// Runs `job(i)` for i in 0..n, `workers` at a time; total time and sorted per-job latencies.
async fn run<F, Fut>(n: usize, workers: usize, job: F) -> (Duration, Vec<Duration>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::StreamExt;
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..n)
        .map(|i| {
            let fut = job(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(workers)
        .collect()
        .await;
    let total = started.elapsed();
    latencies.sort();
    (total, latencies)
}
