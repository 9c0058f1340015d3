//! Access tokens for ARM: client credentials per connection, cached until shortly before expiry, one
//! refresh in flight at a time.
//!
//! We do not use `azure_identity::ClientSecretCredential`: it refuses any authority that is not https
//! (so it cannot talk to the simulator on loopback) and folds Entra's error body into a message
//! string, losing the AADSTS code we need to tell a customer what to fix. The protocol is one form
//! POST (`/{tenant}/oauth2/v2.0/token`, `grant_type=client_credentials`, `scope={arm}/.default`), so a
//! small implementation on our own reqwest client is simpler and keeps one transport.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use url::Url;

use super::clock::{Clock, SystemClock, jitter};
use super::error::{AzureError, CredentialProblem};
use super::throttle::{RetryOptions, largest_retry_after};
use super::{DEFAULT_AUTHORITY, validate_endpoint};

/// Refresh this long before a token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// An access token. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    /// When the token stops being usable (by our clock).
    pub expires_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Something that gives ARM bearer tokens for one customer tenant.
#[async_trait::async_trait]
pub trait TokenCredential: Send + Sync + fmt::Debug {
    /// The customer's tenant id: keys pacing and appears in logs.
    fn tenant_id(&self) -> &str;
    /// A token valid for at least a few more minutes.
    async fn get_token(&self) -> Result<AccessToken, AzureError>;
    /// Forgets a cached token (after ARM said it expired).
    fn invalidate(&self) {}
}

/// The credentials of one connection: a service principal and its client secret.
#[derive(Clone)]
pub struct ClientSecret {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: SecretString,
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecret")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Options of a [`ClientSecretCredential`].
#[derive(Debug, Clone)]
pub struct CredentialOptions {
    /// The login authority, e.g. `https://login.microsoftonline.com` (https, or http to loopback).
    pub authority: Url,
    /// The resource whose `/.default` scope is asked for: the ARM endpoint.
    pub resource: Url,
    pub retry: RetryOptions,
    pub timeout: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        Self {
            authority: Url::parse(DEFAULT_AUTHORITY).expect("constant URL"),
            resource: Url::parse(super::DEFAULT_ARM_ENDPOINT).expect("constant URL"),
            retry: RetryOptions::default(),
            timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Client-credentials tokens from Microsoft Entra ID, cached per connection.
pub struct ClientSecretCredential {
    credentials: ClientSecret,
    token_url: Url,
    scope: String,
    http: reqwest::Client,
    options: CredentialOptions,
    cache: RwLock<Option<AccessToken>>,
    /// A refusal no retry can fix (wrong secret, unknown tenant...): returned from then on without
    /// asking Entra again, so callers queued behind a failed refresh do not each repeat it.
    refused: std::sync::Mutex<Option<CredentialProblem>>,
    /// Held while fetching, so concurrent callers wait for one refresh instead of each starting one.
    refresh: tokio::sync::Mutex<()>,
}

impl fmt::Debug for ClientSecretCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretCredential")
            .field("credentials", &self.credentials)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

impl ClientSecretCredential {
    /// Builds the credential; no network I/O until the first token is needed.
    pub fn new(
        credentials: ClientSecret,
        options: Option<CredentialOptions>,
    ) -> Result<Arc<Self>, AzureError> {
        let options = options.unwrap_or_default();
        validate_endpoint(&options.authority, "login authority")?;
        let tenant = &credentials.tenant_id;
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(AzureError::Credentials(CredentialProblem::TenantNotFound {
                tenant_id: tenant.clone(),
            }));
        }
        if credentials.client_id.trim().is_empty() || credentials.secret.expose_secret().is_empty()
        {
            return Err(AzureError::Credentials(CredentialProblem::Other {
                code: None,
                error: "missing client id or secret".into(),
            }));
        }
        let mut token_url = options.authority.clone();
        token_url
            .path_segments_mut()
            .map_err(|()| AzureError::Config("the login authority cannot be a base".into()))?
            .pop_if_empty()
            .extend([tenant.as_str(), "oauth2", "v2.0", "token"]);
        let scope = format!(
            "{}/.default",
            options.resource.as_str().trim_end_matches('/')
        );
        let http = super::http_client(options.timeout)?;
        Ok(Arc::new(Self {
            credentials,
            token_url,
            scope,
            http,
            options,
            cache: RwLock::new(None),
            refused: std::sync::Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }))
    }

    fn cached(&self) -> Option<AccessToken> {
        let now = self.options.clock.now();
        let guard = self.cache.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|t| t.expires_at > now + REFRESH_MARGIN)
            .cloned()
    }

    fn check_refused(&self) -> Result<(), AzureError> {
        match &*self.refused.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(problem) => Err(AzureError::Credentials(problem.clone())),
            None => Ok(()),
        }
    }

    #[tracing::instrument(skip_all, fields(tenant.id = %self.credentials.tenant_id))]
    async fn fetch(&self) -> Result<AccessToken, AzureError> {
        // Built by hand: reqwest's `form` needs a feature we do not otherwise want.
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.credentials.client_id)
            .append_pair("scope", &self.scope)
            .append_pair("client_secret", self.credentials.secret.expose_secret())
            .append_pair("grant_type", "client_credentials")
            .finish();
        let retry = &self.options.retry;
        let clock = &self.options.clock;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent_at = clock.now();
            let outcome = self
                .http
                .post(self.token_url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form.clone())
                .send()
                .await;
            let wait = match outcome {
                Ok(response) if response.status().is_success() => {
                    let body = response
                        .bytes()
                        .await
                        .map_err(|_| AzureError::Credentials(CredentialProblem::Unavailable))?;
                    return parse_success(&body, sent_at);
                }
                Ok(response)
                    if response.status().as_u16() == 429 || response.status().is_server_error() =>
                {
                    largest_retry_after(response.headers())
                        .unwrap_or_else(|| retry.backoff(attempt))
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.bytes().await.unwrap_or_default();
                    return Err(AzureError::Credentials(parse_refusal(
                        &body,
                        status,
                        &self.credentials,
                    )));
                }
                Err(err) => {
                    tracing::warn!(error = %without_url(&err), "token request failed");
                    retry.backoff(attempt)
                }
            };
            let wait = wait + jitter(retry.max_jitter);
            if attempt >= retry.max_attempts || waited + wait > retry.max_total_wait {
                return Err(AzureError::Credentials(CredentialProblem::Unavailable));
            }
            waited += wait;
            clock.sleep(wait).await;
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for ClientSecretCredential {
    fn tenant_id(&self) -> &str {
        &self.credentials.tenant_id
    }

    async fn get_token(&self) -> Result<AccessToken, AzureError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        self.check_refused()?;
        let _refreshing = self.refresh.lock().await;
        // Someone else may have refreshed (or been refused) while we queued for the lock.
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        self.check_refused()?;
        match self.fetch().await {
            Ok(token) => {
                *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                Ok(token)
            }
            Err(AzureError::Credentials(problem)) if problem != CredentialProblem::Unavailable => {
                *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(problem.clone());
                Err(AzureError::Credentials(problem))
            }
            Err(err) => Err(err),
        }
    }

    fn invalidate(&self) {
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The token endpoint's success body. `expires_in` is a number on v2.0 and a string on v1.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    expires_in: NumberOrString,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(f64),
    String(String),
}

impl NumberOrString {
    fn as_f64(&self) -> Option<f64> {
        match self {
            NumberOrString::Number(n) => Some(*n),
            NumberOrString::String(s) => s.trim().parse().ok(),
        }
    }
}

/// Parses a 200 from the token endpoint. `sent_at` is when the request left, so clock drift during the
/// round trip shortens the token's life rather than lengthening it.
pub(crate) fn parse_success(body: &[u8], sent_at: Instant) -> Result<AccessToken, AzureError> {
    let parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        // serde's message names the field at fault, never a value.
        AzureError::invalid_response(format!("token response: {e}"))
    })?;
    if parsed
        .token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(AzureError::invalid_response("token type is not Bearer"));
    }
    let seconds = parsed
        .expires_in
        .as_f64()
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| AzureError::invalid_response("token response: bad expires_in"))?;
    if parsed.access_token.is_empty() {
        return Err(AzureError::invalid_response("token response: empty token"));
    }
    Ok(AccessToken {
        token: SecretString::from(parsed.access_token),
        expires_at: sent_at + Duration::from_secs_f64(seconds.min(86_400.0)),
    })
}

/// The token endpoint's error body (also seen in the docs extract).
#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// Maps a refusal from the token endpoint to what the customer must fix.
pub(crate) fn parse_refusal(body: &[u8], status: u16, who: &ClientSecret) -> CredentialProblem {
    let parsed: TokenError = serde_json::from_slice(body).unwrap_or_default();
    let mut codes = parsed.error_codes.clone();
    if let Some(code) = parsed
        .error_description
        .as_deref()
        .and_then(aadsts_in_description)
    {
        codes.push(code);
    }
    for code in &codes {
        match code {
            90002 => {
                return CredentialProblem::TenantNotFound {
                    tenant_id: who.tenant_id.clone(),
                };
            }
            7000215 => return CredentialProblem::InvalidSecret,
            7000222 => return CredentialProblem::SecretExpired,
            700016 => {
                return CredentialProblem::UnknownClient {
                    client_id: who.client_id.clone(),
                    tenant_id: who.tenant_id.clone(),
                };
            }
            _ => {}
        }
    }
    CredentialProblem::Other {
        code: codes.first().copied(),
        error: parsed.error.unwrap_or_else(|| format!("HTTP {status}")),
    }
}

/// `AADSTS7000215: ...` → 7000215.
fn aadsts_in_description(description: &str) -> Option<u64> {
    let at = description.find("AADSTS")?;
    let digits: String = description[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A reqwest error's description (with its causes) without its URL: the token URL names the tenant,
/// and other URLs could carry query strings we do not want in logs.
pub(crate) fn without_url(err: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&e.to_string());
        source = e.source();
    }
    match err.url() {
        Some(url) => text.replace(url.as_str(), "<url>"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> ClientSecret {
        ClientSecret {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "0c5b1a38-0000-0000-0000-000000000000".into(),
            secret: SecretString::from("s3cr3t-value"),
        }
    }

    #[test]
    fn aadsts_codes_become_actionable_problems() {
        let body = |code: u64| {
            serde_json::to_vec(&serde_json::json!({
                "error": "invalid_client",
                "error_description": format!("AADSTS{code}: something"),
                "error_codes": [code],
            }))
            .unwrap()
        };
        assert!(matches!(
            parse_refusal(&body(90002), 400, &who()),
            CredentialProblem::TenantNotFound { tenant_id } if tenant_id == who().tenant_id
        ));
        assert_eq!(
            parse_refusal(&body(7000215), 401, &who()),
            CredentialProblem::InvalidSecret
        );
        assert_eq!(
            parse_refusal(&body(7000222), 401, &who()),
            CredentialProblem::SecretExpired
        );
        assert!(matches!(
            parse_refusal(&body(700016), 400, &who()),
            CredentialProblem::UnknownClient { .. }
        ));
        assert_eq!(
            parse_refusal(&body(70011), 400, &who()),
            CredentialProblem::Other {
                code: Some(70011),
                error: "invalid_client".into()
            }
        );
    }

    #[test]
    fn the_code_is_found_in_the_description_when_the_list_is_missing() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys are expired."}"#;
        assert_eq!(
            parse_refusal(body, 401, &who()),
            CredentialProblem::SecretExpired
        );
        assert_eq!(
            parse_refusal(b"<html>oops</html>", 400, &who()),
            CredentialProblem::Other {
                code: None,
                error: "HTTP 400".into()
            }
        );
    }

    #[test]
    fn expires_in_is_accepted_as_a_number_or_a_string() {
        let now = Instant::now();
        let v2 = parse_success(
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#,
            now,
        )
        .unwrap();
        assert_eq!(v2.expires_at, now + Duration::from_secs(3599));
        let v1 = parse_success(
            br#"{"token_type":"Bearer","expires_in":"3600","expires_on":"1","resource":"r","access_token":"abc"}"#,
            now,
        )
        .unwrap();
        assert_eq!(v1.expires_at, now + Duration::from_secs(3600));
        assert!(
            parse_success(
                br#"{"token_type":"Bearer","expires_in":0,"access_token":"a"}"#,
                now
            )
            .is_err()
        );
    }

    #[test]
    fn debug_output_never_shows_the_secret_or_the_token() {
        let shown = format!("{:?}", who());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let token = parse_success(
            br#"{"token_type":"Bearer","expires_in":10,"access_token":"tok-value"}"#,
            Instant::now(),
        )
        .unwrap();
        assert!(!format!("{token:?}").contains("tok-value"));
    }
}
