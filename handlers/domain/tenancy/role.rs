//! Roles and the permissions they grant.

use serde::{Deserialize, Serialize};

/// A member's role in a workspace, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Acts on anomalies and recommendations, runs reports.
    Analyst,
    /// Manages connections, channels, budgets and members.
    Admin,
    /// Billing, deletion, everything.
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Analyst, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether this role may do what `permission` allows.
    pub fn grants(self, permission: Permission) -> bool {
        self >= permission.minimum_role()
    }
}

/// What a route needs. Every route of the tenant API declares exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Permission {
    /// Anyone, signed in or not (the OpenAPI document).
    Public,
    /// Any signed-in user; the route is not about one workspace (e.g. `GET /me`, creating a workspace).
    SignedIn,
    /// A signed-in user holding a pending invitation to this workspace for their verified email.
    Invitee,
    /// Read a workspace's data.
    Read,
    /// Act on anomalies and recommendations, run reports.
    Analyse,
    /// Manage connections, channels, budgets, members and settings.
    Administer,
    /// Billing and deletion.
    Own,
}

impl Permission {
    /// The least role that holds this permission inside a workspace.
    pub fn minimum_role(self) -> Role {
        match self {
            Permission::Public | Permission::SignedIn | Permission::Invitee | Permission::Read => {
                Role::Viewer
            }
            Permission::Analyse => Role::Analyst,
            Permission::Administer => Role::Admin,
            Permission::Own => Role::Owner,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Permission::Public => "anyone",
            Permission::SignedIn => "any signed-in user",
            Permission::Invitee => "the invited user (verified email must match)",
            Permission::Read => "viewer or above",
            Permission::Analyse => "analyst or above",
            Permission::Administer => "admin or above",
            Permission::Own => "owner",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_holds_the_permissions_of_the_roles_below_it() {
        assert!(Role::Owner.grants(Permission::Own));
        assert!(!Role::Admin.grants(Permission::Own));
        assert!(Role::Admin.grants(Permission::Administer));
        assert!(!Role::Analyst.grants(Permission::Administer));
        assert!(Role::Analyst.grants(Permission::Analyse));
        assert!(!Role::Viewer.grants(Permission::Analyse));
        assert!(Role::Viewer.grants(Permission::Read));
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("superuser"), None);
    }
}
