//! Test support: a minimal HTTP/1.1 client over a TCP stream (the simulator only speaks plain HTTP on
//! loopback, so no TLS stack is needed), sim start-up and fixture loading.

use std::path::PathBuf;

use serde_json::Value;
use sixpence_azure_sim::{SimConfig, SimTenant};
use time::Date;
use time::macros::date;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TODAY: Date = date!(2026 - 11 - 23);

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..nl]).expect("hex").trim(), 16)
                    .expect("chunk size");
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[nl + 2 + size + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

pub fn config() -> SimConfig {
    SimConfig {
        seed: 7,
        today: Some(TODAY),
        quota: None,
        resource_graph_quota: None,
        ..SimConfig::default()
    }
}

pub async fn start(config: SimConfig) -> SimTenant {
    SimTenant::start(config).await.expect("simulator starts")
}

/// Form body for a client-credentials token request.
pub fn token_form(client_id: &str, secret: &str, scope: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    format!(
        "client_id={}&client_secret={}&scope={}&grant_type=client_credentials",
        enc(client_id),
        enc(secret),
        enc(scope)
    )
}

pub async fn token_response(sim: &SimTenant, tenant: usize) -> Resp {
    let c = sim.credentials(tenant);
    request(
        "POST",
        &c.token_url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        token_form(&c.client_id, &c.client_secret, &c.scope).as_bytes(),
    )
    .await
}

pub async fn token(sim: &SimTenant, tenant: usize) -> String {
    let r = token_response(sim, tenant).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

pub async fn get(url: &str, token: &str) -> Resp {
    request(
        "GET",
        url,
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
    .await
}

pub async fn post(url: &str, token: &str, body: &Value) -> Resp {
    request(
        "POST",
        url,
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

pub fn query_url(sim: &SimTenant, sub: &str) -> String {
    format!(
        "{}/subscriptions/{sub}/providers/Microsoft.CostManagement/query?api-version=2025-03-01",
        sim.base_url()
    )
}

pub fn fixture(rel: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

pub const COST_EXAMPLES: &str = "azure-rest-api-specs/specification/cost-management/resource-manager/Microsoft.CostManagement/stable/2025-03-01/examples";

/// A Custom-timeframe query body.
pub fn cost_body(
    metric: &str,
    from: &str,
    to: &str,
    granularity: &str,
    grouping: &[(&str, &str)],
) -> Value {
    let grouping: Vec<Value> = grouping
        .iter()
        .map(|(t, n)| serde_json::json!({"type": t, "name": n}))
        .collect();
    serde_json::json!({
        "type": metric,
        "timeframe": "Custom",
        "timePeriod": {"from": format!("{from}T00:00:00+00:00"), "to": format!("{to}T23:59:59+00:00")},
        "dataset": {
            "granularity": granularity,
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": grouping,
        }
    })
}

/// Follows `properties.nextLink`, re-POSTing the same body, and returns (columns, all rows, pages).
pub async fn query_all(url: &str, token: &str, body: &Value) -> (Vec<Value>, Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut next = Some(url.to_string());
    let mut columns = Vec::new();
    let mut pages = 0;
    while let Some(u) = next {
        let r = post(&u, token, body).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        columns = v["properties"]["columns"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        rows.extend(
            v["properties"]["rows"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        next = v["properties"]["nextLink"].as_str().map(str::to_string);
        pages += 1;
        assert!(pages < 10_000, "paging does not end");
    }
    (columns, rows, pages)
}

pub fn col(columns: &[Value], name: &str) -> usize {
    columns
        .iter()
        .position(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {columns:?}"))
}
