//! A loopback stand-in for the Stripe API: answers the calls Sixpence makes (Customers, Checkout
//! Sessions, Billing Portal Sessions) with Stripe-shaped objects, replays the first answer for a
//! repeated `Idempotency-Key` as Stripe does, and records every call for the test to check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One call Sixpence made.
#[derive(Debug, Clone)]
pub struct StripeCall {
    pub path: String,
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub stripe_version: Option<String>,
}

impl StripeCall {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Recorded {
    calls: Vec<StripeCall>,
    by_key: HashMap<String, Value>,
    next: u64,
    /// `DELETE` calls (cancelling subscriptions), apart from the POSTs.
    deletes: Vec<StripeCall>,
    /// How many of the next `DELETE` calls fail with a 500 (a Stripe outage).
    failing_deletes: usize,
}

/// The running stand-in; stops when dropped.
pub struct StripeStandIn {
    pub base: String,
    recorded: Arc<Mutex<Recorded>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// The secret key the stand-in expects (a test value, never a real key).
pub const TEST_SECRET_KEY: &str = "sk_test_sixpence_standin";

impl StripeStandIn {
    pub async fn start() -> Self {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new()
            .route("/v1/{*path}", post(answer).delete(cancel))
            .with_state(recorded.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            base,
            recorded,
            _shutdown: tx,
        }
    }

    pub fn calls(&self) -> Vec<StripeCall> {
        self.recorded.lock().expect("lock").calls.clone()
    }

    /// The `DELETE` calls made (subscription cancellations).
    pub fn deletes(&self) -> Vec<StripeCall> {
        self.recorded.lock().expect("lock").deletes.clone()
    }

    /// Makes the next `n` `DELETE` calls answer 500, as during a Stripe outage.
    pub fn fail_next_deletes(&self, n: usize) {
        self.recorded.lock().expect("lock").failing_deletes = n;
    }
}

async fn answer(
    State(recorded): State<Arc<Mutex<Recorded>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let call = StripeCall {
        path: path.clone(),
        form: form.clone(),
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
    };
    let mut recorded = recorded.lock().expect("lock");
    recorded.calls.push(call.clone());
    if call.authorization.as_deref() != Some(&format!("Bearer {TEST_SECRET_KEY}")) {
        let error = json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}});
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    if let Some(previous) = call
        .idempotency_key
        .as_ref()
        .and_then(|k| recorded.by_key.get(k))
    {
        return axum::Json(previous.clone()).into_response();
    }
    recorded.next += 1;
    let n = recorded.next;
    let param = |name: &str| call.param(name).map(str::to_owned);
    let object = match path.as_str() {
        "customers" => json!({
            "id": format!("cus_standin{n}"),
            "object": "customer",
            "name": param("name"),
            "metadata": {"workspace": param("metadata[workspace]")},
            "livemode": false,
        }),
        "checkout/sessions" => json!({
            "id": format!("cs_test_standin{n}"),
            "object": "checkout.session",
            "mode": param("mode"),
            "customer": param("customer"),
            "client_reference_id": param("client_reference_id"),
            "status": "open",
            "url": format!("https://checkout.stripe.com/c/pay/cs_test_standin{n}"),
            "livemode": false,
        }),
        "billing_portal/sessions" => json!({
            "id": format!("bps_standin{n}"),
            "object": "billing_portal.session",
            "customer": param("customer"),
            "return_url": param("return_url"),
            "url": format!("https://billing.stripe.com/p/session/test_standin{n}"),
            "livemode": false,
        }),
        _ => {
            let error = json!({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}});
            return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
        }
    };
    if let Some(key) = &call.idempotency_key {
        recorded.by_key.insert(key.clone(), object.clone());
    }
    axum::Json(object).into_response()
}

/// `DELETE /v1/subscriptions/{id}`: cancels at once; a repeated `Idempotency-Key` replays.
async fn cancel(
    State(recorded): State<Arc<Mutex<Recorded>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let call = StripeCall {
        path: path.clone(),
        form: Vec::new(),
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
    };
    let mut recorded = recorded.lock().expect("lock");
    recorded.deletes.push(call.clone());
    if recorded.failing_deletes > 0 {
        recorded.failing_deletes -= 1;
        let error = json!({"error": {"type": "api_error", "message": "stand-in outage"}});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(error)).into_response();
    }
    if call.authorization.as_deref() != Some(&format!("Bearer {TEST_SECRET_KEY}")) {
        let error = json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}});
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    let Some(id) = path.strip_prefix("subscriptions/") else {
        let error = json!({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}});
        return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
    };
    if let Some(previous) = call
        .idempotency_key
        .as_ref()
        .and_then(|k| recorded.by_key.get(k))
    {
        return axum::Json(previous.clone()).into_response();
    }
    let object =
        json!({"id": id, "object": "subscription", "status": "canceled", "livemode": false});
    if let Some(key) = &call.idempotency_key {
        recorded.by_key.insert(key.clone(), object.clone());
    }
    axum::Json(object).into_response()
}
