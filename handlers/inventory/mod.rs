//! Syncing one subscription's resource inventory (Resource Graph) and Advisor recommendations: the
//! application service between the Azure client and the domain's stores, called by the `cost-sync`
//! worker in the same run as the cost sync.
//!
//! # Each part stands alone
//!
//! Inventory and recommendations are separate parts: either can fail (or be skipped) while the other,
//! and the cost sync, go on. Three rules make that true:
//!
//! - **Their own client.** [`AzureClient`] marks itself revoked on any 401/403 and then refuses every
//!   later call. A principal with Cost Management Reader only is refused by Resource Graph with 403,
//!   which is a missing optional role, not a revoked connection; so [`sync_subscription_extras`] builds
//!   a client of its own for these calls and the cost sync's client never sees their 403s. (A real
//!   revocation still shows: the cost sync's own calls get the 401/403 too.)
//! - **Skip what the roles do not allow.** Inventory needs Reader (`can_read_resources`); without it
//!   the part is [`PartOutcome::Skipped`] with the reason, and no call is made. Advisor recommendations
//!   are readable with Reader *or* Cost Management Reader (the built-in role includes
//!   `Microsoft.Advisor/recommendations/read`, and the simulated tenant agrees), so they are synced
//!   when either role is present.
//! - **Read everything, then replace.** A part reads every page first and only then hands the whole
//!   set to its store, whose `replace` swaps it in atomically. A failure mid-paging (throttling beyond
//!   the client's retry budget, 5xx) leaves the previous set as it was; the next run converges.
//!
//! The part functions hold one subscription's set in memory: thousands of resources are a few MB.

use std::time::Instant;

use serde::Serialize;

use crate::app::AppState;
use crate::azure::{
    AzureClient, AzureEndpoints, AzureError, ClientOptions, ClientSecret, GraphResource,
    Recommendation,
};
use crate::domain::connections::{Connection, Credentials, SubscriptionAccess};
use crate::domain::inventory::{
    Category, Impact, InventoryItem, InventoryStore, RecommendationItem, RecommendationStore,
    Replaced, Savings,
};
use crate::domain::store::StoreError;
use crate::domain::tenancy::WorkspaceId;

/// Why a part is skipped when the principal lacks Reader.
pub const NEEDS_READER: &str = "skipped: needs Reader. Sixpence lists resources with Azure Resource \
    Graph, which needs the Reader role on the subscription; assign Reader to the service principal \
    to see the inventory.";
/// Why recommendations are skipped when the principal can read neither costs nor resources.
pub const NEEDS_A_READ_ROLE: &str = "skipped: needs Reader or Cost Management Reader on the \
    subscription to read Advisor recommendations.";

/// Why a part is skipped when the connection no longer lists the subscription.
pub const NOT_CONNECTED: &str =
    "skipped: the connection no longer lists this subscription; choose it again to sync it.";

/// How a part reads Azure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartOptions {
    /// Resource Graph rows per page (1..=1000).
    pub page_size: u32,
}

impl Default for PartOptions {
    fn default() -> Self {
        Self {
            page_size: crate::azure::resource_graph::MAX_PAGE_SIZE,
        }
    }
}

/// What a part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartReport {
    /// Items now stored for the subscription (0 when superseded).
    pub rows: usize,
    /// Pages read from Azure.
    pub pages: u32,
    /// Another sync of the same subscription replaced the set first; its set stands.
    pub superseded: bool,
    pub duration_ms: u64,
}

/// Why a part failed, in words for the customer; never holds a secret or a token.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SyncPartError {
    /// What happened and what to do, for the customer.
    pub message: String,
    /// Retrying later, unchanged, can succeed.
    pub transient: bool,
    /// Azure answered 401/403 to this part's calls. Not a verdict on the connection: the cost sync
    /// decides that from its own calls.
    pub access_denied: bool,
    /// How long Azure asked to wait, when it throttled us past the client's retry budget.
    pub retry_after: Option<std::time::Duration>,
    #[source]
    source: Option<anyhow::Error>,
}

impl SyncPartError {
    fn azure(part: &str, err: AzureError) -> Self {
        let access_denied = matches!(err, AzureError::AccessRevoked { .. });
        let message = if access_denied {
            format!(
                "Azure refused to list the subscription's {part} (HTTP 403). Check that the service \
                 principal holds Reader on the subscription."
            )
        } else {
            err.customer_message()
        };
        Self {
            message,
            transient: err.is_transient(),
            access_denied,
            retry_after: err.retry_after(),
            source: Some(err.into()),
        }
    }

    fn store(err: StoreError) -> Self {
        Self {
            message: "Sixpence could not save the data; it will try again on the next sync."
                .to_owned(),
            transient: true,
            access_denied: false,
            retry_after: None,
            source: Some(err.into()),
        }
    }
}

/// A part's outcome, for the sync run's record.
#[derive(Debug)]
pub enum PartOutcome {
    Synced(PartReport),
    /// Not attempted; the reason is for the customer.
    Skipped {
        reason: &'static str,
    },
    Failed(SyncPartError),
}

/// A part's outcome as the sync run records and the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartSummary {
    /// `synced`, `skipped` or `failed`.
    pub status: &'static str,
    pub rows: usize,
    pub pages: u32,
    /// The reason or the error, in the customer's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl PartOutcome {
    pub fn summary(&self) -> PartSummary {
        match self {
            PartOutcome::Synced(report) => PartSummary {
                status: "synced",
                rows: report.rows,
                pages: report.pages,
                message: report.superseded.then(|| {
                    "another sync of this subscription finished first; its data stands".to_owned()
                }),
            },
            PartOutcome::Skipped { reason } => PartSummary {
                status: "skipped",
                rows: 0,
                pages: 0,
                message: Some((*reason).to_owned()),
            },
            PartOutcome::Failed(err) => PartSummary {
                status: "failed",
                rows: 0,
                pages: 0,
                message: Some(err.message.clone()),
            },
        }
    }

    fn from_result(result: Result<PartReport, SyncPartError>) -> Self {
        match result {
            Ok(report) => PartOutcome::Synced(report),
            Err(err) => PartOutcome::Failed(err),
        }
    }
}

/// Both parts of one subscription.
#[derive(Debug)]
pub struct ExtrasReport {
    pub inventory: PartOutcome,
    pub recommendations: PartOutcome,
}

/// Syncs the subscription's inventory and recommendations, each independently (see the module docs),
/// with a client of their own so a 403 here never revokes the caller's cost client.
///
/// Never fails as a whole: each part's outcome is in the report. `access` is the subscription as the
/// connection last saw it (its roles decide what is attempted).
#[tracing::instrument(skip_all, fields(workspace.id = %workspace, subscription.id = %access.subscription_id))]
pub async fn sync_subscription_extras(
    endpoints: &AzureEndpoints,
    credentials: &Credentials,
    inventory: &dyn InventoryStore,
    recommendations: &dyn RecommendationStore,
    workspace: WorkspaceId,
    access: &SubscriptionAccess,
    options: PartOptions,
) -> ExtrasReport {
    let client = match sync_client(endpoints, credentials) {
        Ok(client) => client,
        Err(err) => {
            let failed =
                || PartOutcome::Failed(SyncPartError::azure("resources", clone_config(&err)));
            return ExtrasReport {
                inventory: failed(),
                recommendations: failed(),
            };
        }
    };
    let subscription = access.subscription_id.as_str();
    let inventory_part = async {
        if access.can_read_resources {
            PartOutcome::from_result(
                sync_inventory(&client, inventory, workspace, subscription, options).await,
            )
        } else {
            PartOutcome::Skipped {
                reason: NEEDS_READER,
            }
        }
    };
    let recommendations_part = async {
        if access.can_read_resources || access.can_read_costs {
            PartOutcome::from_result(
                sync_recommendations(&client, recommendations, workspace, subscription).await,
            )
        } else {
            PartOutcome::Skipped {
                reason: NEEDS_A_READ_ROLE,
            }
        }
    };
    let (inventory, recommendations) = tokio::join!(inventory_part, recommendations_part);
    ExtrasReport {
        inventory,
        recommendations,
    }
}

/// A client for the nightly parts: the default retry budget (minutes, not the 20 s an admin waiting
/// on onboarding gets), because nobody waits on it and a throttled part that gives up early only
/// fails until the next night.
fn sync_client(
    endpoints: &AzureEndpoints,
    credentials: &Credentials,
) -> Result<AzureClient, AzureError> {
    AzureClient::with_client_secret(
        Some(endpoints.arm.clone()),
        ClientSecret {
            tenant_id: credentials.tenant_id.clone(),
            client_id: credentials.client_id.clone(),
            secret: credentials.secret.clone(),
        },
        Some(ClientOptions {
            authority: endpoints.authority.clone(),
            ..ClientOptions::default()
        }),
    )
}

/// The worker's entry point: both parts for one subscription of a connection, with the app's
/// Azure endpoints and stores. A subscription the connection no longer lists is skipped, and a
/// secret that cannot be opened fails both parts (the cost sync will report the same).
pub async fn sync_extras(
    state: &AppState,
    connection: &Connection,
    subscription: &str,
    options: PartOptions,
) -> ExtrasReport {
    let Some(access) = connection
        .subscriptions
        .iter()
        .find(|s| s.subscription_id.eq_ignore_ascii_case(subscription))
    else {
        let skipped = || PartOutcome::Skipped {
            reason: NOT_CONNECTED,
        };
        return ExtrasReport {
            inventory: skipped(),
            recommendations: skipped(),
        };
    };
    let credentials = match state.connections().credentials(connection) {
        Ok(credentials) => credentials,
        Err(err) => {
            tracing::error!(error = %err, "the connection's secret could not be opened");
            let failed = || {
                PartOutcome::Failed(SyncPartError {
                    message:
                        "Sixpence could not use the connection's secret. We have been notified."
                            .to_owned(),
                    transient: false,
                    access_denied: false,
                    retry_after: None,
                    source: None,
                })
            };
            return ExtrasReport {
                inventory: failed(),
                recommendations: failed(),
            };
        }
    };
    sync_subscription_extras(
        &state.settings().azure,
        &credentials,
        state.inventory(),
        state.recommendations(),
        connection.workspace,
        access,
        options,
    )
    .await
}

/// Building a client fails only for configuration reasons; the error is not `Clone`.
fn clone_config(err: &AzureError) -> AzureError {
    AzureError::Config(err.to_string())
}

/// Reads the subscription's whole inventory from Resource Graph and makes it the stored set.
///
/// The caller supplies the client: pass one that is not the cost sync's (see the module docs).
#[tracing::instrument(skip_all, fields(workspace.id = %workspace, subscription.id = %subscription))]
pub async fn sync_inventory(
    client: &AzureClient,
    store: &dyn InventoryStore,
    workspace: WorkspaceId,
    subscription: &str,
    options: PartOptions,
) -> Result<PartReport, SyncPartError> {
    let started = Instant::now();
    let mut pages = client
        .resource_graph(crate::azure::ResourceGraphQuery {
            subscriptions: vec![subscription.to_owned()],
            query: crate::azure::resource_graph::RESOURCES_QUERY.to_owned(),
            page_size: Some(options.page_size),
        })
        .map_err(|e| SyncPartError::azure("resources", e))?;
    let mut items = Vec::new();
    let mut count = 0u32;
    while let Some(page) = pages
        .next_page()
        .await
        .map_err(|e| SyncPartError::azure("resources", e))?
    {
        count += 1;
        items.extend(
            page.resources()
                .into_iter()
                .map(|r| inventory_item(subscription, r)),
        );
    }
    let replaced = store
        .replace(workspace, subscription, items)
        .await
        .map_err(SyncPartError::store)?;
    let report = report(replaced, count, started);
    tracing::info!(
        rows = report.rows,
        pages = report.pages,
        superseded = report.superseded,
        "inventory synced"
    );
    Ok(report)
}

/// Reads the subscription's Advisor recommendations (every category) and makes them the stored set.
#[tracing::instrument(skip_all, fields(workspace.id = %workspace, subscription.id = %subscription))]
pub async fn sync_recommendations(
    client: &AzureClient,
    store: &dyn RecommendationStore,
    workspace: WorkspaceId,
    subscription: &str,
) -> Result<PartReport, SyncPartError> {
    let started = Instant::now();
    let mut pages = client
        .advisor_recommendations(subscription, None)
        .map_err(|e| SyncPartError::azure("recommendations", e))?;
    let mut items = Vec::new();
    let mut count = 0u32;
    while let Some(page) = pages
        .next_page()
        .await
        .map_err(|e| SyncPartError::azure("recommendations", e))?
    {
        count += 1;
        items.extend(
            page.into_iter()
                .filter_map(|r| recommendation_item(subscription, r)),
        );
    }
    let replaced = store
        .replace(workspace, subscription, items)
        .await
        .map_err(SyncPartError::store)?;
    let report = report(replaced, count, started);
    tracing::info!(
        rows = report.rows,
        pages = report.pages,
        superseded = report.superseded,
        "recommendations synced"
    );
    Ok(report)
}

fn report(replaced: Replaced, pages: u32, started: Instant) -> PartReport {
    let (rows, superseded) = match replaced {
        Replaced::Current { rows } => (rows, false),
        Replaced::Superseded => (0, true),
    };
    PartReport {
        rows,
        pages,
        superseded,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// A Resource Graph row as the domain's item.
pub fn inventory_item(subscription: &str, r: GraphResource) -> InventoryItem {
    let sku_text = |key: &str| {
        r.sku
            .as_ref()
            .and_then(|s| s.get(key))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = r.name.clone().unwrap_or_else(|| {
        // ARM ids end in the resource's name.
        r.id.rsplit('/').next().unwrap_or_default().to_owned()
    });
    InventoryItem {
        subscription: r
            .subscription_id
            .as_deref()
            .unwrap_or(subscription)
            .to_ascii_lowercase(),
        sku: sku_text("name"),
        sku_tier: sku_text("tier"),
        name,
        resource_type: r.kind.unwrap_or_default().to_ascii_lowercase(),
        resource_group: r
            .resource_group
            .filter(|g| !g.is_empty())
            .map(|g| g.to_ascii_lowercase()),
        location: r.location.filter(|l| !l.is_empty()),
        tags: r.tags,
        power_state: r.power_state.map(|p| {
            let code = p.strip_prefix("PowerState/").unwrap_or(&p);
            code.to_ascii_lowercase()
        }),
        id: r.id,
    }
}

/// An Advisor recommendation as the domain's item; `None` without an id (nothing to key it by).
pub fn recommendation_item(subscription: &str, r: Recommendation) -> Option<RecommendationItem> {
    let id = if r.id.is_empty() {
        r.name.clone()?
    } else {
        r.id.clone()
    };
    let savings = r.savings().map(|s| Savings {
        amount: s.amount,
        annual_amount: s.annual_amount,
        currency: s.currency.map(|c| c.to_ascii_uppercase()),
    });
    Some(RecommendationItem {
        subscription: subscription.to_ascii_lowercase(),
        id,
        category: r.category.as_deref().and_then(Category::parse),
        impact: r.impact.as_deref().and_then(Impact::parse),
        impacted_type: r.impacted_field,
        impacted_name: r.impacted_value,
        resource_id: r.resource_id,
        problem: r.problem,
        solution: r.solution,
        savings,
        last_updated: r.last_updated,
        learn_more_link: r.learn_more_link,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn outcomes_summarise_in_the_customers_words() {
        let synced = PartOutcome::Synced(PartReport {
            rows: 3,
            pages: 1,
            superseded: false,
            duration_ms: 5,
        })
        .summary();
        assert_eq!(
            (synced.status, synced.rows, synced.message),
            ("synced", 3, None)
        );
        let skipped = PartOutcome::Skipped {
            reason: NEEDS_READER,
        }
        .summary();
        assert_eq!(skipped.status, "skipped");
        assert_eq!(
            serde_json::to_value(&skipped).unwrap()["message"],
            NEEDS_READER
        );
        let failed = PartOutcome::Failed(SyncPartError::azure(
            "resources",
            AzureError::AccessRevoked {
                status: 403,
                code: Some("AuthorizationFailed".into()),
            },
        ))
        .summary();
        assert_eq!(failed.status, "failed");
        assert!(failed.message.unwrap().contains("Reader"));
    }

    #[test]
    fn a_vm_row_becomes_an_item_with_its_power_state_and_lower_case_keys() {
        let row = json!({
            "id": "/subscriptions/S/resourceGroups/RG-Web/providers/Microsoft.Compute/virtualMachines/vm-1",
            "name": "vm-1", "type": "microsoft.compute/virtualmachines", "location": "uksouth",
            "resourceGroup": "RG-Web", "subscriptionId": "S",
            "tags": {"env": "prod"}, "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "powerState": "PowerState/deallocated"
        });
        let resource = GraphResource::from_row(row.as_object().unwrap()).unwrap();
        let item = inventory_item("s", resource);
        assert_eq!(item.subscription, "s");
        assert_eq!(item.resource_group.as_deref(), Some("rg-web"));
        assert_eq!(item.power_state.as_deref(), Some("deallocated"));
        assert_eq!(item.sku.as_deref(), Some("Standard_LRS"));
        assert_eq!(item.sku_tier.as_deref(), Some("Standard"));
        assert_eq!(item.tags, BTreeMap::from([("env".into(), "prod".into())]));
    }

    #[test]
    fn a_cost_recommendation_keeps_its_savings_and_unknown_categories_are_kept_as_none() {
        let rec: Recommendation = serde_json::from_value(json!({
            "id": "/subscriptions/s/providers/Microsoft.Advisor/recommendations/r1",
            "properties": {"category": "Cost", "impact": "High",
                "shortDescription": {"problem": "p", "solution": "s"},
                "extendedProperties": {"savingsAmount": "12.5", "annualSavingsAmount": "150", "savingsCurrency": "gbp"}}
        }))
        .unwrap();
        let item = recommendation_item("S", rec).unwrap();
        assert_eq!(item.category, Some(Category::Cost));
        assert_eq!(item.impact, Some(Impact::High));
        let savings = item.savings.unwrap();
        assert_eq!(savings.amount, Some(12.5));
        assert_eq!(savings.currency.as_deref(), Some("GBP"));
        let odd: Recommendation = serde_json::from_value(json!({
            "id": "x", "properties": {"category": "Sustainability"}
        }))
        .unwrap();
        assert_eq!(recommendation_item("s", odd).unwrap().category, None);
        let anonymous: Recommendation = serde_json::from_value(json!({"properties": {}})).unwrap();
        assert!(recommendation_item("s", anonymous).is_none());
    }
}
