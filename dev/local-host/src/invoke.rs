//! Sending envelopes to the handler and judging the answer as the host does.
//!
//! For envelopes the host calls `EnsureSuccessStatusCode` before it reads `Outputs`, so any non-2xx is
//! a failed invocation and nothing is written (functions-host.md §0.3); a body that is not the JSON
//! result is a failure too ("Invalid HttpResponseMessage").

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::payload::{ENVELOPE_CONTENT_TYPE, InvocationResult, invocation_headers};

/// Why an invocation failed, for the retry decision and the log line.
#[derive(Debug, Clone)]
pub enum InvokeError {
    /// No HTTP answer: connection refused or reset, or the function timeout passed.
    Unreachable(String),
    /// A non-2xx answer, with the handler's `Logs` when it sent any.
    Status { status: u16, logs: Vec<String> },
    /// A 2xx whose body is not an invocation result.
    BadResponse(String),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(reason) => write!(f, "the handler did not answer: {reason}"),
            Self::Status { status, logs } if logs.is_empty() => {
                write!(f, "the handler answered HTTP {status}")
            }
            Self::Status { status, logs } => {
                write!(
                    f,
                    "the handler answered HTTP {status}: {}",
                    logs.join(" | ")
                )
            }
            Self::BadResponse(reason) => write!(f, "unusable response: {reason}"),
        }
    }
}

/// The host's HTTP client towards the handler.
#[derive(Clone)]
pub struct Invoker {
    client: reqwest::Client,
    base_url: String,
}

impl Invoker {
    /// `timeout`: `functionTimeout`; the host waits one minute more than that.
    pub fn new(base_url: String, timeout: Option<Duration>) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            // The handler is on loopback: never through a proxy from the environment.
            .no_proxy()
            // The forwarded response is copied back as it is (`AllowAutoRedirect = false`).
            .redirect(reqwest::redirect::Policy::none());
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout + Duration::from_secs(60));
        }
        Ok(Self {
            client: builder.build()?,
            base_url,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// POSTs `envelope` to `/{function}` and returns the parsed result of a 2xx.
    pub async fn invoke(
        &self,
        function: &str,
        invocation_id: Uuid,
        envelope: &Value,
    ) -> Result<InvocationResult, InvokeError> {
        let body = serde_json::to_vec(envelope)
            .map_err(|e| InvokeError::BadResponse(format!("cannot serialise the envelope: {e}")))?;
        let mut request = self
            .client
            .post(format!("{}/{function}", self.base_url))
            .header("Content-Type", ENVELOPE_CONTENT_TYPE)
            .body(body);
        for (name, value) in invocation_headers(invocation_id) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| InvokeError::Unreachable(describe(&e)))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| InvokeError::Unreachable(describe(&e)))?;
        if !status.is_success() {
            return Err(InvokeError::Status {
                status: status.as_u16(),
                logs: InvocationResult::logs_of_failure(&bytes),
            });
        }
        if !bytes.is_empty() && !content_type.as_deref().is_some_and(is_json) {
            return Err(InvokeError::BadResponse(format!(
                "Content-Type is {}, not application/json",
                content_type.as_deref().unwrap_or("missing")
            )));
        }
        let result = InvocationResult::parse(&bytes).map_err(InvokeError::BadResponse)?;
        for line in &result.logs {
            say!("{function} ({invocation_id}): {line}");
        }
        Ok(result)
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// A reqwest error with its causes, on one line.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
