//! `GET /workspaces/{id}/resources` (the synced Resource Graph inventory) and
//! `GET /workspaces/{id}/recommendations` (the synced Advisor recommendations, with potential savings
//! per currency).
//!
//! Query strings are read by hand rather than through axum's `Query` extractor so that every bad
//! filter (an unknown parameter, a malformed tag, an unknown category) is a problem+json 400 naming
//! what is wrong, never a plain-text rejection.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use utoipa::IntoParams;

use super::context::{Scoped, decode_cursor, encode_cursor, page_limit};
use super::views::{Paged, RecommendationList, RecommendationView, ResourceView, SavingsTotalView};
use crate::app::AppState;
use crate::domain::inventory::{
    Category, Impact, InventoryFilter, RecommendationFilter, parse_tag_filter, savings_totals,
};
use crate::domain::store::{PageRequest, StoreError};
use crate::error::{Error, Result};

/// Filters of `GET .../resources` (documentation of the parameters; parsed by [`parse`]).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the parameters; the handler parses the raw query"
)]
pub struct ResourcesQuery {
    /// Only this subscription (its id).
    subscription: Option<String>,
    /// Only this resource group (any case).
    #[param(rename = "resourceGroup")]
    resource_group: Option<String>,
    /// Only this resource type, e.g. `microsoft.compute/virtualmachines` (any case).
    #[param(rename = "type")]
    resource_type: Option<String>,
    /// Only this location, e.g. `uksouth`.
    location: Option<String>,
    /// Only resources with this tag: `<key>=<value>` (or `tag:<key>=<value>`); the key in any
    /// case, the value exactly.
    tag: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// Filters of `GET .../recommendations`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the parameters; the handler parses the raw query"
)]
pub struct RecommendationsQuery {
    /// Only this subscription (its id).
    subscription: Option<String>,
    /// `Cost`, `HighAvailability`, `Security`, `Performance` or `OperationalExcellence` (any case).
    category: Option<String>,
    /// `High`, `Medium` or `Low` (any case).
    impact: Option<String>,
}

/// The query string as `name → value`, refusing names not in `allowed` and repeated names.
fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(Error::InvalidRequest(format!(
                "unknown query parameter `{name}`; use {}",
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if out.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(Error::InvalidRequest(format!("`{name}` may be given once")));
        }
    }
    // An empty value means "no filter", as a form would send it.
    out.retain(|_, v| !v.is_empty());
    Ok(out)
}

fn subscription(params: &BTreeMap<String, String>) -> Result<Option<String>> {
    params
        .get("subscription")
        .map(|s| {
            uuid::Uuid::parse_str(s)
                .map(|u| u.hyphenated().to_string())
                .map_err(|_| {
                    Error::InvalidRequest(
                        "`subscription` must be a subscription id (a GUID)".into(),
                    )
                })
        })
        .transpose()
}

/// Plain filter values: bounded, and free of characters no Azure name contains.
fn text(params: &BTreeMap<String, String>, name: &str) -> Result<Option<String>> {
    params
        .get(name)
        .map(|v| {
            if v.len() > 256 || v.chars().any(char::is_control) {
                Err(Error::InvalidRequest(format!(
                    "`{name}` must be at most 256 characters without control characters"
                )))
            } else {
                Ok(v.clone())
            }
        })
        .transpose()
}

/// The workspace's resources, as last synced, with filters.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/resources", tag = "inventory",
    params(("id" = String, Path, description = "Workspace id"), ResourcesQuery),
    responses((status = 200, description = "Resources, by subscription then resource id", body = Paged<ResourceView>)))]
pub async fn resources(
    State(state): State<AppState>,
    scoped: Scoped,
    RawQuery(raw): RawQuery,
) -> Result<Json<Paged<ResourceView>>> {
    let params = parse(
        raw.as_deref(),
        &[
            "subscription",
            "resourceGroup",
            "type",
            "location",
            "tag",
            "limit",
            "cursor",
        ],
    )?;
    let tag = text(&params, "tag")?
        .map(|t| {
            parse_tag_filter(&t).ok_or_else(|| {
                Error::InvalidRequest("`tag` must be `<key>=<value>`, e.g. `env=prod`".into())
            })
        })
        .transpose()?;
    let filter = InventoryFilter {
        subscription: subscription(&params)?,
        resource_group: text(&params, "resourceGroup")?,
        resource_type: text(&params, "type")?,
        location: text(&params, "location")?,
        tag,
    };
    let limit = params
        .get("limit")
        .map(|l| {
            l.parse::<u32>()
                .map_err(|_| Error::InvalidRequest("limit must be between 1 and 200".into()))
        })
        .transpose()?;
    let limit = page_limit(limit)?;
    // The cursor is bound to the workspace and the filters, so a cursor from one listing cannot
    // be replayed on another.
    let listing = format!(
        "workspace:{}:resources:{:?}",
        scoped.scope.id(),
        (
            &filter.subscription,
            &filter.resource_group,
            &filter.resource_type,
            &filter.location,
            &filter.tag
        )
    );
    let after = params
        .get("cursor")
        .map(|c| decode_cursor(&listing, c))
        .transpose()?;
    let has_cursor = after.is_some();
    let page = state
        .inventory()
        .list(scoped.scope.id(), &filter, PageRequest { after, limit })
        .await
        .map_err(|err| match err {
            StoreError::NotFound if has_cursor => {
                Error::InvalidRequest("the cursor is not valid for this listing".to_owned())
            }
            other => other.into(),
        })?;
    Ok(Json(Paged {
        items: page.items.into_iter().map(ResourceView::from).collect(),
        next_cursor: page.next.map(|n| encode_cursor(&listing, &n)),
    }))
}

/// The workspace's Advisor recommendations, as last synced, with filters and the potential savings
/// of the listed ones per currency.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/recommendations", tag = "inventory",
    params(("id" = String, Path, description = "Workspace id"), RecommendationsQuery),
    responses((status = 200, description = "Recommendations, by subscription then id, with savings totals", body = RecommendationList)))]
pub async fn recommendations(
    State(state): State<AppState>,
    scoped: Scoped,
    RawQuery(raw): RawQuery,
) -> Result<Json<RecommendationList>> {
    let params = parse(raw.as_deref(), &["subscription", "category", "impact"])?;
    let category = params
        .get("category")
        .map(|c| {
            Category::parse(c).ok_or_else(|| {
                Error::InvalidRequest(
                    "`category` must be Cost, HighAvailability, Security, Performance or OperationalExcellence".into(),
                )
            })
        })
        .transpose()?;
    let impact = params
        .get("impact")
        .map(|i| {
            Impact::parse(i)
                .ok_or_else(|| Error::InvalidRequest("`impact` must be High, Medium or Low".into()))
        })
        .transpose()?;
    let filter = RecommendationFilter {
        subscription: subscription(&params)?,
        category,
        impact,
    };
    let items = state
        .recommendations()
        .list(scoped.scope.id(), &filter)
        .await?;
    let total_savings = savings_totals(&items)
        .into_iter()
        .map(|t| SavingsTotalView {
            currency: t.currency,
            amount: t.amount,
            annual_amount: t.annual_amount,
            recommendations: t.recommendations,
        })
        .collect();
    Ok(Json(RecommendationList {
        items: items.into_iter().map(RecommendationView::from).collect(),
        total_savings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_parameters_are_refused_and_empty_ones_ignored() {
        assert!(parse(Some("resourcegroup=x"), &["resourceGroup"]).is_err());
        assert!(parse(Some("type=a&type=b"), &["type"]).is_err());
        let params = parse(Some("type=&tag=env%3Dprod"), &["type", "tag"]).unwrap();
        assert_eq!(params.get("tag").map(String::as_str), Some("env=prod"));
        assert!(!params.contains_key("type"));
        assert!(parse(None, &[]).unwrap().is_empty());
    }

    #[test]
    fn a_subscription_filter_must_be_a_guid() {
        let params = BTreeMap::from([("subscription".to_owned(), "nope".to_owned())]);
        assert!(subscription(&params).is_err());
        let params = BTreeMap::from([(
            "subscription".to_owned(),
            "5B7C9E1F-3A2D-4E6B-8C0A-9D1E2F3A4B5C".to_owned(),
        )]);
        assert_eq!(
            subscription(&params).unwrap().as_deref(),
            Some("5b7c9e1f-3a2d-4e6b-8c0a-9d1e2f3a4b5c")
        );
    }
}
