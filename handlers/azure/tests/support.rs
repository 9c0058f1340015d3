//! A scripted loopback Azure (ARM and the token endpoint on one port) that records every request,
//! and clients pointed at it with virtual time.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use crate::azure::{
    AccessToken, AzureClient, AzureError, ClientOptions, ClientSecret, ManualClock, Pacers,
    RetryOptions, TokenCredential,
};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const OTHER_TENANT: &str = "3f1c0d8e-2b7a-4c55-9e0a-6d4b8f2a1c90";
pub const CLIENT_ID: &str = "0c5b1a38-1111-2222-3333-444455556666";
pub const SECRET: &str = "very-secret-client-secret-value";
pub const TOKEN: &str = "eyJ0eXAi.test-access-token.sig";
pub const SUB: &str = "00000000-0000-0000-0000-000000000000";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_owned(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        response
    }
}

#[derive(Default)]
struct Script {
    data: VecDeque<Reply>,
    /// Served when `data` is empty.
    data_default: Option<Reply>,
    tokens: VecDeque<Reply>,
    data_requests: Vec<Recorded>,
    token_requests: Vec<Recorded>,
}

/// The loopback server. Data requests are answered from a queue (then a default); token requests
/// get a fresh token unless scripted otherwise.
#[derive(Clone)]
pub struct FakeAzure {
    pub url: Url,
    script: Arc<Mutex<Script>>,
}

impl FakeAzure {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let router = Router::new().fallback(handle).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url: Url::parse(&format!("http://{addr}")).unwrap(),
            script,
        }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    /// Queues data responses, served in order.
    pub fn reply(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.script().data.extend(replies);
        self
    }

    /// The response once the queue is empty.
    pub fn reply_always(&self, reply: Reply) -> &Self {
        self.script().data_default = Some(reply);
        self
    }

    /// Queues token-endpoint responses.
    pub fn token_reply(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.script().tokens.extend(replies);
        self
    }

    pub fn data_requests(&self) -> Vec<Recorded> {
        self.script().data_requests.clone()
    }

    pub fn data_hits(&self) -> usize {
        self.script().data_requests.len()
    }

    pub fn token_requests(&self) -> Vec<Recorded> {
        self.script().token_requests.clone()
    }

    pub fn token_hits(&self) -> usize {
        self.script().token_requests.len()
    }

    /// A URL on this server.
    pub fn at(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.url.as_str().trim_end_matches('/'),
            path_and_query
        )
    }
}

async fn handle(State(script): State<Arc<Mutex<Script>>>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method,
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    let is_token = recorded.uri.contains("/oauth2/v2.0/token");
    // Let concurrent callers pile up, so single-flight is really exercised.
    tokio::task::yield_now().await;
    let mut script = script.lock().unwrap();
    if is_token {
        script.token_requests.push(recorded);
        script
            .tokens
            .pop_front()
            .unwrap_or_else(|| {
                Reply::json(
                    200,
                    json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": TOKEN }),
                )
            })
            .into_response()
    } else {
        script.data_requests.push(recorded);
        match script.data.pop_front() {
            Some(reply) => reply.into_response(),
            None => script
                .data_default
                .clone()
                .unwrap_or_else(|| {
                    Reply::json(
                        500,
                        json!({"error":{"code":"Unscripted","message":"no reply scripted"}}),
                    )
                })
                .into_response(),
        }
    }
}

/// Client options on virtual time with fresh pacers and a small jitter.
pub fn options(clock: &ManualClock, pacers: &Pacers) -> ClientOptions {
    ClientOptions {
        retry: RetryOptions {
            max_jitter: std::time::Duration::from_millis(250),
            ..RetryOptions::default()
        },
        clock: Arc::new(clock.clone()),
        pacers: pacers.clone(),
        ..ClientOptions::default()
    }
}

/// A client for `tenant` against the fake (ARM and login authority both on it).
pub fn client_for(server: &FakeAzure, tenant: &str, options: ClientOptions) -> AzureClient {
    AzureClient::with_client_secret(
        Some(server.url.clone()),
        ClientSecret {
            tenant_id: tenant.into(),
            client_id: CLIENT_ID.into(),
            secret: SecretString::from(SECRET),
        },
        Some(ClientOptions {
            authority: server.url.clone(),
            ..options
        }),
    )
    .expect("client")
}

/// A client for [`TENANT`] with its own clock and pacers.
pub fn client(server: &FakeAzure) -> (AzureClient, ManualClock) {
    let clock = ManualClock::new();
    let client = client_for(server, TENANT, options(&clock, &Pacers::default()));
    (client, clock)
}

/// A credential that always hands out [`TOKEN`] (for tests that need no token endpoint).
pub fn static_token(tenant: &str) -> Arc<dyn TokenCredential> {
    #[derive(Debug)]
    struct Static(String);

    #[async_trait::async_trait]
    impl TokenCredential for Static {
        fn tenant_id(&self) -> &str {
            &self.0
        }

        async fn get_token(&self) -> Result<AccessToken, AzureError> {
            Ok(AccessToken {
                token: SecretString::from(TOKEN),
                expires_at: std::time::Instant::now() + std::time::Duration::from_secs(3600),
            })
        }
    }

    Arc::new(Static(tenant.to_owned()))
}

/// A small query result page.
pub fn query_page(next_link: Option<String>) -> Value {
    json!({
        "id": format!("subscriptions/{SUB}/providers/Microsoft.CostManagement/query/q"),
        "name": "q",
        "type": "Microsoft.CostManagement/query",
        "properties": {
            "nextLink": next_link,
            "columns": [
                { "name": "Cost", "type": "Number" },
                { "name": "UsageDate", "type": "Number" },
                { "name": "Currency", "type": "String" },
            ],
            "rows": [[1.5, 20240101, "GBP"], [2.25, 20240102, "GBP"]],
        }
    })
}

/// A fixture's `responses.<status>.body`.
pub fn fixture_body(path: &str, status: &str) -> Value {
    let full = format!("{}/tests/fixtures/azure/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"));
    value["responses"][status]["body"].clone()
}

/// A whole fixture file.
pub fn fixture(path: &str) -> Value {
    let full = format!("{}/tests/fixtures/azure/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"))
}
