//! Which storage account to talk to and how to authenticate, parsed from the Functions host's own settings.
//!
//! The Functions host itself uses `AzureWebJobsStorage` (timers' leases, queue triggers), so the binary reads
//! the same setting and can never disagree with the host about the account:
//!
//! * `AzureWebJobsStorage=UseDevelopmentStorage=true`: Azurite on its default loopback ports;
//! * `AzureWebJobsStorage=DefaultEndpointsProtocol=..;AccountName=..;AccountKey=..[;BlobEndpoint=..;QueueEndpoint=..;TableEndpoint=..]`:
//!   shared-key auth, optionally with explicit endpoints (how tests point at Azurite on random ports);
//! * identity-based (production, shared keys disabled on the account): `AzureWebJobsStorage__accountName`,
//!   optional `AzureWebJobsStorage__blobServiceUri` / `__queueServiceUri` / `__tableServiceUri` overriding the
//!   endpoints, `AzureWebJobsStorage__credential=managedidentity` and `AzureWebJobsStorage__clientId` for a
//!   user-assigned identity.
//!
//! Account keys live in [`SecretString`]; no `Debug` output or error message ever contains one.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

/// The setting the Functions host reads for its own storage account.
pub const SETTING: &str = "AzureWebJobsStorage";

/// Azurite's well-known development account.
pub const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";

/// Azurite's well-known development key. Public knowledge, but still handled as a secret so that code paths
/// are the same for real keys.
const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A storage setting that could not be used. Names the setting, never echoes its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage setting `{setting}`: {reason}")]
pub struct ConnectionError {
    /// The app setting (or connection-string key) at fault.
    pub setting: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConnectionError {
    fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

impl From<ConnectionError> for super::StorageError {
    fn from(error: ConnectionError) -> Self {
        super::StorageError::invalid_input("storage.connection", error.to_string())
    }
}

/// The service endpoints of one account, without a trailing slash (the 1.x SDK would otherwise build
/// `//container` paths, which Azurite rejects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// e.g. `https://acct.blob.core.windows.net` or `http://127.0.0.1:10000/devstoreaccount1`.
    pub blob: Url,
    /// e.g. `https://acct.queue.core.windows.net`.
    pub queue: Url,
    /// e.g. `https://acct.table.core.windows.net`.
    pub table: Url,
}

impl Endpoints {
    /// The public-cloud style endpoints `{protocol}://{account}.{service}.{suffix}`.
    pub fn for_account(
        account: &str,
        protocol: &str,
        suffix: &str,
    ) -> Result<Self, ConnectionError> {
        let make = |service: &str, setting: &str| {
            parse_endpoint(
                setting,
                &format!("{protocol}://{account}.{service}.{suffix}"),
            )
        };
        Ok(Self {
            blob: make("blob", "AccountName")?,
            queue: make("queue", "AccountName")?,
            table: make("table", "AccountName")?,
        })
    }

    /// Azurite's default endpoints: path-style, loopback, ports 10000/10001/10002.
    pub fn development() -> Self {
        Self::loopback(10000, 10001, 10002, "http")
    }

    /// Path-style loopback endpoints for the development account on the given ports.
    pub fn loopback(blob_port: u16, queue_port: u16, table_port: u16, scheme: &str) -> Self {
        let make = |port: u16| {
            // Built from numbers and a constant account name, so it always parses; the fallback only exists
            // to avoid a panic path.
            Url::parse(&format!(
                "{scheme}://127.0.0.1:{port}/{DEVELOPMENT_ACCOUNT}"
            ))
            .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("constant URL parses"))
        };
        Self {
            blob: make(blob_port),
            queue: make(queue_port),
            table: make(table_port),
        }
    }

    /// Explicit endpoints, normalised (no trailing slash, no query or fragment).
    pub fn from_strs(blob: &str, queue: &str, table: &str) -> Result<Self, ConnectionError> {
        Ok(Self {
            blob: parse_endpoint("BlobEndpoint", blob)?,
            queue: parse_endpoint("QueueEndpoint", queue)?,
            table: parse_endpoint("TableEndpoint", table)?,
        })
    }
}

/// Parses and normalises one service endpoint.
fn parse_endpoint(setting: &str, value: &str) -> Result<Url, ConnectionError> {
    let mut url = Url::parse(value.trim())
        .map_err(|e| ConnectionError::new(setting, format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(ConnectionError::new(
            setting,
            "must be an absolute http(s) URL",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        // A query here would most likely be a SAS token: refuse it rather than silently dropping it.
        return Err(ConnectionError::new(
            setting,
            "must not contain a query string or fragment (SAS tokens are not supported)",
        ));
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

/// How requests are authenticated.
#[derive(Clone)]
pub(crate) enum Auth {
    /// Shared key (account key): connection strings, Azurite.
    SharedKey(SharedKey),
    /// Entra ID bearer tokens: managed identity in Azure, a test credential against Azurite in OAuth mode.
    Token(Arc<dyn TokenCredential>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedKey(key) => key.fmt(f),
            Self::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// An account name and its key (base64, validated at parse time).
#[derive(Clone)]
pub(crate) struct SharedKey {
    pub(crate) account: String,
    pub(crate) key: SecretString,
}

impl SharedKey {
    /// The decoded key bytes, for HMAC signing.
    pub(crate) fn key_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(self.key.expose_secret())
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKey")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A storage account and the means to authenticate to it.
#[derive(Clone, Debug)]
pub struct StorageConnection {
    pub(crate) account: String,
    pub(crate) endpoints: Endpoints,
    pub(crate) auth: Auth,
    pub(crate) transport: TransportSettings,
}

/// HTTP transport settings shared by the three services.
#[derive(Clone, Debug, Default)]
pub(crate) struct TransportSettings {
    /// Extra PEM root certificates trusted *in addition to* the system/web roots.
    pub(crate) extra_root_certificates_pem: Vec<Vec<u8>>,
    /// Overrides the SDKs' retry count (tests lower it so failures surface quickly, gotcha 7).
    pub(crate) max_retries: Option<u32>,
}

impl StorageConnection {
    /// The Entra ID credential storage is reached with (the app's managed identity in Azure), if
    /// any: other Microsoft APIs the app calls as itself (Graph `sendMail`) ask it for their scope.
    pub fn token_credential(&self) -> Option<Arc<dyn TokenCredential>> {
        match &self.auth {
            Auth::Token(credential) => Some(credential.clone()),
            Auth::SharedKey(_) => None,
        }
    }

    /// Reads the storage settings from the process environment (see the module docs for the names).
    pub fn from_env() -> Result<Self, ConnectionError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the storage settings through `lookup` (an environment, a settings map, a test fixture).
    ///
    /// `AzureWebJobsStorage` wins if it is set; otherwise the identity-based `AzureWebJobsStorage__*`
    /// settings are used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectionError> {
        let get = |suffix: &str| {
            let name = if suffix.is_empty() {
                SETTING.to_owned()
            } else {
                format!("{SETTING}__{suffix}")
            };
            lookup(&name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        };

        if let Some((_, value)) = get("") {
            return Self::parse_connection_string(&value);
        }

        let account = get("accountName");
        let blob = get("blobServiceUri");
        let queue = get("queueServiceUri");
        let table = get("tableServiceUri");
        if account.is_none() && blob.is_none() && queue.is_none() && table.is_none() {
            return Err(ConnectionError::new(
                SETTING,
                format!(
                    "not set: set it to a connection string (`UseDevelopmentStorage=true` locally), \
                     or set `{SETTING}__accountName` for identity-based access"
                ),
            ));
        }

        let account_name = match &account {
            Some((name, value)) => {
                validate_account_name(name, value.trim())?;
                value.trim().to_owned()
            }
            None => {
                // Without an account name every endpoint must be given explicitly.
                if blob.is_none() || queue.is_none() || table.is_none() {
                    return Err(ConnectionError::new(
                        format!("{SETTING}__accountName"),
                        "not set: it is required unless blobServiceUri, queueServiceUri and \
                         tableServiceUri are all set",
                    ));
                }
                account_from_endpoint(blob.as_ref().map(|(_, v)| v.as_str()).unwrap_or_default())
            }
        };

        let defaults = Endpoints::for_account(&account_name, "https", "core.windows.net")
            .map_err(|e| ConnectionError::new(format!("{SETTING}__accountName"), e.reason))?;
        let pick = |given: Option<(String, String)>, default: Url| match given {
            Some((name, value)) => parse_endpoint(&name, &value),
            None => Ok(default),
        };
        let endpoints = Endpoints {
            blob: pick(blob, defaults.blob)?,
            queue: pick(queue, defaults.queue)?,
            table: pick(table, defaults.table)?,
        };

        let credential_setting = format!("{SETTING}__credential");
        match get("credential") {
            None => {}
            Some((_, value)) if value.trim().eq_ignore_ascii_case("managedidentity") => {}
            Some(_) => {
                return Err(ConnectionError::new(
                    credential_setting,
                    "only `managedidentity` is supported",
                ));
            }
        }
        // The credential builds an HTTP client for the identity endpoint, which needs the TLS provider.
        super::install_crypto_provider();
        let user_assigned = get("clientId")
            .map(|(_, v)| azure_identity::UserAssignedId::ClientId(v.trim().to_owned()));
        let credential = azure_identity::ManagedIdentityCredential::new(Some(
            azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: user_assigned,
                ..Default::default()
            },
        ))
        .map_err(|e| {
            ConnectionError::new(
                credential_setting,
                format!("managed identity is not available: {e}"),
            )
        })?;

        Ok(Self::with_token_credential(
            account_name,
            endpoints,
            credential,
        ))
    }

    /// Parses a storage connection string (the value of `AzureWebJobsStorage`).
    pub fn parse_connection_string(value: &str) -> Result<Self, ConnectionError> {
        let mut account = None;
        let mut key = None;
        let mut protocol = None;
        let mut suffix = None;
        let mut blob = None;
        let mut queue = None;
        let mut table = None;
        let mut development = false;

        for (index, part) in value.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            // Split at the first '=' only: base64 keys end with '='. The part itself is never echoed because
            // it may be a fragment of the key.
            let Some((name, val)) = part.split_once('=') else {
                return Err(ConnectionError::new(
                    SETTING,
                    format!(
                        "part {} of the connection string is not `Name=value`",
                        index + 1
                    ),
                ));
            };
            let val = val.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "usedevelopmentstorage" => {
                    development = val.eq_ignore_ascii_case("true");
                    if !development {
                        return Err(ConnectionError::new(
                            "UseDevelopmentStorage",
                            "only `true` is meaningful",
                        ));
                    }
                }
                "developmentstorageproxyuri" => {
                    return Err(ConnectionError::new(
                        "DevelopmentStorageProxyUri",
                        "is not supported; use explicit BlobEndpoint/QueueEndpoint/TableEndpoint",
                    ));
                }
                "accountname" => account = Some(val.to_owned()),
                "accountkey" => key = Some(SecretString::from(val.to_owned())),
                "defaultendpointsprotocol" => protocol = Some(val.to_ascii_lowercase()),
                "endpointsuffix" => suffix = Some(val.to_owned()),
                "blobendpoint" => blob = Some(val.to_owned()),
                "queueendpoint" => queue = Some(val.to_owned()),
                "tableendpoint" => table = Some(val.to_owned()),
                "sharedaccesssignature" => {
                    return Err(ConnectionError::new(
                        "SharedAccessSignature",
                        "SAS connection strings are not supported; use an account key or identity-based access",
                    ));
                }
                // FileEndpoint and other keys are valid in connection strings but irrelevant here.
                _ => {}
            }
        }

        if development {
            if account.is_some() || key.is_some() {
                return Err(ConnectionError::new(
                    "UseDevelopmentStorage",
                    "cannot be combined with AccountName/AccountKey",
                ));
            }
            return Ok(Self::development_storage());
        }

        let account = account.ok_or_else(|| ConnectionError::new("AccountName", "missing"))?;
        validate_account_name("AccountName", &account)?;
        let key = key.ok_or_else(|| ConnectionError::new("AccountKey", "missing"))?;
        if key.expose_secret().is_empty()
            || base64::engine::general_purpose::STANDARD
                .decode(key.expose_secret())
                .is_err()
        {
            return Err(ConnectionError::new("AccountKey", "is not valid base64"));
        }

        let protocol = protocol.unwrap_or_else(|| "https".to_owned());
        if protocol != "https" && protocol != "http" {
            return Err(ConnectionError::new(
                "DefaultEndpointsProtocol",
                "must be `https` or `http`",
            ));
        }
        let suffix = suffix.unwrap_or_else(|| "core.windows.net".to_owned());
        let defaults = Endpoints::for_account(&account, &protocol, &suffix)?;
        let endpoints = Endpoints {
            blob: match blob {
                Some(v) => parse_endpoint("BlobEndpoint", &v)?,
                None => defaults.blob,
            },
            queue: match queue {
                Some(v) => parse_endpoint("QueueEndpoint", &v)?,
                None => defaults.queue,
            },
            table: match table {
                Some(v) => parse_endpoint("TableEndpoint", &v)?,
                None => defaults.table,
            },
        };

        Ok(Self {
            account: account.clone(),
            endpoints,
            auth: Auth::SharedKey(SharedKey { account, key }),
            transport: TransportSettings::default(),
        })
    }

    /// Azurite with its well-known account on the default ports (`UseDevelopmentStorage=true`).
    pub fn development_storage() -> Self {
        Self::with_shared_key(
            DEVELOPMENT_ACCOUNT,
            SecretString::from(DEVELOPMENT_KEY.to_owned()),
            Endpoints::development(),
        )
        .expect("the well-known development key is valid base64")
    }

    /// An account reached with an account key. The key must be base64.
    pub fn with_shared_key(
        account: impl Into<String>,
        key: SecretString,
        endpoints: Endpoints,
    ) -> Result<Self, ConnectionError> {
        let account = account.into();
        validate_account_name("AccountName", &account)?;
        if base64::engine::general_purpose::STANDARD
            .decode(key.expose_secret())
            .is_err()
        {
            return Err(ConnectionError::new("AccountKey", "is not valid base64"));
        }
        Ok(Self {
            account: account.clone(),
            endpoints,
            auth: Auth::SharedKey(SharedKey { account, key }),
            transport: TransportSettings::default(),
        })
    }

    /// An account reached with Entra ID tokens from `credential` (production uses managed identity; tests
    /// inject their own). The 1.x SDK refuses tokens over plain http, so the endpoints must be https.
    pub fn with_token_credential(
        account: impl Into<String>,
        endpoints: Endpoints,
        credential: Arc<dyn TokenCredential>,
    ) -> Self {
        Self {
            account: account.into(),
            endpoints,
            auth: Auth::Token(credential),
            transport: TransportSettings::default(),
        }
    }

    /// Additionally trusts the given PEM root certificate(s) for TLS to the storage endpoints.
    ///
    /// This only *adds* trust anchors (certificate and hostname verification stay on); it exists so tests
    /// can trust the CA of an Azurite started with a generated certificate. Production configuration
    /// never calls it.
    pub fn with_extra_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.transport.extra_root_certificates_pem.push(pem.into());
        self
    }

    /// Overrides the SDKs' retry count (default: the SDKs' own, 8 with exponential back-off).
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.transport.max_retries = Some(max_retries);
        self
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The service endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Whether requests carry Entra ID bearer tokens (rather than shared-key signatures).
    pub fn uses_token_credential(&self) -> bool {
        matches!(self.auth, Auth::Token(_))
    }
}

fn validate_account_name(setting: &str, name: &str) -> Result<(), ConnectionError> {
    if !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(ConnectionError::new(
            setting,
            "must be a storage account name (lowercase letters and digits)",
        ))
    }
}

/// `https://acct.blob.core.windows.net` → `acct`; path-style `http://127.0.0.1:10000/devstoreaccount1` →
/// `devstoreaccount1`.
fn account_from_endpoint(endpoint: &str) -> String {
    let Ok(url) = Url::parse(endpoint) else {
        return String::new();
    };
    match url.host() {
        Some(url::Host::Domain(domain)) if domain != "localhost" => {
            domain.split('.').next().unwrap_or_default().to_owned()
        }
        _ => url
            .path_segments()
            .and_then(|mut s| s.next())
            .unwrap_or_default()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGVzdHM="; // base64("secret-key-bytes-for-tests")

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn development_storage_uses_azurite_path_style_endpoints_without_trailing_slash() {
        let conn =
            StorageConnection::parse_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(conn.account(), "devstoreaccount1");
        assert_eq!(
            conn.endpoints().blob.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(
            conn.endpoints().queue.as_str(),
            "http://127.0.0.1:10001/devstoreaccount1"
        );
        assert_eq!(
            conn.endpoints().table.as_str(),
            "http://127.0.0.1:10002/devstoreaccount1"
        );
        assert!(!conn.uses_token_credential());
    }

    #[test]
    fn account_key_connection_string_defaults_to_public_https_endpoints() {
        let conn = StorageConnection::parse_connection_string(&format!(
            "DefaultEndpointsProtocol=https;AccountName=sixpence;AccountKey={KEY};EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(conn.account(), "sixpence");
        assert_eq!(
            conn.endpoints().blob.as_str(),
            "https://sixpence.blob.core.windows.net/"
        );
        assert_eq!(
            conn.endpoints().table.as_str(),
            "https://sixpence.table.core.windows.net/"
        );
    }

    #[test]
    fn explicit_endpoints_win_and_lose_their_trailing_slash() {
        let conn = StorageConnection::parse_connection_string(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};\
             BlobEndpoint=http://127.0.0.1:41000/devstoreaccount1/;\
             QueueEndpoint=http://127.0.0.1:41001/devstoreaccount1;\
             TableEndpoint=http://127.0.0.1:41002/devstoreaccount1;"
        ))
        .unwrap();
        assert_eq!(
            conn.endpoints().blob.as_str(),
            "http://127.0.0.1:41000/devstoreaccount1"
        );
        assert_eq!(
            conn.endpoints().queue.as_str(),
            "http://127.0.0.1:41001/devstoreaccount1"
        );
        assert_eq!(
            conn.endpoints().table.as_str(),
            "http://127.0.0.1:41002/devstoreaccount1"
        );
    }

    #[test]
    fn keys_are_matched_case_insensitively() {
        let conn = StorageConnection::parse_connection_string(&format!(
            "accountname=abc;accountkey={KEY}"
        ))
        .unwrap();
        assert_eq!(conn.account(), "abc");
    }

    #[test]
    fn missing_key_names_the_setting() {
        let error = StorageConnection::parse_connection_string("AccountName=abc").unwrap_err();
        assert_eq!(error.setting, "AccountKey");
    }

    #[test]
    fn invalid_key_is_rejected_without_echoing_it() {
        let secret = "not*base64*but*secret";
        let error = StorageConnection::parse_connection_string(&format!(
            "AccountName=abc;AccountKey={secret}"
        ))
        .unwrap_err();
        assert_eq!(error.setting, "AccountKey");
        assert!(!error.to_string().contains(secret));
    }

    #[test]
    fn malformed_part_is_rejected_without_echoing_it() {
        let error =
            StorageConnection::parse_connection_string("AccountName=abc;garbage").unwrap_err();
        assert_eq!(error.setting, "AzureWebJobsStorage");
        assert!(!error.to_string().contains("garbage"));
    }

    #[test]
    fn debug_output_never_contains_the_key() {
        let conn = StorageConnection::parse_connection_string(&format!(
            "AccountName=abc;AccountKey={KEY}"
        ))
        .unwrap();
        let debug = format!("{conn:?}");
        assert!(!debug.contains(KEY), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn sas_connection_strings_are_refused() {
        let error = StorageConnection::parse_connection_string(
            "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=2020&sig=abc",
        )
        .unwrap_err();
        assert_eq!(error.setting, "SharedAccessSignature");
        assert!(!error.to_string().contains("sig=abc"));
    }

    #[test]
    fn endpoint_with_query_string_is_refused() {
        let error = StorageConnection::parse_connection_string(&format!(
            "AccountName=abc;AccountKey={KEY};BlobEndpoint=https://abc.blob.core.windows.net/?sig=x"
        ))
        .unwrap_err();
        assert_eq!(error.setting, "BlobEndpoint");
    }

    #[test]
    fn connection_string_setting_wins_over_identity_settings() {
        let conn = StorageConnection::from_lookup(lookup(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("AzureWebJobsStorage__accountName", "other"),
        ]))
        .unwrap();
        assert_eq!(conn.account(), "devstoreaccount1");
    }

    #[test]
    fn nothing_set_names_the_setting() {
        let error = StorageConnection::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(error.setting, "AzureWebJobsStorage");
    }

    #[test]
    fn identity_settings_use_managed_identity_and_default_endpoints() {
        let conn = StorageConnection::from_lookup(lookup(&[
            ("AzureWebJobsStorage__accountName", "sixpenceprod"),
            ("AzureWebJobsStorage__credential", "managedidentity"),
            (
                "AzureWebJobsStorage__clientId",
                "00000000-0000-0000-0000-000000000001",
            ),
        ]))
        .unwrap();
        assert!(conn.uses_token_credential());
        assert_eq!(
            conn.endpoints().queue.as_str(),
            "https://sixpenceprod.queue.core.windows.net/"
        );
    }

    #[test]
    fn identity_service_uris_override_endpoints() {
        let conn = StorageConnection::from_lookup(lookup(&[
            ("AzureWebJobsStorage__accountName", "sixpenceprod"),
            (
                "AzureWebJobsStorage__tableServiceUri",
                "https://sixpenceprod.privatelink.table.core.windows.net/",
            ),
        ]))
        .unwrap();
        assert_eq!(
            conn.endpoints().table.as_str(),
            "https://sixpenceprod.privatelink.table.core.windows.net/"
        );
        assert_eq!(
            conn.endpoints().blob.as_str(),
            "https://sixpenceprod.blob.core.windows.net/"
        );
    }

    #[test]
    fn identity_without_account_needs_every_service_uri() {
        let error = StorageConnection::from_lookup(lookup(&[(
            "AzureWebJobsStorage__blobServiceUri",
            "https://a.blob.core.windows.net",
        )]))
        .unwrap_err();
        assert_eq!(error.setting, "AzureWebJobsStorage__accountName");

        let conn = StorageConnection::from_lookup(lookup(&[
            (
                "AzureWebJobsStorage__blobServiceUri",
                "https://acct.blob.core.windows.net",
            ),
            (
                "AzureWebJobsStorage__queueServiceUri",
                "https://acct.queue.core.windows.net",
            ),
            (
                "AzureWebJobsStorage__tableServiceUri",
                "https://acct.table.core.windows.net",
            ),
        ]))
        .unwrap();
        assert_eq!(conn.account(), "acct");
    }

    #[test]
    fn unsupported_credential_kind_names_the_setting() {
        let error = StorageConnection::from_lookup(lookup(&[
            ("AzureWebJobsStorage__accountName", "acct"),
            ("AzureWebJobsStorage__credential", "clientsecret"),
        ]))
        .unwrap_err();
        assert_eq!(error.setting, "AzureWebJobsStorage__credential");
    }

    #[test]
    fn account_is_derived_from_path_style_endpoints() {
        assert_eq!(
            account_from_endpoint("https://127.0.0.1:10000/devstoreaccount1"),
            "devstoreaccount1"
        );
        assert_eq!(
            account_from_endpoint("https://x.blob.core.windows.net/"),
            "x"
        );
    }

    #[test]
    fn pushing_a_segment_onto_a_normalised_endpoint_gives_a_single_slash() {
        // The 0.21 table crate and the 1.x SDK append path segments; this pins the url crate behaviour that
        // the trailing-slash normalisation relies on.
        for base in [
            "http://127.0.0.1:10002/devstoreaccount1/",
            "https://acct.table.core.windows.net/",
        ] {
            let mut url = parse_endpoint("TableEndpoint", base).unwrap();
            url.path_segments_mut().unwrap().push("Tables");
            assert!(!url.path().contains("//"), "{url}");
        }
    }
}
