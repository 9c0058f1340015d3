//! The demo step of `make dev`: connects a demo workspace to the simulated Azure tenant through the
//! tenant API of a running local app, so a newcomer sees real data flowing without an Azure account.
//!
//! Idempotent: the workspace is found by name among the demo user's workspaces, the connection by
//! tenant and client id, and the subscription choice is only written when it differs. Every step
//! that fails stops with an error naming the request and the app's answer.
//!
//! It only talks to loopback: the local app and the simulator (`sixpence-azure-sim`), whose
//! `GET /_sim/credentials` hands out the demo credentials.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The demo user (any address works with development sign-in; this one is fixed so every run finds
/// the same workspace).
pub const DEMO_USER: &str = "demo@sixpence.local";
/// The demo workspace's name, which is how a later run finds it.
pub const DEMO_WORKSPACE: &str = "Demo (simulated Azure)";
/// The demo connection's name.
pub const DEMO_CONNECTION: &str = "Simulated tenant";

/// Where the app and the simulator are, and who the demo acts as.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The local app, e.g. `http://127.0.0.1:7071`.
    pub app_url: String,
    /// The simulated tenant, e.g. `http://127.0.0.1:8089`.
    pub simulator_url: String,
    /// A bearer token of the demo user (a development token).
    pub token: String,
    /// How long to wait for the app and the simulator to answer.
    pub patience: Duration,
}

/// What the demo step found or made.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub workspace_id: String,
    pub workspace_created: bool,
    pub connection: Connection,
    pub connection_created: bool,
    /// Whether this run wrote the subscription choice (false when it was already right).
    pub subscriptions_chosen: bool,
    /// The simulated tenant's domain, for the summary.
    pub tenant_domain: String,
}

/// The parts of the API's `ConnectionView` the demo reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub client_id: String,
    pub state: String,
    #[serde(default)]
    pub problem: Option<Problem>,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub usable: bool,
    pub selected: bool,
    #[serde(default)]
    pub missing_features: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paged<T> {
    items: Vec<T>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Workspace {
    id: String,
    name: String,
}

/// One tenant of the simulator's `GET /_sim/credentials`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SimCredentials {
    tenant_id: String,
    domain: String,
    client_id: String,
    client_secret: String,
}

/// Connects the demo workspace (see the module docs). Safe to run again and again.
pub async fn connect_demo(options: &DemoOptions) -> anyhow::Result<DemoOutcome> {
    let api = Api::new(options)?;
    api.wait_for_app(options.patience).await?;
    let tenant = api.simulator_credentials(options.patience).await?;

    let (workspace_id, workspace_created) = match api.find_workspace().await? {
        Some(id) => (id, false),
        None => {
            let created: Workspace = api
                .call(
                    Method::POST,
                    "/api/v1/workspaces",
                    Some(json!({ "name": DEMO_WORKSPACE })),
                )
                .await
                .context("creating the demo workspace")?;
            (created.id, true)
        }
    };
    let connections = format!("/api/v1/workspaces/{workspace_id}/connections");

    let existing: Paged<Connection> = api
        .call(Method::GET, &connections, None)
        .await
        .context("listing the demo workspace's connections")?;
    let found = existing.items.into_iter().find(|c| {
        c.tenant_id.eq_ignore_ascii_case(&tenant.tenant_id)
            && c.client_id.eq_ignore_ascii_case(&tenant.client_id)
    });
    let (mut connection, connection_created) = match found {
        // Verified before (a state past `verified` never goes back): leave it be.
        Some(c) if is_verified(&c.state) => (c, false),
        // Created while the simulator was down, or revoked since: verify again.
        Some(c) => {
            let verified: Connection = api
                .call(
                    Method::POST,
                    &format!("{connections}/{}/verify", c.id),
                    None,
                )
                .await
                .with_context(|| {
                    format!("verifying the existing demo connection {} again", c.id)
                })?;
            (verified, false)
        }
        None => {
            let created: Connection = api
                .call(
                    Method::POST,
                    &connections,
                    Some(json!({
                        "name": DEMO_CONNECTION,
                        "tenantId": tenant.tenant_id,
                        "clientId": tenant.client_id,
                        "clientSecret": tenant.client_secret,
                    })),
                )
                .await
                .context("connecting the simulated tenant")?;
            (created, true)
        }
    };
    if !is_verified(&connection.state) {
        let why = match &connection.problem {
            Some(problem) => format!("{} ({})", problem.message, problem.kind),
            None => "no problem reported".to_owned(),
        };
        bail!(
            "the demo connection {} is `{}`: {why}. Is the app pointed at the simulator \
             (SIXPENCE_AZURE_ARM_ENDPOINT and SIXPENCE_AZURE_AUTHORITY = {})?",
            connection.id,
            connection.state,
            options.simulator_url
        );
    }

    let usable: Vec<String> = connection
        .subscriptions
        .iter()
        .filter(|s| s.usable)
        .map(|s| s.subscription_id.clone())
        .collect();
    if usable.is_empty() {
        bail!(
            "the demo connection {} (state `{}`) has no usable subscription: {:?}",
            connection.id,
            connection.state,
            connection.subscriptions
        );
    }
    let already = connection
        .subscriptions
        .iter()
        .all(|s| s.selected == s.usable);
    let chosen_state = matches!(
        connection.state.as_str(),
        "subscriptionsChosen" | "firstSyncDone"
    );
    let subscriptions_chosen = !(already && chosen_state);
    if subscriptions_chosen {
        connection = api
            .call(
                Method::PUT,
                &format!("{connections}/{}/subscriptions", connection.id),
                Some(json!({ "subscriptionIds": usable })),
            )
            .await
            .context("choosing the demo connection's subscriptions")?;
    }
    if !matches!(
        connection.state.as_str(),
        "subscriptionsChosen" | "firstSyncDone"
    ) {
        bail!(
            "the demo connection {} is `{}` after choosing its subscriptions (expected \
             `subscriptionsChosen`)",
            connection.id,
            connection.state
        );
    }
    Ok(DemoOutcome {
        workspace_id,
        workspace_created,
        connection,
        connection_created,
        subscriptions_chosen,
        tenant_domain: tenant.domain,
    })
}

/// A state past `verified` (the stage never goes back; failures show as `failed` or `revoked`).
fn is_verified(state: &str) -> bool {
    matches!(state, "verified" | "subscriptionsChosen" | "firstSyncDone")
}

/// The newcomer's summary: what exists and how to look at it. `sixpence` is the command that runs
/// the `sixpence` binary from the repository root (for the `dev-token` line).
pub fn summary(outcome: &DemoOutcome, app_url: &str, sixpence: &str, user: &str) -> String {
    use std::fmt::Write as _;
    let c = &outcome.connection;
    let ws = &outcome.workspace_id;
    let made = |created: bool| if created { "created" } else { "already there" };
    let rule = "=".repeat(96);
    let mut out = String::new();
    let _ = writeln!(out, "{rule}");
    let _ = writeln!(
        out,
        "Demo workspace connected to the simulated Azure tenant ({app_url})"
    );
    let _ = writeln!(
        out,
        "  workspace  \"{DEMO_WORKSPACE}\"  {ws}  ({}), owner {user}",
        made(outcome.workspace_created)
    );
    let _ = writeln!(
        out,
        "  connection \"{}\"  {}  ({}), state {}",
        c.name,
        c.id,
        made(outcome.connection_created),
        c.state
    );
    let _ = writeln!(
        out,
        "    tenant {} ({}), client {}",
        c.tenant_id, outcome.tenant_domain, c.client_id
    );
    for s in &c.subscriptions {
        let name = s.display_name.as_deref().unwrap_or("");
        if s.selected {
            let _ = writeln!(out, "    syncing     {}  {name}", s.subscription_id);
        } else {
            let _ = writeln!(
                out,
                "    not chosen  {}  {name}  (usable: {}, missing: {})",
                s.subscription_id,
                s.usable,
                s.missing_features.join(", ")
            );
        }
    }
    let _ = writeln!(out, "Look at it (from the repository root):");
    let _ = writeln!(
        out,
        "  export TOKEN=\"$({sixpence} dev-token --user {user})\""
    );
    let auth = "-H \"Authorization: Bearer $TOKEN\"";
    let _ = writeln!(out, "  curl -s {auth} {app_url}/api/v1/workspaces");
    let _ = writeln!(
        out,
        "  curl -s {auth} {app_url}/api/v1/workspaces/{ws}/connections"
    );
    let _ = writeln!(
        out,
        "  curl -s {auth} {app_url}/api/v1/workspaces/{ws}/connections/{}",
        c.id
    );
    let _ = writeln!(
        out,
        "  API description: {app_url}/api/v1/openapi.json   health: {app_url}/api/health"
    );
    let _ = write!(out, "{rule}");
    out
}

/// Accepts only `http://127.0.0.1`, `http://localhost` or `http://[::1]` URLs: the demo hands out the
/// simulator's credentials and a token, which must not leave the machine.
pub fn require_loopback(url: &str, what: &str) -> anyhow::Result<()> {
    let parsed =
        reqwest::Url::parse(url).with_context(|| format!("{what} `{url}` is not a URL"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if parsed.scheme() != "http" || !loopback {
        bail!(
            "{what} is `{url}`, not a loopback http URL: the demo connects only the simulated \
             tenant of a local run (start it with `make dev`)"
        );
    }
    Ok(())
}

struct Api {
    http: reqwest::Client,
    app: String,
    simulator: String,
    token: String,
}

impl Api {
    fn new(options: &DemoOptions) -> anyhow::Result<Self> {
        require_loopback(&options.app_url, "the app URL")?;
        require_loopback(&options.simulator_url, "the simulator URL")?;
        Ok(Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()?,
            app: options.app_url.trim_end_matches('/').to_owned(),
            simulator: options.simulator_url.trim_end_matches('/').to_owned(),
            token: options.token.clone(),
        })
    }

    /// Polls `GET /api/health` until it answers 200.
    async fn wait_for_app(&self, patience: Duration) -> anyhow::Result<()> {
        let url = format!("{}/api/health", self.app);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let last = match self.http.get(&url).send().await {
                Ok(response) if response.status() == StatusCode::OK => return Ok(()),
                Ok(response) => format!("HTTP {}", response.status()),
                Err(err) => err.to_string(),
            };
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the local app did not answer GET {url} within {}s (last: {last}); did the \
                     local host start? Its output is above.",
                    patience.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The simulator's first tenant, waiting for the simulator to answer.
    async fn simulator_credentials(&self, patience: Duration) -> anyhow::Result<SimCredentials> {
        let url = format!("{}/_sim/credentials", self.simulator);
        let deadline = tokio::time::Instant::now() + patience;
        let response = loop {
            match self.http.get(&url).send().await {
                Ok(response) => break response,
                Err(err) if tokio::time::Instant::now() > deadline => bail!(
                    "the simulated Azure tenant did not answer GET {url} within {}s ({err}); is \
                     `sixpence-azure-sim` running?",
                    patience.as_secs()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {url} answered {status}: {}", text.trim());
        }
        let tenants: Vec<SimCredentials> = serde_json::from_str(&text)
            .with_context(|| format!("GET {url} answered something unexpected: {text}"))?;
        tenants
            .into_iter()
            .next()
            .with_context(|| format!("GET {url}: the simulator has no tenant"))
    }

    /// The id of the demo user's workspace named [`DEMO_WORKSPACE`], following every page.
    async fn find_workspace(&self) -> anyhow::Result<Option<String>> {
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("/api/v1/workspaces?cursor={cursor}"),
                None => "/api/v1/workspaces".to_owned(),
            };
            let page: Paged<Workspace> = self
                .call(Method::GET, &path, None)
                .await
                .context("listing the demo user's workspaces")?;
            if let Some(found) = page.items.into_iter().find(|w| w.name == DEMO_WORKSPACE) {
                return Ok(Some(found.id));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// One tenant-API call as the demo user; any answer but 2xx is an error quoting the answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.app);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {url} answered {status}: {}", text.trim());
        }
        serde_json::from_str(&text).with_context(|| {
            format!("{method} {url} answered {status} with unexpected JSON: {text}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in [
            "http://127.0.0.1:7071",
            "http://localhost:8089/",
            "http://[::1]:7071",
        ] {
            require_loopback(ok, "url").unwrap();
        }
        for bad in [
            "https://management.azure.com",
            "http://10.0.0.1:7071",
            "https://127.0.0.1:7071",
            "not a url",
        ] {
            assert!(require_loopback(bad, "url").is_err(), "{bad}");
        }
    }
}
