//! The one client for every call into a customer's Azure tenant.
//!
//! # Promises
//!
//! - **Read-only.** [`AzureClient`](crate::azure::AzureClient) exposes typed read operations only, and its single request funnel
//!   checks every request — including every `nextLink` the service returns — against the allow-list in
//!   [`allow_list`](crate::azure::allow_list) before anything is sent. Anything else is [`AzureError::WriteRefused`](crate::azure::AzureError::WriteRefused), with no
//!   network I/O.
//! - **Revocation is noticed at once.** A 401 or 403 from a data call marks the client revoked: that
//!   call and every later one fail with [`AzureError::AccessRevoked`](crate::azure::AzureError::AccessRevoked) without touching the network. A
//!   credential refusal from Entra ID (wrong tenant, wrong or expired secret, unknown app) is sticky the
//!   same way, as [`AzureError::Credentials`](crate::azure::AzureError::Credentials).
//! - **Throttling is obeyed.** 429 and 503 wait for the largest retry header plus jitter; other 5xx and
//!   connection errors back off exponentially; both within [`RetryOptions`](crate::azure::RetryOptions). Cost Management calls are
//!   paced per customer tenant ([`Pacers`](crate::azure::Pacers)) from the QPU headers and the documented quota.
//! - **No secret leaks.** Client secrets and tokens are [`secrecy::SecretString`]; no error, `Debug`
//!   output or log line contains them.
//!
//! # Layout
//!
//! - [`client`](crate::azure::client): [`AzureClient`](crate::azure::AzureClient), its options and the request funnel; generic `nextLink` paging.
//! - [`token`](crate::azure::token): client-credentials tokens with caching and single-flight refresh.
//! - [`allow_list`](crate::azure::allow_list), [`throttle`](crate::azure::throttle), [`pacer`](crate::azure::pacer), [`clock`](crate::azure::clock): the rules every request goes through.
//! - [`cost`](crate::azure::cost), [`resource_graph`](crate::azure::resource_graph), [`advisor`](crate::azure::advisor), [`subscriptions`](crate::azure::subscriptions), [`permissions`](crate::azure::permissions): typed operations
//!   and their DTOs (domain-free; the domain maps them into its own types).

pub mod advisor;
pub mod allow_list;
pub mod client;
pub mod clock;
pub mod cost;
pub mod error;
pub mod inspect;
pub mod pacer;
pub mod permissions;
pub mod resource_graph;
pub mod subscriptions;
pub mod throttle;
pub mod token;

#[cfg(test)]
mod tests;

use std::time::Duration;

use url::Url;

pub use advisor::{Recommendation, Savings};
pub use client::{AzureClient, ClientOptions, ListPages};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cost::{
    Aggregation, Column, CostDetailsBlob, CostDetailsReport, CostDetailsResult, CostPages,
    CostType, Dimension, Filter, ForecastDefinition, Granularity, Grouping, QueryDefinition,
    QueryResult, Row, Scope,
};
pub use error::{AzureError, CredentialProblem};
pub use inspect::{AzureEndpoints, AzureInspector};
pub use pacer::{Pacers, PacingOptions};
pub use permissions::{Permission, PermissionAssessment, classify_permissions};
pub use resource_graph::{
    GraphResource, ResourceGraphPage, ResourceGraphPages, ResourceGraphQuery,
};
pub use subscriptions::Subscription;
pub use throttle::RetryOptions;
pub use token::{
    AccessToken, ClientSecret, ClientSecretCredential, CredentialOptions, TokenCredential,
};

/// Public-cloud Azure Resource Manager.
pub const DEFAULT_ARM_ENDPOINT: &str = "https://management.azure.com";
/// Public-cloud Microsoft Entra ID.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// api-versions, one per provider.
pub mod api_version {
    pub const COST_MANAGEMENT: &str = "2025-03-01";
    pub const RESOURCE_GRAPH: &str = "2024-04-01";
    pub const ADVISOR: &str = "2025-01-01";
    pub const SUBSCRIPTIONS: &str = "2022-12-01";
    pub const AUTHORIZATION: &str = "2022-04-01";
}

/// An endpoint must be https, or http to a loopback address (the simulator, tests); no query,
/// fragment or credentials.
pub(crate) fn validate_endpoint(url: &Url, what: &str) -> Result<(), AzureError> {
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(AzureError::Config(format!(
            "the {what} must not have a query, fragment or user"
        )));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(AzureError::Config(format!(
            "the {what} must be an https:// URL (http:// only to a loopback address)"
        ))),
    }
}

/// The HTTP client for ARM and Entra ID: our own reqwest (rustls/ring), no redirects (a redirect
/// would bypass the allow-list and could carry the bearer token elsewhere), bounded timeouts.
///
/// Installs rustls' `ring` provider first if no process default exists yet (idempotent, like
/// `storage::install_crypto_provider`), because reqwest is built without a provider of its own.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, AzureError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(20)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sixpence/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AzureError::Config(format!("cannot build the HTTP client: {e}")))
}
