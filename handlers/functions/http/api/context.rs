//! What every tenant API request carries: its id, the route's declaration, the audit draft, the
//! caller and (for workspace routes) the workspace scope, plus the JSON body and cursor codecs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::RouteSpec;
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::audit::Change;
use crate::domain::store::Version;
use crate::domain::tenancy::{self, Caller, Permission, UserId, WorkspaceId, WorkspaceScope};
use crate::error::Error;

/// The request id: the caller's `X-Request-Id` when it is short and plain, otherwise a new UUID.
/// Echoed on every response and written into audit records.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub const REQUEST_ID_HEADER: &str = "x-request-id";

impl RequestId {
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v)
                if !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
            {
                Self(v.to_owned())
            }
            _ => Self(uuid::Uuid::new_v4().to_string()),
        }
    }
}

/// What the audit record of a state-changing request will say; filled as the request proceeds.
#[derive(Debug, Default)]
pub struct AuditDraft {
    /// Set once the caller is known to be a member (or becomes one): only then is a record written,
    /// so an outsider cannot write into a workspace's audit log.
    pub workspace: Option<WorkspaceId>,
    pub actor: Option<UserId>,
    pub target: Option<String>,
    pub changes: Vec<Change>,
}

/// Shared between the route guard (which writes the record) and the extractors and handler.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(pub Arc<Mutex<AuditDraft>>);

impl AuditSlot {
    pub fn update(&self, f: impl FnOnce(&mut AuditDraft)) {
        if let Ok(mut draft) = self.0.lock() {
            f(&mut draft);
        }
    }

    pub fn take(&self) -> AuditDraft {
        self.0
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }
}

/// Notes the target and changes of this request for its audit record (no-op on read routes).
pub fn audit(parts_slot: Option<&AuditSlot>, target: impl Into<String>, changes: Vec<Change>) {
    if let Some(slot) = parts_slot {
        let target = target.into();
        slot.update(|d| {
            d.target = Some(target);
            d.changes = changes;
        });
    }
}

/// The domain's view of an authenticated principal.
pub fn caller(principal: &Principal) -> Caller {
    Caller {
        user: user_id(principal),
        display_name: principal.display_name.clone(),
        verified_email: principal.verified_email().map(str::to_owned),
    }
}

pub fn user_id(principal: &Principal) -> UserId {
    UserId {
        tenant: *principal.tenant_id.as_uuid(),
        object: *principal.user_id.as_uuid(),
    }
}

/// Verifies the bearer token and names the caller; the first step of every non-public route.
async fn authenticate(
    parts: &mut Parts,
    state: &AppState,
) -> Result<(Principal, Caller), Response> {
    let principal = Principal::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    let caller = caller(&principal);
    Ok((principal, caller))
}

/// A signed-in caller on a route outside any workspace; also takes the caller's quota.
pub struct SignedIn {
    pub principal: Principal,
    pub caller: Caller,
    pub audit: Option<AuditSlot>,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (principal, caller) = authenticate(parts, state).await?;
        state
            .limits()
            .check(&format!("user:{}", caller.user))
            .map_err(IntoResponse::into_response)?;
        let audit = parts.extensions.get::<AuditSlot>().cloned();
        if let Some(slot) = &audit {
            slot.update(|d| d.actor = Some(caller.user));
        }
        Ok(Self {
            principal,
            caller,
            audit,
        })
    }
}

/// A member acting on the workspace named by the path's `{id}`, with the role the route declares.
///
/// The only way a handler gets a [`WorkspaceScope`]: the route's [`RouteSpec`] says which permission
/// is needed, the membership row says which role the caller has, and `tenancy::authorize` decides.
/// A non-member gets exactly what a missing workspace gets (404); a member without the role gets 403.
pub struct Scoped {
    pub scope: WorkspaceScope,
    pub caller: Caller,
    pub audit: Option<AuditSlot>,
}

impl FromRequestParts<AppState> for Scoped {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (_, caller) = authenticate(parts, state).await?;
        let needed = parts
            .extensions
            .get::<RouteSpec>()
            .map(|spec| spec.permission)
            // A workspace route registered without the route table has no declaration: refuse.
            .ok_or_else(|| {
                Error::Internal(anyhow::anyhow!("route has no declared permission")).into_response()
            })?;
        if matches!(
            needed,
            Permission::Public | Permission::SignedIn | Permission::Invitee
        ) {
            return Err(
                Error::Internal(anyhow::anyhow!("Scoped used on a {needed:?} route"))
                    .into_response(),
            );
        }
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::NotFound.into_response())?;
        let workspace = params
            .get("id")
            .and_then(|id| WorkspaceId::parse(id))
            .ok_or_else(|| Error::NotFound.into_response())?;
        let membership = state
            .tenancy()
            .member(workspace, caller.user)
            .await
            .map_err(|e| Error::from(e).into_response())?;
        let role = membership.map(|m| m.value.role);
        let audit = parts.extensions.get::<AuditSlot>().cloned();
        if let (Some(_), Some(slot)) = (role, &audit) {
            slot.update(|d| {
                d.workspace = Some(workspace);
                d.actor = Some(caller.user);
            });
        }
        let scope =
            tenancy::authorize(workspace, caller.user, role, needed).map_err(
                |denied| match denied {
                    tenancy::Denied::NotFound => Error::NotFound.into_response(),
                    tenancy::Denied::Forbidden => Error::Forbidden.into_response(),
                },
            )?;
        state
            .limits()
            .check(&format!("workspace:{workspace}"))
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            scope,
            caller,
            audit,
        })
    }
}

/// Largest JSON body the API reads; every request of this API is far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body: `415` for another content type, `413` past [`MAX_BODY_BYTES`], `400` with
/// the parser's reason for invalid JSON; all as problem+json.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
                    || v.to_ascii_lowercase().ends_with("+json")
            });
        if !is_json {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| Error::PayloadTooLarge(MAX_BODY_BYTES))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Error::InvalidRequest(format!("invalid JSON body: {e}")))
    }
}

/// An opaque page cursor, bound to the listing it came from (a workspace or a user).
///
/// A cursor from one workspace is refused on another's listing; and every listing's storage query
/// is itself restricted to its own partition, so even a forged continuation cannot read across.
#[derive(Serialize, Deserialize)]
struct CursorBody {
    /// Which listing (`workspace:<id>` or `user:<id>`).
    s: String,
    /// The store's continuation or an offset.
    k: String,
}

pub fn encode_cursor(listing: &str, position: &str) -> String {
    let body = CursorBody {
        s: listing.to_owned(),
        k: position.to_owned(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

pub fn decode_cursor(listing: &str, cursor: &str) -> Result<String, Error> {
    let invalid = || Error::InvalidRequest("the cursor is not valid for this listing".to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.s != listing {
        return Err(invalid());
    }
    Ok(body.k)
}

/// Page-size query parameter: 1 to 200, default 50.
pub fn page_limit(limit: Option<u32>) -> Result<u32, Error> {
    match limit {
        None => Ok(50),
        Some(n @ 1..=200) => Ok(n),
        Some(_) => Err(Error::InvalidRequest(
            "limit must be between 1 and 200".to_owned(),
        )),
    }
}

/// The `ETag` header value of a version.
pub fn etag(version: &Version) -> String {
    // Table ETags are already quoted (`W/"datetime'…'"`); keep them as the service gave them.
    if version.0.starts_with('"') || version.0.starts_with("W/") {
        version.0.clone()
    } else {
        format!("\"{}\"", version.0)
    }
}

/// The version an `If-Match` header names, if any (`*` means any version).
pub fn if_match(headers: &axum::http::HeaderMap) -> Option<Version> {
    let value = headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    if value == "*" {
        return None;
    }
    Some(Version(value.to_owned()))
}
