//! The read-only allow-list: the only (method, path) pairs the client will ever send to ARM.
//!
//! Every request, including every `nextLink` the service hands back, passes `check` before it is
//! sent. It must go to the configured ARM origin, use GET or POST, and match one of the patterns below
//! (case-insensitively, as ARM paths are). Anything else is [`AzureError::WriteRefused`] and never
//! leaves the process. The POSTs are the ones Azure authorises as reads (Cost Management query,
//! forecast and cost-details report; Resource Graph queries).
//!
//! | method | path (after the ARM base URL) |
//! |---|---|
//! | GET  | `/subscriptions` |
//! | GET  | `/subscriptions/{id}` |
//! | GET  | `/subscriptions/{id}[/resourceGroups/{rg}]/providers/Microsoft.Authorization/permissions` |
//! | GET  | `/subscriptions/{id}/providers/Microsoft.Advisor/recommendations` |
//! | GET  | `/{scope}/providers/Microsoft.CostManagement/dimensions` |
//! | GET  | `/{scope}/providers/Microsoft.CostManagement/costDetailsOperationResults/{id}` |
//! | POST | `/{scope}/providers/Microsoft.CostManagement/query` |
//! | POST | `/{scope}/providers/Microsoft.CostManagement/forecast` |
//! | POST | `/{scope}/providers/Microsoft.CostManagement/generateCostDetailsReport` |
//! | POST | `/providers/Microsoft.ResourceGraph/resources` |
//!
//! `{scope}` is one of the Cost Management scopes: a subscription, a resource group, a management
//! group, or a billing account (optionally with a department, enrollment account, billing profile,
//! invoice section or customer beneath it).

use reqwest::Method;
use url::Url;

use super::error::AzureError;

/// The allowed operations, as recognised from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    ListSubscriptions,
    GetSubscription,
    Permissions,
    AdvisorRecommendations,
    CostDimensions,
    CostDetailsOperationResult,
    CostQuery,
    CostForecast,
    GenerateCostDetailsReport,
    ResourceGraph,
}

impl Operation {
    /// Cost Management calls share the tenant's QPU quota and go through the pacer.
    pub fn is_cost_management(self) -> bool {
        matches!(
            self,
            Operation::CostDimensions
                | Operation::CostDetailsOperationResult
                | Operation::CostQuery
                | Operation::CostForecast
                | Operation::GenerateCostDetailsReport
        )
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Operation::ListSubscriptions => "subscriptions.list",
            Operation::GetSubscription => "subscriptions.get",
            Operation::Permissions => "permissions.list",
            Operation::AdvisorRecommendations => "advisor.recommendations",
            Operation::CostDimensions => "cost.dimensions",
            Operation::CostDetailsOperationResult => "cost.details_result",
            Operation::CostQuery => "cost.query",
            Operation::CostForecast => "cost.forecast",
            Operation::GenerateCostDetailsReport => "cost.details_report",
            Operation::ResourceGraph => "resource_graph.resources",
        }
    }
}

/// One path segment of a pattern: a literal (lower case) or any valid segment.
#[derive(Clone, Copy)]
enum Seg {
    Lit(&'static str),
    Any,
}
use Seg::{Any, Lit};

/// Whole-path patterns, not under a Cost Management scope.
const PLAIN: &[(&str, &[Seg], Operation)] = &[
    ("GET", &[Lit("subscriptions")], Operation::ListSubscriptions),
    (
        "GET",
        &[Lit("subscriptions"), Any],
        Operation::GetSubscription,
    ),
    (
        "GET",
        &[
            Lit("subscriptions"),
            Any,
            Lit("providers"),
            Lit("microsoft.authorization"),
            Lit("permissions"),
        ],
        Operation::Permissions,
    ),
    (
        "GET",
        &[
            Lit("subscriptions"),
            Any,
            Lit("resourcegroups"),
            Any,
            Lit("providers"),
            Lit("microsoft.authorization"),
            Lit("permissions"),
        ],
        Operation::Permissions,
    ),
    (
        "GET",
        &[
            Lit("subscriptions"),
            Any,
            Lit("providers"),
            Lit("microsoft.advisor"),
            Lit("recommendations"),
        ],
        Operation::AdvisorRecommendations,
    ),
    (
        "POST",
        &[
            Lit("providers"),
            Lit("microsoft.resourcegraph"),
            Lit("resources"),
        ],
        Operation::ResourceGraph,
    ),
];

/// Tails after `{scope}/providers/Microsoft.CostManagement/`.
const COST_TAILS: &[(&str, &[Seg], Operation)] = &[
    ("POST", &[Lit("query")], Operation::CostQuery),
    ("POST", &[Lit("forecast")], Operation::CostForecast),
    (
        "POST",
        &[Lit("generatecostdetailsreport")],
        Operation::GenerateCostDetailsReport,
    ),
    ("GET", &[Lit("dimensions")], Operation::CostDimensions),
    (
        "GET",
        &[Lit("costdetailsoperationresults"), Any],
        Operation::CostDetailsOperationResult,
    ),
];

/// The Cost Management scope forms.
const SCOPES: &[&[Seg]] = &[
    &[Lit("subscriptions"), Any],
    &[Lit("subscriptions"), Any, Lit("resourcegroups"), Any],
    &[
        Lit("providers"),
        Lit("microsoft.management"),
        Lit("managementgroups"),
        Any,
    ],
    &[
        Lit("providers"),
        Lit("microsoft.billing"),
        Lit("billingaccounts"),
        Any,
    ],
    &[
        Lit("providers"),
        Lit("microsoft.billing"),
        Lit("billingaccounts"),
        Any,
        Lit("departments"),
        Any,
    ],
    &[
        Lit("providers"),
        Lit("microsoft.billing"),
        Lit("billingaccounts"),
        Any,
        Lit("enrollmentaccounts"),
        Any,
    ],
    &[
        Lit("providers"),
        Lit("microsoft.billing"),
        Lit("billingaccounts"),
        Any,
        Lit("billingprofiles"),
        Any,
    ],
    &[
        Lit("providers"),
        Lit("microsoft.billing"),
        Lit("billingaccounts"),
        Any,
        Lit("billingprofiles"),
        Any,
        Lit("invoicesections"),
        Any,
    ],
    &[
        Lit("providers"),
        Lit("microsoft.billing"),
        Lit("billingaccounts"),
        Any,
        Lit("customers"),
        Any,
    ],
];

const COST_PROVIDER: &[Seg] = &[Lit("providers"), Lit("microsoft.costmanagement")];

/// Checks one request against the allow-list. `base` is the configured ARM base URL.
pub(crate) fn check(method: &Method, base: &Url, url: &Url) -> Result<Operation, AzureError> {
    let refuse = || AzureError::WriteRefused {
        method: method.to_string(),
        path: url.path().to_owned(),
    };
    if url.scheme() != base.scheme()
        || url.host() != base.host()
        || url.port_or_known_default() != base.port_or_known_default()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(refuse());
    }
    let method_name = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        _ => return Err(refuse()),
    };
    let prefix = base.path().trim_end_matches('/');
    let rest = url
        .path()
        .strip_prefix(prefix)
        .filter(|rest| rest.starts_with('/'))
        .ok_or_else(refuse)?;
    let segments: Vec<String> = rest[1..].split('/').map(str::to_ascii_lowercase).collect();
    if !segments.iter().all(|s| valid_segment(s)) {
        return Err(refuse());
    }
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match_operation(method_name, &segments).ok_or_else(refuse)
}

fn match_operation(method: &str, segments: &[&str]) -> Option<Operation> {
    for (m, pattern, op) in PLAIN {
        if *m == method && matches(pattern, segments) {
            return Some(*op);
        }
    }
    for scope in SCOPES {
        let Some(after_scope) = strip(scope, segments) else {
            continue;
        };
        let Some(tail) = strip(COST_PROVIDER, after_scope) else {
            continue;
        };
        for (m, pattern, op) in COST_TAILS {
            if *m == method && matches(pattern, tail) {
                return Some(*op);
            }
        }
    }
    None
}

/// Whether `segments` (already lower case) is exactly `pattern`.
fn matches(pattern: &[Seg], segments: &[&str]) -> bool {
    strip(pattern, segments).is_some_and(<[&str]>::is_empty)
}

/// If `segments` starts with `pattern`, what follows it.
fn strip<'a, 'b>(pattern: &[Seg], segments: &'a [&'b str]) -> Option<&'a [&'b str]> {
    if segments.len() < pattern.len() {
        return None;
    }
    let (head, rest) = segments.split_at(pattern.len());
    pattern
        .iter()
        .zip(head)
        .all(|(p, s)| match p {
            Lit(lit) => lit == s,
            Any => true,
        })
        .then_some(rest)
}

/// A path segment we are willing to send as an id: not empty, not a dot segment, and nothing that a
/// server might decode into a separator or a traversal.
pub(crate) fn valid_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && !segment
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '?' | '#') || c.is_control() || c.is_whitespace())
        && !["%2f", "%5c", "%2e", "%00", "%3f", "%23"]
            .iter()
            .any(|bad| lower.contains(bad))
}

/// Whether `segments` form one of the Cost Management scopes (used to validate [`super::Scope`]).
pub(crate) fn is_cost_scope(segments: &[&str]) -> bool {
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    lower.iter().all(|s| valid_segment(s)) && SCOPES.iter().any(|scope| matches(scope, &lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000000";

    fn base() -> Url {
        Url::parse("https://management.azure.com").unwrap()
    }

    fn op(method: Method, path: &str) -> Result<Operation, AzureError> {
        let url = base().join(path).unwrap();
        check(&method, &base(), &url)
    }

    #[test]
    fn the_reads_we_use_are_allowed() {
        let cases = [
            (Method::GET, "/subscriptions?api-version=2022-12-01".to_owned(), Operation::ListSubscriptions),
            (Method::GET, format!("/subscriptions/{SUB}"), Operation::GetSubscription),
            (
                Method::GET,
                format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/permissions"),
                Operation::Permissions,
            ),
            (
                Method::GET,
                format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Authorization/permissions"),
                Operation::Permissions,
            ),
            (
                Method::GET,
                format!("/subscriptions/{SUB}/providers/microsoft.Advisor/recommendations?$skiptoken=x"),
                Operation::AdvisorRecommendations,
            ),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/query"),
                Operation::CostQuery,
            ),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CostManagement/forecast"),
                Operation::CostForecast,
            ),
            (
                Method::POST,
                "/providers/Microsoft.Billing/billingAccounts/70664866/providers/Microsoft.CostManagement/Query?api-version=2021-10-01&$skiptoken=AQAAAA%3D%3D".to_owned(),
                Operation::CostQuery,
            ),
            (
                Method::POST,
                "/providers/Microsoft.Billing/billingAccounts/12345:6789/billingProfiles/bp/invoiceSections/is/providers/Microsoft.CostManagement/query".to_owned(),
                Operation::CostQuery,
            ),
            (
                Method::POST,
                "/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.CostManagement/query".to_owned(),
                Operation::CostQuery,
            ),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/generateCostDetailsReport"),
                Operation::GenerateCostDetailsReport,
            ),
            (
                Method::GET,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/costDetailsOperationResults/{SUB}"),
                Operation::CostDetailsOperationResult,
            ),
            (
                Method::GET,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/dimensions"),
                Operation::CostDimensions,
            ),
            (
                Method::POST,
                "/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01".to_owned(),
                Operation::ResourceGraph,
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                op(method.clone(), &path).ok(),
                Some(expected),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn writes_and_everything_else_are_refused() {
        let refused = [
            (
                Method::PUT,
                format!("/subscriptions/{SUB}/providers/Microsoft.Consumption/budgets/b"),
            ),
            (
                Method::DELETE,
                format!("/subscriptions/{SUB}/providers/Microsoft.Consumption/budgets/b"),
            ),
            (Method::PATCH, format!("/subscriptions/{SUB}")),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/x"),
            ),
            (
                Method::PUT,
                format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/x"),
            ),
            (
                Method::GET,
                format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"),
            ),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/providers/Microsoft.Advisor/generateRecommendations"),
            ),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/exports/e/run"),
            ),
            (
                Method::PUT,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/exports/e"),
            ),
            (
                Method::GET,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/query"),
            ),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/query/extra"),
            ),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement"),
            ),
            (
                Method::POST,
                format!(
                    "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/start"
                ),
            ),
            (
                Method::GET,
                format!(
                    "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v/secrets"
                ),
            ),
            (Method::GET, format!("/subscriptions/{SUB}/resourcegroups")),
            (
                Method::POST,
                "/providers/Microsoft.ResourceGraph/resources/extra".to_owned(),
            ),
            (Method::POST, "/nextlink".to_owned()),
            (
                Method::GET,
                "/subscriptions//providers/Microsoft.Advisor/recommendations".to_owned(),
            ),
            (
                Method::GET,
                "/subscriptions/a%2Fb/providers/Microsoft.Advisor/recommendations".to_owned(),
            ),
            (
                Method::POST,
                format!("/subscriptions/{SUB}/providers/Microsoft.CostManagement/query/"),
            ),
        ];
        for (method, path) in refused {
            assert!(
                matches!(
                    op(method.clone(), &path),
                    Err(AzureError::WriteRefused { .. })
                ),
                "{method} {path} should be refused"
            );
        }
    }

    #[test]
    fn other_origins_are_refused_even_for_allowed_paths() {
        let path = format!("/subscriptions/{SUB}/providers/Microsoft.Advisor/recommendations");
        for origin in [
            "http://management.azure.com",
            "https://management.azure.com.evil.example",
            "https://management.azure.com:8443",
            "https://user@management.azure.com",
            "http://nextlink",
        ] {
            let url = Url::parse(&format!("{origin}{path}")).unwrap();
            assert!(
                check(&Method::GET, &base(), &url).is_err(),
                "{origin} should be refused"
            );
        }
    }

    #[test]
    fn a_base_url_with_a_path_prefix_is_honoured() {
        let base = Url::parse("http://127.0.0.1:4000/arm").unwrap();
        let inside = Url::parse("http://127.0.0.1:4000/arm/subscriptions").unwrap();
        let outside = Url::parse("http://127.0.0.1:4000/subscriptions").unwrap();
        let sibling = Url::parse("http://127.0.0.1:4000/armory/subscriptions").unwrap();
        assert_eq!(
            check(&Method::GET, &base, &inside).ok(),
            Some(Operation::ListSubscriptions)
        );
        assert!(check(&Method::GET, &base, &outside).is_err());
        assert!(check(&Method::GET, &base, &sibling).is_err());
    }
}
