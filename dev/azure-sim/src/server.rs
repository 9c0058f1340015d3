//! HTTP: one fallback handler that routes on lower-cased path segments (ARM paths are
//! case-insensitive, and the real nextLinks change case: `.../Query?...`), authenticates, applies
//! the tenant's faults and quotas, then answers like the real API.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cost::{self, Cursor};
use crate::model::{self, Metric, Model, Resource, SubModel, UNITS_PER_GBP};
use crate::rng;
use crate::{
    Credentials, Fault, GroundTruth, Money, QpuQuota, RetryHeader, Revocation, Role, SimConfig,
    SimError, SubscriptionTruth, TenantTruth, WriteAttempt,
};

const QPU_CONSUMED: &str = "x-ms-ratelimit-microsoft.costmanagement-qpu-consumed";
const QPU_REMAINING: &str = "x-ms-ratelimit-microsoft.costmanagement-qpu-remaining";
const QPU_RETRY: &str = "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after";
const ENTITY_RETRY: &str = "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after";
const TENANT_RETRY: &str = "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after";
const CLIENTTYPE_RETRY: &str = "x-ms-ratelimit-microsoft.costmanagement-clienttype-retry-after";
const ARM_SCOPE: &str = "https://management.azure.com/.default";

pub(crate) struct Shared {
    pub model: Arc<Model>,
    pub config: SimConfig,
    pub base_url: String,
    pub state: Mutex<State>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct TokenInfo {
    tenant: usize,
    expires_at: Instant,
}

/// A bounded fault: by request count, by time, or until cleared.
#[derive(Debug, Clone)]
struct Window {
    endpoints: Vec<String>,
    remaining: Option<u32>,
    until: Option<Instant>,
}

impl Window {
    fn new(endpoints: Vec<String>, requests: Option<u32>, seconds: Option<u64>) -> Window {
        Window {
            endpoints,
            remaining: requests,
            until: seconds.map(|s| Instant::now() + StdDuration::from_secs(s)),
        }
    }

    /// Whether the fault applies to this request (and uses one of its requests if so).
    fn hit(&mut self, endpoint: &str, now: Instant) -> bool {
        if self.until.is_some_and(|u| now >= u) || self.remaining == Some(0) {
            return false;
        }
        let applies = if self.endpoints.is_empty() {
            endpoint != "token"
        } else {
            self.endpoints
                .iter()
                .any(|e| e.eq_ignore_ascii_case(endpoint))
        };
        if applies && let Some(r) = &mut self.remaining {
            *r -= 1;
        }
        applies
    }
}

#[derive(Default)]
struct TenantState {
    revoked: Option<Revocation>,
    roles: HashMap<String, Vec<Role>>,
    throttle: Option<(Window, u64, Vec<RetryHeader>)>,
    server_error: Option<(Window, u16)>,
    slow: Option<(Window, u64)>,
    qpu: VecDeque<(Instant, u32)>,
    arg: VecDeque<Instant>,
}

pub(crate) struct State {
    pub counts: BTreeMap<String, u64>,
    pub writes: Vec<WriteAttempt>,
    /// Mail "sent" through the Microsoft Graph `sendMail` stand-in, oldest first.
    pub mail: Vec<Value>,
    tokens: HashMap<String, TokenInfo>,
    tenants: Vec<TenantState>,
}

fn default_roles(model: &Model, t: usize) -> HashMap<String, Vec<Role>> {
    model.tenants[t]
        .subscriptions
        .iter()
        .map(|s| (s.subscription_id.to_ascii_lowercase(), vec![Role::Reader]))
        .collect()
}

impl State {
    pub fn new(model: &Model) -> State {
        State {
            counts: BTreeMap::new(),
            writes: Vec::new(),
            mail: Vec::new(),
            tokens: HashMap::new(),
            tenants: (0..model.tenants.len())
                .map(|t| TenantState {
                    roles: default_roles(model, t),
                    ..TenantState::default()
                })
                .collect(),
        }
    }

    fn count(&mut self, endpoint: &str) {
        *self.counts.entry(endpoint.to_string()).or_insert(0) += 1;
    }

    fn roles(&self, tenant: usize, sub: &str) -> Vec<Role> {
        self.tenants
            .get(tenant)
            .and_then(|t| t.roles.get(&sub.to_ascii_lowercase()))
            .cloned()
            .unwrap_or_default()
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

pub(crate) fn find_tenant(model: &Model, tenant: &str) -> Option<usize> {
    if let Ok(i) = tenant.parse::<usize>()
        && i < model.tenants.len()
    {
        return Some(i);
    }
    model.tenants.iter().position(|t| {
        t.tenant_id.eq_ignore_ascii_case(tenant) || t.domain.eq_ignore_ascii_case(tenant)
    })
}

pub(crate) fn credentials(shared: &Shared, index: usize) -> Credentials {
    let t = &shared.model.tenants[index];
    Credentials {
        tenant_id: t.tenant_id.clone(),
        domain: t.domain.clone(),
        client_id: t.client_id.clone(),
        client_secret: t.client_secret.clone(),
        principal_object_id: t.principal_object_id.clone(),
        token_url: format!("{}/{}/oauth2/v2.0/token", shared.base_url, t.tenant_id),
        scope: ARM_SCOPE.to_string(),
        subscriptions: t
            .subscriptions
            .iter()
            .map(|s| s.subscription_id.clone())
            .collect(),
    }
}

pub(crate) fn ground_truth(model: &Model) -> GroundTruth {
    GroundTruth {
        seed: model.seed,
        currency: "GBP",
        today: model.today,
        data_start: model.start,
        data_end: model.end,
        tenants: model
            .tenants
            .iter()
            .map(|t| TenantTruth {
                tenant_id: t.tenant_id.clone(),
                display_name: t.display_name.clone(),
                subscriptions: t
                    .subscriptions
                    .iter()
                    .map(|s| SubscriptionTruth {
                        subscription_id: s.subscription_id.clone(),
                        display_name: s.display_name.clone(),
                        missing_days: s.missing_days.iter().copied().collect(),
                        reservation_monthly: s
                            .reservation
                            .as_ref()
                            .map(|r| Money::from_units(r.monthly_units)),
                        resources: s.resources.len(),
                    })
                    .collect(),
                anomalies: t.anomalies.clone(),
            })
            .collect(),
    }
}

pub(crate) fn apply_fault(shared: &Shared, tenant: usize, fault: Fault) -> Result<(), SimError> {
    let model = &shared.model;
    if tenant >= model.tenants.len() {
        return Err(SimError::UnknownTenant(tenant.to_string()));
    }
    let sub_key = |s: &str| -> Result<String, SimError> {
        model.tenants[tenant]
            .subscriptions
            .iter()
            .find(|x| x.subscription_id.eq_ignore_ascii_case(s))
            .map(|x| x.subscription_id.to_ascii_lowercase())
            .ok_or_else(|| SimError::UnknownSubscription(s.to_string()))
    };
    let mut st = shared.lock();
    match fault {
        Fault::Throttle {
            endpoints,
            requests,
            seconds,
            retry_after,
            headers,
        } => {
            st.tenants[tenant].throttle = Some((
                Window::new(endpoints, requests, seconds),
                retry_after,
                headers,
            ))
        }
        Fault::ServerError {
            status,
            endpoints,
            requests,
            seconds,
        } => {
            let status = if status == 500 { 500 } else { 503 };
            st.tenants[tenant].server_error =
                Some((Window::new(endpoints, requests, seconds), status));
        }
        Fault::Slow {
            delay_ms,
            endpoints,
            requests,
            seconds,
        } => st.tenants[tenant].slow = Some((Window::new(endpoints, requests, seconds), delay_ms)),
        Fault::RevokeCredentials { reason } => {
            st.tenants[tenant].revoked = Some(reason);
            st.tokens.retain(|_, t| t.tenant != tenant);
        }
        Fault::RestoreCredentials => st.tenants[tenant].revoked = None,
        Fault::ExpireTokens => {
            let now = Instant::now();
            for t in st.tokens.values_mut().filter(|t| t.tenant == tenant) {
                t.expires_at = now;
            }
        }
        Fault::RemoveRoleAssignment { subscription } => {
            let k = sub_key(&subscription)?;
            st.tenants[tenant].roles.insert(k, Vec::new());
        }
        Fault::RestoreRoleAssignment { subscription } => {
            let k = sub_key(&subscription)?;
            st.tenants[tenant].roles.insert(k, vec![Role::Reader]);
        }
        Fault::OverPrivileged { subscription, role } => {
            let k = sub_key(&subscription)?;
            let roles = st.tenants[tenant].roles.entry(k).or_default();
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        Fault::SetRoles {
            subscription,
            roles,
        } => {
            let k = sub_key(&subscription)?;
            st.tenants[tenant].roles.insert(k, roles);
        }
        Fault::ResetQuota => {
            st.tenants[tenant].qpu.clear();
            st.tenants[tenant].arg.clear();
        }
        Fault::Clear => {
            st.tenants[tenant] = TenantState {
                roles: default_roles(model, tenant),
                ..TenantState::default()
            };
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a=b&c=d` pairs, keys lower-cased (ARM query parameter names are case-insensitive).
fn parse_pairs(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k).to_ascii_lowercase(), percent_decode(v))
        })
        .collect()
}

fn iso_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn respond(status: StatusCode, body: &Value, headers: &[(&str, String)]) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    let id = new_id();
    for (name, value) in [
        ("x-ms-request-id", &id),
        ("x-ms-correlation-request-id", &id),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(*name), HeaderValue::from_str(value)) {
            h.insert(n, v);
        }
    }
    resp
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    respond(
        status,
        &json!({"error": {"code": code, "message": message}}),
        &[],
    )
}

fn aad_error(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let trace = new_id();
    let correlation = new_id();
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
    });
    respond(status, &body, &[])
}

// ---------------------------------------------------------------------------------------------
// Routing

enum Route {
    Sim(Vec<String>),
    Token(String),
    SubscriptionList,
    Subscription(String),
    Permissions(String),
    Cost {
        sub: String,
        rg: Option<String>,
        forecast: bool,
    },
    ResourceGraph,
    Advisor(String),
    Unknown,
}

impl Route {
    fn endpoint(&self) -> &'static str {
        match self {
            Route::Sim(_) => "_sim",
            Route::Token(_) => "token",
            Route::SubscriptionList | Route::Subscription(_) => "subscriptions",
            Route::Permissions(_) => "permissions",
            Route::Cost {
                forecast: false, ..
            } => "query",
            Route::Cost { forecast: true, .. } => "forecast",
            Route::ResourceGraph => "resourcegraph",
            Route::Advisor(_) => "advisor",
            Route::Unknown => "unknown",
        }
    }

    /// The one method this route serves.
    fn method(&self) -> Option<Method> {
        match self {
            Route::Sim(_) | Route::Unknown => None,
            Route::Token(_) | Route::Cost { .. } | Route::ResourceGraph => Some(Method::POST),
            _ => Some(Method::GET),
        }
    }
}

fn classify(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let low: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = low.iter().map(String::as_str).collect();
    match l.as_slice() {
        ["_sim", ..] => Route::Sim(low.clone()),
        [_, "oauth2", "v2.0", "token"] => Route::Token(segs[0].to_string()),
        ["subscriptions"] => Route::SubscriptionList,
        ["subscriptions", _] => Route::Subscription(segs[1].to_string()),
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.authorization",
            "permissions",
        ]
        | [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.authorization",
            "permissions",
        ] => Route::Permissions(segs[1].to_string()),
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.costmanagement",
            op @ ("query" | "forecast"),
        ] => Route::Cost {
            sub: segs[1].to_string(),
            rg: None,
            forecast: *op == "forecast",
        },
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.costmanagement",
            op @ ("query" | "forecast"),
        ] => Route::Cost {
            sub: segs[1].to_string(),
            rg: Some(segs[3].to_string()),
            forecast: *op == "forecast",
        },
        ["providers", "microsoft.resourcegraph", "resources"] => Route::ResourceGraph,
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.advisor",
            "recommendations",
        ] => Route::Advisor(segs[1].to_string()),
        _ => Route::Unknown,
    }
}

async fn dispatch(
    AxState(shared): AxState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = graph_send_mail(&shared, &method, &uri, &headers, &body) {
        return response;
    }
    let route = classify(uri.path());
    let query = parse_pairs(uri.query().unwrap_or(""));
    if let Route::Sim(segs) = &route {
        return sim_control(&shared, &method, segs, &query, &body);
    }
    let endpoint = route.endpoint();
    let allowed = route.method();
    let is_read = method == Method::GET || method == Method::HEAD;
    if allowed.as_ref() != Some(&method) && !(is_read && allowed == Some(Method::GET)) {
        if is_read || method == Method::OPTIONS {
            shared.lock().count("unknown");
            return arm_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!(
                    "No HTTP resource was found that matches the request URI '{}'.",
                    uri.path()
                ),
            );
        }
        let mut st = shared.lock();
        st.count("write");
        st.writes.push(WriteAttempt {
            method: method.to_string(),
            path: uri.path().to_string(),
        });
        drop(st);
        let mut resp = arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!(
                "The simulated tenant is read-only: {method} {} was recorded as a write attempt.",
                uri.path()
            ),
        );
        if let Some(m) = allowed.and_then(|m| HeaderValue::from_str(m.as_str()).ok()) {
            resp.headers_mut().insert(axum::http::header::ALLOW, m);
        }
        return resp;
    }
    shared.lock().count(endpoint);

    if let Route::Token(tenant) = &route {
        let Some(t) = find_tenant(&shared.model, tenant) else {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
                ),
            );
        };
        if let Some(resp) = fault_gate(&shared, t, endpoint, None).await {
            return resp;
        }
        return token(&shared, t, &body);
    }

    if !query.contains_key("api-version") {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let tenant = match authenticate(&shared, &headers) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let sub_id = match &route {
        Route::Subscription(s)
        | Route::Permissions(s)
        | Route::Advisor(s)
        | Route::Cost { sub: s, .. } => Some(s.clone()),
        _ => None,
    };
    if let Some(resp) = fault_gate(&shared, tenant, endpoint, sub_id.as_deref()).await {
        return resp;
    }
    let sub = match &sub_id {
        Some(id) => match subscription_for(&shared, tenant, id) {
            Ok(s) => Some(s),
            Err(resp) => return *resp,
        },
        None => None,
    };
    match (&route, sub) {
        (Route::SubscriptionList, _) => subscription_list(&shared, tenant),
        (Route::Subscription(_), Some(sub)) => subscription_get(&shared, tenant, sub),
        (Route::Permissions(_), Some(sub)) => permissions(&shared, tenant, sub),
        (Route::Cost { rg, forecast, .. }, Some(sub)) => cost_query(
            &shared,
            tenant,
            sub,
            rg.as_deref(),
            *forecast,
            &query,
            &body,
        ),
        (Route::ResourceGraph, _) => resource_graph(&shared, tenant, &body),
        (Route::Advisor(_), Some(sub)) => advisor(&shared, tenant, sub, &query),
        _ => arm_error(StatusCode::NOT_FOUND, "NotFound", "Not found."),
    }
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<usize, Box<Response>> {
    let www = |error: &str| {
        format!(
            "Bearer authorization_uri=\"{}/common\", error=\"invalid_token\", error_description=\"{error}\"",
            shared.base_url
        )
    };
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(Box::new(respond(
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"code": "AuthenticationFailed",
                "message": "Authentication failed. The 'Authorization' header is missing."}}),
            &[(
                "www-authenticate",
                www("The authentication failed because of missing 'Authorization' header."),
            )],
        )));
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    let st = shared.lock();
    match st.tokens.get(token) {
        Some(info) if Instant::now() < info.expires_at => Ok(info.tenant),
        Some(_) => Err(Box::new(respond(
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"code": "ExpiredAuthenticationToken",
                "message": "The access token expiry UTC time is earlier than current UTC time."}}),
            &[("www-authenticate", www("The access token has expired."))],
        ))),
        None => Err(Box::new(respond(
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"code": "InvalidAuthenticationToken",
                "message": "The access token is invalid."}}),
            &[("www-authenticate", www("The access token is invalid."))],
        ))),
    }
}

fn subscription_for<'a>(
    shared: &'a Shared,
    tenant: usize,
    id: &str,
) -> Result<&'a SubModel, Box<Response>> {
    let Some(sub) = shared.model.find_subscription(id) else {
        return Err(Box::new(arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{id}' could not be found."),
        )));
    };
    if sub.tenant_index != tenant {
        let t = &shared.model.tenants[sub.tenant_index];
        return Err(Box::new(arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenTenant",
            &format!(
                "The access token is from the wrong issuer '{}/{}/'. It must match the tenant '{}/{}/' associated with this subscription. Please use the authority (URL) '{}/{}' to get the token.",
                shared.base_url,
                shared.model.tenants[tenant].tenant_id,
                shared.base_url,
                t.tenant_id,
                shared.base_url,
                t.tenant_id
            ),
        )));
    }
    Ok(sub)
}

fn authorization_failed(shared: &Shared, tenant: usize, action: &str, scope: &str) -> Response {
    let oid = &shared.model.tenants[tenant].principal_object_id;
    arm_error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        &format!(
            "The client '{oid}' with object id '{oid}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    )
}

/// Slow, 5xx and 429-storm faults. `None`: go on.
async fn fault_gate(
    shared: &Shared,
    tenant: usize,
    endpoint: &str,
    sub: Option<&str>,
) -> Option<Response> {
    let now = Instant::now();
    let (delay, error, throttle) = {
        let mut st = shared.lock();
        let ts = &mut st.tenants[tenant];
        let delay = ts
            .slow
            .as_mut()
            .and_then(|(w, ms)| w.hit(endpoint, now).then_some(*ms));
        let error = ts
            .server_error
            .as_mut()
            .and_then(|(w, status)| w.hit(endpoint, now).then_some(*status));
        let throttle = if error.is_none() {
            ts.throttle
                .as_mut()
                .and_then(|(w, secs, hs)| w.hit(endpoint, now).then(|| (*secs, hs.clone())))
        } else {
            None
        };
        (delay, error, throttle)
    };
    if let Some(ms) = delay {
        tokio::time::sleep(StdDuration::from_millis(ms)).await;
    }
    if let Some(status) = error {
        let tracking = new_id();
        return Some(if status == 500 {
            arm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                &format!(
                    "Encountered internal server error. Diagnostic information: tracking id '{tracking}'."
                ),
            )
        } else {
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": {"code": "ServiceUnavailable",
                    "message": "The service is temporarily unavailable. Please retry later."}}),
                &[("retry-after", "5".to_string())],
            )
        });
    }
    let (secs, hs) = throttle?;
    let secs_s = secs.to_string();
    Some(match endpoint {
        "query" | "forecast" => {
            let hs = if hs.is_empty() {
                vec![
                    RetryHeader::Qpu,
                    RetryHeader::Entity,
                    RetryHeader::Tenant,
                    RetryHeader::ClientType,
                    RetryHeader::RetryAfter,
                ]
            } else {
                hs
            };
            let mut headers = vec![(QPU_CONSUMED, "0".to_string())];
            for h in hs {
                let name = match h {
                    RetryHeader::Qpu => QPU_RETRY,
                    RetryHeader::Entity => ENTITY_RETRY,
                    RetryHeader::Tenant => TENANT_RETRY,
                    RetryHeader::ClientType => CLIENTTYPE_RETRY,
                    RetryHeader::RetryAfter => "retry-after",
                };
                headers.push((name, secs_s.clone()));
            }
            respond(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"error": {"code": "429", "message": "Too many requests. Please retry."}}),
                &headers,
            )
        }
        "resourcegraph" => respond(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": {"code": "RateLimiting",
                "message": format!("Please provide below info when asking for support: timestamp = {}, correlationId = {}.", iso_date(time::OffsetDateTime::now_utc().date()), new_id()),
                "details": [{"code": "RateLimiting",
                    "message": "Client application has been throttled and should not attempt to repeat the request until an amount of time has elapsed. Please see https://aka.ms/resourcegraph-throttling for help."}]}}),
            &[
                ("retry-after", secs_s.clone()),
                ("x-ms-user-quota-remaining", "0".to_string()),
                ("x-ms-user-quota-resets-after", hms(secs)),
            ],
        ),
        "token" => {
            let mut resp = aad_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                90055,
                "Too many requests: the request was throttled. Retry after the time in Retry-After.",
            );
            if let Ok(v) = HeaderValue::from_str(&secs_s) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            resp
        }
        _ => respond(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": {"code": "SubscriptionRequestsThrottled",
                "message": format!("Number of 'read' requests for subscription '{}' actor '{}' exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
                    sub.unwrap_or(""), shared.model.tenants[tenant].principal_object_id)}}),
            &[
                ("retry-after", secs_s.clone()),
                (
                    "x-ms-ratelimit-remaining-subscription-reads",
                    "0".to_string(),
                ),
            ],
        ),
    })
}

fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

fn token(shared: &Shared, t: usize, body: &[u8]) -> Response {
    let form = parse_pairs(std::str::from_utf8(body).unwrap_or(""));
    let tenant = &shared.model.tenants[t];
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
    if !client_id.eq_ignore_ascii_case(&tenant.client_id) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                tenant.display_name
            ),
        );
    }
    let Some(secret) = form.get("client_secret") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    let revoked = shared.lock().tenants[t].revoked;
    if revoked == Some(Revocation::SecretExpired) && secret == &tenant.client_secret {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            &format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
            ),
        );
    }
    if secret != &tenant.client_secret || revoked.is_some() {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    let scope = form.get("scope").map(String::as_str).unwrap_or("");
    let base = shared.base_url.trim_end_matches('/');
    let valid_scopes = [
        ARM_SCOPE.to_string(),
        "https://management.core.windows.net//.default".to_string(),
        "https://management.core.windows.net/.default".to_string(),
        "https://management.azure.com//.default".to_string(),
        format!("{base}/.default"),
        format!("{base}//.default"),
    ];
    if !valid_scopes.iter().any(|s| s.eq_ignore_ascii_case(scope)) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        );
    }
    let access_token = format!(
        "sim.{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let lifetime = shared.config.token_lifetime_secs;
    shared.lock().tokens.insert(
        access_token.clone(),
        TokenInfo {
            tenant: t,
            expires_at: Instant::now() + StdDuration::from_secs(lifetime),
        },
    );
    respond(
        StatusCode::OK,
        &json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": access_token}),
        &[],
    )
}

// ---------------------------------------------------------------------------------------------
// Subscriptions and permissions

fn subscription_json(shared: &Shared, sub: &SubModel) -> Value {
    json!({
        "authorizationSource": "RoleBased",
        "displayName": sub.display_name,
        "id": format!("/subscriptions/{}", sub.subscription_id),
        "managedByTenants": [],
        "state": "Enabled",
        "subscriptionId": sub.subscription_id,
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"
        },
        "tags": {"costCenter": format!("CC-{}", 1001 + sub.index)},
        "tenantId": shared.model.tenants[sub.tenant_index].tenant_id,
    })
}

fn subscription_list(shared: &Shared, tenant: usize) -> Response {
    let st = shared.lock();
    let value: Vec<Value> = shared.model.tenants[tenant]
        .subscriptions
        .iter()
        .filter(|s| !st.roles(tenant, &s.subscription_id).is_empty())
        .map(|s| subscription_json(shared, s))
        .collect();
    drop(st);
    respond(StatusCode::OK, &json!({ "value": value }), &[])
}

fn subscription_get(shared: &Shared, tenant: usize, sub: &SubModel) -> Response {
    if shared.lock().roles(tenant, &sub.subscription_id).is_empty() {
        return authorization_failed(
            shared,
            tenant,
            "Microsoft.Resources/subscriptions/read",
            &format!("/subscriptions/{}", sub.subscription_id),
        );
    }
    respond(StatusCode::OK, &subscription_json(shared, sub), &[])
}

fn role_permissions(role: Role) -> Value {
    let (actions, not_actions): (Vec<&str>, Vec<&str>) = match role {
        Role::Reader => (vec!["*/read"], vec![]),
        Role::CostManagementReader => (
            vec![
                "Microsoft.Consumption/*/read",
                "Microsoft.CostManagement/*/read",
                "Microsoft.Billing/billingPeriods/read",
                "Microsoft.Resources/subscriptions/read",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Support/*",
                "Microsoft.Advisor/configurations/read",
                "Microsoft.Advisor/recommendations/read",
                "Microsoft.Management/managementGroups/read",
                "Microsoft.Billing/billingProperty/read",
            ],
            vec![],
        ),
        Role::Contributor => (
            vec!["*"],
            vec![
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
            ],
        ),
        Role::Owner => (vec!["*"], vec![]),
        Role::ResourceWriter => (vec!["*/read", "Microsoft.Resources/*/write"], vec![]),
    };
    json!({"actions": actions, "notActions": not_actions, "dataActions": [], "notDataActions": []})
}

fn permissions(shared: &Shared, tenant: usize, sub: &SubModel) -> Response {
    let roles = shared.lock().roles(tenant, &sub.subscription_id);
    let value: Vec<Value> = roles.into_iter().map(role_permissions).collect();
    respond(StatusCode::OK, &json!({ "value": value }), &[])
}

// ---------------------------------------------------------------------------------------------
// Cost Management

fn qpu_remaining(quota: QpuQuota, used: [u32; 3]) -> String {
    format!(
        "QueriesPerHour:{},QueriesPerMin:{},QueriesPer10Sec:{}",
        quota.per_hour.saturating_sub(used[2]),
        quota.per_minute.saturating_sub(used[1]),
        quota.per_10_seconds.saturating_sub(used[0])
    )
}

/// Charges `cost` QPU if every window has room (a window with nothing in it always admits one query,
/// however many months it spans). Returns the QPU used per window, or the seconds to wait.
fn charge_qpu(
    log: &mut VecDeque<(Instant, u32)>,
    quota: QpuQuota,
    now: Instant,
    cost: u32,
) -> Result<[u32; 3], u64> {
    let windows = [
        (StdDuration::from_secs(10), quota.per_10_seconds),
        (StdDuration::from_secs(60), quota.per_minute),
        (StdDuration::from_secs(3600), quota.per_hour),
    ];
    while log
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) >= windows[2].0)
    {
        log.pop_front();
    }
    let mut used = [0u32; 3];
    let mut wait = StdDuration::ZERO;
    for (i, (len, limit)) in windows.iter().enumerate() {
        let in_window: Vec<&(Instant, u32)> = log
            .iter()
            .filter(|(t, _)| now.duration_since(*t) < *len)
            .collect();
        let u: u32 = in_window.iter().map(|(_, q)| *q).sum();
        used[i] = u;
        if u > 0 && u + cost > *limit {
            let mut freed = 0;
            for (t, q) in &in_window {
                freed += *q;
                if u - freed + cost <= *limit || freed == u {
                    wait = wait.max((*len).saturating_sub(now.duration_since(*t)));
                    break;
                }
            }
        }
    }
    if wait > StdDuration::ZERO {
        return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
    }
    log.push_back((now, cost));
    Ok(used.map(|u| u + cost))
}

fn decode_token(s: &str) -> Option<(Vec<u64>, u64)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts: Vec<&str> = text.split('.').collect();
    let hash = u64::from_str_radix(parts.pop()?, 16).ok()?;
    let nums = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some((nums, hash))
}

fn encode_token(nums: &[u64], hash: u64) -> String {
    let mut s: String = nums.iter().map(|n| format!("{n}.")).collect();
    s.push_str(&format!("{hash:016x}"));
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn skiptoken(query: &HashMap<String, String>) -> Option<&String> {
    query.get("$skiptoken")
}

#[allow(clippy::too_many_arguments)]
fn cost_query(
    shared: &Shared,
    tenant: usize,
    sub: &SubModel,
    rg: Option<&str>,
    forecast: bool,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    let scope = format!("/subscriptions/{}", sub.subscription_id);
    let roles = shared.lock().roles(tenant, &sub.subscription_id);
    if !roles.iter().any(|r| r.reads_costs()) {
        let action = if forecast {
            "Microsoft.CostManagement/forecast/action"
        } else {
            "Microsoft.CostManagement/query/action"
        };
        return authorization_failed(shared, tenant, action, &scope);
    }
    let bad = |msg: &str| arm_error(StatusCode::BAD_REQUEST, "BadRequest", msg);
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return bad("Invalid query definition, Dataset is invalid or not supplied");
    };
    let mut spec = match cost::parse(&value, shared.model.today, forecast) {
        Ok(s) => s,
        Err(msg) => return bad(&msg),
    };
    if let Some(rg) = rg {
        if !sub
            .resource_groups
            .iter()
            .any(|g| g.eq_ignore_ascii_case(rg))
        {
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                &format!("Resource group '{rg}' could not be found."),
            );
        }
        spec.resource_group = Some(rg.to_string());
    }
    let hash = rng::fnv1a(value.to_string().as_bytes()) ^ u64::from(forecast);
    let cursor = match skiptoken(query) {
        None => Cursor::default(),
        Some(tok) => match decode_token(tok) {
            Some((nums, h)) if h == hash && nums.len() == 2 => Cursor {
                bucket: nums[0] as usize,
                offset: nums[1] as usize,
            },
            _ => {
                return bad(
                    "Invalid query definition: the $skiptoken does not belong to this query definition.",
                );
            }
        },
    };
    let qpu = cost::months_touched(&spec);
    let now = Instant::now();
    let quota = shared.config.quota;
    let remaining = match quota {
        Some(q) => {
            let mut st = shared.lock();
            match charge_qpu(&mut st.tenants[tenant].qpu, q, now, qpu) {
                Ok(used) => qpu_remaining(q, used),
                Err(wait) => {
                    let used = {
                        let log = &st.tenants[tenant].qpu;
                        let sum = |secs: u64| {
                            log.iter()
                                .filter(|(t, _)| {
                                    now.duration_since(*t) < StdDuration::from_secs(secs)
                                })
                                .map(|(_, q)| *q)
                                .sum::<u32>()
                        };
                        [sum(10), sum(60), sum(3600)]
                    };
                    drop(st);
                    let w = wait.to_string();
                    return respond(
                        StatusCode::TOO_MANY_REQUESTS,
                        &json!({"error": {"code": "429", "message": "Too many requests. Please retry."}}),
                        &[
                            (QPU_CONSUMED, "0".to_string()),
                            (QPU_REMAINING, qpu_remaining(q, used)),
                            (QPU_RETRY, w.clone()),
                            (ENTITY_RETRY, w.clone()),
                            (TENANT_RETRY, w.clone()),
                            (CLIENTTYPE_RETRY, w),
                        ],
                    );
                }
            }
        }
        None => qpu_remaining(QpuQuota::default(), [0; 3]),
    };
    let size = query
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(shared.config.cost_page_size);
    let (rows, next) = cost::page(sub, &spec, cursor, size);
    let op = if forecast { "forecast" } else { "Query" };
    let rg_path = rg
        .map(|g| format!("/resourceGroups/{g}"))
        .unwrap_or_default();
    let next_link = next.map(|c| {
        let mut link = format!(
            "{}/subscriptions/{}{rg_path}/providers/Microsoft.CostManagement/{op}?api-version=2021-10-01&$skiptoken={}",
            shared.base_url,
            sub.subscription_id,
            percent_encode(&encode_token(&[c.bucket as u64, c.offset as u64], hash))
        );
        if let Some(top) = query.get("$top") {
            link.push_str(&format!("&$top={}", percent_encode(top)));
        }
        link
    });
    let name = new_id();
    let (id_op, ty) = if forecast {
        ("query", "Microsoft.CostManagement/query")
    } else {
        ("Query", "microsoft.costmanagement/Query")
    };
    let body = json!({
        "id": format!("subscriptions/{}{rg_path}/providers/Microsoft.CostManagement/{id_op}/{name}", sub.subscription_id),
        "name": name,
        "type": ty,
        "properties": {
            "nextLink": next_link,
            "columns": cost::columns(&spec),
            "rows": rows,
        }
    });
    respond(
        StatusCode::OK,
        &body,
        &[(QPU_CONSUMED, qpu.to_string()), (QPU_REMAINING, remaining)],
    )
}

// ---------------------------------------------------------------------------------------------
// Resource Graph

/// Quoted literals following `keyword` in each `| where` clause of a KQL query (lower-cased), e.g.
/// `subscriptionId == 'x'` or `subscriptionId in~ ('x', 'y')`. `None`: the keyword is not filtered on.
fn kql_filter(query: &str, keyword: &str) -> Option<Vec<String>> {
    let q = query.to_ascii_lowercase();
    let mut found: Option<Vec<String>> = None;
    for clause in q.split('|') {
        let clause = clause.trim();
        if !clause.starts_with("where") {
            continue;
        }
        let mut rest = clause;
        while let Some(pos) = rest.find(keyword) {
            let after = &rest[pos + keyword.len()..];
            let trimmed = after.trim_start();
            let is_op = ["==", "=~", "in~", "in "]
                .iter()
                .any(|op| trimmed.starts_with(op));
            if is_op {
                // Literals up to the next `and`/`or`/end of clause.
                let end = [" and ", " or "]
                    .iter()
                    .filter_map(|s| trimmed.find(s))
                    .min()
                    .unwrap_or(trimmed.len());
                let part = &trimmed[..end];
                let mut lits = Vec::new();
                let mut chars = part.char_indices().peekable();
                while let Some((i, c)) = chars.next() {
                    if (c == '\'' || c == '"')
                        && let Some(j) = part[i + 1..].find(c)
                    {
                        lits.push(part[i + 1..i + 1 + j].to_string());
                        while chars.peek().is_some_and(|(k, _)| *k <= i + 1 + j) {
                            chars.next();
                        }
                    }
                }
                found.get_or_insert_with(Vec::new).extend(lits);
            }
            rest = after;
        }
    }
    found
}

/// Columns of a simple `| project a, b, c` (only when every name is a plain top-level key, or
/// `powerState` as Sixpence's inventory query extends it from `properties`).
fn kql_project(query: &str) -> Option<Vec<String>> {
    const KEYS: &[&str] = &[
        "powerState",
        "id",
        "name",
        "type",
        "tenantId",
        "kind",
        "location",
        "resourceGroup",
        "subscriptionId",
        "managedBy",
        "sku",
        "plan",
        "properties",
        "tags",
        "identity",
        "zones",
        "extendedLocation",
    ];
    let clause = query
        .split('|')
        .map(str::trim)
        .find(|c| c.to_ascii_lowercase().starts_with("project "))?;
    let cols: Vec<String> = clause[8..]
        .split(',')
        .map(|c| c.trim().to_string())
        .collect();
    cols.iter()
        .map(|c| {
            KEYS.iter()
                .find(|k| k.eq_ignore_ascii_case(c))
                .map(|k| (*k).to_string())
        })
        .collect()
}

fn resource_json(shared: &Shared, sub: &SubModel, r: &Resource) -> Value {
    let is_vm = r.kind.provider_type == model::VM.provider_type;
    let mut properties = json!({"provisioningState": "Succeeded"});
    if is_vm {
        let (code, display) = if r.deallocated_since.is_some() {
            ("PowerState/deallocated", "VM deallocated")
        } else {
            ("PowerState/running", "VM running")
        };
        let mut rng =
            rng::Rng::derive(shared.model.seed, &[0x1D, sub.tenant_key(), r.index as u64]);
        properties = json!({
            "vmId": rng.uuid(),
            "hardwareProfile": {"vmSize": r.sku.0},
            "storageProfile": {"osDisk": {"osType": "Linux", "name": format!("{}_OsDisk_1", r.name)}},
            "provisioningState": "Succeeded",
            "extended": {"instanceView": {"powerState": {"code": code, "displayStatus": display, "level": "Info"}}}
        });
    } else if r.kind.prefix == "st" {
        properties = json!({"provisioningState": "Succeeded", "accessTier": "Hot"});
    }
    let tags: serde_json::Map<String, Value> = r
        .tags
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
        .collect();
    json!({
        "id": r.id,
        "name": r.name,
        "type": r.kind.provider_type.to_ascii_lowercase(),
        "tenantId": shared.model.tenants[sub.tenant_index].tenant_id,
        "kind": if r.kind.prefix == "st" { "StorageV2" } else { "" },
        "location": r.location,
        "resourceGroup": r.resource_group.to_ascii_lowercase(),
        "subscriptionId": sub.subscription_id,
        "managedBy": "",
        "sku": if is_vm { Value::Null } else { json!({"name": r.sku.0, "tier": r.sku.1}) },
        "plan": null,
        "properties": properties,
        "tags": tags,
        "identity": null,
        "zones": null,
        "extendedLocation": null,
    })
}

fn resource_graph(shared: &Shared, tenant: usize, body: &[u8]) -> Response {
    let bad = |msg: &str| {
        respond(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"code": "BadRequest", "message": "Please provide below info when asking for support: timestamp, correlationId.",
                "details": [{"code": "InvalidQuery", "message": msg}]}}),
            &[],
        )
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return bad("The request content was invalid and could not be deserialized.");
    };
    let Some(kql) = req.get("query").and_then(Value::as_str) else {
        return bad(
            "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying.",
        );
    };
    let requested: Option<Vec<String>> =
        req.get("subscriptions").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_ascii_lowercase))
                .collect()
        });
    let opts = req.get("options").cloned().unwrap_or(Value::Null);
    let top = opts
        .get("$top")
        .and_then(Value::as_u64)
        .map(|t| t.clamp(1, 1000) as usize)
        .unwrap_or(shared.config.resource_graph_default_top.clamp(1, 1000));
    let skip = opts.get("$skip").and_then(Value::as_u64).unwrap_or(0) as usize;
    let table = opts
        .get("resultFormat")
        .and_then(Value::as_str)
        .is_some_and(|f| f.eq_ignore_ascii_case("table"));
    let fingerprint = rng::fnv1a(format!("{requested:?}|{kql}").as_bytes());
    let offset = match opts.get("$skipToken").and_then(Value::as_str) {
        None => skip,
        Some(tok) => match decode_token(tok) {
            Some((nums, h)) if h == fingerprint && nums.len() == 1 => nums[0] as usize,
            _ => return bad("The $skipToken is invalid for this query."),
        },
    };

    // Quota: per principal, a window of 5 s.
    let now = Instant::now();
    let quota_headers = match shared.config.resource_graph_quota {
        Some(limit) => {
            let mut st = shared.lock();
            let log = &mut st.tenants[tenant].arg;
            while log
                .front()
                .is_some_and(|t| now.duration_since(*t) >= StdDuration::from_secs(5))
            {
                log.pop_front();
            }
            let resets = log
                .front()
                .map(|t| StdDuration::from_secs(5).saturating_sub(now.duration_since(*t)))
                .unwrap_or(StdDuration::from_secs(5));
            let resets_secs = resets.as_secs() + u64::from(resets.subsec_nanos() > 0);
            if log.len() as u32 >= limit {
                drop(st);
                return respond(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({"error": {"code": "RateLimiting", "message": "Please provide below info when asking for support: timestamp, correlationId.",
                        "details": [{"code": "RateLimiting", "message": "Client application has been throttled and should not attempt to repeat the request until an amount of time has elapsed. Please see https://aka.ms/resourcegraph-throttling for help."}]}}),
                    &[
                        ("retry-after", resets_secs.to_string()),
                        ("x-ms-user-quota-remaining", "0".to_string()),
                        ("x-ms-user-quota-resets-after", hms(resets_secs)),
                    ],
                );
            }
            log.push_back(now);
            vec![
                (
                    "x-ms-user-quota-remaining",
                    (limit - log.len() as u32).to_string(),
                ),
                ("x-ms-user-quota-resets-after", hms(resets_secs.max(1))),
            ]
        }
        None => Vec::new(),
    };

    let kql_subs = kql_filter(kql, "subscriptionid");
    let kql_types = kql_filter(kql, "type");
    let st = shared.lock();
    let visible: Vec<&SubModel> = shared.model.tenants[tenant]
        .subscriptions
        .iter()
        .filter(|s| {
            let id = s.subscription_id.to_ascii_lowercase();
            requested.as_ref().is_none_or(|r| r.contains(&id))
                && kql_subs.as_ref().is_none_or(|k| k.contains(&id))
                && st
                    .roles(tenant, &s.subscription_id)
                    .iter()
                    .any(|r| r.reads_resources())
        })
        .collect();
    drop(st);
    let today = shared.model.today;
    let mut all: Vec<(&SubModel, &Resource)> = visible
        .iter()
        .flat_map(|s| s.resources.iter().map(move |r| (*s, r)))
        .filter(|(_, r)| r.exists_at(today))
        .filter(|(_, r)| {
            kql_types
                .as_ref()
                .is_none_or(|t| t.contains(&r.kind.provider_type.to_ascii_lowercase()))
        })
        .collect();
    all.sort_by(|a, b| {
        a.1.id
            .to_ascii_lowercase()
            .cmp(&b.1.id.to_ascii_lowercase())
    });
    let total = all.len();
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(top)
        .map(|(s, r)| resource_json(shared, s, r))
        .collect();
    let project = kql_project(kql);
    let page: Vec<Value> = match &project {
        Some(cols) => page
            .into_iter()
            .map(|row| {
                Value::Object(
                    cols.iter()
                        .map(|c| {
                            // `extend powerState = tostring(properties.extended.instanceView.powerState.code)`:
                            // `tostring` of a missing value is "".
                            let value = if c == "powerState" {
                                json!(
                                    row.pointer(
                                        "/properties/extended/instanceView/powerState/code"
                                    )
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                )
                            } else {
                                row.get(c).cloned().unwrap_or(Value::Null)
                            };
                            (c.clone(), value)
                        })
                        .collect(),
                )
            })
            .collect(),
        None => page,
    };
    let count = page.len();
    let data = if table {
        let cols: Vec<String> = match &project {
            Some(c) => c.clone(),
            None => page
                .first()
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
        };
        let col_type = |v: &Value| match v {
            Value::Object(_) | Value::Array(_) | Value::Null => "object",
            Value::Number(_) => "integer",
            Value::Bool(_) => "boolean",
            Value::String(_) => "string",
        };
        let first = page.first();
        json!({
            "columns": cols.iter().map(|c| json!({"name": c, "type": first.and_then(|r| r.get(c)).map_or("string", col_type)})).collect::<Vec<_>>(),
            "rows": page.iter().map(|r| cols.iter().map(|c| r.get(c).cloned().unwrap_or(Value::Null)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        })
    } else {
        Value::Array(page)
    };
    let mut body = json!({
        "totalRecords": total,
        "count": count,
        "resultTruncated": "false",
        "facets": [],
        "data": data,
    });
    if offset + count < total {
        body["$skipToken"] = json!(encode_token(&[(offset + count) as u64], fingerprint));
    }
    respond(StatusCode::OK, &body, &quota_headers)
}

// ---------------------------------------------------------------------------------------------
// Advisor

fn gbp_string(units: i64) -> String {
    let s = format!(
        "{}.{:04}",
        units / UNITS_PER_GBP,
        (units % UNITS_PER_GBP).abs()
    );
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn recommendations(shared: &Shared, sub: &SubModel) -> Vec<Value> {
    let model = &shared.model;
    let last_updated = format!("{}T03:12:44.4273513Z", iso_date(model.today));
    let mut out = Vec::new();
    let mut rec = |resource_id: &str,
                   name_key: u64,
                   category: &str,
                   impact: &str,
                   impacted_field: &str,
                   impacted_value: &str,
                   problem: &str,
                   type_id: &str,
                   extended: Value,
                   singular: &str,
                   plural: &str| {
        let mut r = rng::Rng::derive(model.seed, &[0xAD, sub.tenant_key(), name_key]);
        let name = r.uuid();
        out.push(json!({
            "id": format!("{resource_id}/providers/Microsoft.Advisor/recommendations/{name}"),
            "name": name,
            "type": "Microsoft.Advisor/recommendations",
            "properties": {
                "category": category,
                "impact": impact,
                "impactedField": impacted_field,
                "impactedValue": impacted_value,
                "lastUpdated": last_updated,
                "risk": "Warning",
                "recommendationTypeId": type_id,
                "shortDescription": {"problem": problem, "solution": problem},
                "extendedProperties": extended,
                "suppressionIds": [],
                "resourceMetadata": {
                    "resourceId": resource_id,
                    "source": resource_id,
                    "singular": singular,
                    "plural": plural,
                },
                "actions": [],
                "remediation": {},
                "description": problem,
                "label": problem,
                "learnMoreLink": "https://aka.ms/azure-advisor",
                "potentialBenefits": if category == "Cost" { "Reduce costs" } else { "Improve reliability and security" },
            }
        }));
    };
    let sub_scope = format!("/subscriptions/{}", sub.subscription_id);
    for r in sub.resources.iter().filter(|r| r.exists_at(model.today)) {
        let is_vm = r.kind.provider_type == model::VM.provider_type;
        let pick = rng::unit(model.seed, &[0xADD, sub.tenant_key(), r.index as u64]);
        if is_vm && r.deallocated_since.is_none() && pick < 0.3 {
            let monthly = (r.base_daily * 30.0 * 0.5).round() as i64;
            rec(
                &r.id,
                r.index as u64,
                "Cost",
                "High",
                "Microsoft.Compute/virtualMachines",
                &r.name,
                "Right-size or shutdown underutilized virtual machines",
                "e10b1381-5f0a-47ff-8c7b-37bd13d7c974",
                json!({
                    "currentSku": r.sku.0,
                    "targetSku": "Standard_D2s_v5",
                    "recommendationType": "SkuChange",
                    "regionId": r.location,
                    "subscriptionId": sub.subscription_id,
                    "MaxCpuP95": "4",
                    "savingsAmount": gbp_string(monthly),
                    "annualSavingsAmount": gbp_string(monthly * 12),
                    "savingsCurrency": "GBP",
                }),
                "Virtual machine",
                "Virtual machines",
            );
        } else if r.kind.prefix == "st" && pick < 0.4 {
            rec(
                &r.id,
                r.index as u64,
                "HighAvailability",
                "Medium",
                "Microsoft.Storage/storageAccounts",
                &r.name,
                "Enable Soft Delete to protect your blob data",
                "bd3d3e04-4a2b-4e6e-9c0f-1f4f2b0d5a51",
                json!({}),
                "Storage account",
                "Storage accounts",
            );
        } else if r.kind.prefix == "sqldb" && pick < 0.5 {
            rec(
                &r.id,
                r.index as u64,
                "Performance",
                "Low",
                "Microsoft.Sql/servers/databases",
                &r.name,
                "Create the recommended indexes on your database",
                "a3b2a9f0-6b5e-4f70-9b1d-6a5c3f1e2d44",
                json!({}),
                "SQL database",
                "SQL databases",
            );
        }
    }
    if let Some(res) = &sub.reservation {
        let monthly = res.monthly_units / 5;
        rec(
            &sub_scope,
            0xFFFF_0001,
            "Cost",
            "Medium",
            "Microsoft.Subscriptions/subscriptions",
            &sub.subscription_id,
            "Buy virtual machine reserved instances to save money over pay-as-you-go costs",
            "84b1a508-fc21-49da-979e-96894f1665df",
            json!({
                "displayQty": "2",
                "displaySKU": "Standard_D4s_v5",
                "term": "P1Y",
                "scope": "Single",
                "lookbackPeriod": "30",
                "region": "uksouth",
                "vmSize": "Standard_D4s_v5",
                "subId": sub.subscription_id,
                "savingsAmount": gbp_string(monthly),
                "annualSavingsAmount": gbp_string(monthly * 12),
                "savingsCurrency": "GBP",
            }),
            "Subscription",
            "Subscriptions",
        );
    }
    rec(
        &sub_scope,
        0xFFFF_0002,
        "Security",
        "Medium",
        "Microsoft.Subscriptions/subscriptions",
        &sub.subscription_id,
        "Enable Microsoft Defender for Cloud on your subscription",
        "2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        json!({}),
        "Subscription",
        "Subscriptions",
    );
    rec(
        &sub_scope,
        0xFFFF_0003,
        "OperationalExcellence",
        "Low",
        "Microsoft.Subscriptions/subscriptions",
        &sub.subscription_id,
        "Create an Azure Service Health alert",
        "3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b",
        json!({}),
        "Subscription",
        "Subscriptions",
    );
    out
}

fn advisor(
    shared: &Shared,
    tenant: usize,
    sub: &SubModel,
    query: &HashMap<String, String>,
) -> Response {
    let roles = shared.lock().roles(tenant, &sub.subscription_id);
    if !roles.iter().any(|r| r.reads_costs()) {
        return authorization_failed(
            shared,
            tenant,
            "Microsoft.Advisor/recommendations/read",
            &format!("/subscriptions/{}", sub.subscription_id),
        );
    }
    let mut recs = recommendations(shared, sub);
    if let Some(filter) = query.get("$filter") {
        let wanted = |key: &str| -> Option<String> {
            let f = filter.to_ascii_lowercase();
            let pos = f.find(&format!("{key} eq '"))?;
            let rest = &filter[pos + key.len() + 5..];
            rest.find('\'').map(|end| rest[..end].to_string())
        };
        if let Some(cat) = wanted("category") {
            recs.retain(|r| {
                r["properties"]["category"]
                    .as_str()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&cat))
            });
        }
        if let Some(rg) = wanted("resourcegroup") {
            let needle = format!("/resourcegroups/{}/", rg.to_ascii_lowercase());
            recs.retain(|r| {
                r["properties"]["resourceMetadata"]["resourceId"]
                    .as_str()
                    .is_some_and(|id| id.to_ascii_lowercase().contains(&needle))
            });
        }
    }
    let size = query
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(shared.config.advisor_page_size);
    let fingerprint = rng::fnv1a(query.get("$filter").map_or("", String::as_str).as_bytes());
    let offset = match skiptoken(query) {
        None => 0,
        Some(tok) => match decode_token(tok) {
            Some((nums, h)) if h == fingerprint && nums.len() == 1 => nums[0] as usize,
            _ => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "The $skiptoken is invalid.",
                );
            }
        },
    };
    let total = recs.len();
    let value: Vec<Value> = recs.into_iter().skip(offset).take(size).collect();
    let mut body = json!({ "value": value });
    if offset + size < total {
        let mut link = format!(
            "{}/subscriptions/{}/providers/Microsoft.Advisor/recommendations?api-version=2023-01-01&$top={size}&$skiptoken={}",
            shared.base_url,
            sub.subscription_id,
            percent_encode(&encode_token(&[(offset + size) as u64], fingerprint))
        );
        if let Some(f) = query.get("$filter") {
            link.push_str(&format!("&$filter={}", percent_encode(f)));
        }
        body["nextLink"] = json!(link);
    }
    respond(StatusCode::OK, &body, &[])
}

// ---------------------------------------------------------------------------------------------
// Microsoft Graph `sendMail` in its MIME form (`POST /v1.0/users/{sender}/sendMail`,
// `Content-Type: text/plain`, the RFC 5322 message base64-encoded; `202 Accepted`), so the local
// run's email goes somewhere a developer can read it: `GET /_sim/mail`. Any bearer token is taken
// (there is no Graph tenant to check it against); nothing is delivered anywhere.

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    respond(
        status,
        &json!({"error": {"code": code, "message": message}}),
        &[],
    )
}

fn graph_send_mail(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let segs: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let ["v1.0", "users", sender, last] = segs.as_slice() else {
        return None;
    };
    if !last.eq_ignore_ascii_case("sendMail") {
        return None;
    }
    if method != Method::POST {
        return Some(graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "sendMail takes POST.",
        ));
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty());
    if bearer.is_none() {
        return Some(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/plain") {
        return Some(graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "The simulated Graph takes only the MIME form (Content-Type: text/plain).",
        ));
    }
    let text: String = String::from_utf8_lossy(body).split_whitespace().collect();
    let Ok(mime) = base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) else {
        return Some(graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        ));
    };
    let mime = String::from_utf8_lossy(&mime).into_owned();
    let header = |name: &str| {
        mime.lines()
            .take_while(|l| !l.trim().is_empty())
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let entry = json!({
        "sender": sender,
        "receivedAt": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "to": header("To"),
        "subject": header("Subject"),
        "mime": mime,
    });
    shared.lock().mail.push(entry);
    Some(StatusCode::ACCEPTED.into_response())
}

// ---------------------------------------------------------------------------------------------
// Control endpoints (`/_sim/...`): not part of Azure, not counted.

fn sim_control(
    shared: &Shared,
    method: &Method,
    segs: &[String],
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method.as_str(), &segs[1..]) {
        ("GET", ["ground-truth"]) => match serde_json::to_value(ground_truth(&shared.model)) {
            Ok(v) => respond(StatusCode::OK, &v, &[]),
            Err(e) => arm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SimError",
                &e.to_string(),
            ),
        },
        ("GET", ["ground-truth", "cost"]) => ground_truth_cost(shared, query),
        ("GET", ["credentials"]) => {
            let creds: Vec<Credentials> = (0..shared.model.tenants.len())
                .map(|i| credentials(shared, i))
                .collect();
            respond(StatusCode::OK, &json!(creds), &[])
        }
        ("GET", ["mail"]) => {
            let mail = shared.lock().mail.clone();
            respond(StatusCode::OK, &json!({"value": mail}), &[])
        }
        ("GET", ["requests"]) => {
            let st = shared.lock();
            let body = json!({"counts": st.counts, "writeAttempts": st.writes});
            drop(st);
            respond(StatusCode::OK, &body, &[])
        }
        ("POST", ["faults"]) => {
            #[derive(serde::Deserialize)]
            struct Req {
                #[serde(default)]
                tenant: Option<String>,
                #[serde(flatten)]
                fault: Fault,
            }
            let req: Req = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => {
                    return arm_error(StatusCode::BAD_REQUEST, "InvalidFault", &e.to_string());
                }
            };
            let t = match req.tenant.as_deref() {
                None => Some(0),
                Some(t) => find_tenant(&shared.model, t),
            };
            let Some(t) = t else {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "UnknownTenant",
                    "No such simulated tenant.",
                );
            };
            match apply_fault(shared, t, req.fault) {
                Ok(()) => respond(StatusCode::OK, &json!({"applied": true, "tenant": t}), &[]),
                Err(e) => arm_error(StatusCode::NOT_FOUND, "UnknownSubscription", &e.to_string()),
            }
        }
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Unknown simulator control endpoint.",
        ),
    }
}

fn ground_truth_cost(shared: &Shared, query: &HashMap<String, String>) -> Response {
    let bad = |m: &str| arm_error(StatusCode::BAD_REQUEST, "BadRequest", m);
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let Some(sub) = query
        .get("subscription")
        .and_then(|s| shared.model.find_subscription(s))
    else {
        return bad("subscription is missing or unknown");
    };
    let date = |k: &str| query.get(k).and_then(|d| time::Date::parse(d, &fmt).ok());
    let (Some(from), Some(to)) = (date("from"), date("to")) else {
        return bad("from and to (yyyy-mm-dd) are required");
    };
    let metric = match query.get("metric").map(String::as_str) {
        None | Some("ActualCost") => Metric::ActualCost,
        Some("AmortizedCost") => Metric::AmortizedCost,
        Some(_) => return bad("metric is ActualCost or AmortizedCost"),
    };
    let total = Money::from_units(sub.total(from, to, metric));
    let mut body =
        json!({"units": total.units(), "gbp": gbp_string(total.units()), "pence": total.pence()});
    if let Some(dim) = query.get("dimension") {
        match cost::totals_by(sub, from, to, metric, dim) {
            Some(map) => body["by"] = json!(map),
            None => return bad("unknown dimension"),
        }
    }
    respond(StatusCode::OK, &body, &[])
}
