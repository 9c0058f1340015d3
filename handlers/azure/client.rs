//! [`AzureClient`]: one per connection (service principal), and the single funnel every request to
//! ARM goes through.
//!
//! The funnel, in order: allow-list (`allow_list::check`) → revoked? → for each attempt: pace (Cost
//! Management only) → token → send → read the body (bounded) → decide: done, retry after a wait, or
//! give up with a typed error. 401/403 mark the client revoked.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::allow_list::{self, Operation};
use super::clock::{Clock, SystemClock, jitter};
use super::error::{ArmErrorBody, AzureError, CredentialProblem};
use super::pacer::Pacers;
use super::throttle::{RetryOptions, largest_retry_after};
use super::token::{
    ClientSecret, ClientSecretCredential, CredentialOptions, TokenCredential, without_url,
};
use super::{DEFAULT_ARM_ENDPOINT, DEFAULT_AUTHORITY, validate_endpoint};

/// The largest response body we read (a 5,000-row cost page is a few MB).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Options of an [`AzureClient`]. `Default` is production: public cloud, system clock, the process-wide
/// pacers.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The login authority, used by [`AzureClient::with_client_secret`].
    pub authority: Url,
    pub retry: RetryOptions,
    /// Per-request timeout (connect + response).
    pub timeout: Duration,
    pub clock: Arc<dyn Clock>,
    pub pacers: Pacers,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            authority: Url::parse(DEFAULT_AUTHORITY).expect("constant URL"),
            retry: RetryOptions::default(),
            timeout: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
            pacers: Pacers::global(),
        }
    }
}

/// Why a client stopped working for good; cloned into the error of every later call.
#[derive(Debug, Clone)]
enum Dead {
    Revoked { status: u16, code: Option<String> },
    Credentials(CredentialProblem),
}

impl Dead {
    fn error(&self) -> AzureError {
        match self {
            Dead::Revoked { status, code } => AzureError::AccessRevoked {
                status: *status,
                code: code.clone(),
            },
            Dead::Credentials(problem) => AzureError::Credentials(problem.clone()),
        }
    }
}

/// The client for one connection's calls into a customer's tenant. Cheap to clone (shares state,
/// including the revoked flag).
#[derive(Clone)]
pub struct AzureClient {
    inner: Arc<Inner>,
}

struct Inner {
    arm: Url,
    credential: Arc<dyn TokenCredential>,
    http: reqwest::Client,
    options: ClientOptions,
    dead: Mutex<Option<Dead>>,
}

impl fmt::Debug for AzureClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureClient")
            .field("arm", &self.inner.arm.as_str())
            .field("tenant_id", &self.tenant_id())
            .field("revoked", &self.is_revoked())
            .finish_non_exhaustive()
    }
}

/// A successful (2xx) response, read whole.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as `T`; a 204 (or an empty body) is `None`.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<Option<T>, AzureError> {
        if self.status == StatusCode::NO_CONTENT || self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|e| AzureError::invalid_response(format!("{what}: {e}")))
    }
}

/// What one attempt came to.
enum Step {
    Done(Reply),
    Wait(Duration),
    Fail(AzureError),
}

impl AzureClient {
    /// A client for `arm_endpoint` (e.g. `https://management.azure.com`) authenticating with
    /// `credential`. Validates the endpoint (https, or http to loopback); no network I/O.
    pub fn new(
        arm_endpoint: Url,
        credential: Arc<dyn TokenCredential>,
        options: Option<ClientOptions>,
    ) -> Result<Self, AzureError> {
        validate_endpoint(&arm_endpoint, "ARM endpoint")?;
        let options = options.unwrap_or_default();
        let http = super::http_client(options.timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                arm: arm_endpoint,
                credential,
                http,
                options,
                dead: Mutex::new(None),
            }),
        })
    }

    /// A client for a connection's service principal, with tokens from `options.authority`.
    pub fn with_client_secret(
        arm_endpoint: Option<Url>,
        credentials: ClientSecret,
        options: Option<ClientOptions>,
    ) -> Result<Self, AzureError> {
        let options = options.unwrap_or_default();
        let arm = match arm_endpoint {
            Some(url) => url,
            None => Url::parse(DEFAULT_ARM_ENDPOINT).expect("constant URL"),
        };
        let credential = ClientSecretCredential::new(
            credentials,
            Some(CredentialOptions {
                authority: options.authority.clone(),
                resource: arm.clone(),
                retry: options.retry.clone(),
                timeout: options.timeout,
                clock: options.clock.clone(),
            }),
        )?;
        Self::new(arm, credential, Some(options))
    }

    /// The customer's tenant id.
    pub fn tenant_id(&self) -> &str {
        self.inner.credential.tenant_id()
    }

    /// The ARM base URL.
    pub fn arm_endpoint(&self) -> &Url {
        &self.inner.arm
    }

    /// Whether the connection stopped working for good (access revoked, or credentials refused):
    /// every call now fails at once without network I/O.
    pub fn is_revoked(&self) -> bool {
        self.dead_state().is_some()
    }

    fn dead_state(&self) -> Option<Dead> {
        self.inner
            .dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn mark_dead(&self, dead: Dead) {
        tracing::warn!(tenant.id = %self.tenant_id(), reason = ?dead, "Azure connection marked revoked");
        let mut guard = self.inner.dead.lock().unwrap_or_else(|p| p.into_inner());
        guard.get_or_insert(dead);
    }

    /// A URL under the ARM endpoint from path segments (each percent-encoded as needed) and query
    /// pairs.
    pub(super) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, AzureError> {
        let mut url = self.inner.arm.clone();
        url.path_segments_mut()
            .map_err(|()| AzureError::Config("the ARM endpoint cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Checks an id the caller gave us before it becomes a path segment.
    pub(super) fn id<'a>(&self, value: &'a str, what: &str) -> Result<&'a str, AzureError> {
        if allow_list::valid_segment(value) {
            Ok(value)
        } else {
            Err(AzureError::InvalidRequest(format!(
                "`{value}` is not a valid {what}"
            )))
        }
    }

    /// Resolves a `nextLink`: it must be an absolute URL on the ARM endpoint's origin, or we would
    /// send the bearer token wherever the response pointed.
    pub(super) fn next_link(&self, link: &str) -> Result<Url, AzureError> {
        let url = Url::parse(link)
            .map_err(|_| AzureError::invalid_response("nextLink is not an absolute URL"))?;
        let arm = &self.inner.arm;
        if url.scheme() != arm.scheme()
            || url.host() != arm.host()
            || url.port_or_known_default() != arm.port_or_known_default()
        {
            return Err(AzureError::invalid_response(format!(
                "nextLink points outside the ARM endpoint ({})",
                url.host_str().unwrap_or("no host")
            )));
        }
        Ok(url)
    }

    /// The single funnel: every request to ARM goes through here.
    ///
    /// `qpu` is the estimated Query Processing Units of a Cost Management call (ignored for others).
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        qpu: f64,
    ) -> Result<Reply, AzureError> {
        let operation = allow_list::check(&method, &self.inner.arm, &url)?;
        if let Some(dead) = self.dead_state() {
            return Err(dead.error());
        }
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| AzureError::InvalidRequest(e.to_string()))?
            .map(Bytes::from);

        let clock = &self.inner.options.clock;
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        let mut refreshed_token = false;
        loop {
            attempt += 1;
            let ticket = if operation.is_cost_management() {
                Some(self.pace(qpu.max(1.0)).await?)
            } else {
                None
            };
            let token = match self.inner.credential.get_token().await {
                Ok(token) => token,
                Err(AzureError::Credentials(problem)) => {
                    if problem != CredentialProblem::Unavailable {
                        self.mark_dead(Dead::Credentials(problem.clone()));
                    }
                    return Err(AzureError::Credentials(problem));
                }
                Err(other) => return Err(other),
            };
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.token.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let sent = request.send().await;
            let step = match sent {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    if let Some(ticket) = ticket {
                        ticket.settle(&headers, clock.now());
                    }
                    match read_body(response).await {
                        Ok(body) => self.judge(
                            operation,
                            Reply {
                                status,
                                headers,
                                body,
                            },
                            attempt,
                            waited,
                            &mut refreshed_token,
                        ),
                        Err(err) => self.on_transport_error(err, attempt, waited),
                    }
                }
                Err(err) => self.on_transport_error(err, attempt, waited),
            };
            match step {
                Step::Done(reply) => return Ok(reply),
                Step::Fail(err) => return Err(err),
                Step::Wait(wait) => {
                    tracing::info!(
                        tenant.id = %self.tenant_id(),
                        operation = operation.name(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying Azure call"
                    );
                    waited += wait;
                    clock.sleep(wait).await;
                }
            }
        }
    }

    /// Holds a Cost Management call until the tenant's pacer admits it.
    async fn pace(&self, qpu: f64) -> Result<super::pacer::Ticket, AzureError> {
        let pacers = &self.inner.options.pacers;
        let clock = &self.inner.options.clock;
        let mut held = Duration::ZERO;
        loop {
            match pacers.try_acquire(self.tenant_id(), qpu, clock.now()) {
                Ok(ticket) => return Ok(ticket),
                Err(wait) => {
                    if held + wait > pacers.options().max_wait {
                        return Err(AzureError::Throttled {
                            retry_after: Some(wait),
                            attempts: 0,
                        });
                    }
                    let wait = wait + jitter(self.inner.options.retry.max_jitter);
                    tracing::info!(
                        tenant.id = %self.tenant_id(),
                        wait_ms = wait.as_millis() as u64,
                        "pacing Cost Management call"
                    );
                    held += wait;
                    clock.sleep(wait).await;
                }
            }
        }
    }

    /// Decides what a complete response means.
    fn judge(
        &self,
        operation: Operation,
        reply: Reply,
        attempt: u32,
        waited: Duration,
        refreshed_token: &mut bool,
    ) -> Step {
        let retry = &self.inner.options.retry;
        let status = reply.status;
        if status.is_success() {
            return Step::Done(reply);
        }
        let (code, message) = ArmErrorBody::parse(&reply.body);
        let code_str = code.as_deref().unwrap_or_default();
        match status.as_u16() {
            401 if code_str.eq_ignore_ascii_case("ExpiredAuthenticationToken")
                && !*refreshed_token =>
            {
                // Our token aged out in flight: not a revocation. Fetch a new one, once.
                *refreshed_token = true;
                self.inner.credential.invalidate();
                Step::Wait(Duration::ZERO)
            }
            401 | 403 => {
                let dead = Dead::Revoked {
                    status: status.as_u16(),
                    code,
                };
                self.mark_dead(dead.clone());
                Step::Fail(dead.error())
            }
            429 | 503 => {
                let asked = largest_retry_after(&reply.headers);
                let wait = asked.unwrap_or(if status.as_u16() == 429 {
                    retry.default_throttle_wait
                } else {
                    retry.backoff(attempt)
                });
                if operation.is_cost_management() && status.as_u16() == 429 {
                    self.inner
                        .options
                        .pacers
                        .block_until(self.tenant_id(), self.inner.options.clock.now() + wait);
                }
                let wait = wait + jitter(retry.max_jitter);
                if attempt >= retry.max_attempts || waited + wait > retry.max_total_wait {
                    Step::Fail(AzureError::Throttled {
                        retry_after: Some(asked.unwrap_or(wait)),
                        attempts: attempt,
                    })
                } else {
                    Step::Wait(wait)
                }
            }
            500..=599 => {
                let wait = retry.backoff(attempt) + jitter(retry.max_jitter);
                if attempt >= retry.max_attempts || waited + wait > retry.max_total_wait {
                    Step::Fail(AzureError::Service {
                        status: status.as_u16(),
                        code,
                        message: message.unwrap_or_default(),
                    })
                } else {
                    Step::Wait(wait)
                }
            }
            _ => Step::Fail(AzureError::Service {
                status: status.as_u16(),
                code,
                message: message.unwrap_or_default(),
            }),
        }
    }

    fn on_transport_error(&self, err: reqwest::Error, attempt: u32, waited: Duration) -> Step {
        let retry = &self.inner.options.retry;
        tracing::warn!(tenant.id = %self.tenant_id(), attempt, error = %without_url(&err), "Azure call failed");
        let wait = retry.backoff(attempt) + jitter(retry.max_jitter);
        if attempt >= retry.max_attempts || waited + wait > retry.max_total_wait {
            Step::Fail(AzureError::Unavailable {
                attempts: attempt,
                source: err.without_url(),
            })
        } else {
            Step::Wait(wait)
        }
    }
}

/// Reads a body up to [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Bytes, reqwest::Error> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            // Treated as an unreadable response by the JSON parser: truncated JSON never parses.
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The ARM list shape: `{"value":[...],"nextLink":...}`.
#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct ListWire<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(default, rename = "nextLink")]
    next_link: Option<String>,
}

/// Pages of an ARM list (`GET`, following `nextLink`). Call [`ListPages::next_page`] until `None`.
pub struct ListPages<T> {
    client: AzureClient,
    next: Option<Url>,
    what: &'static str,
    _item: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ListPages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListPages")
            .field("what", &self.what)
            .field("next", &self.next.as_ref().map(Url::path))
            .finish()
    }
}

impl<T: DeserializeOwned> ListPages<T> {
    pub(super) fn new(client: AzureClient, first: Url, what: &'static str) -> Self {
        Self {
            client,
            next: Some(first),
            what,
            _item: PhantomData,
        }
    }

    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, AzureError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let reply = self
            .client
            .send(Method::GET, url.clone(), None, 1.0)
            .await?;
        let Some(page) = reply.json::<ListWire<T>>(self.what)? else {
            return Ok(Some(Vec::new()));
        };
        if let Some(link) = page.next_link.as_deref().filter(|l| !l.is_empty()) {
            let next = self.client.next_link(link)?;
            if next == url {
                return Err(AzureError::invalid_response(format!(
                    "{}: nextLink repeats the current page",
                    self.what
                )));
            }
            self.next = Some(next);
        }
        Ok(Some(page.value))
    }

    /// Every item of every page (for lists known to be small).
    pub async fn collect_all(mut self) -> Result<Vec<T>, AzureError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// The pages as a stream.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Vec<T>, AzureError>> {
        futures::stream::try_unfold(self, |mut pages| async move {
            Ok(pages.next_page().await?.map(|page| (page, pages)))
        })
    }
}

/// Parses a list page body (fixtures and tests).
#[cfg(test)]
pub(super) fn parse_list<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(Vec<T>, Option<String>), serde_json::Error> {
    let wire: ListWire<T> = serde_json::from_slice(body)?;
    Ok((wire.value, wire.next_link))
}
