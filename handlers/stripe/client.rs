//! The Stripe REST client: form-encoded POSTs with the secret key as bearer and an
//! `Idempotency-Key` on every one, so a retry (ours, after a timeout) never creates a second
//! customer or session.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

/// The API version Sixpence is written against (sent on every call, so an account default set in
/// the Stripe dashboard cannot change the shapes we read).
pub const API_VERSION: &str = "2025-03-31.basil";

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe could not be reached or answered 5xx/429; nothing is known to have happened.
    #[error("Stripe did not answer ({0})")]
    Unavailable(String),
    /// Stripe refused the request (4xx): its error type and code, never the request.
    #[error("Stripe refused the request: {0}")]
    Refused(String),
}

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: url::Url,
    key: SecretString,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    pub fn new(base: url::Url, key: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { http, base, key }
    }

    /// `POST /v1/<path>` with `form`, retried once with the same idempotency key when Stripe did
    /// not answer or answered 5xx/429 (Stripe replays the first result for a key it has seen).
    pub async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        let mut last = StripeError::Unavailable("not attempted".to_owned());
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            match self.post_once(path, form, idempotency_key).await {
                Ok(value) => return Ok(value),
                Err(err @ StripeError::Refused(_)) => return Err(err),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    /// `DELETE /v1/<path>` (e.g. cancelling a subscription), with an idempotency key and the same
    /// one retry as [`Self::post`].
    pub async fn delete(&self, path: &str, idempotency_key: &str) -> Result<Value, StripeError> {
        let mut last = StripeError::Unavailable("not attempted".to_owned());
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            match self
                .send_once(reqwest::Method::DELETE, path, &[], idempotency_key)
                .await
            {
                Ok(value) => return Ok(value),
                Err(err @ StripeError::Refused(_)) => return Err(err),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    async fn post_once(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        self.send_once(reqwest::Method::POST, path, form, idempotency_key)
            .await
    }

    async fn send_once(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        let url = self
            .base
            .join(&format!("v1/{path}"))
            .map_err(|e| StripeError::Unavailable(e.to_string()))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        let response = self
            .http
            .request(method, url)
            .bearer_auth(self.key.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .header("Stripe-Version", API_VERSION)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            // Without the URL: it is ours and harmless, but the error text is all that is needed.
            .map_err(|e| StripeError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .map_err(|_| StripeError::Unavailable(format!("unreadable answer ({status})")))?;
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        let reason = format!(
            "{} {}{}",
            status.as_u16(),
            error["type"].as_str().unwrap_or("error"),
            error["code"]
                .as_str()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        );
        if status.is_server_error() || status.as_u16() == 429 {
            Err(StripeError::Unavailable(reason))
        } else {
            Err(StripeError::Refused(reason))
        }
    }
}
