//! Entra ID signing keys: fetched from the authority's OpenID metadata, cached, refreshed rarely.
//!
//! A request whose key id is cached never waits for the network: it clones an `Arc` of the current
//! key set under a read lock and verifies. Only three things fetch:
//! - the first token after start-up (nothing cached yet);
//! - a token signed with an unknown `kid` (Entra rotated its keys), at most once per
//!   [`EntraOptions::min_refresh_interval`], so a flood of made-up key ids costs Entra one request;
//! - a key set older than [`EntraOptions::max_key_age`], refreshed in the background while the old
//!   set keeps serving, so a key Entra withdrew stops being trusted within a day.
//!
//! The cache is per instance and only an optimisation: any instance can rebuild it from Entra.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

/// Tuning of the key cache. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct EntraOptions {
    /// Least time between two fetches after a successful one (rate limit for unknown key ids).
    pub min_refresh_interval: Duration,
    /// Least time between two fetches after a failed one, so an Entra outage is retried soon
    /// without being hammered.
    pub retry_after_failure: Duration,
    /// Age after which the key set is refreshed in the background.
    pub max_key_age: Duration,
    /// Timeout of each metadata or JWKS request.
    pub http_timeout: Duration,
}

impl Default for EntraOptions {
    fn default() -> Self {
        Self {
            min_refresh_interval: Duration::from_secs(5 * 60),
            retry_after_failure: Duration::from_secs(10),
            max_key_age: Duration::from_secs(24 * 60 * 60),
            http_timeout: Duration::from_secs(10),
        }
    }
}

/// The keys and issuer template from one successful fetch.
pub(crate) struct KeySet {
    /// `issuer` from the metadata, e.g. `https://login.microsoftonline.com/{tenantid}/v2.0`.
    pub issuer: String,
    pub keys: HashMap<String, DecodingKey>,
    fetched_at: Instant,
}

/// Why no key could be found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Keys are known, but not this one (and a refresh was not allowed or did not bring it).
    UnknownKey,
    /// No key set was ever fetched and fetching failed: nothing can be verified.
    Unavailable,
}

pub(crate) struct KeyCache {
    http: reqwest::Client,
    metadata_url: Url,
    options: EntraOptions,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Serialises fetches; holds when the last one was attempted and whether it worked.
    refresh: tokio::sync::Mutex<RefreshState>,
    background_refresh: AtomicBool,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    last_failed: bool,
}

impl KeyCache {
    /// `authority` has no trailing slash; like config, this refuses anything but https (or http to
    /// a loopback test server), since whoever serves the keys decides who can sign in.
    pub fn new(authority: &str, options: EntraOptions) -> anyhow::Result<Self> {
        if let Err(reason) = crate::config::validate_authority(authority) {
            bail!("the auth authority {reason}");
        }
        let metadata_url = Url::parse(&format!(
            "{authority}/v2.0/.well-known/openid-configuration"
        ))
        .context("the auth authority does not make a metadata URL")?;
        let http = reqwest::Client::builder()
            .timeout(options.http_timeout)
            .connect_timeout(options.http_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .context("cannot build the HTTP client for Entra ID metadata")?;
        Ok(Self {
            http,
            metadata_url,
            options,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            background_refresh: AtomicBool::new(false),
        })
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value is intact.
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, set: KeySet) {
        let set = Some(Arc::new(set));
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    /// The key set holding `kid`, fetching only as the module documentation allows.
    pub async fn key_set_for(self: &Arc<Self>, kid: &str) -> Result<Arc<KeySet>, Miss> {
        if let Some(set) = self.snapshot()
            && set.keys.contains_key(kid)
        {
            if set.fetched_at.elapsed() >= self.options.max_key_age {
                self.refresh_in_background();
            }
            return Ok(set);
        }
        self.refresh_for(kid).await
    }

    async fn refresh_for(&self, kid: &str) -> Result<Arc<KeySet>, Miss> {
        let mut state = self.refresh.lock().await;
        // Whoever held the lock before us may have fetched the key we need.
        let before = self.snapshot();
        if let Some(set) = &before
            && set.keys.contains_key(kid)
        {
            return Ok(set.clone());
        }
        let miss = if before.is_some() {
            Miss::UnknownKey
        } else {
            Miss::Unavailable
        };
        if !self.may_fetch(&state) {
            tracing::debug!("unknown signing key; refresh is rate limited");
            return Err(miss);
        }
        match self.fetch_into(&mut state).await {
            Some(set) if set.keys.contains_key(kid) => Ok(set),
            Some(_) => Err(Miss::UnknownKey),
            None => Err(miss),
        }
    }

    fn may_fetch(&self, state: &RefreshState) -> bool {
        let wait = if state.last_failed {
            self.options.retry_after_failure
        } else {
            self.options.min_refresh_interval
        };
        state.last_attempt.is_none_or(|at| at.elapsed() >= wait)
    }

    /// Fetches and stores a new key set, recording the attempt; `None` if the fetch failed (the old
    /// set, if any, keeps serving).
    async fn fetch_into(&self, state: &mut RefreshState) -> Option<Arc<KeySet>> {
        state.last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(keys = set.keys.len(), "Entra ID signing keys refreshed");
                state.last_failed = false;
                self.store(set);
                self.snapshot()
            }
            Err(err) => {
                state.last_failed = true;
                tracing::warn!(error = %format!("{err:#}"), "cannot refresh Entra ID signing keys");
                None
            }
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        // One background refresh at a time, not one spawned task per request while stale.
        if self.background_refresh.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            {
                let mut state = cache.refresh.lock().await;
                let stale = cache
                    .snapshot()
                    .is_none_or(|set| set.fetched_at.elapsed() >= cache.options.max_key_age);
                if stale && cache.may_fetch(&state) {
                    cache.fetch_into(&mut state).await;
                }
            }
            cache.background_refresh.store(false, Ordering::Release);
        });
    }

    async fn fetch(&self) -> anyhow::Result<KeySet> {
        let metadata: Metadata = self.get_json(self.metadata_url.clone()).await?;
        if metadata.issuer.is_empty() {
            bail!("the OpenID metadata has no issuer");
        }
        let jwks_uri = Url::parse(&metadata.jwks_uri)
            .context("the OpenID metadata's jwks_uri is not a URL")?;
        // Keys must come over TLS, unless the authority itself is a loopback test server (`new`
        // allows http only for loopback).
        let loopback = self.metadata_url.scheme() == "http";
        if jwks_uri.scheme() != "https" && !(loopback && jwks_uri.scheme() == "http") {
            bail!("the OpenID metadata's jwks_uri is not https");
        }
        let jwks: Jwks = self.get_json(jwks_uri).await?;
        let keys: HashMap<String, DecodingKey> = jwks.keys.iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            bail!("the JWKS has no usable RS256 signing key");
        }
        Ok(KeySet {
            issuer: metadata.issuer,
            keys,
            fetched_at: Instant::now(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> anyhow::Result<T> {
        // Metadata and key sets are a few KiB; cap what we buffer in case the endpoint misbehaves.
        const LIMIT: usize = 1024 * 1024;
        let what = url.path().to_owned();
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {what}"))?
            .error_for_status()
            .with_context(|| format!("GET {what}"))?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("reading {what}"))?
        {
            if body.len() + chunk.len() > LIMIT {
                bail!("{what} is larger than {LIMIT} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).with_context(|| format!("{what} is not the expected JSON"))
    }
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// The members of a JWK we read. Parsed leniently key by key, so one key of an unfamiliar type in
/// Entra's set cannot make the whole set unusable.
#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kty: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// An RSA signing key of at least 2048 bits with an id, or `None`.
fn usable_key(jwk: &Jwk) -> Option<(String, DecodingKey)> {
    use base64::Engine as _;
    if jwk.kty.as_deref() != Some("RSA")
        || jwk.use_.as_deref().is_some_and(|u| u != "sig")
        || jwk.alg.as_deref().is_some_and(|a| a != "RS256")
    {
        return None;
    }
    let kid = jwk.kid.as_ref().filter(|k| !k.is_empty())?;
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk.n.as_deref()?)
        .ok()?;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk.e.as_deref()?)
        .ok()?;
    let n = strip_leading_zeros(&n);
    if n.len() < 256 || e.is_empty() {
        return None;
    }
    Some((kid.clone(), DecodingKey::from_rsa_raw_components(n, &e)))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).expect("jwk")
    }

    #[test]
    fn keys_are_only_fetched_over_tls_or_from_loopback() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = EntraOptions::default;
        assert!(KeyCache::new("https://login.microsoftonline.us/organizations", options()).is_ok());
        assert!(KeyCache::new("http://127.0.0.1:9/organizations", options()).is_ok());
        assert!(
            KeyCache::new("http://login.microsoftonline.com/organizations", options()).is_err()
        );
    }

    #[test]
    fn only_rsa_signing_keys_of_2048_bits_are_used() {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let n2048 = b64(&[0xC5; 256]);
        let n1024 = b64(&[0xC5; 128]);
        let e = b64(&[1, 0, 1]);
        let ok = serde_json::json!({"kty": "RSA", "kid": "a", "use": "sig", "n": n2048, "e": e});
        assert!(usable_key(&jwk(ok.clone())).is_some());
        let no_alg_no_use = serde_json::json!({"kty": "RSA", "kid": "a", "n": n2048, "e": e});
        assert!(usable_key(&jwk(no_alg_no_use)).is_some());
        for bad in [
            serde_json::json!({"kty": "RSA", "kid": "a", "use": "enc", "n": n2048, "e": e}),
            serde_json::json!({"kty": "RSA", "kid": "a", "alg": "RS384", "n": n2048, "e": e}),
            serde_json::json!({"kty": "RSA", "kid": "a", "n": n1024, "e": e}),
            serde_json::json!({"kty": "RSA", "n": n2048, "e": e}),
            serde_json::json!({"kty": "EC", "kid": "a", "crv": "P-256", "x": "AA", "y": "AA"}),
        ] {
            assert!(usable_key(&jwk(bad.clone())).is_none(), "{bad}");
        }
    }
}
