//! The cost sync of a large subscription, and `GET costs` over what it stored.
//!
//! ```text
//! cargo bench --bench cost_sync
//! SIXPENCE_BENCH_SYNC_RESOURCES=700,2700 SIXPENCE_BENCH_COSTS_REQUESTS=200 cargo bench --bench cost_sync
//! ```
//!
//! For each size (resources of the large simulated subscription, one meter each: `n × 425` cost rows
//! per view and metric over 13 months and the month to date, fetched six times: 3 views × 2 metrics),
//! the bench:
//!
//! 1. starts the simulated tenant in a **child process** (this binary again, `--sim-child`), so its
//!    CPU and memory are not the worker's, with its quota off and 5,000-row pages. The worker's own
//!    pacing is lifted too (`Settings::cost_pacing`), because every page is a call of 1 QPU: at the
//!    documented quotas (600 QPU an hour) a 2,700-resource backfill (~1,400 page calls) takes over
//!    two hours of the tenant's quota whatever Sixpence does. `SIXPENCE_BENCH_QUOTA=documented` keeps
//!    the documented pacing, to see that instead;
//! 2. starts Azurite (from the repository's `node_modules`) and the app in this process, creates a
//!    workspace and a connection through the API and chooses the large subscription;
//! 3. runs one `cost-sync` invocation (a first sync: the 13-month backfill, every view of both
//!    metrics) and reports rows fetched, wall time, rows per second, the **worker's CPU time**
//!    (this process: parsing, aggregation, packing, gzip of raw pages) against wall time, the sim's
//!    and Azurite's CPU time, and the worker's **peak RSS** (`VmHWM`; each size runs in a fresh
//!    process);
//! 4. sends `GET /costs` for the whole range grouped by service (monthly) from concurrent clients,
//!    at the tenant API's per-workspace quota (20 requests/s), and reports p50/p99.
//!
//! The baseline of each run is the run's own first size: the ratio of the two sizes' peak RSS shows
//! whether memory grows with the data (it should not: pages are written as they arrive) while the
//! ratio of their rows shows how much more data the second moved. Everything shares this machine's
//! cores, so compare rows with rows of the same run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sixpence::app::App;
use sixpence_azure_sim::{LargeMode, SimConfig, SimTenant};
use sixpence_testkit::{Azurite, app_settings as settings, dev_token as token};

/// The tenant API's sustained per-workspace rate (see `api::limits`).
const WORKSPACE_RATE_PER_SEC: f64 = 20.0;
const COSTS_CLIENTS: usize = 8;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's peak resident set, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--sim-child") {
        let resources: usize = args[i + 1].parse().expect("resources");
        sim_child(resources);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--one-size") {
        let resources: usize = args[i + 1].parse().expect("resources");
        let costs_requests: usize = args[i + 2].parse().expect("requests");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        sixpence::storage::install_crypto_provider();
        let result = runtime.block_on(one_size(resources, costs_requests));
        println!("{}", serde_json::to_string(&result).expect("result"));
        return;
    }
    bench();
}

/// The simulator's process: prints its endpoint and credentials as one JSON line, then serves until
/// the bench closes its stdin.
fn sim_child(resources: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sim = SimTenant::start(SimConfig {
            seed: 7,
            tenants: 1,
            subscriptions_per_tenant: 1,
            resources_per_subscription: 6,
            // Cost Management pages hold about 5,000 rows (see the Azure API reference).
            cost_page_size: 5_000,
            quota: None,
            large: Some(LargeMode {
                resources,
                ..LargeMode::million_rows()
            }),
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let c = sim.credentials(0);
        let line = json!({
            "base": sim.base_url(),
            "tenantId": c.tenant_id,
            "clientId": c.client_id,
            "clientSecret": c.client_secret,
            "subscription": c.subscriptions[0],
            "today": sim.today().to_string(),
            "from": sim.data_range().0.to_string(),
            "to": sim.data_range().1.to_string(),
        });
        println!("{line}");
        std::io::stdout().flush().expect("stdout");
        // Serve until the parent goes away (its end of our stdin closes).
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await
        .expect("stdin watcher");
    });
}

struct SimChild {
    child: Child,
    info: Value,
}

impl SimChild {
    fn start(resources: usize) -> SimChild {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(["--sim-child", &resources.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("simulator child starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("simulator announces itself");
        let info: Value = serde_json::from_str(&line).expect("simulator's JSON line");
        SimChild { child, info }
    }

    fn field(&self, name: &str) -> String {
        self.info[name].as_str().expect(name).to_owned()
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SizeResult {
    resources: usize,
    rows: u64,
    qpu: u64,
    wall: Duration,
    worker_cpu: f64,
    sim_cpu: f64,
    azurite_cpu: Option<f64>,
    /// Peak RSS of the sync alone (the process is new, so nothing earlier counts).
    peak_rss: f64,
    /// Peak RSS after the `GET costs` load as well.
    peak_rss_with_reads: f64,
    costs_p50: Duration,
    costs_p99: Duration,
    costs_requests: usize,
    cost_rows_answered: usize,
}

/// Each size runs in a process of its own, so one size's heap (the allocator keeps freed pages)
/// never shows up in the next size's peak.
fn bench() {
    let sizes = env_list("SIXPENCE_BENCH_SYNC_RESOURCES", &[700, 2_700]);
    let costs_requests = env_usize("SIXPENCE_BENCH_COSTS_REQUESTS", 120);
    let mut results: Vec<SizeResult> = Vec::new();
    for resources in sizes {
        let output = Command::new(std::env::current_exe().expect("own path"))
            .args([
                "--one-size",
                &resources.to_string(),
                &costs_requests.to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("size process runs");
        assert!(
            output.status.success(),
            "the {resources}-resource run failed"
        );
        let line = String::from_utf8_lossy(&output.stdout);
        let last = line.lines().last().expect("a result line");
        results.push(serde_json::from_str(last).expect("result JSON"));
    }
    println!();
    println!(
        "| resources | rows fetched | QPU | wall s | rows/s | worker CPU s | worker CPU / wall | sim CPU s | Azurite CPU s | worker peak RSS MiB (sync) | (with reads) | GET costs p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.1} | {:.2} | {:.1} | {} | {:.0} | {:.0} | {:.1} | {:.1} |",
            r.resources,
            r.rows,
            r.qpu,
            r.wall.as_secs_f64(),
            r.rows as f64 / r.wall.as_secs_f64(),
            r.worker_cpu,
            r.worker_cpu / r.wall.as_secs_f64(),
            r.sim_cpu,
            r.azurite_cpu
                .map_or("n/a".to_owned(), |c| format!("{c:.1}")),
            r.peak_rss,
            r.peak_rss_with_reads,
            r.costs_p50.as_secs_f64() * 1000.0,
            r.costs_p99.as_secs_f64() * 1000.0,
        );
    }
    if let [base, .., last] = results.as_slice() {
        println!();
        println!(
            "ratios (last / first size): rows {:.2}x, peak RSS {:.2}x, worker CPU per row {:.2}x, GET costs p50 {:.2}x",
            last.rows as f64 / base.rows as f64,
            last.peak_rss / base.peak_rss,
            (last.worker_cpu / last.rows as f64) / (base.worker_cpu / base.rows as f64),
            last.costs_p50.as_secs_f64() / base.costs_p50.as_secs_f64(),
        );
        println!(
            "GET costs: {} requests per size, {COSTS_CLIENTS} concurrent clients at {WORKSPACE_RATE_PER_SEC} requests/s; {} cost rows per answer at the last size",
            last.costs_requests, last.cost_rows_answered
        );
    }
}

async fn one_size(resources: usize, costs_requests: usize) -> SizeResult {
    let sim = SimChild::start(resources);
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    let mut app_settings = settings(azurite.connection_string());
    let base_url = url::Url::parse(&sim.field("base")).expect("sim url");
    app_settings.azure = sixpence::azure::AzureEndpoints {
        arm: base_url.clone(),
        authority: base_url,
    };
    if std::env::var("SIXPENCE_BENCH_QUOTA").as_deref() != Ok("documented") {
        // Measure the worker, not the tenant's quota (see the module docs).
        app_settings.cost_pacing = Some(sixpence::azure::pacer::PacingOptions {
            quotas: vec![(Duration::from_secs(1), 1.0e9)],
            max_wait: Duration::from_secs(60),
        });
    }
    let app = App::build(app_settings).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let owner = token("bench-owner@contoso.example.com");

    let workspace = http
        .post(format!("{base}/api/v1/workspaces"))
        .bearer_auth(&owner)
        .json(&json!({ "name": "Bench" }))
        .send()
        .await
        .expect("create workspace")
        .json::<Value>()
        .await
        .expect("json")["id"]
        .as_str()
        .expect("workspace id")
        .to_owned();
    let created: Value = http
        .post(format!("{base}/api/v1/workspaces/{workspace}/connections"))
        .bearer_auth(&owner)
        .json(&json!({
            "name": "Large",
            "tenantId": sim.field("tenantId"),
            "clientId": sim.field("clientId"),
            "clientSecret": sim.field("clientSecret"),
        }))
        .send()
        .await
        .expect("create connection")
        .json()
        .await
        .expect("json");
    let connection = created["id"].as_str().expect("connection id").to_owned();
    let subscription = sim.field("subscription");
    let chosen = http
        .put(format!(
            "{base}/api/v1/workspaces/{workspace}/connections/{connection}/subscriptions"
        ))
        .bearer_auth(&owner)
        .json(&json!({ "subscriptionIds": [subscription] }))
        .send()
        .await
        .expect("choose");
    assert!(chosen.status().is_success(), "choosing the subscription");

    let message = json!({
        "version": 1,
        "workspace": workspace,
        "connection": connection,
        "subscription": subscription,
        "night": sim.field("today"),
    })
    .to_string();
    let envelope = json!({
        "Data": { "message": serde_json::to_string(&message).expect("encode") },
        "Metadata": { "DequeueCount": "1", "Id": "\"bench\"" }
    })
    .to_string();

    let sim_pid = sim.child.id().to_string();
    let azurite_pid = azurite.pid().map(|p| p.to_string());
    let (worker_before, sim_before) = (cpu_seconds("self"), cpu_seconds(&sim_pid));
    let azurite_before = azurite_pid.as_deref().map(cpu_seconds);
    let started = Instant::now();
    let synced = http
        .post(format!("{base}/cost-sync"))
        .header("content-type", "application/json")
        .header("x-azure-functions-invocationid", "bench")
        .body(envelope)
        .send()
        .await
        .expect("cost-sync invocation");
    let wall = started.elapsed();
    let worker_cpu = cpu_seconds("self") - worker_before;
    let sim_cpu = cpu_seconds(&sim_pid) - sim_before;
    let azurite_cpu = azurite_pid
        .as_deref()
        .zip(azurite_before)
        .map(|(pid, before)| cpu_seconds(pid) - before);
    let peak_rss = peak_rss_mib();
    let status = synced.status();
    assert!(
        status.is_success(),
        "cost-sync failed: {status} {}",
        synced.text().await.unwrap_or_default()
    );
    let runs: Value = http
        .get(format!("{base}/api/v1/workspaces/{workspace}/syncs"))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("syncs")
        .json()
        .await
        .expect("json");
    let run = &runs["items"][0];
    assert_eq!(run["status"], "succeeded", "{run}");
    let rows = run["rows"].as_u64().expect("rows");
    let qpu = run["qpu"].as_u64().expect("qpu");
    eprintln!(
        "{resources} resources: {rows} rows in {:.1} s (worker CPU {worker_cpu:.1} s, peak RSS {peak_rss:.0} MiB)",
        wall.as_secs_f64()
    );

    // GET costs for the whole range, by service, monthly: concurrent clients sharing the
    // workspace's sustained quota.
    let path = format!(
        "{base}/api/v1/workspaces/{workspace}/costs?from={}&to={}&groupBy=service&granularity=monthly",
        sim.field("from"),
        sim.field("to")
    );
    let interval = Duration::from_secs_f64(COSTS_CLIENTS as f64 / WORKSPACE_RATE_PER_SEC);
    let per_client = costs_requests.div_ceil(COSTS_CLIENTS);
    let tasks = (0..COSTS_CLIENTS).map(|c| {
        let (http, path, owner) = (&http, &path, &owner);
        async move {
            // Stagger the clients so together they send at the workspace's rate.
            tokio::time::sleep(interval.mul_f64(c as f64 / COSTS_CLIENTS as f64)).await;
            let mut ticker = tokio::time::interval(interval);
            let mut latencies = Vec::with_capacity(per_client);
            let mut answered = 0;
            for _ in 0..per_client {
                ticker.tick().await;
                let sent = Instant::now();
                let response = http
                    .get(path)
                    .bearer_auth(owner)
                    .send()
                    .await
                    .expect("loopback");
                let status = response.status();
                let body: Value = response.json().await.expect("json");
                latencies.push(sent.elapsed());
                assert_eq!(status, 200, "{body}");
                answered = body["rows"].as_array().map_or(0, Vec::len);
            }
            (latencies, answered)
        }
    });
    let mut latencies = Vec::new();
    let mut cost_rows_answered = 0;
    for (l, answered) in futures::future::join_all(tasks).await {
        latencies.extend(l);
        cost_rows_answered = answered;
    }
    latencies.sort();
    let pct = |p: f64| {
        let rank = ((latencies.len() as f64) * p).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1]
    };
    let result = SizeResult {
        resources,
        rows,
        qpu,
        wall,
        worker_cpu,
        sim_cpu,
        azurite_cpu,
        peak_rss,
        peak_rss_with_reads: peak_rss_mib(),
        costs_p50: pct(0.5),
        costs_p99: pct(0.99),
        costs_requests: latencies.len(),
        cost_rows_answered,
    };
    let _ = stop.send(());
    let _ = server.await;
    result
}
