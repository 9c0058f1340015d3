//! Azure connections: connect a customer's tenant, see what the principal can do, choose the
//! subscriptions to sync, rotate the secret, re-verify, delete.
//!
//! The client secret goes in (create, rotate) and never comes out: no view, error or audit record
//! carries it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;

use super::context::{JsonBody, Scoped, audit, if_match};
use super::views::{ChooseSubscriptions, ConnectionView, CreateConnection, Paged, RotateSecret};
use super::workspaces::with_etag;
use crate::app::AppState;
use crate::connections::NewConnection;
use crate::domain::audit::Change;
use crate::domain::connections::ConnectionId;
use crate::error::{Error, Result};

fn connection_id(params: &HashMap<String, String>) -> Result<ConnectionId> {
    params
        .get("connectionId")
        .and_then(|i| ConnectionId::parse(i))
        .ok_or(Error::NotFound)
}

fn target(id: ConnectionId) -> String {
    format!("connection/{id}")
}

/// Connect a tenant. Sixpence signs in as the service principal at once, lists the subscriptions
/// it sees and reads its permissions on each: the answer says which subscriptions are usable,
/// which features each lacks, and whether the principal is over-privileged, with the fix. A
/// connection whose verification fails is kept (state `failed`, with the reason) so the secret
/// can be corrected.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/connections", tag = "connections", request_body = CreateConnection,
    params(("id" = String, Path, description = "Workspace id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe creation: the same key replays the first answer for 24 h")),
    responses((status = 201, description = "Created (see `state`)", body = ConnectionView, headers(("ETag" = String), ("Location" = String)))))]
pub async fn create(
    State(state): State<AppState>,
    scoped: Scoped,
    JsonBody(body): JsonBody<CreateConnection>,
) -> Result<Response> {
    let new = NewConnection {
        name: body.name,
        tenant_id: body.tenant_id,
        client_id: body.client_id,
        secret: SecretString::from(body.client_secret),
        secret_expires_on: body.secret_expires_on,
    };
    let (created, verified) = state
        .connections()
        .create(scoped.scope.id(), new, scoped.caller.user)
        .await?;
    let connection = &created.value;
    let mut changes = vec![
        Change::new("tenantId", None, Some(connection.tenant_id.clone())),
        Change::new("clientId", None, Some(connection.client_id.clone())),
        Change::secret("clientSecret"),
    ];
    changes.extend(verified);
    audit(scoped.audit.as_ref(), target(connection.id), changes);
    let location = format!(
        "/api/v1/workspaces/{}/connections/{}",
        connection.workspace, connection.id
    );
    Ok(super::workspaces::created(
        &location,
        ConnectionView::from(connection),
        &created.version,
    ))
}

/// The workspace's connections.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/connections", tag = "connections",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Connections", body = Paged<ConnectionView>)))]
pub async fn list(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<Json<Paged<ConnectionView>>> {
    let connections = state.connections().store().list(scoped.scope.id()).await?;
    Ok(Json(Paged {
        items: connections
            .iter()
            .map(|c| ConnectionView::from(&c.value))
            .collect(),
        next_cursor: None,
    }))
}

/// One connection: onboarding state, problem, subscriptions and what each lacks.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/connections/{connectionId}", tag = "connections",
    params(("id" = String, Path, description = "Workspace id"), ("connectionId" = String, Path, description = "Connection id")),
    responses((status = 200, description = "The connection", body = ConnectionView, headers(("ETag" = String)))))]
pub async fn get(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response> {
    let id = connection_id(&params)?;
    let connection = state.connections().get(scoped.scope.id(), id).await?;
    Ok(with_etag(
        Json(ConnectionView::from(&connection.value)).into_response(),
        &connection.version,
    ))
}

/// Verify again: sign in, re-read subscriptions and permissions. The only way to re-enable a
/// revoked connection once the customer has fixed it. 503 `azure-unavailable` when Azure could not
/// be reached (nothing changed).
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/connections/{connectionId}/verify", tag = "connections",
    params(("id" = String, Path, description = "Workspace id"), ("connectionId" = String, Path, description = "Connection id")),
    responses((status = 200, description = "Verified (see `state`)", body = ConnectionView, headers(("ETag" = String)))))]
pub async fn verify(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response> {
    let id = connection_id(&params)?;
    let (verified, changes) = state.connections().verify(scoped.scope.id(), id).await?;
    audit(scoped.audit.as_ref(), target(id), changes);
    Ok(with_etag(
        Json(ConnectionView::from(&verified.value)).into_response(),
        &verified.version,
    ))
}

/// Choose the subscriptions to sync (replaces the previous choice). Each must be usable. The
/// workspace's plan limits how many subscriptions may be chosen across all its connections: a
/// choice that would raise the count above it is refused with 402 `plan-limit` (see
/// `GET /billing`); without a paid plan the free limit applies.
#[utoipa::path(put, path = "/api/v1/workspaces/{id}/connections/{connectionId}/subscriptions", tag = "connections",
    request_body = ChooseSubscriptions,
    params(("id" = String, Path, description = "Workspace id"), ("connectionId" = String, Path, description = "Connection id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 if it changed since")),
    responses((status = 200, description = "Chosen", body = ConnectionView, headers(("ETag" = String)))))]
pub async fn choose_subscriptions(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChooseSubscriptions>,
) -> Result<Response> {
    let id = connection_id(&params)?;
    let guard = if_match(&headers);
    // The plan's limit counts chosen subscriptions across every connection of the workspace; a
    // choice may not raise that count above it (402). Checked before the write, and again after it
    // (see below), because two concurrent choices on different connections can each pass the
    // first check.
    let workspace = scoped.scope.id();
    let connections = state.connections().store().list(workspace).await?;
    let selected = |c: &crate::domain::connections::Connection| {
        c.subscriptions.iter().filter(|s| s.selected).count()
    };
    let before: usize = connections.iter().map(|c| selected(&c.value)).sum();
    let here: usize = connections
        .iter()
        .filter(|c| c.value.id == id)
        .map(|c| selected(&c.value))
        .sum();
    let mut requested: Vec<String> = body
        .subscription_ids
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    requested.sort_unstable();
    requested.dedup();
    let after = before - here + requested.len();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    state
        .billing()
        .check_subscription_choice(workspace, count(before), count(after))
        .await?;
    let previous = connections
        .iter()
        .find(|c| c.value.id == id)
        .map(|c| c.value.clone());
    let (chosen, changes) = state
        .connections()
        .choose_subscriptions(
            scoped.scope.id(),
            id,
            &body.subscription_ids,
            guard.as_ref(),
        )
        .await?;
    if after > before {
        // Write, then validate: counted again with every concurrent choice that is written, a
        // choice that raised the count above the limit is undone (conditional on the version it
        // wrote, so a later change is never overwritten) and refused. Two racing choices may both
        // be refused, never both kept; the count can exceed the limit only for the moment between
        // a write and its undoing, which no sync ever sees (syncs are scheduled nightly).
        let total: usize = state
            .connections()
            .store()
            .list(workspace)
            .await?
            .iter()
            .map(|c| selected(&c.value))
            .sum();
        if let Err(refused) = state
            .billing()
            .check_subscription_choice(workspace, count(before), count(total))
            .await
        {
            let mut undone = chosen.value.clone();
            if let Some(previous) = &previous {
                undone.restore_choice(previous);
            }
            if let Err(err) = state
                .connections()
                .store()
                .update(&undone, &chosen.version)
                .await
            {
                // Changed again since: that later choice passed its own check.
                tracing::warn!(error = %err, workspace = %workspace, "a refused choice was not undone: the connection changed since");
            }
            return Err(refused);
        }
    }
    audit(scoped.audit.as_ref(), target(id), changes);
    Ok(with_etag(
        Json(ConnectionView::from(&chosen.value)).into_response(),
        &chosen.version,
    ))
}

/// Replace the client secret (before it expires, or after a leak) and verify with it.
#[utoipa::path(put, path = "/api/v1/workspaces/{id}/connections/{connectionId}/secret", tag = "connections",
    request_body = RotateSecret,
    params(("id" = String, Path, description = "Workspace id"), ("connectionId" = String, Path, description = "Connection id")),
    responses((status = 200, description = "Replaced and verified (see `state`)", body = ConnectionView, headers(("ETag" = String)))))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
    JsonBody(body): JsonBody<RotateSecret>,
) -> Result<Response> {
    let id = connection_id(&params)?;
    let (rotated, verified) = state
        .connections()
        .rotate_secret(
            scoped.scope.id(),
            id,
            SecretString::from(body.client_secret),
            body.secret_expires_on,
        )
        .await?;
    let mut changes = vec![Change::secret("clientSecret")];
    changes.extend(verified);
    audit(scoped.audit.as_ref(), target(id), changes);
    Ok(with_etag(
        Json(ConnectionView::from(&rotated.value)).into_response(),
        &rotated.version,
    ))
}

/// Delete the connection. Its encrypted secret is deleted with it, at once: no later sync or
/// health check can call Azure with it.
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}/connections/{connectionId}", tag = "connections",
    params(("id" = String, Path, description = "Workspace id"), ("connectionId" = String, Path, description = "Connection id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode> {
    let id = connection_id(&params)?;
    state.connections().delete(scoped.scope.id(), id).await?;
    audit(
        scoped.audit.as_ref(),
        target(id),
        vec![Change::new("connection", Some("present".into()), None)],
    );
    Ok(StatusCode::NO_CONTENT)
}
