//! Authentication of tenant API callers: Microsoft Entra ID bearer tokens, and development tokens
//! in a local run.
//!
//! A handler asks for a [`Principal`](crate::auth::Principal) argument and gets one only for a
//! valid token; every failure is the same `401` problem document with `WWW-Authenticate: Bearer`
//! (see [`AuthRejection`](crate::auth::AuthRejection)), and the reason is logged, never sent.
//! What "valid" means:
//! - **Entra ID** (`RS256` only): signed by a key in the authority's JWKS (cached as the `jwks`
//!   module describes), `aud` one of `SIXPENCE_AUTH_AUDIENCE`, `exp` and `nbf` within
//!   [`CLOCK_SKEW`](crate::auth::CLOCK_SKEW), and `iss` equal to the metadata's issuer template
//!   (`https://login.microsoftonline.com/{tenantid}/v2.0`) with the token's own `tid` filled in:
//!   the multi-tenant form of issuer validation. Optionally `tid` must be on
//!   `SIXPENCE_AUTH_ALLOWED_TENANTS`.
//! - **Development** (`EdDSA`, only when `SIXPENCE_ENVIRONMENT=development` and `SIXPENCE_DEV_AUTH`
//!   is set): see [`dev`](crate::auth::dev).
//! - Either way the token must name a signed-in user (delegated `scp`, not an app-only token) and
//!   carry `tid` and `oid`, which key the user; email is never an identity (see
//!   [`Email`](crate::auth::Email)).
//!
//! The algorithm in the token header only chooses which verifier to ask; each verifier accepts its
//! one algorithm and its own keys, so no token can pick an algorithm a key was not meant for
//! (`alg: none`, or HS256 with the RSA public key as the secret).

pub mod dev;
mod extract;
mod jwks;
mod principal;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};

use crate::config::{AuthSettings, Environment, Settings};
use jwks::{KeyCache, Miss};
pub(crate) use principal::Claims;

pub use dev::{DevTokenRequest, mint_dev_token};
pub use extract::AuthRejection;
pub use jwks::EntraOptions;
pub use principal::{Email, Principal, TenantId, UserId};

/// Allowed difference between our clock and the issuer's when checking `exp` and `nbf`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(120);

/// Longest bearer token accepted. Entra access tokens are a few KiB; this bounds the work an
/// anonymous caller can ask for.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a request was not authenticated: logged, never sent to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    MissingHeader,
    MalformedHeader,
    MalformedToken,
    AlgorithmNotAllowed,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    ClaimsInvalid,
    NotAUser,
    TenantNotAllowed,
    /// No signing keys could be fetched yet: our problem, not the caller's (503).
    KeysUnavailable,
}

impl Reason {
    /// Maps a library error to a reason without carrying any of its text, which can quote claims.
    fn from_jwt(err: &jsonwebtoken::errors::Error) -> Self {
        match err.kind() {
            ErrorKind::InvalidSignature => Reason::BadSignature,
            ErrorKind::ExpiredSignature => Reason::Expired,
            ErrorKind::ImmatureSignature => Reason::NotYetValid,
            ErrorKind::InvalidAudience => Reason::WrongAudience,
            ErrorKind::InvalidIssuer => Reason::WrongIssuer,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::InvalidKeyFormat => Reason::AlgorithmNotAllowed,
            // The header was parsed before, so a JSON error here is in the claims.
            ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::InvalidSubject
            | ErrorKind::Json(_) => Reason::ClaimsInvalid,
            _ => Reason::MalformedToken,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::MissingHeader => "no Authorization header",
            Reason::MalformedHeader => "the Authorization header is not `Bearer <token>`",
            Reason::MalformedToken => "the token is not a well-formed JWT",
            Reason::AlgorithmNotAllowed => "the token's algorithm is not accepted",
            Reason::UnknownKey => "the token's signing key is unknown",
            Reason::BadSignature => "the signature does not verify",
            Reason::Expired => "the token has expired",
            Reason::NotYetValid => "the token is not valid yet",
            Reason::WrongAudience => "the token is for another audience",
            Reason::WrongIssuer => "the issuer does not match the token's tenant",
            Reason::ClaimsInvalid => "required claims are missing or malformed",
            Reason::NotAUser => "the token does not name a signed-in user",
            Reason::TenantNotAllowed => "the tenant is not allowed to sign in",
            Reason::KeysUnavailable => "the signing keys cannot be fetched",
        })
    }
}

/// Verifies bearer tokens. Cheap to clone; lives in [`crate::app::AppState`].
#[derive(Clone)]
pub struct Authenticator(Arc<Inner>);

struct Inner {
    entra: Option<EntraVerifier>,
    dev: Option<dev::DevKey>,
    allowed_tenants: Box<[TenantId]>,
}

impl Authenticator {
    /// The authenticator the settings describe, with production key-cache tuning.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Self::new(
            settings.environment,
            &settings.auth,
            EntraOptions::default(),
        )
    }

    /// Builds the verifiers; no network I/O (keys are fetched on first use).
    ///
    /// Entra verification is on when an audience is configured (always, in production). Development
    /// tokens are accepted only in development; asking for them in production is an error here as
    /// well as in config, because settings can be built by hand.
    pub fn new(
        environment: Environment,
        settings: &AuthSettings,
        options: EntraOptions,
    ) -> anyhow::Result<Self> {
        let dev = match (environment, &settings.dev_auth) {
            (Environment::Development, Some(passphrase)) => Some(dev::DevKey::derive(passphrase)?),
            (Environment::Production, Some(_)) => {
                anyhow::bail!("{} cannot be used in production", crate::config::DEV_AUTH)
            }
            (_, None) => None,
        };
        let entra = if settings.audiences.is_empty() {
            None
        } else {
            Some(EntraVerifier::new(settings, options)?)
        };
        if entra.is_none() && dev.is_none() {
            tracing::warn!(
                "no sign-in method is configured: every tenant API request will be refused"
            );
        }
        Ok(Self(Arc::new(Inner {
            entra,
            dev,
            allowed_tenants: settings
                .allowed_tenants
                .iter()
                .copied()
                .map(TenantId::new)
                .collect(),
        })))
    }

    /// Verifies a bearer token (the part after `Bearer `) and returns who it names.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Reason> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Reason::MalformedToken);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Reason::MalformedToken)?;
        let claims = match (header.alg, &self.0.entra, &self.0.dev) {
            (Algorithm::RS256, Some(entra), _) => {
                entra.verify(token, header.kid.as_deref()).await?
            }
            (Algorithm::EdDSA, _, Some(dev)) => dev.verify(token)?,
            _ => return Err(Reason::AlgorithmNotAllowed),
        };
        let principal = claims.into_principal()?;
        if !self.0.allowed_tenants.is_empty()
            && !self.0.allowed_tenants.contains(&principal.tenant_id)
        {
            return Err(Reason::TenantNotAllowed);
        }
        Ok(principal)
    }
}

/// Entra ID access-token verification against the authority's cached keys.
struct EntraVerifier {
    keys: Arc<KeyCache>,
    validation: Validation,
}

impl EntraVerifier {
    fn new(settings: &AuthSettings, options: EntraOptions) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = CLOCK_SKEW.as_secs();
        validation.validate_nbf = true;
        // Required, not merely checked when present: a missing or mistyped `nbf`/`exp` must fail.
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        validation.set_audience(&settings.audiences);
        // The issuer depends on the token's tenant, so it is checked after decoding.
        validation.iss = None;
        Ok(Self {
            keys: Arc::new(KeyCache::new(&settings.authority, options)?),
            validation,
        })
    }

    async fn verify(&self, token: &str, kid: Option<&str>) -> Result<Claims, Reason> {
        // Entra always names its key; without a kid there is nothing to look up.
        let kid = kid.ok_or(Reason::UnknownKey)?;
        let set = self
            .keys
            .key_set_for(kid)
            .await
            .map_err(|miss| match miss {
                Miss::UnknownKey => Reason::UnknownKey,
                Miss::Unavailable => Reason::KeysUnavailable,
            })?;
        let key = set.keys.get(kid).ok_or(Reason::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|err| Reason::from_jwt(&err))?
            .claims;
        if !issuer_matches(&set.issuer, &claims.iss, &claims.tid) {
            return Err(Reason::WrongIssuer);
        }
        Ok(claims)
    }
}

/// `iss` must be the issuer template with `{tenantid}` replaced by the token's `tid`, compared
/// without building the expected string. A template without the placeholder (a single-tenant
/// authority) must match exactly.
fn issuer_matches(template: &str, iss: &str, tid: &str) -> bool {
    match template.split_once("{tenantid}") {
        Some((prefix, suffix)) => {
            !tid.is_empty()
                && iss
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix))
                    == Some(tid)
        }
        None => iss == template,
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    const TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn the_issuer_must_be_the_tokens_own_tenant() {
        let iss = format!("https://login.microsoftonline.com/{TID}/v2.0");
        assert!(issuer_matches(TEMPLATE, &iss, TID));
        let other = "9188040d-6c67-4c5b-b112-36a304b66dad";
        assert!(!issuer_matches(TEMPLATE, &iss, other));
        assert!(!issuer_matches(
            TEMPLATE,
            &format!("https://sts.windows.net/{TID}/"),
            TID
        ));
        assert!(!issuer_matches(
            TEMPLATE,
            "https://login.microsoftonline.com//v2.0",
            ""
        ));
        assert!(issuer_matches(&iss, &iss, TID));
        assert!(!issuer_matches(&iss, &iss.replace(TID, other), other));
    }
}
