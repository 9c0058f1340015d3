//! The subscriptions the connection's service principal can see.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::api_version;
use super::client::{AzureClient, ListPages};
use super::error::AzureError;

/// A subscription, as ARM lists it. Ids are kept as strings: fixtures (and some tenants) have ids
/// that are not valid GUIDs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "SubscriptionWire")]
pub struct Subscription {
    /// `/subscriptions/{id}`.
    pub id: String,
    pub subscription_id: String,
    pub tenant_id: Option<String>,
    pub display_name: Option<String>,
    /// `Enabled`, `Warned`, `PastDue`, `Disabled`, `Deleted`.
    pub state: Option<String>,
    pub authorization_source: Option<String>,
    pub managed_by_tenants: Vec<String>,
    pub spending_limit: Option<String>,
    pub quota_id: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Subscription {
    /// Whether cost data can still be read (disabled and deleted subscriptions keep history but no
    /// new usage).
    pub fn is_active(&self) -> bool {
        matches!(
            self.state
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("enabled" | "warned" | "pastdue")
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionWire {
    #[serde(default)]
    id: String,
    #[serde(default)]
    subscription_id: String,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    authorization_source: Option<String>,
    #[serde(default)]
    managed_by_tenants: Vec<ManagedByWire>,
    #[serde(default)]
    subscription_policies: Option<PoliciesWire>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManagedByWire {
    #[serde(default)]
    tenant_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PoliciesWire {
    #[serde(default)]
    spending_limit: Option<String>,
    #[serde(default)]
    quota_id: Option<String>,
}

impl From<SubscriptionWire> for Subscription {
    fn from(wire: SubscriptionWire) -> Self {
        let subscription_id = if wire.subscription_id.is_empty() {
            wire.id.rsplit('/').next().unwrap_or_default().to_owned()
        } else {
            wire.subscription_id
        };
        let (spending_limit, quota_id) = wire
            .subscription_policies
            .map(|p| (p.spending_limit, p.quota_id))
            .unwrap_or_default();
        Self {
            id: wire.id,
            subscription_id,
            tenant_id: wire.tenant_id,
            display_name: wire.display_name,
            state: wire.state,
            authorization_source: wire.authorization_source,
            managed_by_tenants: wire
                .managed_by_tenants
                .into_iter()
                .filter_map(|m| m.tenant_id)
                .collect(),
            spending_limit,
            quota_id,
            tags: wire.tags.unwrap_or_default(),
        }
    }
}

impl AzureClient {
    /// Every subscription the principal can see (follows `nextLink`).
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id()))]
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, AzureError> {
        self.subscription_pages()?.collect_all().await
    }

    /// One subscription; `None` if it does not exist or the principal cannot see it (404).
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id(), subscription.id = %subscription_id))]
    pub async fn get_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<Option<Subscription>, AzureError> {
        let url = self.url(
            &[
                "subscriptions",
                self.id(subscription_id, "subscription id")?,
            ],
            &[("api-version", api_version::SUBSCRIPTIONS)],
        )?;
        match self.send(reqwest::Method::GET, url, None, 1.0).await {
            Ok(reply) => reply.json("subscription"),
            Err(AzureError::Service { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Subscriptions page by page.
    pub fn subscription_pages(&self) -> Result<ListPages<Subscription>, AzureError> {
        let url = self.url(
            &["subscriptions"],
            &[("api-version", api_version::SUBSCRIPTIONS)],
        )?;
        Ok(ListPages::new(self.clone(), url, "subscriptions"))
    }
}
