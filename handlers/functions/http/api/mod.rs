//! The tenant API (`/api/v1/...`), served by the `api` HTTP function.
//!
//! Every route is declared once, in [`routes`], with its method, path, the [`Permission`] it needs,
//! the audit action it records (state-changing routes) and whether it honours `Idempotency-Key`.
//! The router, the permission check (the [`context::Scoped`] extractor reads the declaration), the
//! audit trail, the OpenAPI document and the isolation tests are all driven by that one table, so a
//! route cannot exist without a declared permission.

pub mod anomalies;
pub mod audit_log;
pub mod billing;
pub mod budgets;
pub mod connections;
pub mod context;
pub mod costs;
pub mod deletions;
pub mod exports;
pub mod inventory;
pub mod invitations;
pub mod limits;
pub mod members;
pub mod notifications;
pub mod openapi;
pub mod syncs;
pub mod views;
pub mod workspaces;

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::audit::{Actor, AuditRecord, Outcome};
use crate::domain::idempotency::{Claim, RecordedResponse};
use crate::domain::tenancy::Permission;
use crate::error::Error;
use crate::functions::{FunctionDef, Trigger};
use context::{AuditSlot, MAX_BODY_BYTES, REQUEST_ID_HEADER, RequestId};

pub const NAME: &str = "api";

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Http {
        route: "api/v1/{*path}",
        methods: &["get", "post", "put", "patch", "delete"],
    },
    handler: None,
};

/// A route's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub permission: Permission,
    /// The audit action a state-changing route records; `None` for reads.
    pub action: Option<&'static str>,
    /// Honours `Idempotency-Key` (creating POSTs).
    pub idempotent: bool,
}

impl RouteSpec {
    pub fn changes_state(&self) -> bool {
        self.method != "GET"
    }
}

/// A declared route and its handler.
pub struct ApiRoute {
    pub spec: RouteSpec,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(
    method: &'static str,
    path: &'static str,
    permission: Permission,
    action: Option<&'static str>,
    idempotent: bool,
    handler: H,
) -> ApiRoute
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        _ => MethodFilter::DELETE,
    };
    let spec = RouteSpec {
        method,
        path,
        permission,
        action,
        idempotent,
    };
    // The declaration travels with the handler itself: the guard and the `Scoped` extractor read it,
    // so the permission that is checked is, by construction, the one declared here.
    let layers = tower::ServiceBuilder::new()
        .layer(Extension(spec))
        .layer(middleware::from_fn(guard));
    let handler = handler.layer(layers);
    ApiRoute {
        spec,
        handler: on(filter, handler),
    }
}

/// Every route of the tenant API.
pub fn routes() -> Vec<ApiRoute> {
    use Permission::{Administer, Analyse, Invitee, Own, Public, Read, SignedIn};
    const WS: &str = "/api/v1/workspaces/{id}";
    let _ = WS;
    vec![
        route(
            "GET",
            "/api/v1/openapi.json",
            Public,
            None,
            false,
            openapi::serve,
        ),
        route("GET", "/api/v1/me", SignedIn, None, false, workspaces::me),
        route(
            "GET",
            "/api/v1/workspaces",
            SignedIn,
            None,
            false,
            workspaces::list,
        ),
        route(
            "POST",
            "/api/v1/workspaces",
            SignedIn,
            Some("workspace.create"),
            true,
            workspaces::create,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}",
            Read,
            None,
            false,
            workspaces::get,
        ),
        route(
            "PATCH",
            "/api/v1/workspaces/{id}",
            Administer,
            Some("workspace.update"),
            false,
            workspaces::update,
        ),
        route(
            "DELETE",
            "/api/v1/workspaces/{id}",
            Own,
            Some("workspace.delete"),
            false,
            deletions::delete,
        ),
        route(
            "DELETE",
            "/api/v1/me",
            SignedIn,
            Some("account.close"),
            false,
            deletions::close_account,
        ),
        route(
            "GET",
            "/api/v1/deletions/{deletionId}",
            SignedIn,
            None,
            false,
            deletions::get,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/members",
            Read,
            None,
            false,
            members::list,
        ),
        route(
            "PATCH",
            "/api/v1/workspaces/{id}/members/{userId}",
            Administer,
            Some("member.role.change"),
            false,
            members::change_role,
        ),
        route(
            "DELETE",
            "/api/v1/workspaces/{id}/members/{userId}",
            Administer,
            Some("member.remove"),
            false,
            members::remove,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/leave",
            Read,
            Some("member.leave"),
            false,
            members::leave,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/invitations",
            Administer,
            None,
            false,
            invitations::list,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/invitations",
            Administer,
            Some("invitation.create"),
            true,
            invitations::create,
        ),
        route(
            "DELETE",
            "/api/v1/workspaces/{id}/invitations/{invitationId}",
            Administer,
            Some("invitation.revoke"),
            false,
            invitations::revoke,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/invitations/{invitationId}/accept",
            Invitee,
            Some("invitation.accept"),
            false,
            invitations::accept,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/connections",
            Read,
            None,
            false,
            connections::list,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/connections",
            Administer,
            Some("connection.create"),
            true,
            connections::create,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/connections/{connectionId}",
            Read,
            None,
            false,
            connections::get,
        ),
        route(
            "DELETE",
            "/api/v1/workspaces/{id}/connections/{connectionId}",
            Administer,
            Some("connection.delete"),
            false,
            connections::delete,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/connections/{connectionId}/verify",
            Administer,
            Some("connection.verify"),
            false,
            connections::verify,
        ),
        route(
            "PUT",
            "/api/v1/workspaces/{id}/connections/{connectionId}/subscriptions",
            Administer,
            Some("connection.subscriptions.choose"),
            false,
            connections::choose_subscriptions,
        ),
        route(
            "PUT",
            "/api/v1/workspaces/{id}/connections/{connectionId}/secret",
            Administer,
            Some("connection.secret.rotate"),
            false,
            connections::rotate_secret,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/syncs",
            Analyse,
            Some("sync.request"),
            false,
            syncs::request,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/audit",
            Administer,
            None,
            false,
            audit_log::list,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/costs",
            Read,
            None,
            false,
            costs::costs,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/subscriptions",
            Read,
            None,
            false,
            costs::subscriptions,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/syncs",
            Read,
            None,
            false,
            costs::syncs,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/resources",
            Read,
            None,
            false,
            inventory::resources,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/recommendations",
            Read,
            None,
            false,
            inventory::recommendations,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/billing",
            Read,
            None,
            false,
            billing::status,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/billing/checkout",
            Own,
            Some("billing.checkout.start"),
            true,
            billing::checkout,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/billing/portal",
            Own,
            Some("billing.portal.open"),
            false,
            billing::portal,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/anomalies",
            Read,
            None,
            false,
            anomalies::list,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/anomalies/{anomalyId}",
            Read,
            None,
            false,
            anomalies::get,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/anomalies/{anomalyId}/feedback",
            Analyse,
            Some("anomaly.feedback"),
            false,
            anomalies::feedback,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/analytics-settings",
            Read,
            None,
            false,
            anomalies::get_settings,
        ),
        route(
            "PUT",
            "/api/v1/workspaces/{id}/analytics-settings",
            Administer,
            Some("analytics.settings.update"),
            false,
            anomalies::put_settings,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/budgets",
            Read,
            None,
            false,
            budgets::list,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/budgets",
            Analyse,
            Some("budget.create"),
            true,
            budgets::create,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/budgets/{budgetId}",
            Read,
            None,
            false,
            budgets::get,
        ),
        route(
            "PUT",
            "/api/v1/workspaces/{id}/budgets/{budgetId}",
            Analyse,
            Some("budget.update"),
            false,
            budgets::replace,
        ),
        route(
            "DELETE",
            "/api/v1/workspaces/{id}/budgets/{budgetId}",
            Analyse,
            Some("budget.delete"),
            false,
            budgets::delete,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/forecast",
            Read,
            None,
            false,
            budgets::forecast,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/channels",
            Administer,
            None,
            false,
            notifications::list,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/channels",
            Administer,
            Some("channel.create"),
            true,
            notifications::create,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/channels/{channelId}",
            Administer,
            None,
            false,
            notifications::get,
        ),
        route(
            "PUT",
            "/api/v1/workspaces/{id}/channels/{channelId}",
            Administer,
            Some("channel.update"),
            false,
            notifications::update,
        ),
        route(
            "DELETE",
            "/api/v1/workspaces/{id}/channels/{channelId}",
            Administer,
            Some("channel.delete"),
            false,
            notifications::delete,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/channels/{channelId}/test",
            Administer,
            Some("channel.test"),
            false,
            notifications::test,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/notifications",
            Read,
            None,
            false,
            notifications::inbox,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/notifications/read",
            Read,
            Some("notification.read.all"),
            false,
            notifications::mark_all_read,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/notifications/{notificationId}/read",
            Read,
            Some("notification.read"),
            false,
            notifications::mark_read,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/deliveries",
            Administer,
            None,
            false,
            notifications::deliveries,
        ),
        route(
            "POST",
            "/api/v1/workspaces/{id}/exports",
            Administer,
            Some("export.request"),
            true,
            exports::request,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/exports",
            Administer,
            None,
            false,
            exports::list,
        ),
        route(
            "GET",
            "/api/v1/workspaces/{id}/exports/{exportId}",
            Administer,
            None,
            false,
            exports::get,
        ),
        // Audited by the handler (`export.download`): a read, so the table declares no action.
        route(
            "GET",
            "/api/v1/workspaces/{id}/exports/{exportId}/download",
            Administer,
            None,
            false,
            exports::download,
        ),
    ]
}

/// The declarations alone (for the OpenAPI document and the tests).
pub fn specs() -> Vec<RouteSpec> {
    routes().into_iter().map(|r| r.spec).collect()
}

/// The tenant API router.
pub fn router(state: &AppState) -> Router<AppState> {
    let mut by_path: std::collections::BTreeMap<&'static str, MethodRouter<AppState>> =
        Default::default();
    for api_route in routes() {
        let merged = match by_path.remove(api_route.spec.path) {
            Some(existing) => existing.merge(api_route.handler),
            None => api_route.handler,
        };
        by_path.insert(api_route.spec.path, merged);
    }
    let mut router = Router::new();
    for (path, methods) in by_path {
        router = router.route(path, methods);
    }
    router
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async {
            crate::functions::http::problem::Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "This route does not accept that method",
                None,
            )
        })
        .layer(middleware::from_fn(request_id))
        .layer(Extension(state.clone()))
}

/// Gives every request an id (the caller's `X-Request-Id` when it is plain) and echoes it.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = RequestId::from_header(
        req.headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    req.extensions_mut().insert(id.clone());
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    response
}

/// Runs around every declared route: sets up the audit draft, applies `Idempotency-Key`, and
/// writes exactly one audit record for a state-changing request by a member.
async fn guard(
    Extension(state): Extension<AppState>,
    Extension(spec): Extension<RouteSpec>,
    mut req: Request,
    next: Next,
) -> Response {
    // Start-up prepares storage in the background after binding the port; a request that arrives
    // first waits for that work, as invocations do, instead of reading a table that does not exist
    // yet (which the store reports as "not found": a 404 for a create, a missing workspace for a
    // read). Once ready, this is a check of a set cell.
    if spec.permission != Permission::Public
        && let Err(err) = state.ready().await
    {
        return err.into_response();
    }
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId::from_header(None));
    let slot = spec.action.map(|_| AuditSlot::default());
    if let Some(slot) = &slot {
        req.extensions_mut().insert(slot.clone());
    }
    let path = req.uri().path().to_owned();
    let response = if spec.idempotent && req.headers().contains_key(IDEMPOTENCY_KEY) {
        idempotent(&state, req, next).await
    } else {
        next.run(req).await
    };
    if let (Some(action), Some(slot)) = (spec.action, slot) {
        record(&state, action, slot, &request_id, &path, response.status()).await;
    }
    response
}

async fn record(
    state: &AppState,
    action: &str,
    slot: AuditSlot,
    request_id: &RequestId,
    path: &str,
    status: StatusCode,
) {
    let draft = slot.take();
    // Only members' requests are recorded (the extractor or handler set the workspace): an
    // outsider's request must not be able to write into someone else's audit log.
    let (Some(workspace), Some(actor)) = (draft.workspace, draft.actor) else {
        return;
    };
    let outcome = match status.as_u16() {
        200..=399 => Outcome::Succeeded,
        403 => Outcome::Denied,
        400..=499 => Outcome::Rejected,
        _ => Outcome::Failed,
    };
    let record = AuditRecord {
        workspace,
        at: OffsetDateTime::now_utc(),
        actor: Actor::User { id: actor },
        action: action.to_owned(),
        target: draft.target.unwrap_or_else(|| path.to_owned()),
        request_id: request_id.0.clone(),
        outcome,
        changes: if outcome == Outcome::Succeeded {
            draft.changes
        } else {
            Vec::new()
        },
    };
    if let Err(err) = state.audit().append(&record).await {
        // The change itself is done and cannot be undone here; an operator must see this.
        tracing::error!(error = %err, action, workspace = %workspace, request_id = %request_id.0, "audit record could not be written");
    }
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Replays the first answer to a creating request retried with the same `Idempotency-Key`.
async fn idempotent(state: &AppState, req: Request, next: Next) -> Response {
    let key = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if key.is_empty() || key.len() > 255 {
        return Error::InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible characters".to_owned(),
        )
        .into_response();
    }
    let (mut parts, body) = req.into_parts();
    let Ok(principal) = Principal::from_request_parts(&mut parts, state).await else {
        // Not signed in: let the route reject it as usual.
        return next.run(Request::from_parts(parts, body)).await;
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return Error::PayloadTooLarge(MAX_BODY_BYTES).into_response();
    };
    let user = context::user_id(&principal);
    let path = parts.uri.path().to_owned();
    // Keyed by the caller, not the workspace in the path: this runs before the membership check, and
    // an outsider's key must not land in another workspace's partition. The path is part of the
    // fingerprint, so one key reused across workspaces is a mismatch, never a cross-workspace replay.
    let scope = format!("user:{user}");
    let fingerprint = {
        let mut hash = Sha256::new();
        hash.update(parts.method.as_str());
        hash.update(b" ");
        hash.update(path.as_bytes());
        hash.update(b"\n");
        hash.update(&bytes);
        hash.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    // Keys are the client's; two users of one workspace may pick the same one.
    let key = format!("{user}:{key}");
    match state
        .idempotency()
        .claim(&scope, &key, &fingerprint, &path)
        .await
    {
        Ok(Claim::New) => {}
        Ok(Claim::Replay(recorded)) => return replay(recorded),
        Ok(Claim::Mismatch) => return Error::IdempotencyKeyReused.into_response(),
        Ok(Claim::InProgress) => {
            return Error::Conflict(
                "a request with this Idempotency-Key is still being processed; retry shortly"
                    .to_owned(),
            )
            .into_response();
        }
        Err(err) => return Error::from(err).into_response(),
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status().is_server_error() {
        // Nothing was created (or we cannot tell): free the key so the client's retry runs again.
        if let Err(err) = state.idempotency().release(&scope, &key).await {
            tracing::warn!(error = %err, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return Error::Internal(anyhow::anyhow!("response too large to record")).into_response();
    };
    let headers = ["content-type", "etag", "location"]
        .iter()
        .filter_map(|name| {
            Some((
                (*name).to_owned(),
                parts.headers.get(*name)?.to_str().ok()?.to_owned(),
            ))
        })
        .collect();
    let recorded = RecordedResponse {
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    };
    if let Err(err) = state.idempotency().complete(&scope, &key, &recorded).await {
        tracing::warn!(error = %err, "could not record an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(recorded: RecordedResponse) -> Response {
    let mut response = Response::new(Body::from(recorded.body));
    *response.status_mut() = StatusCode::from_u16(recorded.status).unwrap_or(StatusCode::OK);
    for (name, value) in recorded.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response.headers_mut().insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    response
}

/// Methods an API route may declare, for the OpenAPI document.
pub fn method_of(spec: &RouteSpec) -> Method {
    Method::from_bytes(spec.method.as_bytes()).unwrap_or(Method::GET)
}
