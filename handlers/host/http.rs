//! HTTP functions in payload mode: the `req` trigger value and the `res` output.
//!
//! With `enableForwardingHttpRequest` the host forwards pure HTTP functions as plain HTTP, and that is
//! how Sixpence is configured. The host still falls back to the envelope for an HTTP function that has
//! any other binding, and a misconfigured `host.json` would do the same for all of them, so the
//! router accepts both: `functions::http::payload_mode` replays an envelope through the same routes.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::invocation::{InvokeRequest, PayloadError};
use super::value;

/// The `Data.req` value of an HTTP-triggered invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequestData {
    pub url: String,
    pub method: String,
    /// Header name → values, as the host groups them.
    pub headers: BTreeMap<String, Vec<String>>,
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRequest {
    url: String,
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, HeaderValues>,
    #[serde(default)]
    body: Option<Value>,
}

/// Headers arrive as `{"Accept": ["*/*"]}` in `Data` but as `{"Accept": "*/*"}` in `Metadata`.
#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderValues {
    Many(Vec<String>),
    One(String),
}

impl HttpRequestData {
    pub fn from_request(request: &InvokeRequest, binding: &str) -> Result<Self, PayloadError> {
        let raw = request.binding(binding)?;
        let raw: RawRequest =
            serde_json::from_value(raw.clone()).map_err(|e| PayloadError::InvalidBinding {
                name: binding.to_owned(),
                reason: e.to_string(),
            })?;
        let headers: BTreeMap<String, Vec<String>> = raw
            .headers
            .into_iter()
            .map(|(name, values)| match values {
                HeaderValues::Many(v) => (name, v),
                HeaderValues::One(v) => (name, vec![v]),
            })
            .collect();
        let is_binary = headers.iter().any(|(name, values)| {
            name.eq_ignore_ascii_case("content-type")
                && values.iter().any(|v| {
                    v.starts_with("application/octet-stream") || v.starts_with("multipart/")
                })
        });
        let body = match raw.body {
            None | Some(Value::Null) => Vec::new(),
            // The host sends octet-stream and multipart bodies as base64, everything else as text.
            Some(Value::String(s)) if is_binary => base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|_| PayloadError::InvalidBinding {
                    name: binding.to_owned(),
                    reason: "binary body is not base64".to_owned(),
                })?,
            Some(Value::String(s)) => s.into_bytes(),
            Some(other) => other.to_string().into_bytes(),
        };
        Ok(Self {
            url: value::unquote(&raw.url),
            method: raw.method,
            headers,
            body,
        })
    }
}

/// The `res` output of an HTTP function in payload mode. The host reads it case-insensitively as
/// `{StatusCode: string, Body, Headers}`; it is not subject to the base64 decode of other outputs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpResponseData {
    pub status_code: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}
