//! What the connection's principal may do on a subscription, and whether that is what Sixpence needs.
//!
//! `GET /subscriptions/{id}/providers/Microsoft.Authorization/permissions` lists the caller's own
//! effective permissions (one entry per role assignment: `actions`, `notActions`, `dataActions`,
//! `notDataActions`). [`classify_permissions`] is pure: it answers "can we read costs?", "can we read
//! resources and Advisor (Reader)?" and "can this principal change anything?", with the fix to give
//! the customer.

use serde::Deserialize;

use super::api_version;
use super::client::AzureClient;
use super::error::AzureError;

/// The fix for an over-privileged principal.
pub const OVER_PRIVILEGED_FIX: &str =
    "Assign Reader and Cost Management Reader instead of Contributor";
/// The fix when costs cannot be read.
pub const COST_UNREADABLE_FIX: &str = "Assign the Cost Management Reader role (or Reader) to the service principal on the subscription";
/// The fix when resources and Advisor cannot be read.
pub const NOT_READER_FIX: &str = "Assign the Reader role to the service principal on the \
     subscription so Sixpence can list resources and Advisor recommendations";

/// Operations that prove cost data is readable.
const COST_PROBES: &[&str] = &["Microsoft.CostManagement/query/read"];
/// Operations that prove the principal can read resources (Resource Graph) and Advisor.
const READER_PROBES: &[&str] = &[
    "Microsoft.Advisor/recommendations/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Compute/virtualMachines/read",
];

/// Actions that do not end in `/read` but change nothing Sixpence would worry about:
/// - `Microsoft.Support/*` is part of the built-in Cost Management Reader role (it can open support
///   tickets, not touch resources); flagging it would flag the very role we ask for;
/// - the read-only POST operations Sixpence itself uses.
const READ_ONLY_EXCEPTIONS: &[&str] = &[
    "Microsoft.Support/*",
    "Microsoft.CostManagement/query/action",
    "Microsoft.CostManagement/forecast/action",
    "Microsoft.CostManagement/generateCostDetailsReport/action",
    "Microsoft.ResourceGraph/resources/action",
];

/// One role assignment's effective permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
    #[serde(default)]
    pub data_actions: Vec<String>,
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

/// What the permissions mean for Sixpence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionAssessment {
    /// Cost Management query and forecast will work (Cost Management Reader or Reader).
    pub cost_readable: bool,
    /// Resource Graph and Advisor will work (Reader).
    pub reader: bool,
    /// The principal can change something: a `*`, `*/write`, `*/delete` or `*/action` outside the
    /// read-only operations, or any data action.
    pub over_privileged: bool,
    /// The actions that make it over-privileged, as granted (e.g. `*`).
    pub excess_actions: Vec<String>,
    /// Data actions granted (any is too much).
    pub excess_data_actions: Vec<String>,
}

impl PermissionAssessment {
    /// Exactly what Sixpence needs and nothing more.
    pub fn is_ideal(&self) -> bool {
        self.cost_readable && self.reader && !self.over_privileged
    }

    /// What the customer should change, most important first.
    pub fn fixes(&self) -> Vec<&'static str> {
        let mut fixes = Vec::new();
        if self.over_privileged {
            fixes.push(OVER_PRIVILEGED_FIX);
        }
        if !self.cost_readable {
            fixes.push(COST_UNREADABLE_FIX);
        }
        if !self.reader && !self.over_privileged {
            fixes.push(NOT_READER_FIX);
        }
        fixes
    }
}

/// Classifies a principal's permissions on a subscription.
pub fn classify_permissions(permissions: &[Permission]) -> PermissionAssessment {
    let allows = |operation: &str| {
        permissions.iter().any(|p| {
            p.actions.iter().any(|a| glob(a, operation))
                && !p.not_actions.iter().any(|n| glob(n, operation))
        })
    };
    let mut excess_actions = Vec::new();
    let mut excess_data_actions = Vec::new();
    for p in permissions {
        for action in &p.actions {
            let negated = p.not_actions.iter().any(|n| glob(n, action));
            if !negated && !is_read_only(action) && !excess_actions.contains(action) {
                excess_actions.push(action.clone());
            }
        }
        for action in &p.data_actions {
            let negated = p.not_data_actions.iter().any(|n| glob(n, action));
            if !negated && !excess_data_actions.contains(action) {
                excess_data_actions.push(action.clone());
            }
        }
    }
    PermissionAssessment {
        cost_readable: COST_PROBES.iter().all(|op| allows(op)),
        reader: READER_PROBES.iter().all(|op| allows(op)),
        over_privileged: !excess_actions.is_empty() || !excess_data_actions.is_empty(),
        excess_actions,
        excess_data_actions,
    }
}

fn is_read_only(action: &str) -> bool {
    let lower = action.to_ascii_lowercase();
    lower.ends_with("/read")
        || READ_ONLY_EXCEPTIONS
            .iter()
            .any(|e| e.eq_ignore_ascii_case(action))
}

/// Azure action matching: case-insensitive, `*` matches any run of characters (including `/`).
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<u8> = pattern.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let t: Vec<u8> = text.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

impl AzureClient {
    /// The principal's own permissions on a subscription.
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id(), subscription.id = %subscription_id))]
    pub async fn permissions(&self, subscription_id: &str) -> Result<Vec<Permission>, AzureError> {
        let url = self.url(
            &[
                "subscriptions",
                self.id(subscription_id, "subscription id")?,
                "providers",
                "Microsoft.Authorization",
                "permissions",
            ],
            &[("api-version", api_version::AUTHORIZATION)],
        )?;
        super::client::ListPages::new(self.clone(), url, "permissions")
            .collect_all()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(actions: &[&str], not_actions: &[&str]) -> Permission {
        Permission {
            actions: actions.iter().map(|s| s.to_string()).collect(),
            not_actions: not_actions.iter().map(|s| s.to_string()).collect(),
            ..Permission::default()
        }
    }

    /// The built-in Cost Management Reader role.
    fn cost_management_reader() -> Permission {
        perm(
            &[
                "Microsoft.Consumption/*/read",
                "Microsoft.CostManagement/*/read",
                "Microsoft.Billing/billingPeriods/read",
                "Microsoft.Resources/subscriptions/read",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Support/*",
                "Microsoft.Advisor/configurations/read",
                "Microsoft.Advisor/recommendations/read",
                "Microsoft.Management/managementGroups/read",
                "Microsoft.Billing/billingProperty/read",
            ],
            &[],
        )
    }

    /// The built-in Contributor role.
    fn contributor() -> Permission {
        perm(
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
            ],
        )
    }

    #[test]
    fn reader_and_cost_management_reader_are_ideal() {
        let assessment = classify_permissions(&[perm(&["*/read"], &[]), cost_management_reader()]);
        assert!(assessment.is_ideal(), "{assessment:?}");
        assert!(assessment.fixes().is_empty());
    }

    #[test]
    fn reader_alone_reads_costs_and_resources() {
        let assessment = classify_permissions(&[perm(&["*/read"], &[])]);
        assert!(assessment.cost_readable && assessment.reader && !assessment.over_privileged);
    }

    #[test]
    fn cost_management_reader_alone_cannot_read_resources() {
        let assessment = classify_permissions(&[cost_management_reader()]);
        assert!(assessment.cost_readable);
        assert!(!assessment.reader);
        assert!(
            !assessment.over_privileged,
            "Microsoft.Support/* is an accepted exception"
        );
        assert_eq!(assessment.fixes(), vec![NOT_READER_FIX]);
    }

    #[test]
    fn contributor_is_over_privileged_with_the_exact_fix() {
        let assessment = classify_permissions(&[contributor()]);
        assert!(assessment.over_privileged);
        assert!(assessment.cost_readable && assessment.reader);
        assert_eq!(assessment.excess_actions, vec!["*".to_owned()]);
        assert_eq!(
            assessment.fixes(),
            vec!["Assign Reader and Cost Management Reader instead of Contributor"]
        );
    }

    #[test]
    fn writes_deletes_actions_and_data_actions_are_flagged() {
        for action in [
            "Microsoft.Consumption/budgets/write",
            "Microsoft.Compute/*/delete",
            "Microsoft.Storage/storageAccounts/listKeys/action",
            "Microsoft.CostManagement/*",
            "*/write",
        ] {
            let assessment = classify_permissions(&[perm(&["*/read", action], &[])]);
            assert!(assessment.over_privileged, "{action} should be flagged");
        }
        let data = Permission {
            actions: vec!["*/read".into()],
            data_actions: vec![
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read".into(),
            ],
            ..Permission::default()
        };
        assert!(classify_permissions(&[data]).over_privileged);
    }

    #[test]
    fn not_actions_take_away() {
        let assessment = classify_permissions(&[perm(
            &["*/read", "Microsoft.Consumption/budgets/write"],
            &["Microsoft.Consumption/*", "Microsoft.Compute/*/read"],
        )]);
        assert!(!assessment.over_privileged);
        assert!(!assessment.reader, "Compute reads were taken away");
    }

    #[test]
    fn no_permissions_at_all() {
        let assessment = classify_permissions(&[Permission::default()]);
        assert!(!assessment.cost_readable && !assessment.reader && !assessment.over_privileged);
        assert_eq!(
            assessment.fixes(),
            vec![COST_UNREADABLE_FIX, NOT_READER_FIX]
        );
    }

    #[test]
    fn glob_matches_like_azure() {
        assert!(glob("*", "Microsoft.Compute/virtualMachines/read"));
        assert!(glob("*/read", "Microsoft.Compute/virtualMachines/read"));
        assert!(glob(
            "microsoft.costmanagement/*/read",
            "Microsoft.CostManagement/query/read"
        ));
        assert!(!glob(
            "Microsoft.CostManagement/*/read",
            "Microsoft.CostManagement/exports/write"
        ));
        assert!(glob(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/*/Write"
        ));
        assert!(!glob(
            "*/read",
            "Microsoft.Compute/virtualMachines/readwrite"
        ));
    }
}
