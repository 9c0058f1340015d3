//! The public HTTP side: HTTP functions under the route prefix, and the admin API.
//!
//! With `enableForwardingHttpRequest` a pure HTTP function (one `httpTrigger` in, one `http` out) is
//! forwarded as the same method, path and query, headers and body, and the handler's response is
//! copied back without following redirects (functions-host.md §1.5). Any other HTTP function gets the
//! JSON envelope at `POST /{name}` and its `res` output becomes the response. Routes are matched as
//! ASP.NET route templates: literal segments (case-insensitive), `{name}`, `{name?}` and `{*rest}`;
//! a path that no route of the right method matches is a 404, as on the host.

use std::fmt;
use std::sync::Arc;

use anyhow::bail;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use uuid::Uuid;

use crate::Host;
use crate::payload::{self, invocation_headers};
use crate::spec::{FunctionSpec, OutputBinding, Trigger};
use crate::{queues, timers};

/// The host's default request body limit (`FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`, 100 MB).
const MAX_BODY: usize = 104_857_600;

/// One segment of a route template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param { name: String, optional: bool },
    CatchAll { name: String },
}

/// A parsed route template such as `v1/{*path}` or `orders/{id?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    segments: Vec<Segment>,
}

impl RouteTemplate {
    pub fn parse(template: &str) -> anyhow::Result<Self> {
        let mut segments = Vec::new();
        let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        for (index, part) in parts.iter().enumerate() {
            let segment = if let Some(inner) =
                part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
            {
                let (catch_all, inner) =
                    match inner.strip_prefix("**").or_else(|| inner.strip_prefix('*')) {
                        Some(rest) => (true, rest),
                        None => (false, inner),
                    };
                let optional = inner.ends_with('?');
                let inner = inner.trim_end_matches('?');
                // Constraints (`{id:int}`) and defaults (`{x=1}`) are accepted but not enforced.
                let name = inner
                    .split([':', '='])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if name.is_empty() {
                    bail!("route `{template}` has an unnamed parameter");
                }
                if catch_all {
                    if index + 1 != parts.len() {
                        bail!("route `{template}`: a catch-all parameter must be the last segment");
                    }
                    Segment::CatchAll { name }
                } else {
                    Segment::Param { name, optional }
                }
            } else if part.contains(['{', '}']) {
                bail!("route `{template}`: segments mixing text and parameters are not supported");
            } else {
                Segment::Literal((*part).to_owned())
            };
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    /// This template under `prefix` (which may be empty).
    pub fn under(&self, prefix: &str) -> Self {
        let mut segments: Vec<Segment> = prefix
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| Segment::Literal(s.to_owned()))
            .collect();
        segments.extend(self.segments.iter().cloned());
        Self { segments }
    }

    /// Matches a request path; returns the route parameters.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut params = Vec::new();
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(text) => {
                    if !parts.get(index)?.eq_ignore_ascii_case(text) {
                        return None;
                    }
                }
                Segment::Param { name, optional } => match parts.get(index) {
                    Some(value) => params.push((name.clone(), percent_decode(value))),
                    None if *optional => {}
                    None => return None,
                },
                Segment::CatchAll { name } => {
                    let rest = parts.get(index..).unwrap_or_default().join("/");
                    params.push((name.clone(), percent_decode(&rest)));
                    return Some(params);
                }
            }
        }
        (parts.len() <= self.segments.len()).then_some(params)
    }

    /// Sort key: literal segments before parameters before optional ones before catch-alls, as
    /// ASP.NET orders candidate routes.
    fn precedence(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Param {
                    optional: false, ..
                } => 1,
                Segment::Param { optional: true, .. } => 2,
                Segment::CatchAll { .. } => 3,
            })
            .collect()
    }
}

impl fmt::Display for RouteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(text) => text.clone(),
                Segment::Param { name, optional } => {
                    format!("{{{name}{}}}", if *optional { "?" } else { "" })
                }
                Segment::CatchAll { name } => format!("{{*{name}}}"),
            })
            .collect();
        f.write_str(&parts.join("/"))
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// HTTP functions with their full templates, best match first.
pub struct Routes {
    routes: Vec<(RouteTemplate, usize)>,
}

impl Routes {
    pub fn new(functions: &[FunctionSpec], prefix: &str) -> Self {
        let mut routes: Vec<(RouteTemplate, usize)> = functions
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.disabled)
            .filter_map(|(index, f)| match &f.trigger {
                Trigger::Http { route, .. } => Some((route.under(prefix), index)),
                _ => None,
            })
            .collect();
        routes.sort_by_key(|(template, _)| template.precedence());
        Self { routes }
    }

    /// The function serving `method path`, with its route parameters.
    pub fn find<'a>(
        &self,
        functions: &'a [FunctionSpec],
        method: &Method,
        path: &str,
    ) -> Option<(&'a FunctionSpec, Vec<(String, String)>)> {
        self.routes.iter().find_map(|(template, index)| {
            let function = functions.get(*index)?;
            let Trigger::Http { methods, .. } = &function.trigger else {
                return None;
            };
            let allowed = methods
                .as_ref()
                .is_none_or(|m| m.iter().any(|m| m == method.as_str()));
            if !allowed {
                return None;
            }
            template.matches(path).map(|params| (function, params))
        })
    }
}

/// The router of the public port.
pub fn router(host: Arc<Host>) -> Router {
    Router::new()
        .route("/admin/functions/{name}", post(admin_invoke))
        .route("/admin/host/status", get(host_status))
        .fallback(serve_function)
        .with_state(host)
}

async fn host_status(State(host): State<Arc<Host>>) -> Response {
    axum::Json(serde_json::json!({
        "state": "Running",
        "version": payload::HOST_VERSION,
        "functions": host.app.functions.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// `POST /admin/functions/{name}` with an optional `{"input": "..."}`: runs a timer now, or puts the
/// input on a queue function's queue. 202 as on the host: the invocation happens in the background.
async fn admin_invoke(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Some(function) = host.app.function(&name).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            format!("no function named `{name}`\n"),
        )
            .into_response();
    };
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => match crate::app_root::get_ci(&object, "input") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            },
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object like {\"input\": \"...\"}\n",
                )
                    .into_response();
            }
        }
    };
    match &function.trigger {
        Trigger::Timer { .. } => {
            say!("admin: firing timer `{}`", function.name);
            let host = host.clone();
            tokio::spawn(async move { timers::fire(&host, &function, false).await });
            StatusCode::ACCEPTED.into_response()
        }
        Trigger::Queue { .. } => {
            let Some(queues) = host.queues.as_ref() else {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queues are not being polled (no storage connection)\n",
                )
                    .into_response();
            };
            let text = input.unwrap_or_default();
            match queues.enqueue(&function, text.as_bytes()).await {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(err) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot enqueue: {err:#}\n"),
                )
                    .into_response(),
            }
        }
        Trigger::Http { .. } => (
            StatusCode::BAD_REQUEST,
            "HTTP functions are invoked at their route\n",
        )
            .into_response(),
        Trigger::Unsupported { kind } => (
            StatusCode::BAD_REQUEST,
            format!("`{kind}` triggers are not supported by the local host\n"),
        )
            .into_response(),
    }
}

/// Everything that is not the admin API: an HTTP function or a 404.
async fn serve_function(State(host): State<Arc<Host>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let Some((function, params)) = host
        .routes
        .find(&host.app.functions, request.method(), &path)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let invocation_id = Uuid::new_v4();
    if host.app.host.forward_http && function.is_http_in_and_out() {
        forward(&host, parts, body, invocation_id).await
    } else {
        invoke_with_envelope(&host, function, parts, body, params, invocation_id).await
    }
}

/// Headers that describe one hop, never copied between connections.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

async fn forward(
    host: &Host,
    parts: axum::http::request::Parts,
    body: Bytes,
    invocation_id: Uuid,
) -> Response {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path_and_query}", host.invoker.base_url());
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in invocation_headers(invocation_id) {
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        if name.eq_ignore_ascii_case("user-agent") {
            // The host appends its product to the caller's user agent (`UserAgent.ParseAdd`).
            let combined = match parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
            {
                Some(existing) => HeaderValue::from_str(&format!(
                    "{existing} {}",
                    value.to_str().unwrap_or_default()
                ))
                .unwrap_or(value),
                None => value,
            };
            headers.insert(header::USER_AGENT, combined);
        } else if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.insert(name, value);
        }
    }
    let sent = host
        .invoker
        .client()
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            say!(
                "{} {path_and_query}: the handler did not answer: {}",
                parts.method,
                crate::invoke::describe(&err)
            );
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the handler did not answer\n",
            )
                .into_response();
        }
    };
    let status = response.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in response.headers() {
        if !is_hop_by_hop(name) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(err) => {
            say!(
                "{} {path_and_query}: the handler's response broke off: {}",
                parts.method,
                crate::invoke::describe(&err)
            );
            return (
                StatusCode::BAD_GATEWAY,
                "the handler's response broke off\n",
            )
                .into_response();
        }
    };
    say!("{} {path_and_query} -> {}", parts.method, status.as_u16());
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

/// An HTTP function the host does not forward: `Data.req` / `Outputs.res` (functions-host.md §1.3).
async fn invoke_with_envelope(
    host: &Host,
    function: &FunctionSpec,
    parts: axum::http::request::Parts,
    body: Bytes,
    params: Vec<(String, String)>,
    invocation_id: Uuid,
) -> Response {
    let Trigger::Http { binding, .. } = &function.trigger else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let host_header = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let url = format!(
        "http://{host_header}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let binding_data: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let request = payload::HttpRequestView {
        url: &url,
        method: parts.method.as_str(),
        query: parts.uri.query().unwrap_or(""),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        params,
        body: &body,
    };
    let envelope = payload::http_envelope(
        binding,
        &request,
        &function.name,
        time::OffsetDateTime::now_utc(),
        Uuid::new_v4(),
    );
    let result = match host
        .invoker
        .invoke(&function.name, invocation_id, &envelope)
        .await
    {
        Ok(result) => result,
        Err(err) => {
            say!("{} ({invocation_id}) failed: {err}", function.name);
            // A failed envelope invocation of an HTTP function is a host error.
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Err(err) = queues::write_outputs(host, function, &result, &binding_data).await {
        say!(
            "{} ({invocation_id}): output bindings failed: {err:#}",
            function.name
        );
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let res = function.outputs.iter().find_map(|o| match o {
        OutputBinding::Http { name } => result.output(name),
        _ => None,
    });
    payload::http_response(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn literal_param_optional_and_catch_all_segments() {
        let health = RouteTemplate::parse("health").unwrap().under("api");
        assert_eq!(health.matches("/api/health"), params(&[]));
        assert_eq!(health.matches("/API/Health/"), params(&[]));
        assert_eq!(health.matches("/api/health/x"), None);
        assert_eq!(health.matches("/health"), None);

        let v1 = RouteTemplate::parse("v1/{*path}").unwrap().under("api");
        assert_eq!(
            v1.matches("/api/v1/workspaces/w1/costs"),
            params(&[("path", "workspaces/w1/costs")])
        );
        assert_eq!(v1.matches("/api/v1"), params(&[("path", "")]));
        assert_eq!(v1.matches("/api/v2/x"), None);

        let orders = RouteTemplate::parse("orders/{id?}").unwrap().under("");
        assert_eq!(orders.matches("/orders"), params(&[]));
        assert_eq!(orders.matches("/orders/a%20b"), params(&[("id", "a b")]));
        assert_eq!(orders.matches("/orders/1/2"), None);

        let typed = RouteTemplate::parse("items/{id:int}").unwrap();
        assert_eq!(typed.matches("/items/7"), params(&[("id", "7")]));
        assert_eq!(typed.to_string(), "items/{id}");

        assert!(RouteTemplate::parse("{*a}/b").is_err());
        assert!(RouteTemplate::parse("file.{ext}").is_err());
    }

    #[test]
    fn literal_routes_win_and_methods_are_respected() {
        let settings = crate::app_root::Settings::default();
        let spec = |name: &str, route: &str, methods: &[&str]| {
            let json = serde_json::json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "route": route, "methods": methods},
                {"type": "http", "direction": "out", "name": "res"}
            ]});
            FunctionSpec::from_json(name, &json, &settings).unwrap()
        };
        let functions = vec![
            spec("api", "v1/{*path}", &[]),
            spec("health", "v1/health", &["get"]),
        ];
        let routes = Routes::new(&functions, "api");
        let find = |method: Method, path: &str| {
            routes
                .find(&functions, &method, path)
                .map(|(f, _)| f.name.clone())
        };
        assert_eq!(
            find(Method::GET, "/api/v1/health").as_deref(),
            Some("health")
        );
        // `health` only takes GET, so POST falls through to the catch-all.
        assert_eq!(find(Method::POST, "/api/v1/health").as_deref(), Some("api"));
        assert_eq!(find(Method::GET, "/api/v1/x").as_deref(), Some("api"));
        assert_eq!(find(Method::GET, "/nope"), None);
    }
}
