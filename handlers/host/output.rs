//! Output bindings, built so the host's base64 decoding can never corrupt them.
//!
//! The host runs `Convert.FromBase64String` on every output binding value that is a string and, when
//! that succeeds, hands the binding the decoded *bytes* instead (functions-host.md §0.1). A queue message
//! `"test"` would arrive as three bytes of garbage. [`Outputs`] therefore has no way to add a bare
//! string: queue messages are emitted as a JSON array of objects (an array is not a string, so the
//! host skips the decode) and blobs as base64 of their bytes (the host decodes them back to exactly
//! those bytes). `tests` below reproduce the host's rule and show both paths survive it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Named output binding values of one invocation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Outputs(Map<String, Value>);

/// A queue message must be a JSON object: versioned message types serialise to one.
#[derive(Debug, thiserror::Error)]
#[error("queue output `{binding}` must be a JSON object, got {found}")]
pub struct NotAnObject {
    binding: String,
    found: &'static str,
}

impl Outputs {
    /// Adds messages for the queue output binding `binding`, one per item.
    ///
    /// Each item must serialise to a JSON object (every message type in this codebase is a versioned
    /// object); anything else is refused rather than risk the base64 trap on a bare string.
    pub fn queue_messages<T: Serialize>(
        &mut self,
        binding: &str,
        messages: &[T],
    ) -> Result<(), NotAnObject> {
        let mut array = Vec::with_capacity(messages.len());
        for message in messages {
            match serde_json::to_value(message) {
                Ok(value @ Value::Object(_)) => array.push(value),
                Ok(other) => {
                    return Err(NotAnObject {
                        binding: binding.to_owned(),
                        found: kind_of(&other),
                    });
                }
                Err(_) => {
                    return Err(NotAnObject {
                        binding: binding.to_owned(),
                        found: "a value that does not serialise",
                    });
                }
            }
        }
        self.0.insert(binding.to_owned(), Value::Array(array));
        Ok(())
    }

    /// Sets the content of the blob output binding `binding`, as base64 so the host's decode restores
    /// exactly these bytes.
    pub fn blob(&mut self, binding: &str, bytes: &[u8]) {
        self.0
            .insert(binding.to_owned(), Value::String(STANDARD.encode(bytes)));
    }

    /// Sets the `res` output of an HTTP function in payload mode. HTTP outputs are deserialised into
    /// the host's response type, not base64-decoded, so the body may be plain text.
    pub fn http(&mut self, binding: &str, response: &super::http::HttpResponseData) {
        let value = serde_json::to_value(response).unwrap_or(Value::Null);
        self.0.insert(binding.to_owned(), value);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, binding: &str) -> Option<&Value> {
        self.0.get(binding)
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the host does to an output value before a non-HTTP binding sees it
    /// (`HttpScriptInvocationResultExtensions.GetBindingValue`): strings that are valid base64 become
    /// bytes, everything else passes through. Returns the bytes the binding finally writes.
    fn host_binding_bytes(value: &Value) -> Vec<u8> {
        match value {
            Value::String(s) => match STANDARD.decode(s) {
                Ok(bytes) => bytes,
                Err(_) => s.as_bytes().to_vec(),
            },
            other => other.to_string().into_bytes(),
        }
    }

    /// What a queue output binding enqueues for a JSON array: one message per element.
    fn host_queue_messages(value: &Value) -> Vec<Vec<u8>> {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.as_bytes().to_vec(),
                    other => other.to_string().into_bytes(),
                })
                .collect(),
            other => vec![host_binding_bytes(other)],
        }
    }

    #[test]
    fn a_bare_string_output_is_corrupted_by_the_host() {
        // This is the trap the module exists for: "test" is valid base64.
        let written = host_binding_bytes(&json!("test"));
        assert_ne!(written, b"test");
        assert_eq!(written, vec![0xb5, 0xeb, 0x2d]);
    }

    #[test]
    fn queue_messages_survive_the_host_unchanged() {
        #[derive(Serialize)]
        struct Msg<'a> {
            version: u8,
            note: &'a str,
        }
        let mut outputs = Outputs::default();
        outputs
            .queue_messages(
                "next",
                &[
                    Msg {
                        version: 1,
                        note: "test",
                    },
                    Msg {
                        version: 1,
                        note: "abcd",
                    },
                ],
            )
            .expect("objects");
        let messages = host_queue_messages(outputs.get("next").expect("set"));
        let decoded: Vec<Value> = messages
            .iter()
            .map(|m| serde_json::from_slice(m).expect("json"))
            .collect();
        assert_eq!(
            decoded,
            vec![
                json!({"version": 1, "note": "test"}),
                json!({"version": 1, "note": "abcd"})
            ]
        );
    }

    #[test]
    fn blob_bytes_survive_the_host_unchanged_even_when_they_look_like_base64() {
        let mut outputs = Outputs::default();
        for content in [&b"test"[..], b"Hello/world1", b"", &[0u8, 159, 146, 150]] {
            outputs.blob("archive", content);
            assert_eq!(
                host_binding_bytes(outputs.get("archive").expect("set")),
                content
            );
        }
    }

    #[test]
    fn a_queue_message_that_is_not_an_object_is_refused() {
        let mut outputs = Outputs::default();
        let err = outputs
            .queue_messages("next", &["test"])
            .expect_err("a string must be refused");
        assert!(err.to_string().contains("a string"));
        assert!(outputs.is_empty());
    }
}
