//! Billing: each workspace's Stripe subscription as Sixpence knows it, and the limits it grants.
//!
//! Stripe is the source of truth; Sixpence keeps a copy from webhook events. Events arrive at least
//! once and in any order, so every part of the copy carries the Stripe time (`created` of the event)
//! it is as of, and an older event never overwrites newer state ([`BillingAccount::apply_subscription`],
//! [`BillingAccount::apply_payment`]). No card data is ever stored: only ids, plan, status, counts
//! and dates.
//!
//! # Limits
//!
//! Plans are priced per connected Azure subscription: the quantity bought is the number of Azure
//! subscriptions the workspace may choose for sync (a price's `subscription_limit` metadata
//! overrides it, for flat plans). While the Stripe subscription is `active`, `trialing` or
//! `past_due` (Stripe is still retrying the payment) that limit applies; with no subscription, or
//! one that is `incomplete`, `canceled`, `unpaid`, `paused` or `incomplete_expired`, the free limit
//! from configuration applies. A limit never removes what is already chosen: it refuses a choice
//! that would raise the number of chosen subscriptions above it (402).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::audit::Change;
use super::store::{StoreError, Version, Versioned};
use super::tenancy::WorkspaceId;

/// The workspace's Stripe subscription, as of the newest event applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionState {
    /// `sub_…`.
    pub id: String,
    /// The plan name from configuration, or the price's lookup key or id when not configured.
    pub plan: String,
    /// `price_…`.
    pub price: Option<String>,
    /// Stripe's status: `trialing`, `active`, `past_due`, `canceled`, `unpaid`, `incomplete`, …
    pub status: String,
    /// Seats bought (the subscription item's quantity).
    pub quantity: u32,
    /// Azure subscriptions this plan allows.
    pub subscription_limit: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub trial_end: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub current_period_end: Option<OffsetDateTime>,
    pub cancel_at_period_end: bool,
    /// Stripe's `created` of the event this state comes from.
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
}

impl SubscriptionState {
    /// Whether the plan's limit applies (paid for, or in trial, or Stripe still retrying payment).
    pub fn in_good_standing(&self) -> bool {
        matches!(self.status.as_str(), "active" | "trialing" | "past_due")
    }
}

/// The last invoice payment outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentState {
    /// `in_…`.
    pub invoice: String,
    pub paid: bool,
    /// In the currency's minor unit, as Stripe gives it.
    pub amount_minor: i64,
    /// ISO 4217, lower case as Stripe gives it.
    pub currency: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
}

/// Everything Sixpence keeps about one workspace's billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingAccount {
    pub workspace: WorkspaceId,
    /// `cus_…`, created by Sixpence on the first Checkout or Portal request.
    pub customer: Option<String>,
    pub subscription: Option<SubscriptionState>,
    pub last_payment: Option<PaymentState>,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The account changed (possibly with no visible field change); the changes to audit.
    Changed(Vec<Change>),
    /// The account already holds newer state than the event: nothing changed.
    Stale,
}

impl BillingAccount {
    pub fn new(workspace: WorkspaceId) -> Self {
        Self {
            workspace,
            customer: None,
            subscription: None,
            last_payment: None,
        }
    }

    /// Takes a subscription's state from an event, unless the account holds a newer one. An event
    /// as old as the stored state is applied (Stripe times are in seconds; two events of one second
    /// cannot be told apart, and re-applying one is harmless).
    pub fn apply_subscription(&mut self, next: SubscriptionState) -> Applied {
        if let Some(current) = &self.subscription
            && current.as_of > next.as_of
        {
            return Applied::Stale;
        }
        let before = self.subscription.as_ref();
        let field = |f: fn(&SubscriptionState) -> String| -> (Option<String>, String) {
            (before.map(f), f(&next))
        };
        let mut changes = Vec::new();
        for (name, (from, to)) in [
            ("plan", field(|s| s.plan.clone())),
            ("status", field(|s| s.status.clone())),
            (
                "subscriptionLimit",
                field(|s| s.subscription_limit.to_string()),
            ),
            ("stripeSubscription", field(|s| s.id.clone())),
            (
                "cancelAtPeriodEnd",
                field(|s| s.cancel_at_period_end.to_string()),
            ),
        ] {
            if from.as_deref() != Some(to.as_str()) {
                changes.push(Change::new(name, from, Some(to)));
            }
        }
        let trial = |s: Option<&SubscriptionState>| {
            s.and_then(|s| s.trial_end).and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
        };
        if trial(before) != trial(Some(&next)) {
            changes.push(Change::new("trialEnd", trial(before), trial(Some(&next))));
        }
        self.subscription = Some(next);
        Applied::Changed(changes)
    }

    /// Takes an invoice payment outcome, unless a newer one is recorded.
    pub fn apply_payment(&mut self, next: PaymentState) -> Applied {
        if let Some(current) = &self.last_payment
            && current.as_of > next.as_of
        {
            return Applied::Stale;
        }
        let outcome = |p: &PaymentState| if p.paid { "paid" } else { "failed" }.to_owned();
        let change = Change::new(
            "payment",
            self.last_payment.as_ref().map(outcome),
            Some(outcome(&next)),
        );
        self.last_payment = Some(next);
        Applied::Changed(vec![change])
    }

    /// The Azure subscriptions this workspace may choose for sync.
    pub fn subscription_limit(account: Option<&Self>, free: u32) -> u32 {
        account
            .and_then(|a| a.subscription.as_ref())
            .filter(|s| s.in_good_standing())
            .map_or(free, |s| s.subscription_limit)
    }
}

/// A plan's limit refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error(
        "this workspace's plan allows {limit} Azure subscription(s) to be synced and this choice would make it {requested}; an owner can buy more through the billing portal"
    )]
    PlanLimit { limit: u32, requested: u32 },
    #[error("`{0}` is not a plan this service sells")]
    UnknownPlan(String),
    #[error("{0}")]
    Invalid(String),
    /// Stripe is not configured here, or did not answer.
    #[error("billing is unavailable: {0}")]
    Unavailable(String),
}

/// Whether `text` has the shape of a Stripe object id (`cus_…`, `sub_…`, `evt_…`): ASCII letters,
/// digits and `_`, at most 255 characters. Anything else is never used as a storage key.
pub fn is_stripe_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a change of the number of chosen Azure subscriptions against the limit: a choice may
/// never raise the count above it (a workspace already above it, after a downgrade, may still
/// reduce or swap).
pub fn check_subscription_limit(limit: u32, before: u32, after: u32) -> Result<(), BillingError> {
    if after > limit && after > before {
        return Err(BillingError::PlanLimit {
            limit,
            requested: after,
        });
    }
    Ok(())
}

/// Whether a webhook event is new, done, or being processed right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClaim {
    /// First delivery (or a retry of one that failed): process it.
    New,
    /// Already processed: acknowledge and do nothing.
    Done,
    /// Another delivery of it is being processed now.
    InProgress,
}

/// Where billing state is kept.
#[async_trait::async_trait]
pub trait BillingStore: Send + Sync {
    async fn account(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Option<Versioned<BillingAccount>>, StoreError>;
    /// Writes the account: inserts when `expected` is `None` ([`StoreError::Conflict`] if one
    /// exists), else replaces it if still at `expected` ([`StoreError::VersionMismatch`] if not).
    async fn put_account(
        &self,
        account: &BillingAccount,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError>;
    /// The workspace a Stripe customer belongs to.
    async fn workspace_of_customer(
        &self,
        customer: &str,
    ) -> Result<Option<WorkspaceId>, StoreError>;
    async fn link_customer(&self, customer: &str, workspace: WorkspaceId)
    -> Result<(), StoreError>;
    /// Claims a webhook event id (insert-if-absent): only one delivery processes it.
    async fn claim_event(&self, event_id: &str, event_type: &str)
    -> Result<EventClaim, StoreError>;
    /// Marks a claimed event processed, for good.
    async fn complete_event(
        &self,
        event_id: &str,
        workspace: Option<WorkspaceId>,
    ) -> Result<(), StoreError>;
    /// Releases a claim whose processing failed, so Stripe's retry runs it again.
    async fn release_event(&self, event_id: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: &str, limit: u32, as_of: i64) -> SubscriptionState {
        SubscriptionState {
            id: "sub_1".into(),
            plan: "team".into(),
            price: Some("price_1".into()),
            status: status.into(),
            quantity: limit,
            subscription_limit: limit,
            trial_end: None,
            current_period_end: None,
            cancel_at_period_end: false,
            as_of: OffsetDateTime::from_unix_timestamp(as_of).unwrap(),
        }
    }

    #[test]
    fn an_older_event_never_overwrites_newer_state() {
        let mut account = BillingAccount::new(WorkspaceId::new());
        assert!(matches!(
            account.apply_subscription(state("active", 10, 200)),
            Applied::Changed(_)
        ));
        assert_eq!(
            account.apply_subscription(state("past_due", 3, 100)),
            Applied::Stale
        );
        assert_eq!(account.subscription.as_ref().unwrap().status, "active");
        let Applied::Changed(changes) = account.apply_subscription(state("canceled", 10, 300))
        else {
            panic!("newer applies");
        };
        assert_eq!(
            changes,
            vec![Change::new(
                "status",
                Some("active".into()),
                Some("canceled".into())
            )]
        );
    }

    #[test]
    fn the_plan_limit_applies_only_in_good_standing() {
        let mut account = BillingAccount::new(WorkspaceId::new());
        assert_eq!(BillingAccount::subscription_limit(None, 5), 5);
        assert_eq!(BillingAccount::subscription_limit(Some(&account), 5), 5);
        account.apply_subscription(state("past_due", 12, 1));
        assert_eq!(BillingAccount::subscription_limit(Some(&account), 5), 12);
        account.apply_subscription(state("canceled", 12, 2));
        assert_eq!(BillingAccount::subscription_limit(Some(&account), 5), 5);
    }

    #[test]
    fn a_choice_may_not_raise_the_count_above_the_limit() {
        assert!(check_subscription_limit(3, 1, 3).is_ok());
        assert_eq!(
            check_subscription_limit(3, 3, 4),
            Err(BillingError::PlanLimit {
                limit: 3,
                requested: 4
            })
        );
        // Above the limit after a downgrade: reducing or swapping is fine.
        assert!(check_subscription_limit(3, 8, 6).is_ok());
        assert!(check_subscription_limit(3, 8, 8).is_ok());
    }
}
