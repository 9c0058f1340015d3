//! The `{Data, Metadata}` envelope the host POSTs and the `{Outputs, Logs, ReturnValue}` it expects.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::output::Outputs;

/// A non-HTTP invocation as the host sends it to `POST /{FunctionName}`.
///
/// `Data` has one key per trigger or input binding `name` in `function.json`; `Metadata` holds the
/// trigger's binding data (`DequeueCount`, `sys`, …). Both are kept as raw JSON here and read through
/// the typed views in [`super::timer`] and [`super::queue`], which know the host's encoding quirks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct InvokeRequest {
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

impl InvokeRequest {
    /// Parses an envelope, refusing anything but a JSON object (serde would otherwise accept `[]`
    /// as an empty struct and the failure would surface later, less clearly).
    pub fn from_slice(body: &[u8]) -> Result<Self, PayloadError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| PayloadError::InvalidEnvelope(e.to_string()))?;
        if !value.is_object() {
            return Err(PayloadError::InvalidEnvelope(
                "expected a JSON object".to_owned(),
            ));
        }
        serde_json::from_value(value).map_err(|e| PayloadError::InvalidEnvelope(e.to_string()))
    }

    /// The value bound to `name`, or a [`PayloadError`] naming the binding.
    pub fn binding(&self, name: &str) -> Result<&Value, PayloadError> {
        match self.data.get(name) {
            Some(Value::Null) | None => Err(PayloadError::MissingBinding(name.to_owned())),
            Some(value) => Ok(value),
        }
    }
}

/// Who is being invoked, for logs: the function and the host's invocation id.
#[derive(Debug, Clone)]
pub struct InvocationContext {
    pub function: &'static str,
    pub invocation_id: String,
}

/// What the handler answers to a non-HTTP invocation.
///
/// Serialised with the exact PascalCase keys the host's `HttpScriptInvocationResult` reads, always as
/// `application/json` (anything else is "Invalid HttpResponseMessage" on the host).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InvokeResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Outputs,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// Always `null`: a string here would go through the host's base64 trap, so results travel in
    /// named outputs instead.
    #[serde(rename = "ReturnValue")]
    pub return_value: Option<Value>,
}

impl InvokeResponse {
    pub fn new(outputs: Outputs, logs: Vec<String>) -> Self {
        Self {
            outputs,
            logs,
            return_value: None,
        }
    }
}

/// The envelope itself is unusable: the function cannot even start.
///
/// These are the host's (or a hand-written test's) mistakes, never the customer's, and they are
/// permanent: retrying the same envelope fails the same way.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("the invocation has no value for binding `{0}`")]
    MissingBinding(String),
    #[error("binding `{name}` is malformed: {reason}")]
    InvalidBinding { name: String, reason: String },
    #[error("the invocation body is not a Functions envelope: {0}")]
    InvalidEnvelope(String),
}
