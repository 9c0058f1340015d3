//! Resource inventory and Advisor recommendations: what a subscription holds and what Azure suggests
//! doing about it, as the customer sees them.
//!
//! # Replace the subscription's set
//!
//! Each sync reads the whole inventory (and the whole recommendation list) of one subscription and
//! hands it to the store as **the** new set: a resource deleted in Azure disappears, a repeated or
//! redelivered sync leaves the same rows, and readers never see a mix of two syncs. How a store keeps
//! that promise against concurrent syncs is the adapter's business; the contract is on
//! [`InventoryStore::replace`].
//!
//! Nothing here knows Azure's wire types: `crate::inventory` maps Resource Graph rows and Advisor
//! recommendations into these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::store::{Page, PageRequest, StoreError};
use super::tenancy::WorkspaceId;

/// One resource of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryItem {
    /// Lower case: ARM ids are case-insensitive and Azure spells them both ways.
    pub subscription: String,
    /// The ARM resource id as Azure sent it.
    pub id: String,
    pub name: String,
    /// Lower case (`microsoft.compute/virtualmachines`), as Resource Graph reports it.
    pub resource_type: String,
    /// Lower case, or `None` for subscription-level resources.
    pub resource_group: Option<String>,
    pub location: Option<String>,
    pub sku: Option<String>,
    pub sku_tier: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Virtual machines only: `running`, `deallocated`, `stopped`, … (Azure's `PowerState/<x>`).
    pub power_state: Option<String>,
}

impl InventoryItem {
    /// The identity of the item inside its subscription's set.
    pub fn key(&self) -> String {
        self.id.to_ascii_lowercase()
    }
}

/// An Advisor recommendation's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Category {
    Cost,
    HighAvailability,
    Security,
    Performance,
    OperationalExcellence,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Cost,
        Category::HighAvailability,
        Category::Security,
        Category::Performance,
        Category::OperationalExcellence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Cost => "Cost",
            Category::HighAvailability => "HighAvailability",
            Category::Security => "Security",
            Category::Performance => "Performance",
            Category::OperationalExcellence => "OperationalExcellence",
        }
    }

    /// Case-insensitive, as Azure's own `$filter` is.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// An Advisor recommendation's impact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Impact {
    High,
    Medium,
    Low,
}

impl Impact {
    pub const ALL: [Impact; 3] = [Impact::High, Impact::Medium, Impact::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Impact::High => "High",
            Impact::Medium => "Medium",
            Impact::Low => "Low",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// What a recommendation says it would save, in the currency Advisor states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Savings {
    /// Per month.
    pub amount: Option<f64>,
    pub annual_amount: Option<f64>,
    pub currency: Option<String>,
}

/// One Advisor recommendation of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationItem {
    /// Lower case.
    pub subscription: String,
    /// Advisor's id for the recommendation (unique per impacted resource and recommendation type).
    pub id: String,
    /// `None` when Advisor sent a category this version does not know (kept, not dropped).
    pub category: Option<Category>,
    pub impact: Option<Impact>,
    /// The impacted resource's type and name (`impactedField`, `impactedValue`).
    pub impacted_type: Option<String>,
    pub impacted_name: Option<String>,
    pub resource_id: Option<String>,
    pub problem: Option<String>,
    pub solution: Option<String>,
    pub savings: Option<Savings>,
    pub last_updated: Option<String>,
    pub learn_more_link: Option<String>,
}

impl RecommendationItem {
    pub fn key(&self) -> String {
        self.id.to_ascii_lowercase()
    }
}

/// Which resources to list. Every field narrows; text comparisons ignore case except tag values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryFilter {
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
    pub resource_type: Option<String>,
    pub location: Option<String>,
    /// `(key, value)`: the key ignores case (Azure tag names do), the value does not.
    pub tag: Option<(String, String)>,
}

impl InventoryFilter {
    pub fn matches(&self, item: &InventoryItem) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref()
                .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        same(&self.subscription, Some(&item.subscription))
            && same(&self.resource_group, item.resource_group.as_deref())
            && same(&self.resource_type, Some(&item.resource_type))
            && same(&self.location, item.location.as_deref())
            && self.tag.as_ref().is_none_or(|(k, v)| {
                item.tags
                    .iter()
                    .any(|(key, value)| key.eq_ignore_ascii_case(k) && value == v)
            })
    }
}

/// Parses a tag filter written `<key>=<value>` (a leading `tag:` is accepted, as in `groupBy`).
pub fn parse_tag_filter(text: &str) -> Option<(String, String)> {
    let text = text.strip_prefix("tag:").unwrap_or(text);
    let (key, value) = text.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
}

/// Which recommendations to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecommendationFilter {
    pub subscription: Option<String>,
    pub category: Option<Category>,
    pub impact: Option<Impact>,
}

impl RecommendationFilter {
    pub fn matches(&self, item: &RecommendationItem) -> bool {
        self.subscription
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(&item.subscription))
            && self.category.is_none_or(|c| item.category == Some(c))
            && self.impact.is_none_or(|i| item.impact == Some(i))
    }
}

/// Potential savings of some recommendations in one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct SavingsTotal {
    pub currency: String,
    /// Per month, rounded to the cent.
    pub amount: f64,
    pub annual_amount: f64,
    /// Recommendations that contributed.
    pub recommendations: usize,
}

/// Totals per currency (sorted by currency). Summed in hundredths so that adding many amounts does
/// not drift from what a customer adds up by hand; amounts without a currency cannot be totalled
/// honestly and are left out.
pub fn savings_totals<'a>(
    items: impl IntoIterator<Item = &'a RecommendationItem>,
) -> Vec<SavingsTotal> {
    let cents = |v: Option<f64>| v.map_or(0, |v| (v * 100.0).round() as i64);
    let mut totals: BTreeMap<String, (i64, i64, usize)> = BTreeMap::new();
    for savings in items.into_iter().filter_map(|i| i.savings.as_ref()) {
        let Some(currency) = savings.currency.as_deref().filter(|c| !c.is_empty()) else {
            continue;
        };
        let entry = totals.entry(currency.to_ascii_uppercase()).or_default();
        entry.0 += cents(savings.amount);
        entry.1 += cents(savings.annual_amount);
        entry.2 += 1;
    }
    totals
        .into_iter()
        .map(|(currency, (amount, annual, n))| SavingsTotal {
            currency,
            amount: amount as f64 / 100.0,
            annual_amount: annual as f64 / 100.0,
            recommendations: n,
        })
        .collect()
}

/// What [`InventoryStore::replace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The given set is now the subscription's set.
    Current { rows: usize },
    /// Another sync of the same subscription replaced the set while this one was writing; its set
    /// stands (it was read from Azure at about the same time) and this one's rows were discarded.
    Superseded,
}

/// The resource inventory of a workspace's subscriptions.
#[async_trait::async_trait]
pub trait InventoryStore: Send + Sync {
    /// Makes `items` the subscription's whole inventory.
    ///
    /// Contract: readers see either the previous set or this one, never a mix, also while two
    /// replaces of one subscription run at once (one wins whole, the other reports
    /// [`Replaced::Superseded`]); replacing with the same items twice leaves the same listing; a
    /// replace that fails part-way leaves the previous set readable.
    async fn replace(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        items: Vec<InventoryItem>,
    ) -> Result<Replaced, StoreError>;

    /// The workspace's resources matching the filter, ordered by subscription then resource id.
    /// [`StoreError::NotFound`] for a position (`after`) this listing never handed out.
    async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &InventoryFilter,
        page: PageRequest,
    ) -> Result<Page<InventoryItem>, StoreError>;
}

/// The Advisor recommendations of a workspace's subscriptions.
#[async_trait::async_trait]
pub trait RecommendationStore: Send + Sync {
    /// Makes `items` the subscription's whole recommendation list (same contract as
    /// [`InventoryStore::replace`]).
    async fn replace(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        items: Vec<RecommendationItem>,
    ) -> Result<Replaced, StoreError>;

    /// Every recommendation matching the filter, ordered by subscription then id. A subscription
    /// has at most a few hundred, so the whole list (and its totals) is read at once.
    async fn list(
        &self,
        workspace: WorkspaceId,
        filter: &RecommendationFilter,
    ) -> Result<Vec<RecommendationItem>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(currency: Option<&str>, amount: f64) -> RecommendationItem {
        RecommendationItem {
            subscription: "s".into(),
            id: format!("r{amount}"),
            category: Some(Category::Cost),
            impact: Some(Impact::High),
            impacted_type: None,
            impacted_name: None,
            resource_id: None,
            problem: None,
            solution: None,
            savings: Some(Savings {
                amount: Some(amount),
                annual_amount: Some(amount * 12.0),
                currency: currency.map(str::to_owned),
            }),
            last_updated: None,
            learn_more_link: None,
        }
    }

    #[test]
    fn totals_are_per_currency_and_exact_to_the_cent() {
        let items: Vec<_> = (0..10)
            .map(|_| rec(Some("GBP"), 0.1))
            .chain([rec(Some("usd"), 5.0), rec(None, 99.0)])
            .collect();
        let totals = savings_totals(&items);
        assert_eq!(totals.len(), 2);
        assert_eq!(totals[0].currency, "GBP");
        assert_eq!(totals[0].amount, 1.0);
        assert_eq!(totals[0].annual_amount, 12.0);
        assert_eq!(totals[0].recommendations, 10);
        assert_eq!(totals[1].currency, "USD");
    }

    #[test]
    fn categories_and_impacts_parse_in_any_case_and_nothing_else() {
        assert_eq!(Category::parse("cost"), Some(Category::Cost));
        assert_eq!(
            Category::parse("HIGHAVAILABILITY"),
            Some(Category::HighAvailability)
        );
        assert_eq!(Category::parse("Costs"), None);
        assert_eq!(Impact::parse("low"), Some(Impact::Low));
        assert_eq!(Impact::parse(""), None);
    }

    #[test]
    fn a_tag_filter_needs_a_key_and_matches_the_key_in_any_case() {
        assert_eq!(
            parse_tag_filter("tag:env=prod"),
            Some(("env".into(), "prod".into()))
        );
        assert_eq!(
            parse_tag_filter("cost-centre=a=b"),
            Some(("cost-centre".into(), "a=b".into()))
        );
        assert_eq!(parse_tag_filter("=x"), None);
        assert_eq!(parse_tag_filter("env"), None);
        let item = InventoryItem {
            subscription: "s".into(),
            id: "/x".into(),
            name: "x".into(),
            resource_type: "t".into(),
            resource_group: Some("rg".into()),
            location: None,
            sku: None,
            sku_tier: None,
            tags: BTreeMap::from([("Env".to_owned(), "prod".to_owned())]),
            power_state: None,
        };
        let filter = |tag: &str| InventoryFilter {
            tag: parse_tag_filter(tag),
            ..InventoryFilter::default()
        };
        assert!(filter("env=prod").matches(&item));
        assert!(!filter("env=Prod").matches(&item));
        assert!(
            !InventoryFilter {
                location: Some("uksouth".into()),
                ..InventoryFilter::default()
            }
            .matches(&item)
        );
    }
}
