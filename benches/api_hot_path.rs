//! The tenant API's authenticated hot path against the cheapest route of the same process.
//!
//! ```text
//! cargo bench --bench api_hot_path
//! SIXPENCE_BENCH_REQUESTS=20000 SIXPENCE_BENCH_CLIENTS=32 cargo bench --bench api_hot_path
//! ```
//!
//! Starts a real Azurite (from the repository's `node_modules`, like the integration tests) and the
//! app in-process on a loopback port with development sign-in, then, with `SIXPENCE_BENCH_CLIENTS`
//! concurrent clients (default 16) sending `SIXPENCE_BENCH_REQUESTS` requests in all (default 8000)
//! per case, measures:
//!
//! - `GET /api/v1/workspaces/{id}`: bearer token verification, the membership point read and the
//!   workspace point read (plus the per-workspace quota check);
//! - `GET /api/health`: no authentication, the storage readiness check and two point reads of the
//!   system table (run concurrently).
//!
//! and prints requests/second and p50/p99/max latency of both in one table. Everything runs on this
//! machine (client, app and Azurite share its cores), so compare the two rows with each other, and
//! runs with runs on the same machine; the absolute numbers are not a capacity statement for Azure.
//!
//! The tenant API allows 60-request bursts and 20 requests/s per workspace; so that the benchmark
//! measures the hot path and not the limiter's refusals, each client is its own user with its own
//! workspaces, and requests rotate over enough of them to stay inside every burst. Any answer other
//! than 200 aborts the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sixpence::app::App;

use sixpence_testkit::{Azurite, app_settings as settings, dev_token as token};

/// Workspaces per client: requests per workspace stay well under the 60-request burst.
const WORKSPACES_PER_CLIENT: usize = 24;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// One client: its bearer token (if any) and the paths it rotates over.
struct Client {
    bearer: Option<String>,
    paths: Vec<String>,
}

struct Measured {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn run(http: &reqwest::Client, base: &str, clients: &[Client], requests: usize) -> Measured {
    let per_client = requests.div_ceil(clients.len());
    let started = Instant::now();
    let tasks = clients.iter().map(|client| async move {
        let mut latencies = Vec::with_capacity(per_client);
        for i in 0..per_client {
            let path = &client.paths[i % client.paths.len()];
            let mut request = http.get(format!("{base}{path}"));
            if let Some(bearer) = &client.bearer {
                request = request.bearer_auth(bearer);
            }
            let sent = Instant::now();
            let response = request.send().await.expect("loopback request");
            let status = response.status();
            let body = response.bytes().await.expect("body");
            latencies.push(sent.elapsed());
            assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        }
        latencies
    });
    let latencies: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    Measured {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let clients = env_usize("SIXPENCE_BENCH_CLIENTS", 16);
    let requests = env_usize("SIXPENCE_BENCH_REQUESTS", 8000);

    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    sixpence::storage::install_crypto_provider();
    let app = App::build(settings(azurite.connection_string()))
        .await
        .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()
        .expect("client");

    // Every client is its own user with its own workspaces (see the module docs on quotas).
    let setup = Instant::now();
    let authenticated: Vec<Client> = futures::future::join_all((0..clients).map(|c| {
        let http = &http;
        let base = &base;
        async move {
            let bearer = token(&format!("bench-{c}@contoso.example.com"));
            let mut paths = Vec::with_capacity(WORKSPACES_PER_CLIENT);
            for w in 0..WORKSPACES_PER_CLIENT {
                let created = http
                    .post(format!("{base}/api/v1/workspaces"))
                    .bearer_auth(&bearer)
                    .json(&serde_json::json!({ "name": format!("Bench {c}/{w}") }))
                    .send()
                    .await
                    .expect("create");
                assert_eq!(created.status(), 201, "creating a workspace");
                let body: serde_json::Value = created.json().await.expect("json");
                paths.push(format!(
                    "/api/v1/workspaces/{}",
                    body["id"].as_str().expect("id")
                ));
            }
            Client {
                bearer: Some(bearer),
                paths,
            }
        }
    }))
    .await;
    let anonymous: Vec<Client> = (0..clients)
        .map(|_| Client {
            bearer: None,
            paths: vec!["/api/health".to_owned()],
        })
        .collect();
    eprintln!(
        "set up {} workspaces for {clients} users in {:.1} s",
        clients * WORKSPACES_PER_CLIENT,
        setup.elapsed().as_secs_f64()
    );

    // Warm both paths (connections, caches, JIT-free but still: the first table reads).
    let warm = clients * 4;
    run(&http, &base, &anonymous, warm).await;
    run(&http, &base, &authenticated, warm).await;

    // Per workspace: requests / (clients * workspaces) stays far below the burst of 60.
    assert!(
        requests.div_ceil(clients) / WORKSPACES_PER_CLIENT < 50,
        "too many requests per workspace for the quota; raise WORKSPACES_PER_CLIENT"
    );
    let cases = [
        ("GET /api/health (anonymous)", &anonymous),
        ("GET /api/v1/workspaces/{id} (bearer)", &authenticated),
    ];
    println!();
    println!(
        "api_hot_path: {clients} concurrent clients, {requests} requests per case, loopback, Azurite"
    );
    println!(
        "{:<40} {:>9} {:>10} {:>9} {:>9} {:>9}",
        "case", "requests", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    for (name, clients) in cases {
        let mut measured = run(&http, &base, clients, requests).await;
        measured.latencies.sort_unstable();
        let rate = measured.requests as f64 / measured.elapsed.as_secs_f64();
        println!(
            "{:<40} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            name,
            measured.requests,
            rate,
            ms(percentile(&measured.latencies, 0.50)),
            ms(percentile(&measured.latencies, 0.99)),
            ms(*measured.latencies.last().expect("latencies")),
        );
    }
    println!();

    let _ = stop.send(());
    let _ = server.await;
    drop(azurite);
}
