//! Scopes: which cost rows a budget (or a monitor) covers.

use serde::{Deserialize, Serialize};

/// The dimensions of one cost row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowDimensions<'a> {
    /// Subscription id.
    pub subscription: &'a str,
    /// Resource group name.
    pub resource_group: &'a str,
    /// Service name (`ServiceName` / meter category).
    pub service: &'a str,
    /// Resource tags.
    pub tags: &'a [(String, String)],
}

/// A tag condition: the key must be present, with `value` if given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFilter {
    /// Tag name (compared case-insensitively, as Azure treats tag names).
    pub key: String,
    /// Required value (compared exactly, as Azure preserves tag values); `None` = any value.
    pub value: Option<String>,
}

/// A filter over rows. Each non-empty list must match (AND across dimensions); within a list any
/// entry may match (OR). An empty scope matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Scope {
    /// Subscription ids (case-insensitive: Azure GUIDs appear in either case).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Resource group names (case-insensitive, as in Azure).
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// Service names (case-insensitive).
    #[serde(default)]
    pub services: Vec<String>,
    /// Tag conditions; all must hold.
    #[serde(default)]
    pub tags: Vec<TagFilter>,
}

impl Scope {
    /// Whether `row` is inside the scope.
    pub fn matches(&self, row: &RowDimensions<'_>) -> bool {
        let any = |list: &[String], v: &str| {
            list.is_empty() || list.iter().any(|x| x.eq_ignore_ascii_case(v))
        };
        any(&self.subscriptions, row.subscription)
            && any(&self.resource_groups, row.resource_group)
            && any(&self.services, row.service)
            && self.tags.iter().all(|t| {
                row.tags.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case(&t.key) && t.value.as_ref().is_none_or(|want| want == v)
                })
            })
    }
}
