//! Stripe billing: webhook deliveries (signatures computed here, payloads shaped like Stripe's
//! documented events), at-most-once and order-proof processing, billing events, plan limits, and
//! Checkout / Billing Portal sessions through a loopback Stripe stand-in.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::api::Answer;
use crate::support::{
    TestApp, WEBHOOK_SECRET_NEW, WEBHOOK_SECRET_OLD, spawn_app_with_stripe, token,
};

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `v1` as Stripe computes it: HMAC-SHA256 over `"{t}.{body}"` keyed with the whole secret.
fn v1(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn signed(secret: &str, body: &str) -> String {
    let t = now();
    format!("t={t},v1={}", v1(secret, t, body))
}

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A Stripe `event` envelope (API version 2025-03-31.basil).
pub(crate) fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": created,
        "data": { "object": object, "previous_attributes": {} },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
    .to_string()
}

/// A Stripe `subscription` object with one licensed item.
pub(crate) fn subscription(
    id: &str,
    customer: &str,
    workspace: Option<&str>,
    status: &str,
    price: &str,
    quantity: u32,
) -> Value {
    let start = now() - 86_400;
    json!({
        "id": id,
        "object": "subscription",
        "application": null,
        "automatic_tax": { "enabled": false, "liability": null },
        "billing_cycle_anchor": start,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "collection_method": "charge_automatically",
        "created": start,
        "currency": "gbp",
        "customer": customer,
        "default_payment_method": "pm_1QstandinCard",
        "ended_at": null,
        "items": {
            "object": "list",
            "data": [{
                "id": "si_standin",
                "object": "subscription_item",
                "created": start,
                "current_period_start": start,
                "current_period_end": start + 30 * 86_400,
                "metadata": {},
                "price": {
                    "id": price,
                    "object": "price",
                    "active": true,
                    "billing_scheme": "per_unit",
                    "currency": "gbp",
                    "lookup_key": null,
                    "metadata": {},
                    "nickname": null,
                    "product": "prod_standin",
                    "recurring": { "interval": "month", "interval_count": 1, "usage_type": "licensed" },
                    "type": "recurring",
                    "unit_amount": 1500
                },
                "quantity": quantity,
                "subscription": id
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={id}")
        },
        "latest_invoice": "in_standin",
        "livemode": false,
        "metadata": workspace.map_or(json!({}), |w| json!({ "workspace": w })),
        "start_date": start,
        "status": status,
        "trial_end": null,
        "trial_start": null
    })
}

/// A Stripe `invoice` object of a subscription (2025-03-31.basil: the subscription under `parent`).
fn invoice(
    id: &str,
    customer: &str,
    subscription: &str,
    workspace: &str,
    paid: bool,
    next_attempt: Option<i64>,
) -> Value {
    json!({
        "id": id,
        "object": "invoice",
        "account_country": "GB",
        "amount_due": 4500,
        "amount_paid": if paid { 4500 } else { 0 },
        "amount_remaining": if paid { 0 } else { 4500 },
        "attempt_count": 1,
        "attempted": true,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": now() - 60,
        "currency": "gbp",
        "customer": customer,
        "livemode": false,
        "next_payment_attempt": next_attempt,
        "parent": {
            "type": "subscription_details",
            "quote_details": null,
            "subscription_details": { "metadata": { "workspace": workspace }, "subscription": subscription }
        },
        "status": if paid { "paid" } else { "open" },
        "total": 4500
    })
}

impl TestApp {
    async fn deliver(&self, body: &str, signature: Option<&str>) -> Answer {
        let mut call = self
            .call("POST", "/api/stripe-webhook")
            .raw("application/json; charset=utf-8", body.to_owned());
        if let Some(signature) = signature {
            call = call.header("Stripe-Signature", signature);
        }
        call.send().await
    }

    pub(crate) async fn deliver_signed(&self, body: &str) -> Answer {
        let answer = self
            .deliver(body, Some(&signed(WEBHOOK_SECRET_NEW, body)))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer
    }

    async fn billing(&self, bearer: &str, workspace: &str) -> Value {
        let answer = self
            .get_as(bearer, &format!("/api/v1/workspaces/{workspace}/billing"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body
    }

    /// The billing events raised for `workspace`, as queued.
    async fn billing_events(&self, workspace: &str) -> Vec<Value> {
        let connection = sixpence::storage::StorageConnection::parse_connection_string(
            self._azurite.connection_string(),
        )
        .expect("parses");
        let storage = sixpence::storage::Storage::connect(&connection).expect("connects");
        storage
            .queues()
            .queue("events")
            .expect("queue")
            .peek(32)
            .await
            .expect("peek")
            .into_iter()
            .map(|m| {
                serde_json::from_str::<Value>(&m.text.expect("text")).expect("json")["event"]
                    .clone()
            })
            .filter(|e| e["workspace"] == workspace && e["kind"]["kind"] == "billing")
            .collect()
    }
}

#[tokio::test]
async fn webhook_signatures_are_verified_with_rotated_secrets_and_a_replay_window() {
    let (app, _stripe) = spawn_app_with_stripe(|_| {}).await;
    let owner = token("sig-owner@contoso.com");
    let ws = app.create_workspace(&owner, "Signatures").await;
    let sub = unique("sub");
    let body = |id: &str| {
        event(
            id,
            "customer.subscription.created",
            now(),
            subscription(
                &sub,
                "cus_sig",
                Some(&ws),
                "active",
                "price_team_standin",
                3,
            ),
        )
    };

    // Wrong secret, tampered body, missing or broken header: 400 problems, nothing applied.
    let first = body(&unique("evt"));
    app.deliver(&first, Some(&signed("whsec_not_ours", &first)))
        .await
        .assert_problem(400, Some("invalid-signature"));
    let tampered = first.replace("\"quantity\":3", "\"quantity\":300");
    app.deliver(&tampered, Some(&signed(WEBHOOK_SECRET_NEW, &first)))
        .await
        .assert_problem(400, Some("invalid-signature"));
    app.deliver(&first, None)
        .await
        .assert_problem(400, Some("invalid-signature"));
    app.deliver(&first, Some("t=abc,v1=zz"))
        .await
        .assert_problem(400, Some("invalid-signature"));
    // A genuine signature from ten minutes ago: a replay.
    let old = now() - 600;
    let stale = format!("t={old},v1={}", v1(WEBHOOK_SECRET_NEW, old, &first));
    app.deliver(&first, Some(&stale))
        .await
        .assert_problem(400, Some("stale-signature"));
    assert_eq!(app.billing(&owner, &ws).await["status"], "none");

    // During a rotation both secrets verify, and a header carrying one v1 per secret does too.
    let with_old = body(&unique("evt"));
    let answer = app
        .deliver(&with_old, Some(&signed(WEBHOOK_SECRET_OLD, &with_old)))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let with_new = body(&unique("evt"));
    let answer = app
        .deliver(&with_new, Some(&signed(WEBHOOK_SECRET_NEW, &with_new)))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let with_both = body(&unique("evt"));
    let t = now();
    let header = format!(
        "t={t},v1={},v1={},v0={}",
        v1("whsec_retired", t, &with_both),
        v1(WEBHOOK_SECRET_OLD, t, &with_both),
        "0".repeat(64)
    );
    let answer = app.deliver(&with_both, Some(&header)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let billing = app.billing(&owner, &ws).await;
    assert_eq!(billing["status"], "active");
    assert_eq!(billing["plan"], "team");
    assert_eq!(billing["subscriptionLimit"], 3);
}

#[tokio::test]
async fn each_event_is_processed_once_however_often_it_is_delivered() {
    let (app, _stripe) = spawn_app_with_stripe(|_| {}).await;
    let owner = token("dup-owner@contoso.com");
    let ws = app.create_workspace(&owner, "Duplicates").await;
    let id = unique("evt");
    let body = event(
        &id,
        "customer.subscription.created",
        now(),
        subscription(
            &unique("sub"),
            "cus_dup",
            Some(&ws),
            "trialing",
            "price_business_standin",
            7,
        ),
    );
    let first = app.deliver_signed(&body).await;
    assert_eq!(first.body["duplicate"], Value::Null, "{}", first.text);
    // Stripe redelivers (a timeout on its side, a manual resend), several at once.
    let signatures: Vec<String> = (0..3).map(|_| signed(WEBHOOK_SECRET_NEW, &body)).collect();
    let again = futures::future::join_all(
        signatures
            .iter()
            .map(|signature| app.deliver(&body, Some(signature))),
    )
    .await;
    for answer in &again {
        // The first delivery has finished, so each redelivery is acknowledged as a duplicate (one
        // racing it would get 409 and be retried by Stripe).
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body["duplicate"], true, "{}", answer.text);
    }
    let records: Vec<Value> = app
        .audit_records(&owner, &ws)
        .await
        .into_iter()
        .filter(|r| r["requestId"] == id.as_str())
        .collect();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["action"], "billing.subscription.create");
    assert_eq!(records[0]["actor"], "system:stripe-webhook");
    // Four first deliveries of another event at once: one processes it, the others are told it is
    // done (200) or in progress (409, which Stripe retries).
    let racing = unique("evt");
    let body = event(
        &racing,
        "invoice.paid",
        now(),
        invoice("in_race", "cus_dup", "sub_race", &ws, true, None),
    );
    let signatures: Vec<String> = (0..4).map(|_| signed(WEBHOOK_SECRET_NEW, &body)).collect();
    let answers = futures::future::join_all(
        signatures
            .iter()
            .map(|signature| app.deliver(&body, Some(signature))),
    )
    .await;
    for answer in &answers {
        assert!(
            matches!(answer.status, 200 | 409),
            "{} {}",
            answer.status,
            answer.text
        );
    }
    let processed = app
        .audit_records(&owner, &ws)
        .await
        .into_iter()
        .filter(|r| r["requestId"] == racing.as_str())
        .count();
    assert_eq!(processed, 1);

    let events = app.billing_events(&ws).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["dedupeKey"], format!("billing:{id}"));
    assert_eq!(events[0]["kind"]["change"], "subscriptionChanged");
    assert_eq!(events[0]["kind"]["plan"], "business");
    assert_eq!(events[0]["kind"]["status"], "trialing");
}

#[tokio::test]
async fn an_older_event_arriving_late_never_overwrites_newer_state() {
    let (app, _stripe) = spawn_app_with_stripe(|_| {}).await;
    let owner = token("order-owner@contoso.com");
    let ws = app.create_workspace(&owner, "Ordering").await;
    let sub = unique("sub");
    let t = now();
    let newer = unique("evt");
    let older = unique("evt");
    app.deliver_signed(&event(
        &newer,
        "customer.subscription.updated",
        t - 10,
        subscription(
            &sub,
            "cus_order",
            Some(&ws),
            "active",
            "price_team_standin",
            4,
        ),
    ))
    .await;
    app.deliver_signed(&event(
        &older,
        "customer.subscription.updated",
        t - 100,
        subscription(
            &sub,
            "cus_order",
            Some(&ws),
            "past_due",
            "price_team_standin",
            1,
        ),
    ))
    .await;
    let billing = app.billing(&owner, &ws).await;
    assert_eq!(billing["status"], "active", "{billing}");
    assert_eq!(billing["subscriptionLimit"], 4, "{billing}");
    let records = app.audit_records(&owner, &ws).await;
    let late = records
        .iter()
        .find(|r| r["requestId"] == older.as_str())
        .expect("the late event is in the trail");
    assert_eq!(late["outcome"], "rejected", "{late}");
    assert_eq!(late["changes"], json!([]), "{late}");
    let applied = records
        .iter()
        .find(|r| r["requestId"] == newer.as_str())
        .expect("applied");
    assert_eq!(applied["outcome"], "succeeded");

    // The cancellation, newer than both, does apply.
    app.deliver_signed(&event(
        &unique("evt"),
        "customer.subscription.deleted",
        t,
        subscription(
            &sub,
            "cus_order",
            Some(&ws),
            "canceled",
            "price_team_standin",
            4,
        ),
    ))
    .await;
    assert_eq!(app.billing(&owner, &ws).await["status"], "canceled");
    let events = app.billing_events(&ws).await;
    assert!(
        events
            .iter()
            .any(|e| e["kind"]["change"] == "subscriptionCancelled"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_failed_payment_raises_a_billing_event_and_a_late_one_does_not() {
    let (app, _stripe) = spawn_app_with_stripe(|_| {}).await;
    let owner = token("pay-owner@contoso.com");
    let ws = app.create_workspace(&owner, "Payments").await;
    let sub = unique("sub");
    let t = now();
    let next_attempt = t + 3 * 86_400;
    let failed = unique("evt");
    app.deliver_signed(&event(
        &failed,
        "invoice.payment_failed",
        t - 50,
        invoice("in_1", "cus_pay", &sub, &ws, false, Some(next_attempt)),
    ))
    .await;
    let events = app.billing_events(&ws).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let raised = &events[0];
    assert_eq!(raised["dedupeKey"], format!("billing:{failed}"));
    assert_eq!(raised["severity"], "critical");
    assert_eq!(raised["kind"]["change"], "paymentFailed");
    assert_eq!(raised["kind"]["amount"], 45_000_000, "£45.00 in micros");
    assert_eq!(raised["kind"]["currency"], "GBP");
    assert!(!raised["kind"]["nextAttempt"].is_null(), "{raised}");
    assert_eq!(app.billing(&owner, &ws).await["lastPayment"], "failed");
    let record = app
        .audit_records(&owner, &ws)
        .await
        .into_iter()
        .find(|r| r["requestId"] == failed.as_str())
        .expect("audited");
    assert_eq!(record["action"], "billing.invoice.payment-failed");
    assert!(
        !record.to_string().contains("pm_"),
        "no payment method in the trail"
    );

    // Paid on the retry; then an older failure arrives late: no second alarm.
    app.deliver_signed(&event(
        &unique("evt"),
        "invoice.paid",
        t - 5,
        invoice("in_1", "cus_pay", &sub, &ws, true, None),
    ))
    .await;
    app.deliver_signed(&event(
        &unique("evt"),
        "invoice.payment_failed",
        t - 80,
        invoice("in_0", "cus_pay", &sub, &ws, false, Some(next_attempt)),
    ))
    .await;
    assert_eq!(app.billing(&owner, &ws).await["lastPayment"], "paid");
    assert_eq!(app.billing_events(&ws).await.len(), 1);
}

#[tokio::test]
async fn the_plan_limits_how_many_subscriptions_may_be_chosen() {
    let (app, _stripe) = spawn_app_with_stripe(|s| s.free_subscriptions = 1).await;
    let owner = token("limit-owner@contoso.com");
    let ws = app.create_workspace(&owner, "Limits").await;
    let connection = app.connect(&owner, &ws).await;
    let subs = app.sim.credentials(0).subscriptions;
    let choose = |ids: Vec<String>| {
        let path = format!("/api/v1/workspaces/{ws}/connections/{connection}/subscriptions");
        let owner = owner.clone();
        let app = &app;
        async move {
            app.call("PUT", &path)
                .auth(Some(&owner))
                .json(&json!({ "subscriptionIds": ids }))
                .send()
                .await
        }
    };

    // No paid plan: the free limit (1 here).
    let refused = choose(subs[..2].to_vec()).await;
    refused.assert_problem(402, Some("plan-limit"));
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("allows 1")),
        "{}",
        refused.text
    );
    assert_eq!(choose(subs[..1].to_vec()).await.status, 200);
    let billing = app.billing(&owner, &ws).await;
    assert_eq!(billing["status"], "none");
    assert_eq!(billing["subscriptionLimit"], 1);
    assert_eq!(billing["subscriptionsChosen"], 1);

    // Two subscriptions bought.
    let sub = unique("sub");
    let t = now();
    app.deliver_signed(&event(
        &unique("evt"),
        "customer.subscription.created",
        t - 30,
        subscription(
            &sub,
            "cus_limit",
            Some(&ws),
            "active",
            "price_team_standin",
            2,
        ),
    ))
    .await;
    assert_eq!(choose(subs[..2].to_vec()).await.status, 200);
    choose(subs[..3].to_vec())
        .await
        .assert_problem(402, Some("plan-limit"));

    // Cancelled: back to the free limit. What is chosen stays; it may be reduced, not raised.
    app.deliver_signed(&event(
        &unique("evt"),
        "customer.subscription.deleted",
        t,
        subscription(
            &sub,
            "cus_limit",
            Some(&ws),
            "canceled",
            "price_team_standin",
            2,
        ),
    ))
    .await;
    let billing = app.billing(&owner, &ws).await;
    assert_eq!(billing["subscriptionLimit"], 1);
    assert_eq!(billing["subscriptionsChosen"], 2);
    assert_eq!(
        choose(vec![subs[1].clone(), subs[2].clone()]).await.status,
        200,
        "a swap"
    );
    assert_eq!(choose(subs[..1].to_vec()).await.status, 200, "a reduction");
    choose(subs[..2].to_vec())
        .await
        .assert_problem(402, Some("plan-limit"));

    // The refusals are in the trail as rejected.
    let rejected = app
        .audit_records(&owner, &ws)
        .await
        .into_iter()
        .filter(|r| r["action"] == "connection.subscriptions.choose" && r["outcome"] == "rejected")
        .count();
    assert_eq!(rejected, 3);
}

#[tokio::test]
async fn owners_open_checkout_and_the_portal_through_stripe_with_idempotency_keys() {
    let (app, stripe) = spawn_app_with_stripe(|_| {}).await;
    let owner = token("checkout-owner@contoso.com");
    let ws = app.create_workspace(&owner, "Checkout").await;
    app.join(&owner, &ws, "checkout-admin@contoso.com", "admin")
        .await;
    let admin = token("checkout-admin@contoso.com");
    let checkout = |bearer: String, body: Value| {
        let app = &app;
        let path = format!("/api/v1/workspaces/{ws}/billing/checkout");
        async move {
            app.call("POST", &path)
                .auth(Some(&bearer))
                .json(&body)
                .send()
                .await
        }
    };
    let body = json!({
        "plan": "team",
        "quantity": 8,
        "successUrl": "https://app.sixpence.example/billing/done?session={CHECKOUT_SESSION_ID}",
        "cancelUrl": "https://app.sixpence.example/billing",
    });

    // Only owners; plans and URLs are checked before Stripe is called.
    checkout(admin.clone(), body.clone())
        .await
        .assert_problem(403, Some("forbidden"));
    let mut unknown = body.clone();
    unknown["plan"] = json!("platinum");
    checkout(owner.clone(), unknown)
        .await
        .assert_problem(400, Some("invalid-request"));
    let mut insecure = body.clone();
    insecure["successUrl"] = json!("http://evil.example/");
    checkout(owner.clone(), insecure)
        .await
        .assert_problem(400, Some("invalid-request"));
    assert!(stripe.calls().is_empty(), "{:?}", stripe.calls());

    let started = checkout(owner.clone(), body.clone()).await;
    assert_eq!(started.status, 200, "{}", started.text);
    assert!(
        started.body["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://checkout.stripe.com/")),
        "{}",
        started.text
    );
    let portal = app
        .call("POST", &format!("/api/v1/workspaces/{ws}/billing/portal"))
        .auth(Some(&owner))
        .json(&json!({ "returnUrl": "https://app.sixpence.example/billing" }))
        .send()
        .await;
    assert_eq!(portal.status, 200, "{}", portal.text);
    assert!(
        portal.body["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://billing.stripe.com/")),
        "{}",
        portal.text
    );

    // What Stripe saw: one customer for the workspace, then the sessions, each POST with its own
    // idempotency key, the secret key as bearer, form-encoded, the workspace on everything.
    let calls = stripe.calls();
    let paths: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["customers", "checkout/sessions", "billing_portal/sessions"],
        "{calls:#?}"
    );
    let keys: std::collections::BTreeSet<&str> = calls
        .iter()
        .map(|c| {
            c.idempotency_key
                .as_deref()
                .expect("Idempotency-Key on every POST")
        })
        .collect();
    assert_eq!(keys.len(), calls.len(), "a key per operation");
    for call in &calls {
        assert_eq!(
            call.authorization.as_deref(),
            Some("Bearer sk_test_sixpence_standin")
        );
        assert!(call.stripe_version.is_some());
    }
    assert_eq!(calls[0].param("metadata[workspace]"), Some(ws.as_str()));
    let customer = "cus_standin1";
    let session = &calls[1];
    assert_eq!(session.param("mode"), Some("subscription"));
    assert_eq!(session.param("customer"), Some(customer));
    assert_eq!(session.param("client_reference_id"), Some(ws.as_str()));
    assert_eq!(
        session.param("line_items[0][price]"),
        Some("price_team_standin")
    );
    assert_eq!(session.param("line_items[0][quantity]"), Some("8"));
    assert_eq!(
        session.param("subscription_data[metadata][workspace]"),
        Some(ws.as_str())
    );
    assert_eq!(calls[2].param("customer"), Some(customer));
    for answer in [&started, &portal] {
        assert!(!answer.text.contains("sk_test"), "{}", answer.text);
    }

    // Both requests are in the trail.
    let records = app.audit_records(&owner, &ws).await;
    for action in ["billing.checkout.start", "billing.portal.open"] {
        assert!(
            records
                .iter()
                .any(|r| r["action"] == action && r["outcome"] == "succeeded"),
            "{action}: {records:#?}"
        );
    }

    // Checkout completes; a subscription event naming only the customer finds the workspace.
    app.deliver_signed(&event(
        &unique("evt"),
        "checkout.session.completed",
        now() - 20,
        json!({
            "id": "cs_test_standin2",
            "object": "checkout.session",
            "client_reference_id": ws,
            "customer": customer,
            "livemode": false,
            "metadata": { "workspace": ws },
            "mode": "subscription",
            "payment_status": "paid",
            "status": "complete",
            "subscription": "sub_checkout",
        }),
    ))
    .await;
    app.deliver_signed(&event(
        &unique("evt"),
        "customer.subscription.created",
        now() - 10,
        subscription(
            "sub_checkout",
            customer,
            None,
            "active",
            "price_team_standin",
            8,
        ),
    ))
    .await;
    let billing = app.billing(&owner, &ws).await;
    assert_eq!(billing["plan"], "team");
    assert_eq!(billing["subscriptionLimit"], 8);
    assert!(
        !billing.to_string().contains("cus_"),
        "no Stripe ids in the view"
    );

    // A second Checkout would bill twice: changes go through the portal.
    let calls = stripe.calls().len();
    checkout(owner.clone(), body.clone())
        .await
        .assert_problem(409, Some("conflict"));
    assert_eq!(stripe.calls().len(), calls);
}

#[tokio::test]
async fn without_stripe_configured_billing_says_so_and_webhooks_are_refused() {
    let app = crate::support::spawn_app().await;
    let owner = token("nostripe-owner@contoso.com");
    let ws = app.create_workspace(&owner, "No Stripe").await;
    let body = event(&unique("evt"), "invoice.paid", now(), json!({}));
    app.deliver(&body, Some(&signed(WEBHOOK_SECRET_NEW, &body)))
        .await
        .assert_problem(503, Some("billing-unavailable"));
    let portal = app
        .call("POST", &format!("/api/v1/workspaces/{ws}/billing/portal"))
        .auth(Some(&owner))
        .json(&json!({ "returnUrl": "https://app.sixpence.example/billing" }))
        .send()
        .await;
    portal.assert_problem(503, Some("billing-unavailable"));
    assert_eq!(app.billing(&owner, &ws).await["subscriptionLimit"], 5);
}

/// The real binary at debug level through checkout, the portal and webhook deliveries (good and
/// bad): neither the Stripe key nor a webhook secret appears in any response or log line.
#[tokio::test]
async fn no_stripe_secret_appears_in_responses_or_logs() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let stripe = crate::support::stripe::StripeStandIn::start().await;
    let azurite = sixpence_testkit::Azurite::start()
        .await
        .expect("Azurite starts");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let key = crate::support::stripe::TEST_SECRET_KEY;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sixpence"))
        .arg("serve")
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("AzureWebJobsStorage", azurite.connection_string())
        .env("SIXPENCE_ENVIRONMENT", "development")
        .env("SIXPENCE_DEV_AUTH", sixpence_testkit::DEV_AUTH)
        .env("SIXPENCE_DATA_KEYS", sixpence::config::DEV_DATA_KEYS)
        .env("STRIPE_SECRET_KEY", key)
        .env(
            "STRIPE_WEBHOOK_SECRET",
            format!("{WEBHOOK_SECRET_OLD},{WEBHOOK_SECRET_NEW}"),
        )
        .env("STRIPE_API_BASE", &stripe.base)
        .env("STRIPE_PLANS", "team=price_team_standin")
        .env("SIXPENCE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while http.get(format!("{base}/")).send().await.is_err() {
        assert!(started.elapsed().as_secs() < 30, "no readiness");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    let mut seen = Vec::new();
    let owner = sixpence_testkit::dev_token("leak-owner@contoso.example");
    let created = http
        .post(format!("{base}/api/v1/workspaces"))
        .bearer_auth(&owner)
        .json(&json!({ "name": "Stripe leak check" }))
        .send()
        .await
        .expect("created");
    let ws: Value = created.json().await.expect("json");
    let ws = ws["id"].as_str().expect("id").to_owned();
    for (path, body) in [
        (
            "billing/checkout",
            json!({"plan": "team", "quantity": 2, "successUrl": "https://a.example/ok", "cancelUrl": "https://a.example/back"}),
        ),
        (
            "billing/portal",
            json!({"returnUrl": "https://a.example/back"}),
        ),
    ] {
        let response = http
            .post(format!("{base}/api/v1/workspaces/{ws}/{path}"))
            .bearer_auth(&owner)
            .json(&body)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 200);
        seen.push(format!("{:?}", response.headers()));
        seen.push(response.text().await.expect("body"));
    }
    let body = event(
        &unique("evt"),
        "invoice.payment_failed",
        now(),
        invoice("in_leak", "cus_standin1", "sub_leak", &ws, false, None),
    );
    for signature in [
        signed(WEBHOOK_SECRET_OLD, &body),
        signed("whsec_wrong", &body),
    ] {
        let response = http
            .post(format!("{base}/api/stripe-webhook"))
            .header("Stripe-Signature", signature)
            .body(body.clone())
            .send()
            .await
            .expect("answers");
        seen.push(response.text().await.expect("body"));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    seen.push(out.join().expect("stdout"));
    seen.push(err.join().expect("stderr"));
    let everything = seen.join("\n");
    assert!(
        everything.contains("Stripe event processed"),
        "the webhook ran"
    );
    for secret in [key, WEBHOOK_SECRET_OLD, WEBHOOK_SECRET_NEW, "whsec_wrong"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn concurrent_choices_on_two_connections_never_exceed_the_plan_limit_together() {
    let (app, _stripe) = spawn_app_with_stripe(|s| s.free_subscriptions = 2).await;
    let owner = token("race-owner@contoso.com");
    let subs = app.sim.credentials(0).subscriptions;
    // A fresh workspace each round (a choice cannot be taken back to none).
    for round in 0..6 {
        let ws = app.create_workspace(&owner, &format!("Race {round}")).await;
        let connections = [
            app.connect(&owner, &ws).await,
            app.connect(&owner, &ws).await,
        ];
        let choose = |connection: &str, ids: Vec<String>| {
            let path = format!("/api/v1/workspaces/{ws}/connections/{connection}/subscriptions");
            let (app, owner) = (&app, owner.clone());
            async move {
                app.call("PUT", &path)
                    .auth(Some(&owner))
                    .json(&json!({ "subscriptionIds": ids }))
                    .send()
                    .await
            }
        };
        // Each choice fits the limit alone; together they would double it.
        let (a, b) = tokio::join!(
            choose(&connections[0], subs[..2].to_vec()),
            choose(&connections[1], subs[..2].to_vec())
        );
        for answer in [&a, &b] {
            assert!(
                answer.status == 200 || answer.status == 402,
                "round {round}: {} {}",
                answer.status,
                answer.text
            );
        }
        assert!(
            a.status != 200 || b.status != 200,
            "round {round}: both choices were kept"
        );
        let chosen = app.billing(&owner, &ws).await["subscriptionsChosen"]
            .as_u64()
            .expect("chosen");
        let kept = [&a, &b].iter().filter(|x| x.status == 200).count() as u64;
        assert_eq!(
            chosen,
            2 * kept,
            "round {round}: what is chosen is what was kept"
        );
    }
}
