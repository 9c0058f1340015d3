//! The OpenAPI 3.1 document of the tenant API, generated from the handlers' annotations and the
//! route table, served at `/api/v1/openapi.json`.
//!
//! Handlers document their own request and success shapes; [`document`] then adds what the route
//! table declares, so it is stated once: the permission (`x-sixpence-permission`, and in words in
//! the description), the audit action (`x-sixpence-audit-action`), the bearer requirement and the
//! problem responses every route of that kind can give. A test holds the document and the router
//! to the same set of routes.

use std::sync::OnceLock;

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

use super::{
    RouteSpec, anomalies, audit_log, billing, budgets, connections, costs, deletions, exports,
    inventory, invitations, members, notifications, syncs, workspaces,
};
use crate::domain::tenancy::Permission;
use crate::functions::http::problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sixpence tenant API",
        version = "1.0.0",
        description = "Workspaces, members and roles, invitations, Azure connections, resource inventory, Advisor recommendations and the audit trail and billing of Sixpence, the Azure cost-management service. \
            Errors are RFC 9457 problem documents (`application/problem+json`) with stable `type` values. \
            Lists are paginated with an opaque `cursor`. Creating POSTs honour `Idempotency-Key`; updatable resources carry an `ETag` that `If-Match` takes. \
            Every response echoes `X-Request-Id`."
    ),
    paths(
        serve,
        workspaces::me,
        workspaces::list,
        workspaces::create,
        workspaces::get,
        workspaces::update,
        deletions::delete,
        deletions::get,
        deletions::close_account,
        members::list,
        members::change_role,
        members::remove,
        members::leave,
        invitations::list,
        invitations::create,
        invitations::revoke,
        invitations::accept,
        connections::list,
        connections::create,
        connections::get,
        connections::delete,
        connections::verify,
        connections::choose_subscriptions,
        connections::rotate_secret,
        syncs::request,
        audit_log::list,
        costs::costs,
        costs::subscriptions,
        costs::syncs,
        inventory::resources,
        inventory::recommendations,
        billing::status,
        billing::checkout,
        billing::portal,
        anomalies::list,
        anomalies::get,
        anomalies::feedback,
        anomalies::get_settings,
        anomalies::put_settings,
        budgets::list,
        budgets::create,
        budgets::get,
        budgets::replace,
        budgets::delete,
        budgets::forecast,
        notifications::list,
        notifications::create,
        notifications::get,
        notifications::update,
        notifications::delete,
        notifications::test,
        notifications::inbox,
        notifications::mark_all_read,
        notifications::mark_read,
        notifications::deliveries,
        exports::request,
        exports::list,
        exports::get,
        exports::download,
    ),
    components(schemas(Problem)),
    tags(
        (name = "me", description = "The signed-in user"),
        (name = "workspaces", description = "Workspaces: the unit of isolation"),
        (name = "members", description = "Members and roles"),
        (name = "invitations", description = "Invitations by email"),
        (name = "syncs", description = "Cost syncs: ask for one now"),
        (name = "connections", description = "Azure connections: read-only service principals, onboarding, secrets"),
        (name = "audit", description = "The append-only audit trail"),
        (name = "costs", description = "Synced Azure costs, subscriptions and sync runs"),
        (name = "inventory", description = "Resources and Azure Advisor recommendations of the connected subscriptions, as last synced"),
        (name = "billing", description = "The plan and its limits; Stripe Checkout and the Billing Portal (owners)"),
        (name = "anomalies", description = "Detected cost anomalies with root causes, analysts' feedback, and the analytics settings"),
        (name = "budgets", description = "Budgets with thresholds on actual and forecast spend, and period-end forecasts"),
        (name = "notifications", description = "Notification channels (email, Slack, Teams, in-app), your in-app notifications and the delivery log"),
        (name = "exports", description = "Workspace exports: everything Sixpence holds about a workspace in one zip (costs as FOCUS CSV), downloadable until it expires"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn serve() -> Json<&'static utoipa::openapi::OpenApi> {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    Json(DOCUMENT.get_or_init(document))
}

/// The full document: handler annotations plus what the route table declares.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "entra",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A Microsoft Entra ID access token for the Sixpence API (v2, delegated).",
                ))
                .build(),
        ),
    );
    for spec in super::specs() {
        if let Some(item) = doc.paths.paths.get_mut(spec.path) {
            let operation = match spec.method {
                "GET" => item.get.as_mut(),
                "POST" => item.post.as_mut(),
                "PUT" => item.put.as_mut(),
                "PATCH" => item.patch.as_mut(),
                _ => item.delete.as_mut(),
            };
            if let Some(operation) = operation {
                decorate(operation, &spec);
            }
        }
    }
    doc
}

fn decorate(operation: &mut Operation, spec: &RouteSpec) {
    let mut extensions = utoipa::openapi::extensions::ExtensionsBuilder::new().add(
        "x-sixpence-permission",
        serde_json::to_value(spec.permission).unwrap_or_default(),
    );
    if let Some(action) = spec.action {
        extensions = extensions.add("x-sixpence-audit-action", action);
    }
    operation
        .extensions
        .get_or_insert_with(Default::default)
        .merge(extensions.build());
    let requirement = format!("Requires: {}.", spec.permission.describe());
    operation.description = Some(match operation.description.take() {
        Some(text) => format!("{text}\n\n{requirement}"),
        None => requirement,
    });

    let mut problems: Vec<(&str, &str)> = Vec::new();
    if spec.permission != Permission::Public {
        operation.security = Some(vec![SecurityRequirement::new(
            "entra",
            Vec::<String>::new(),
        )]);
        problems.push(("401", "Not signed in, or the token is not valid"));
        problems.push(("429", "Too many requests; see `Retry-After`"));
    }
    if spec.path.contains("{id}") {
        problems.push(("404", "No such workspace, or you are not a member of it"));
        if !matches!(spec.permission, Permission::Read | Permission::Invitee) {
            problems.push(("403", "Your role does not allow this"));
        }
    }
    if spec.changes_state() {
        problems.push(("400", "The request is invalid"));
        problems.push(("409", "The request conflicts with the resource's state"));
    }
    if spec.method == "PUT"
        && spec
            .path
            .ends_with("/connections/{connectionId}/subscriptions")
    {
        problems.push((
            "402",
            "The workspace's plan does not allow this many subscriptions",
        ));
    }
    if operation.request_body.is_some() {
        problems.push(("413", "The body is too large"));
        problems.push(("415", "The body is not JSON"));
    }
    if spec.method == "PATCH" {
        problems.push((
            "412",
            "`If-Match` named a version that is no longer current",
        ));
    }
    if spec.idempotent {
        problems.push((
            "422",
            "The `Idempotency-Key` was used for a different request",
        ));
    }
    problems.push(("503", "Temporarily unavailable; retry later"));
    for (status, description) in problems {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert(response.into());
    }
}
