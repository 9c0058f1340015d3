//! Azure Advisor recommendations of a subscription (paged with `nextLink`, GET).
//!
//! The savings of a Cost recommendation live in `extendedProperties` (`savingsAmount`,
//! `annualSavingsAmount`, `savingsCurrency`). The spec types that map as string → string, but numbers
//! are seen too, so every value is kept as a string and the amounts are parsed from either.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::api_version;
use super::client::{AzureClient, ListPages};
use super::error::AzureError;

/// An Advisor recommendation, flattened.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "RecommendationWire")]
pub struct Recommendation {
    pub id: String,
    pub name: Option<String>,
    /// `Cost`, `HighAvailability`, `Security`, `Performance`, `OperationalExcellence`.
    pub category: Option<String>,
    /// `High`, `Medium`, `Low`.
    pub impact: Option<String>,
    pub impacted_field: Option<String>,
    pub impacted_value: Option<String>,
    /// As sent (7 fractional digits are common); parse when needed.
    pub last_updated: Option<String>,
    pub problem: Option<String>,
    pub solution: Option<String>,
    pub resource_id: Option<String>,
    pub recommendation_type_id: Option<String>,
    pub learn_more_link: Option<String>,
    pub extended_properties: BTreeMap<String, String>,
}

/// What a Cost recommendation says it would save.
#[derive(Debug, Clone, PartialEq)]
pub struct Savings {
    pub amount: Option<f64>,
    pub annual_amount: Option<f64>,
    pub currency: Option<String>,
}

impl Recommendation {
    pub fn is_cost(&self) -> bool {
        self.category
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("Cost"))
    }

    /// The savings, when `extendedProperties` carries any.
    pub fn savings(&self) -> Option<Savings> {
        let amount = |key: &str| {
            self.extended_properties
                .get(key)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let savings = Savings {
            amount: amount("savingsAmount"),
            annual_amount: amount("annualSavingsAmount"),
            currency: self
                .extended_properties
                .get("savingsCurrency")
                .filter(|c| !c.is_empty())
                .cloned(),
        };
        (savings.amount.is_some() || savings.annual_amount.is_some()).then_some(savings)
    }
}

#[derive(Deserialize)]
struct RecommendationWire {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    properties: PropertiesWire,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PropertiesWire {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    impact: Option<String>,
    #[serde(default)]
    impacted_field: Option<String>,
    #[serde(default)]
    impacted_value: Option<String>,
    #[serde(default)]
    last_updated: Option<String>,
    #[serde(default)]
    short_description: Option<ShortDescriptionWire>,
    #[serde(default)]
    resource_metadata: Option<ResourceMetadataWire>,
    #[serde(default)]
    recommendation_type_id: Option<String>,
    #[serde(default)]
    learn_more_link: Option<String>,
    #[serde(default)]
    extended_properties: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct ShortDescriptionWire {
    #[serde(default)]
    problem: Option<String>,
    #[serde(default)]
    solution: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceMetadataWire {
    #[serde(default)]
    resource_id: Option<String>,
}

impl From<RecommendationWire> for Recommendation {
    fn from(wire: RecommendationWire) -> Self {
        let p = wire.properties;
        let (problem, solution) = p
            .short_description
            .map(|d| (d.problem, d.solution))
            .unwrap_or_default();
        Self {
            id: wire.id,
            name: wire.name,
            category: p.category,
            impact: p.impact,
            impacted_field: p.impacted_field,
            impacted_value: p.impacted_value,
            last_updated: p.last_updated,
            problem,
            solution,
            resource_id: p.resource_metadata.and_then(|m| m.resource_id),
            recommendation_type_id: p.recommendation_type_id,
            learn_more_link: p.learn_more_link,
            extended_properties: p
                .extended_properties
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s,
                        Value::Null => return None,
                        other => other.to_string(),
                    };
                    Some((k, text))
                })
                .collect(),
        }
    }
}

impl AzureClient {
    /// The Advisor recommendations of a subscription, page by page. `filter` is an Advisor `$filter`
    /// such as `Category eq 'Cost'`.
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id(), subscription.id = %subscription_id))]
    pub fn advisor_recommendations(
        &self,
        subscription_id: &str,
        filter: Option<&str>,
    ) -> Result<ListPages<Recommendation>, AzureError> {
        let mut query = vec![("api-version", api_version::ADVISOR)];
        if let Some(filter) = filter {
            query.push(("$filter", filter));
        }
        let url = self.url(
            &[
                "subscriptions",
                self.id(subscription_id, "subscription id")?,
                "providers",
                "Microsoft.Advisor",
                "recommendations",
            ],
            &query,
        )?;
        Ok(ListPages::new(self.clone(), url, "advisor recommendations"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savings_are_read_from_strings_or_numbers() {
        let body = br#"{"id":"/subscriptions/s/providers/Microsoft.Advisor/recommendations/r","properties":{"category":"Cost","extendedProperties":{"savingsAmount":"1234.5","annualSavingsAmount":14814,"savingsCurrency":"GBP","sku":null}}}"#;
        let rec: Recommendation = serde_json::from_slice(body).unwrap();
        assert!(rec.is_cost());
        assert_eq!(
            rec.savings(),
            Some(Savings {
                amount: Some(1234.5),
                annual_amount: Some(14814.0),
                currency: Some("GBP".into())
            })
        );
        assert!(!rec.extended_properties.contains_key("sku"));
    }
}
