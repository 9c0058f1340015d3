//! The billing service: Stripe webhook events in, Checkout and Billing Portal sessions out, and the
//! plan limits the rest of the app asks about.
//!
//! Webhook processing is at most once per event id (a claim in `stripeevents`) and order-proof (the
//! account keeps the Stripe time of each part, `domain::billing`). Each processed event is audited in
//! its workspace's trail (actor `system:stripe-webhook`, request id = the Stripe event id) and the
//! changes owners must hear about are raised as billing events (dedupe key `billing:<event id>`).

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::audit::{Actor, AuditLog, AuditRecord, Change, Outcome};
use crate::domain::billing::{
    Applied, BillingAccount, BillingError, BillingStore, EventClaim, PaymentState,
    SubscriptionState, check_subscription_limit, is_stripe_id,
};
use crate::domain::costs::Micros;
use crate::domain::events::{BillingEvent, Event, EventKind, EventSink, Severity};
use crate::domain::store::{StoreError, Versioned};
use crate::domain::tenancy::{TenancyStore, WorkspaceId};
use crate::error::{Error, Result};
use crate::stripe::{StripeClient, StripeError};

const COMPONENT: &str = "stripe-webhook";
const WRITE_ATTEMPTS: usize = 5;

/// A Stripe event as delivered (the parts Sixpence reads).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    pub data: StripeEventData,
    #[serde(default)]
    pub livemode: bool,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct StripeEventData {
    pub object: Value,
}

/// What processing an event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Applied (or found stale) for this workspace.
    Handled(WorkspaceId),
    /// Processed before: nothing done.
    Duplicate,
    /// Not about a workspace Sixpence knows, or a type it does not handle: acknowledged.
    Ignored(&'static str),
}

/// A Checkout or Portal session to send the owner to.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub url: String,
}

pub struct BillingService {
    store: Arc<dyn BillingStore>,
    events: Arc<dyn EventSink>,
    audit: Arc<dyn AuditLog>,
    tenancy: Arc<dyn TenancyStore>,
    stripe: Option<StripeClient>,
    plans: Vec<(String, String)>,
    free_subscriptions: u32,
}

impl BillingService {
    pub fn new(
        store: Arc<dyn BillingStore>,
        events: Arc<dyn EventSink>,
        audit: Arc<dyn AuditLog>,
        tenancy: Arc<dyn TenancyStore>,
        stripe: Option<StripeClient>,
        plans: Vec<(String, String)>,
        free_subscriptions: u32,
    ) -> Self {
        Self {
            store,
            events,
            audit,
            tenancy,
            stripe,
            plans,
            free_subscriptions,
        }
    }

    pub fn store(&self) -> &dyn BillingStore {
        self.store.as_ref()
    }

    /// The workspace's billing account, if it has one yet.
    pub async fn account(&self, workspace: WorkspaceId) -> Result<Option<BillingAccount>> {
        Ok(self.store.account(workspace).await?.map(|a| a.value))
    }

    /// The number of Azure subscriptions the workspace may choose.
    pub async fn subscription_limit(&self, workspace: WorkspaceId) -> Result<u32> {
        let account = self.account(workspace).await?;
        Ok(BillingAccount::subscription_limit(
            account.as_ref(),
            self.free_subscriptions,
        ))
    }

    /// Refuses (402) a choice that raises the number of chosen subscriptions above the limit.
    pub async fn check_subscription_choice(
        &self,
        workspace: WorkspaceId,
        before: u32,
        after: u32,
    ) -> Result<()> {
        if after <= before {
            return Ok(());
        }
        let limit = self.subscription_limit(workspace).await?;
        check_subscription_limit(limit, before, after).map_err(Error::from)
    }

    // ---------------------------------------------------------------------------------------
    // Webhook events
    // ---------------------------------------------------------------------------------------

    /// Processes one verified event, at most once per event id.
    pub async fn process(&self, event: &StripeEvent) -> Result<Processed> {
        if !is_stripe_id(&event.id) {
            return Err(Error::InvalidRequest(
                "the event id is not a Stripe id".to_owned(),
            ));
        }
        match self.store.claim_event(&event.id, &event.kind).await? {
            EventClaim::Done => return Ok(Processed::Duplicate),
            EventClaim::InProgress => {
                return Err(Error::Conflict(
                    "this event is being processed by another delivery; retry later".to_owned(),
                ));
            }
            EventClaim::New => {}
        }
        match self.handle(event).await {
            Ok(processed) => {
                let workspace = match &processed {
                    Processed::Handled(w) => Some(*w),
                    _ => None,
                };
                self.store.complete_event(&event.id, workspace).await?;
                Ok(processed)
            }
            Err(err) => {
                // Stripe retries a failed delivery; let that retry run the event again.
                if let Err(release) = self.store.release_event(&event.id).await {
                    tracing::warn!(error = %release, event = %event.id, "could not release a Stripe event claim");
                }
                Err(err)
            }
        }
    }

    async fn handle(&self, event: &StripeEvent) -> Result<Processed> {
        let object = &event.data.object;
        let Some(as_of) = OffsetDateTime::from_unix_timestamp(event.created).ok() else {
            return Err(Error::InvalidRequest(
                "the event's `created` is not a time".to_owned(),
            ));
        };
        let kind = event.kind.as_str();
        let workspace = match kind {
            "checkout.session.completed" => {
                let by_reference = object["client_reference_id"]
                    .as_str()
                    .and_then(WorkspaceId::parse);
                match by_reference.or_else(|| metadata_workspace(object)) {
                    Some(w) => Some(w),
                    None => self.by_customer(object).await?,
                }
            }
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "customer.subscription.trial_will_end" => match metadata_workspace(object) {
                Some(w) => Some(w),
                None => self.by_customer(object).await?,
            },
            "invoice.paid" | "invoice.payment_failed" => {
                let from_metadata = [
                    &object["parent"]["subscription_details"]["metadata"],
                    &object["subscription_details"]["metadata"],
                    &object["metadata"],
                ]
                .into_iter()
                .find_map(|m| m["workspace"].as_str().and_then(WorkspaceId::parse));
                match from_metadata {
                    Some(w) => Some(w),
                    None => self.by_customer(object).await?,
                }
            }
            _ => return Ok(Processed::Ignored("an event type Sixpence does not handle")),
        };
        let Some(workspace) = workspace else {
            tracing::warn!(event = %event.id, event_type = kind, "Stripe event for no known workspace; acknowledged");
            return Ok(Processed::Ignored("no workspace"));
        };
        if self.tenancy.workspace(workspace).await?.is_none() {
            tracing::warn!(event = %event.id, event_type = kind, workspace = %workspace, "Stripe event for a workspace that does not exist; acknowledged");
            return Ok(Processed::Ignored("no workspace"));
        }

        let customer = id_of(&object["customer"]);
        if let Some(customer) = &customer
            && is_stripe_id(customer)
        {
            self.store.link_customer(customer, workspace).await?;
        }

        let (action, applied, raise) = match kind {
            "checkout.session.completed" => {
                let applied = self
                    .update_account(workspace, |account| {
                        let mut changes = Vec::new();
                        if let Some(customer) = &customer
                            && account.customer.as_deref() != Some(customer)
                        {
                            changes.push(Change::new(
                                "stripeCustomer",
                                account.customer.clone(),
                                Some(customer.clone()),
                            ));
                            account.customer = Some(customer.clone());
                        }
                        Applied::Changed(changes)
                    })
                    .await?;
                ("billing.checkout.complete", applied, None)
            }
            "invoice.paid" | "invoice.payment_failed" => {
                let paid = kind == "invoice.paid";
                let payment = PaymentState {
                    invoice: object["id"].as_str().unwrap_or_default().to_owned(),
                    paid,
                    amount_minor: object[if paid { "amount_paid" } else { "amount_due" }]
                        .as_i64()
                        .unwrap_or(0),
                    currency: object["currency"].as_str().unwrap_or("").to_owned(),
                    next_attempt: object["next_payment_attempt"]
                        .as_i64()
                        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
                    as_of,
                };
                let raise = (!paid).then(|| BillingEvent::PaymentFailed {
                    amount: to_micros(payment.amount_minor, &payment.currency),
                    currency: payment.currency.to_ascii_uppercase(),
                    next_attempt: payment.next_attempt.map(OffsetDateTime::date),
                });
                let applied = self
                    .update_account(workspace, |account| {
                        fill_customer(account, &customer);
                        account.apply_payment(payment.clone())
                    })
                    .await?;
                let action = if paid {
                    "billing.invoice.paid"
                } else {
                    "billing.invoice.payment-failed"
                };
                (action, applied, raise)
            }
            _ => {
                let next = self.subscription_state(object, as_of)?;
                let before = self
                    .store
                    .account(workspace)
                    .await?
                    .and_then(|a| a.value.subscription);
                let applied = self
                    .update_account(workspace, |account| {
                        fill_customer(account, &customer);
                        account.apply_subscription(next.clone())
                    })
                    .await?;
                let raise = match kind {
                    "customer.subscription.deleted" => Some(BillingEvent::SubscriptionCancelled {
                        ends_on: object["ended_at"]
                            .as_i64()
                            .or_else(|| object["canceled_at"].as_i64())
                            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                            .map(OffsetDateTime::date),
                    }),
                    "customer.subscription.trial_will_end" => {
                        next.trial_end.map(|t| BillingEvent::TrialEnding {
                            trial_end: t.date(),
                        })
                    }
                    _ => {
                        let changed = before
                            .as_ref()
                            .is_none_or(|b| b.plan != next.plan || b.status != next.status);
                        changed.then(|| BillingEvent::SubscriptionChanged {
                            plan: next.plan.clone(),
                            status: next.status.clone(),
                        })
                    }
                };
                let action = match kind {
                    "customer.subscription.created" => "billing.subscription.create",
                    "customer.subscription.updated" => "billing.subscription.update",
                    "customer.subscription.deleted" => "billing.subscription.delete",
                    _ => "billing.subscription.trial-ending",
                };
                (action, applied, raise)
            }
        };

        let (outcome, changes) = match &applied {
            Applied::Changed(changes) => (Outcome::Succeeded, changes.clone()),
            // Older than what is stored: recorded, so the trail shows it arrived and was not applied.
            Applied::Stale => (Outcome::Rejected, Vec::new()),
        };
        let target = match id_of(&object["id"]) {
            Some(id) => format!("stripe/{id}"),
            None => format!("stripe/{}", event.id),
        };
        let record = AuditRecord {
            workspace,
            at: OffsetDateTime::now_utc(),
            actor: Actor::System {
                component: COMPONENT.to_owned(),
            },
            action: action.to_owned(),
            target,
            request_id: event.id.clone(),
            outcome,
            changes,
        };
        self.audit.append(&record).await?;

        if let (Applied::Changed(_), Some(change)) = (&applied, raise) {
            let severity = match &change {
                BillingEvent::PaymentFailed { .. } => Severity::Critical,
                BillingEvent::SubscriptionChanged { status, .. }
                    if !matches!(status.as_str(), "active" | "trialing") =>
                {
                    Severity::Warning
                }
                BillingEvent::SubscriptionChanged { .. } => Severity::Info,
                BillingEvent::SubscriptionCancelled { .. } | BillingEvent::TrialEnding { .. } => {
                    Severity::Warning
                }
            };
            let raised = Event::new(
                workspace,
                OffsetDateTime::now_utc(),
                severity,
                format!("billing:{}", event.id),
                EventKind::Billing(change),
            );
            self.events.raise(&raised).await?;
        }
        tracing::info!(event = %event.id, event_type = kind, workspace = %workspace, stale = matches!(applied, Applied::Stale), "Stripe event processed");
        Ok(Processed::Handled(workspace))
    }

    async fn by_customer(&self, object: &Value) -> Result<Option<WorkspaceId>> {
        match id_of(&object["customer"]) {
            Some(customer) => Ok(self.store.workspace_of_customer(&customer).await?),
            None => Ok(None),
        }
    }

    /// The subscription state a Stripe Subscription object describes.
    fn subscription_state(
        &self,
        object: &Value,
        as_of: OffsetDateTime,
    ) -> Result<SubscriptionState> {
        let id = id_of(&object["id"])
            .filter(|id| is_stripe_id(id))
            .ok_or_else(|| Error::InvalidRequest("the subscription has no id".to_owned()))?;
        let items: Vec<&Value> = object["items"]["data"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        static NONE: Value = Value::Null;
        let first = items.first().copied().unwrap_or(&NONE);
        let price = &first["price"];
        let price_id = price["id"].as_str().map(str::to_owned);
        let plan = price_id
            .as_deref()
            .and_then(|p| self.plans.iter().find(|(_, price)| price == p))
            .map(|(name, _)| name.clone())
            .or_else(|| price["lookup_key"].as_str().map(str::to_owned))
            .or_else(|| price_id.clone())
            .unwrap_or_else(|| "unknown".to_owned());
        let quantity: u32 = items
            .iter()
            .map(|i| {
                i["quantity"]
                    .as_u64()
                    .and_then(|q| u32::try_from(q).ok())
                    .unwrap_or(0)
            })
            .fold(0u32, u32::saturating_add);
        let limit = price["metadata"]["subscription_limit"]
            .as_str()
            .and_then(|l| l.parse::<u32>().ok())
            .unwrap_or(quantity);
        let time_of = |v: &Value| {
            v.as_i64()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        };
        Ok(SubscriptionState {
            id,
            plan,
            price: price_id,
            status: object["status"].as_str().unwrap_or("unknown").to_owned(),
            quantity,
            subscription_limit: limit,
            trial_end: time_of(&object["trial_end"]),
            current_period_end: time_of(&object["current_period_end"])
                .or_else(|| time_of(&first["current_period_end"])),
            cancel_at_period_end: object["cancel_at_period_end"].as_bool().unwrap_or(false),
            as_of,
        })
    }

    /// Read, change, write with ETag concurrency, retried when another writer got there first.
    async fn update_account(
        &self,
        workspace: WorkspaceId,
        change: impl Fn(&mut BillingAccount) -> Applied,
    ) -> Result<Applied> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.store.account(workspace).await?;
            let (mut account, version) = match current {
                Some(Versioned { value, version }) => (value, Some(version)),
                None => (BillingAccount::new(workspace), None),
            };
            let applied = change(&mut account);
            if applied == Applied::Stale {
                return Ok(applied);
            }
            match self.store.put_account(&account, version.as_ref()).await {
                Ok(_) => return Ok(applied),
                Err(StoreError::Conflict | StoreError::VersionMismatch) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Conflict(
            "the billing account changed repeatedly; retry".to_owned(),
        ))
    }

    // ---------------------------------------------------------------------------------------
    // Checkout and Billing Portal
    // ---------------------------------------------------------------------------------------

    fn client(&self) -> Result<&StripeClient> {
        self.stripe.as_ref().ok_or_else(|| {
            Error::from(BillingError::Unavailable(
                "Stripe is not configured (STRIPE_SECRET_KEY)".to_owned(),
            ))
        })
    }

    /// Cancels the workspace's Stripe subscription at once, for its deletion: `Some(id)` when there
    /// was a live one (cancelled now, or already gone at Stripe), `None` when there is nothing to
    /// cancel. One idempotency key per workspace, so a retried step never cancels twice.
    pub async fn cancel_for_deletion(&self, workspace: WorkspaceId) -> Result<Option<String>> {
        let Some(subscription) = self.account(workspace).await?.and_then(|a| a.subscription) else {
            return Ok(None);
        };
        if matches!(
            subscription.status.as_str(),
            "canceled" | "incomplete_expired"
        ) || !is_stripe_id(&subscription.id)
        {
            return Ok(None);
        }
        let key = format!("sixpence-deletion-{workspace}-cancel");
        match self
            .client()?
            .delete(&format!("subscriptions/{}", subscription.id), &key)
            .await
        {
            Ok(_) => Ok(Some(subscription.id)),
            // Cancelled already (by Stripe, the customer in the Portal, or an earlier attempt).
            Err(StripeError::Refused(reason)) if reason.contains("resource_missing") => {
                Ok(Some(subscription.id))
            }
            Err(err) => Err(stripe_error(err)),
        }
    }

    /// The price id of a plan owners may buy.
    pub fn price_of(&self, plan: &str) -> Result<String> {
        self.plans
            .iter()
            .find(|(name, _)| name == plan)
            .map(|(_, price)| price.clone())
            .ok_or_else(|| BillingError::UnknownPlan(plan.to_owned()).into())
    }

    /// The workspace's Stripe customer, created on first use. The idempotency key is per workspace,
    /// so two first requests at once get the same customer from Stripe.
    async fn ensure_customer(&self, workspace: WorkspaceId) -> Result<String> {
        if let Some(customer) = self.account(workspace).await?.and_then(|a| a.customer) {
            return Ok(customer);
        }
        let name = self
            .tenancy
            .workspace(workspace)
            .await?
            .map(|w| w.value.name)
            .ok_or(Error::NotFound)?;
        let created = self
            .client()?
            .post(
                "customers",
                &[
                    ("name".to_owned(), name),
                    ("metadata[workspace]".to_owned(), workspace.to_string()),
                ],
                &format!("sixpence-customer-{workspace}"),
            )
            .await
            .map_err(stripe_error)?;
        let customer = created["id"]
            .as_str()
            .filter(|id| is_stripe_id(id))
            .ok_or_else(|| stripe_error(StripeError::Unavailable("no customer id".to_owned())))?
            .to_owned();
        self.store.link_customer(&customer, workspace).await?;
        self.update_account(workspace, |account| {
            if account.customer.is_none() {
                account.customer = Some(customer.clone());
            }
            Applied::Changed(Vec::new())
        })
        .await?;
        // Another request may have stored its customer first: use whatever is stored.
        Ok(self
            .account(workspace)
            .await?
            .and_then(|a| a.customer)
            .unwrap_or(customer))
    }

    /// Starts a Stripe Checkout session for `plan` × `quantity` Azure subscriptions.
    pub async fn start_checkout(
        &self,
        workspace: WorkspaceId,
        plan: &str,
        quantity: u32,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<Session> {
        let price = self.price_of(plan)?;
        self.client()?;
        // A second Checkout would start a second subscription and bill twice: plan changes go
        // through the portal.
        if self
            .account(workspace)
            .await?
            .and_then(|a| a.subscription)
            .is_some_and(|s| s.in_good_standing())
        {
            return Err(Error::Conflict(
                "the workspace already has a subscription; change it in the billing portal"
                    .to_owned(),
            ));
        }
        let customer = self.ensure_customer(workspace).await?;
        let ws = workspace.to_string();
        let form = vec![
            ("mode".to_owned(), "subscription".to_owned()),
            ("customer".to_owned(), customer),
            ("client_reference_id".to_owned(), ws.clone()),
            ("line_items[0][price]".to_owned(), price),
            ("line_items[0][quantity]".to_owned(), quantity.to_string()),
            ("success_url".to_owned(), success_url.to_owned()),
            ("cancel_url".to_owned(), cancel_url.to_owned()),
            ("metadata[workspace]".to_owned(), ws.clone()),
            ("subscription_data[metadata][workspace]".to_owned(), ws),
        ];
        let key = format!("sixpence-checkout-{}", uuid::Uuid::new_v4());
        let session = self
            .client()?
            .post("checkout/sessions", &form, &key)
            .await
            .map_err(stripe_error)?;
        session_of(&session)
    }

    /// Opens the Stripe Billing Portal for the workspace's customer.
    pub async fn open_portal(&self, workspace: WorkspaceId, return_url: &str) -> Result<Session> {
        self.client()?;
        let customer = self.ensure_customer(workspace).await?;
        let key = format!("sixpence-portal-{}", uuid::Uuid::new_v4());
        let session = self
            .client()?
            .post(
                "billing_portal/sessions",
                &[
                    ("customer".to_owned(), customer),
                    ("return_url".to_owned(), return_url.to_owned()),
                ],
                &key,
            )
            .await
            .map_err(stripe_error)?;
        session_of(&session)
    }
}

fn session_of(value: &Value) -> Result<Session> {
    match (value["id"].as_str(), value["url"].as_str()) {
        (Some(id), Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(Session {
                id: id.to_owned(),
                url: url.to_owned(),
            })
        }
        _ => Err(stripe_error(StripeError::Unavailable(
            "the session has no URL".to_owned(),
        ))),
    }
}

fn stripe_error(err: StripeError) -> Error {
    tracing::warn!(error = %err, "Stripe call failed");
    BillingError::Unavailable(err.to_string()).into()
}

/// A Stripe reference: an id string, or an expanded object's `id`.
fn id_of(value: &Value) -> Option<String> {
    value
        .as_str()
        .or_else(|| value["id"].as_str())
        .map(str::to_owned)
}

fn metadata_workspace(object: &Value) -> Option<WorkspaceId> {
    object["metadata"]["workspace"]
        .as_str()
        .and_then(WorkspaceId::parse)
}

fn fill_customer(account: &mut BillingAccount, customer: &Option<String>) {
    if account.customer.is_none() {
        account.customer.clone_from(customer);
    }
}

/// An amount in a currency's minor unit as micro-units of the currency (Stripe's zero- and
/// three-decimal currencies included).
pub fn to_micros(minor: i64, currency: &str) -> Micros {
    const ZERO_DECIMAL: &[&str] = &[
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
        "xaf", "xof", "xpf",
    ];
    const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];
    let currency = currency.to_ascii_lowercase();
    let scale = if ZERO_DECIMAL.contains(&currency.as_str()) {
        1_000_000
    } else if THREE_DECIMAL.contains(&currency.as_str()) {
        1_000
    } else {
        10_000
    };
    Micros(minor.saturating_mul(scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_become_micros_by_the_currency_s_decimals() {
        assert_eq!(to_micros(2_500, "gbp"), Micros(25_000_000));
        assert_eq!(to_micros(2_500, "JPY"), Micros(2_500_000_000));
        assert_eq!(to_micros(2_500, "kwd"), Micros(2_500_000));
    }
}
