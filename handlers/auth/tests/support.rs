//! Test fixtures: RSA keys generated once per test binary, a loopback identity provider serving
//! OpenID metadata and a JWKS (counting fetches), and token minting.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::Json;
use axum::routing::get;
use base64::Engine as _;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::auth::{Authenticator, EntraOptions, Principal};
use crate::config::{AuthSettings, Environment};

pub const AUDIENCE: &str = "api://sixpence-test";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const OTHER_TENANT: &str = "3f1c0d8e-2b7a-4c55-9e0a-6d4b8f2a1c90";
pub const USER: &str = "5b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
pub const ISSUER_TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";

pub fn issuer(tenant: &str) -> String {
    ISSUER_TEMPLATE.replace("{tenantid}", tenant)
}

/// A test signing key and its public JWK.
pub struct TestKey {
    pub encoding: EncodingKey,
    pub public_pem: String,
    pub modulus: Vec<u8>,
    pub jwk: Value,
}

/// `a` is Entra's current key; `b` is the one it rotates to, and where it is not published, a key
/// Entra never vouched for.
pub struct Keys {
    pub a: TestKey,
    pub b: TestKey,
}

/// Generated once per test binary, in parallel: 2048-bit generation takes seconds in a debug build.
pub static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let [a, b] = std::thread::scope(|scope| {
        ["key-a", "key-b"]
            .map(|kid| scope.spawn(move || generate(kid)))
            .map(|handle| handle.join().expect("key generation"))
    });
    Keys { a, b }
});

fn generate(kid: &'static str) -> TestKey {
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("rsa key");
    let der = private.to_pkcs1_der().expect("pkcs1");
    let public = private.to_public_key();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let modulus = public.n().to_bytes_be();
    let jwk = json!({
        "kty": "RSA",
        "use": "sig",
        "kid": kid,
        "x5t": kid,
        "n": b64(&modulus),
        "e": b64(&public.e().to_bytes_be()),
        "x5c": ["MIIC...not-parsed"],
        "issuer": ISSUER_TEMPLATE,
    });
    TestKey {
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        public_pem: public
            .to_public_key_pem(LineEnding::LF)
            .expect("public pem"),
        modulus,
        jwk,
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The claims of a valid Entra v2 delegated access token for [`TENANT`].
pub fn claims() -> Value {
    let now = now();
    json!({
        "aud": AUDIENCE,
        "iss": issuer(TENANT),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "aio": "opaque",
        "azp": "0c5b1a38-0000-0000-0000-000000000000",
        "azpacr": "0",
        "name": "Alice Example",
        "oid": USER,
        "preferred_username": "alice@contoso.com",
        "email": "alice@contoso.com",
        "xms_edov": true,
        "rh": "opaque",
        "scp": "access_as_user",
        "sub": "pairwise-subject",
        "tid": TENANT,
        "uti": "opaque",
        "ver": "2.0",
    })
}

/// `claims()` with some members replaced (`null` removes one).
pub fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    if let (Some(object), Value::Object(changes)) = (claims.as_object_mut(), changes) {
        for (name, value) in changes {
            if value.is_null() {
                object.remove(&name);
            } else {
                object.insert(name, value);
            }
        }
    }
    claims
}

pub fn sign(key: &TestKey, kid: &str, claims: &Value) -> String {
    sign_with(Algorithm::RS256, &key.encoding, kid, claims)
}

pub fn sign_with(alg: Algorithm, key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// A token assembled by hand, for headers the library refuses to produce (`alg: none`).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    let b64 = |value: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string().as_bytes())
    };
    format!("{}.{}.", b64(header), b64(claims))
}

/// A loopback stand-in for `login.microsoftonline.com`.
pub struct Idp {
    pub addr: SocketAddr,
    state: IdpState,
}

#[derive(Clone)]
struct IdpState {
    jwks: Arc<Mutex<Vec<Value>>>,
    jwks_hits: Arc<AtomicUsize>,
    metadata_hits: Arc<AtomicUsize>,
    addr: SocketAddr,
}

impl Idp {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = IdpState {
            jwks: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect())),
            jwks_hits: Arc::default(),
            metadata_hits: Arc::default(),
            addr,
        };
        let router = Router::new()
            .route(
                "/organizations/v2.0/.well-known/openid-configuration",
                get(metadata),
            )
            .route("/organizations/discovery/v2.0/keys", get(jwks))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, state }
    }

    pub fn authority(&self) -> String {
        format!("http://{}/organizations", self.addr)
    }

    /// Replaces the published keys (a rotation).
    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock().expect("lock") = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn metadata_fetches(&self) -> usize {
        self.state.metadata_hits.load(Ordering::SeqCst)
    }
}

async fn metadata(State(state): State<IdpState>) -> Json<Value> {
    state.metadata_hits.fetch_add(1, Ordering::SeqCst);
    // Shaped like the real organizations document: the issuer is a template, not one tenant.
    Json(json!({
        "token_endpoint": format!("http://{}/organizations/oauth2/v2.0/token", state.addr),
        "jwks_uri": format!("http://{}/organizations/discovery/v2.0/keys", state.addr),
        "issuer": ISSUER_TEMPLATE,
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": null,
    }))
}

async fn jwks(State(state): State<IdpState>) -> Json<Value> {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let keys = state.jwks.lock().expect("lock").clone();
    Json(json!({ "keys": keys }))
}

pub fn entra_settings(authority: String, allowed_tenants: &[&str]) -> AuthSettings {
    AuthSettings {
        authority,
        audiences: vec![
            AUDIENCE.to_owned(),
            "11111111-2222-3333-4444-555555555555".to_owned(),
        ],
        allowed_tenants: allowed_tenants
            .iter()
            .map(|t| t.parse().expect("guid"))
            .collect(),
        dev_auth: None,
    }
}

/// A production authenticator against `idp`.
pub fn entra(idp: &Idp, allowed_tenants: &[&str], options: EntraOptions) -> Authenticator {
    // reqwest is built without a default TLS provider; the binary installs ring in `main`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Authenticator::new(
        Environment::Production,
        &entra_settings(idp.authority(), allowed_tenants),
        options,
    )
    .expect("authenticator")
}

/// A router with one protected route that echoes the principal.
pub fn router(auth: Authenticator) -> Router {
    Router::new()
        .route(
            "/api/v1/me",
            get(|principal: Principal| async move {
                Json(json!({
                    "user_id": principal.user_id.to_string(),
                    "tenant_id": principal.tenant_id.to_string(),
                    "verified_email": principal.verified_email(),
                    "email": principal.email.as_ref().map(|e| e.address().to_owned()),
                    "display_name": principal.display_name,
                }))
            }),
        )
        .with_state(auth)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// Calls `GET /api/v1/me` with the given `Authorization` header value.
pub async fn call(router: &Router, authorization: Option<&str>) -> Reply {
    let mut request = Request::get("/api/v1/me");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    Reply {
        status,
        headers,
        body,
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Short cache tuning for tests that need a refresh to become allowed again.
pub fn quick_refresh(interval: Duration) -> EntraOptions {
    EntraOptions {
        min_refresh_interval: interval,
        retry_after_failure: interval,
        ..EntraOptions::default()
    }
}
