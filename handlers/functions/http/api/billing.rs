//! Billing: the workspace's plan and limit, and (owners only) Stripe Checkout to buy a plan and the
//! Stripe Billing Portal to change or cancel it, update payment details and see invoices. Card
//! details are only ever entered on Stripe's pages; Sixpence never sees them.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::context::{JsonBody, Scoped, audit};
use super::views::timestamp;
use crate::app::AppState;
use crate::domain::audit::Change;
use crate::domain::billing::{BillingAccount, BillingError};
use crate::error::Result;

/// The workspace's plan as Stripe last told Sixpence.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingView {
    /// The plan bought; absent before the first purchase.
    #[schema(example = "team")]
    pub plan: Option<String>,
    /// Stripe's subscription status (`trialing`, `active`, `past_due`, `canceled`, …) or `none`.
    #[schema(example = "active")]
    pub status: String,
    /// Azure subscriptions the workspace may choose for sync now.
    #[schema(example = 10)]
    pub subscription_limit: u32,
    /// Azure subscriptions chosen now, across every connection.
    #[schema(example = 4)]
    pub subscriptions_chosen: u32,
    #[schema(example = "2026-12-07T00:00:00Z")]
    pub trial_end: Option<String>,
    #[schema(example = "2026-12-20T09:30:00Z")]
    pub current_period_end: Option<String>,
    /// The subscription ends at the end of the period (cancelled in the portal).
    #[schema(example = false)]
    pub cancel_at_period_end: bool,
    /// `paid` or `failed`: the outcome of the last invoice payment, if any.
    #[schema(example = "paid")]
    pub last_payment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartCheckout {
    /// A plan this service sells.
    #[schema(example = "team")]
    pub plan: String,
    /// Azure subscriptions to pay for (1–1000); the plan's limit. Default 1.
    #[schema(example = 10)]
    pub quantity: Option<u32>,
    /// Where Stripe sends the owner after paying (https).
    #[schema(example = "https://app.sixpence.example/billing/done")]
    pub success_url: String,
    /// Where Stripe sends the owner if they go back (https).
    #[schema(example = "https://app.sixpence.example/billing")]
    pub cancel_url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenPortal {
    /// Where the portal's "return" link leads (https).
    #[schema(example = "https://app.sixpence.example/billing")]
    pub return_url: String,
}

/// A Stripe-hosted page to send the owner to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    #[schema(example = "cs_test_a1b2c3")]
    pub id: String,
    #[schema(example = "https://checkout.stripe.com/c/pay/cs_test_a1b2c3")]
    pub url: String,
}

/// A return URL Stripe may send the owner to: https (http only to a loopback address, for local
/// development), at most 2048 characters.
fn return_url(field: &str, raw: &str) -> Result<String> {
    let invalid = || BillingError::Invalid(format!("{field} must be an https:// URL"));
    let url = url::Url::parse(raw).map_err(|_| invalid())?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let ok = raw.len() <= 2048
        && url.host().is_some()
        && (url.scheme() == "https" || (url.scheme() == "http" && loopback));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(invalid().into())
    }
}

/// The number of Azure subscriptions chosen across the workspace's connections.
pub async fn chosen(
    state: &AppState,
    workspace: crate::domain::tenancy::WorkspaceId,
) -> Result<u32> {
    let connections = state.connections().store().list(workspace).await?;
    Ok(connections
        .iter()
        .map(|c| c.value.subscriptions.iter().filter(|s| s.selected).count())
        .sum::<usize>()
        .try_into()
        .unwrap_or(u32::MAX))
}

/// The workspace's plan, status and subscription limit.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/billing", tag = "billing",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Billing status", body = BillingView)))]
pub async fn status(State(state): State<AppState>, scoped: Scoped) -> Result<Json<BillingView>> {
    let workspace = scoped.scope.id();
    let account = state.billing().account(workspace).await?;
    let limit =
        BillingAccount::subscription_limit(account.as_ref(), state.settings().free_subscriptions);
    let subscription = account.as_ref().and_then(|a| a.subscription.as_ref());
    Ok(Json(BillingView {
        plan: subscription.map(|s| s.plan.clone()),
        status: subscription.map_or_else(|| "none".to_owned(), |s| s.status.clone()),
        subscription_limit: limit,
        subscriptions_chosen: chosen(&state, workspace).await?,
        trial_end: subscription.and_then(|s| s.trial_end).map(timestamp),
        current_period_end: subscription
            .and_then(|s| s.current_period_end)
            .map(timestamp),
        cancel_at_period_end: subscription.is_some_and(|s| s.cancel_at_period_end),
        last_payment: account
            .as_ref()
            .and_then(|a| a.last_payment.as_ref())
            .map(|p| if p.paid { "paid" } else { "failed" }.to_owned()),
    }))
}

/// Start a Stripe Checkout session for a plan; send the owner to `url`. The subscription takes
/// effect when Stripe reports it (webhook), not when this answers.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/billing/checkout", tag = "billing",
    request_body = StartCheckout,
    params(("id" = String, Path, description = "Workspace id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key replays the first answer for 24 h")),
    responses((status = 200, description = "The Checkout page", body = SessionView)))]
pub async fn checkout(
    State(state): State<AppState>,
    scoped: Scoped,
    JsonBody(body): JsonBody<StartCheckout>,
) -> Result<Json<SessionView>> {
    let quantity = body.quantity.unwrap_or(1);
    if !(1..=1000).contains(&quantity) {
        return Err(BillingError::Invalid("quantity must be between 1 and 1000".to_owned()).into());
    }
    let success = return_url("successUrl", &body.success_url)?;
    let cancel = return_url("cancelUrl", &body.cancel_url)?;
    let workspace = scoped.scope.id();
    let session = state
        .billing()
        .start_checkout(workspace, &body.plan, quantity, &success, &cancel)
        .await?;
    audit(
        scoped.audit.as_ref(),
        format!("workspace/{workspace}/billing"),
        vec![Change::new(
            "checkout",
            None,
            Some(format!("{} x{quantity}", body.plan)),
        )],
    );
    Ok(Json(SessionView {
        id: session.id,
        url: session.url,
    }))
}

/// Open the Stripe Billing Portal (change plan or quantity, cancel, payment details, invoices).
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/billing/portal", tag = "billing",
    request_body = OpenPortal,
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "The portal page", body = SessionView)))]
pub async fn portal(
    State(state): State<AppState>,
    scoped: Scoped,
    JsonBody(body): JsonBody<OpenPortal>,
) -> Result<Json<SessionView>> {
    let back = return_url("returnUrl", &body.return_url)?;
    let workspace = scoped.scope.id();
    let session = state.billing().open_portal(workspace, &back).await?;
    audit(
        scoped.audit.as_ref(),
        format!("workspace/{workspace}/billing"),
        Vec::new(),
    );
    Ok(Json(SessionView {
        id: session.id,
        url: session.url,
    }))
}
