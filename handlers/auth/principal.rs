//! Who is calling: the principal a verified token names, and how its claims are read.

use std::fmt;

use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::Reason;

/// An Entra ID tenant (directory) id: the `tid` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Uuid);

/// An Entra ID user's object id within their tenant: the `oid` claim.
///
/// Stable for the life of the account and never reassigned, unlike an email address or a UPN; with
/// the [`TenantId`] it is the only key a user is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Uuid);

macro_rules! uuid_newtype {
    ($name:ident) => {
        impl $name {
            pub const fn new(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Entra writes ids in lower case, hyphenated: keep that form everywhere.
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}
uuid_newtype!(TenantId);
uuid_newtype!(UserId);

/// An email address from a token, with whether Entra vouches for it.
///
/// Only a [`Email::Verified`] address may prove anything (accepting an invitation sent to that
/// address); an unverified one is for display. Entra lets a tenant admin put any address on a user,
/// including one in a domain the tenant does not own, which is how "nOAuth"-style account takeovers
/// worked: so an address counts as verified only when the token says the domain owner is verified.
#[derive(Clone, PartialEq, Eq)]
pub enum Email {
    Verified(String),
    Unverified(String),
}

impl Email {
    /// The address, whether verified or not: for display only.
    pub fn address(&self) -> &str {
        match self {
            Email::Verified(address) | Email::Unverified(address) => address,
        }
    }

    pub fn is_verified(&self) -> bool {
        matches!(self, Email::Verified(_))
    }
}

impl fmt::Debug for Email {
    // An address is personal data: debug output (and so any log that formats a principal) shows
    // only whether there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Email::Verified(_) => "Verified(<redacted>)",
            Email::Unverified(_) => "Unverified(<redacted>)",
        })
    }
}

/// The authenticated caller of the tenant API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's object id (`oid`).
    pub user_id: UserId,
    /// The user's home tenant for this token (`tid`).
    pub tenant_id: TenantId,
    /// See [`Email`] for when it is verified.
    pub email: Option<Email>,
    /// The `name` claim, for display only.
    pub display_name: Option<String>,
}

impl Principal {
    /// The address an invitation may be matched against: only a verified one.
    pub fn verified_email(&self) -> Option<&str> {
        match &self.email {
            Some(Email::Verified(address)) => Some(address),
            _ => None,
        }
    }
}

/// The claims Sixpence reads from an access token, after the library has checked the signature,
/// `exp`, `nbf` and `aud`. Entra v2 access tokens and development tokens share these names.
#[derive(Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    pub tid: String,
    pub oid: String,
    /// Delegated scopes: present only in tokens issued to a signed-in user.
    #[serde(default)]
    pub scp: Option<String>,
    /// `app` for app-only tokens (optional claim `idtyp`).
    #[serde(default)]
    pub idtyp: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// Optional claim: the email's domain owner is verified.
    #[serde(default, deserialize_with = "flag")]
    pub xms_edov: bool,
}

/// Reads `xms_edov`, documented as a boolean; a string or number form counts only if it plainly
/// means true, so anything unexpected falls to "not verified".
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(
        match Option::<serde_json::Value>::deserialize(deserializer)? {
            Some(serde_json::Value::Bool(value)) => value,
            Some(serde_json::Value::String(value)) => {
                value.eq_ignore_ascii_case("true") || value == "1"
            }
            Some(serde_json::Value::Number(value)) => value.as_u64() == Some(1),
            _ => false,
        },
    )
}

impl Claims {
    /// Turns verified claims into the principal, refusing tokens that do not name a signed-in user.
    pub fn into_principal(self) -> Result<Principal, Reason> {
        // App-only (client-credentials) tokens carry no `scp`; so do ID tokens, which share the
        // API's `aud` when the front end and the API are one app registration. Neither is a user.
        let delegated = self.scp.as_deref().is_some_and(|s| !s.trim().is_empty());
        if !delegated || self.idtyp.as_deref() == Some("app") {
            return Err(Reason::NotAUser);
        }
        let tenant_id = self.tid.parse().map_err(|_| Reason::ClaimsInvalid)?;
        let user_id = self.oid.parse().map_err(|_| Reason::ClaimsInvalid)?;
        let email = match (self.email, self.preferred_username) {
            (Some(email), _) if self.xms_edov && looks_like_email(&email) => {
                Some(Email::Verified(email))
            }
            (Some(email), _) if looks_like_email(&email) => Some(Email::Unverified(email)),
            // `preferred_username` is usually the UPN; Entra documents it as mutable and not for
            // authorisation, so it is never verified.
            (_, Some(username)) if looks_like_email(&username) => Some(Email::Unverified(username)),
            _ => None,
        };
        Ok(Principal {
            user_id,
            tenant_id,
            email,
            display_name: self.name.filter(|n| !n.trim().is_empty()),
        })
    }
}

fn looks_like_email(value: &str) -> bool {
    value.len() <= 254
        && value
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(extra: serde_json::Value) -> Claims {
        let mut base = serde_json::json!({
            "iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
            "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "oid": "00000000-0000-0000-0000-00000000a11c",
            "scp": "access_as_user",
            "name": "Alice",
        });
        if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
        serde_json::from_value(base).expect("claims")
    }

    #[test]
    fn an_email_is_verified_only_when_the_domain_owner_is() {
        let principal = claims(serde_json::json!({"email": "alice@contoso.com", "xms_edov": true}))
            .into_principal()
            .expect("principal");
        assert_eq!(principal.verified_email(), Some("alice@contoso.com"));

        for edov in [
            serde_json::json!(false),
            serde_json::json!("false"),
            serde_json::json!(null),
        ] {
            let principal =
                claims(serde_json::json!({"email": "alice@contoso.com", "xms_edov": edov}))
                    .into_principal()
                    .expect("principal");
            assert_eq!(principal.verified_email(), None);
            assert_eq!(
                principal.email,
                Some(Email::Unverified("alice@contoso.com".to_owned()))
            );
        }
    }

    #[test]
    fn preferred_username_is_never_a_verified_email() {
        let principal = claims(serde_json::json!({
            "preferred_username": "alice@contoso.com",
            "xms_edov": true,
        }))
        .into_principal()
        .expect("principal");
        assert_eq!(principal.verified_email(), None);
        assert_eq!(
            principal.email.as_ref().map(Email::address),
            Some("alice@contoso.com")
        );
    }

    #[test]
    fn app_only_and_id_tokens_are_not_users() {
        let app = claims(serde_json::json!({"idtyp": "app"}));
        assert_eq!(app.into_principal().err(), Some(Reason::NotAUser));
        let mut no_scope = claims(serde_json::json!({}));
        no_scope.scp = None;
        assert_eq!(no_scope.into_principal().err(), Some(Reason::NotAUser));
    }

    #[test]
    fn debug_output_hides_the_address() {
        let principal = claims(serde_json::json!({"email": "alice@contoso.com", "xms_edov": true}))
            .into_principal()
            .expect("principal");
        let shown = format!("{principal:?}");
        assert!(!shown.contains("alice@"), "{shown}");
        assert!(shown.contains("Verified"), "{shown}");
    }
}
