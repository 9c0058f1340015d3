//! The invocation envelopes the host POSTs and the reading of the handler's answer, byte for byte as
//! the host's code produces and consumes them (functions-host.md §0.1–0.3, §1.3, §1.4).
//!
//! Kept pure (no I/O) so every rule has a unit test, and so the traps are reproduced on purpose:
//! - every non-object value goes through `JsonConvert.SerializeObject`, so a message text arrives as
//!   a JSON string *containing* a JSON string literal, and `DequeueCount` as `"1"`;
//! - an output string that is valid base64 is decoded to bytes before the binding sees it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The version this local host reports in `X-Azure-Functions-HostVersion` and the user agent.
pub const HOST_VERSION: &str = "4.0.0.0";

/// Headers the host adds to every request it sends to the handler (`AddHeaders`).
pub fn invocation_headers(invocation_id: Uuid) -> [(&'static str, String); 3] {
    [
        ("X-Azure-Functions-InvocationId", invocation_id.to_string()),
        ("X-Azure-Functions-HostVersion", HOST_VERSION.to_owned()),
        ("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}")),
    ]
}

/// The content type of envelopes, as the host's `HttpClient` sends it.
pub const ENVELOPE_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The host's conversion of one binding-data value (`GetHttpScriptInvocationContextValue`):
/// objects pass as they are (`JObject.FromObject` succeeds); everything else is serialised to JSON
/// text and sent as a string, which is how strings end up double-encoded.
pub fn host_value(value: &Value) -> Value {
    match value {
        Value::Object(_) => value.clone(),
        other => Value::String(other.to_string()),
    }
}

/// `sys`: the binding data every invocation carries.
pub fn sys(method_name: &str, now: OffsetDateTime, rand_guid: Uuid) -> Value {
    json!({
        "MethodName": method_name,
        "UtcNow": utc_now(now),
        "RandGuid": rand_guid.to_string(),
    })
}

/// A .NET `DateTime` in UTC as Newtonsoft writes it: up to seven fractional digits, trailing zeros
/// dropped, `Z` (e.g. `2023-09-07T11:40:45.004275Z`).
pub fn utc_now(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        fraction(at.nanosecond())
    )
}

/// A .NET `DateTimeOffset` as Newtonsoft writes it (`2019-10-16T17:58:31+00:00`).
pub fn date_time_offset(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}+00:00",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        fraction(at.nanosecond())
    )
}

/// `.FFFFFFF`: 100-ns ticks, trailing zeros removed, nothing at all for a whole second.
fn fraction(nanos: u32) -> String {
    let ticks = nanos / 100;
    if ticks == 0 {
        return String::new();
    }
    let digits = format!("{ticks:07}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// What the timer trigger knows about its schedule (`ScheduleStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleStatus {
    pub last: OffsetDateTime,
    pub next: OffsetDateTime,
    pub last_updated: OffsetDateTime,
}

/// The timer envelope, as in the real capture: `Data.<binding>` is an object (so not re-encoded),
/// `Metadata` has only `sys`.
pub fn timer_envelope(
    binding: &str,
    status: Option<ScheduleStatus>,
    is_past_due: bool,
    method_name: &str,
    now: OffsetDateTime,
    rand_guid: Uuid,
) -> Value {
    let status = match status {
        None => Value::Null,
        Some(s) => json!({
            "Last": date_time_offset(s.last),
            "Next": date_time_offset(s.next),
            "LastUpdated": date_time_offset(s.last_updated),
        }),
    };
    let mut data = Map::new();
    data.insert(
        binding.to_owned(),
        json!({
            "Schedule": {"AdjustForDST": true},
            "ScheduleStatus": status,
            "IsPastDue": is_past_due,
        }),
    );
    json!({
        "Data": data,
        "Metadata": {"sys": sys(method_name, now, rand_guid)},
    })
}

/// A received queue message, already decoded from its storage encoding.
#[derive(Debug, Clone)]
pub struct QueueDelivery<'a> {
    pub id: &'a str,
    pub pop_receipt: &'a str,
    pub dequeue_count: u64,
    pub insertion_time: Option<OffsetDateTime>,
    pub expiration_time: Option<OffsetDateTime>,
    pub next_visible_time: Option<OffsetDateTime>,
    /// The message body: text for a string trigger, raw bytes for `dataType: binary`.
    pub body: &'a [u8],
}

/// The queue envelope "as the current code produces it" (functions-host.md §1.3).
///
/// - `Data.<binding>`: the text, JSON-encoded and sent as a string (so encoded twice); for a binary
///   trigger the bytes as base64 (a `byte[]` becomes a base64 string, once);
/// - `Metadata`: `DequeueCount` `"1"`, `Id` and `PopReceipt` JSON-quoted, times as ISO strings,
///   `sys`, and for a JSON-object message its top-level properties (binding data for binding
///   expressions), each converted like any other value. `QueueTrigger` is left out, as the host drops
///   keys ending in "trigger".
pub fn queue_envelope(
    binding: &str,
    binary: bool,
    message: &QueueDelivery<'_>,
    method_name: &str,
    now: OffsetDateTime,
    rand_guid: Uuid,
) -> Value {
    let text = String::from_utf8_lossy(message.body);
    let data_value = if binary {
        Value::String(STANDARD.encode(message.body))
    } else {
        host_value(&Value::String(text.clone().into_owned()))
    };
    let mut data = Map::new();
    data.insert(binding.to_owned(), data_value);

    let mut metadata = Map::new();
    metadata.insert(
        "DequeueCount".into(),
        host_value(&json!(message.dequeue_count)),
    );
    if let Some(at) = message.expiration_time {
        metadata.insert("ExpirationTime".into(), date_time_offset(at).into());
    }
    metadata.insert("Id".into(), host_value(&json!(message.id)));
    if let Some(at) = message.insertion_time {
        metadata.insert("InsertionTime".into(), date_time_offset(at).into());
    }
    if let Some(at) = message.next_visible_time {
        metadata.insert("NextVisibleTime".into(), date_time_offset(at).into());
    }
    metadata.insert("PopReceipt".into(), host_value(&json!(message.pop_receipt)));
    if !binary && let Ok(Value::Object(properties)) = serde_json::from_str::<Value>(&text) {
        for (key, value) in properties {
            // The queue's own metadata wins over a message property of the same name.
            if !metadata.contains_key(&key) && key != "sys" {
                metadata.insert(key, host_value(&value));
            }
        }
    }
    metadata.insert("sys".into(), sys(method_name, now, rand_guid));
    json!({"Data": data, "Metadata": metadata})
}

/// The handler's answer to an envelope (`HttpScriptInvocationResult`), read case-insensitively as
/// Newtonsoft does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationResult {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Option<Value>,
}

impl InvocationResult {
    /// Parses a 2xx body. An empty body is a result with nothing in it; anything that is not a JSON
    /// object is an error, as `ReadAsAsync` would throw.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| format!("the response body is not JSON: {e}"))?;
        let Value::Object(object) = value else {
            return Err("the response body is not a JSON object".to_owned());
        };
        let field = |name: &str| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let outputs = match field("Outputs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err("`Outputs` is not an object".to_owned()),
        };
        let logs = match field("Logs") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            Some(_) => return Err("`Logs` is not an array".to_owned()),
        };
        let return_value = field("ReturnValue").filter(|v| !v.is_null());
        Ok(Self {
            outputs,
            logs,
            return_value,
        })
    }

    /// The value for output binding `name` (`$return` reads `ReturnValue`), case-insensitively.
    pub fn output(&self, name: &str) -> Option<&Value> {
        if name == "$return" {
            return self.return_value.as_ref();
        }
        self.outputs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    /// `Logs` of a failed invocation, if the body had any, for the failure reason.
    pub fn logs_of_failure(body: &[u8]) -> Vec<String> {
        Self::parse(body).map(|r| r.logs).unwrap_or_default()
    }
}

/// What a non-HTTP output binding receives for `value` (`GetBindingValue`): a string that is valid
/// base64 becomes its decoded bytes, unless the binding is `dataType: binary`; any other string its
/// UTF-8; anything else its JSON text.
pub fn binding_bytes(value: &Value, binary: bool) -> Vec<u8> {
    match value {
        Value::String(s) if binary => s.as_bytes().to_vec(),
        Value::String(s) => match STANDARD.decode(s) {
            Ok(bytes) => bytes,
            Err(_) => s.as_bytes().to_vec(),
        },
        other => other.to_string().into_bytes(),
    }
}

/// The messages a queue output binding enqueues for `value`: one per element of an array (strings
/// as their text, anything else as JSON text; an array is not a string, so no base64 decode), or one
/// message for any other value after [`binding_bytes`].
pub fn queue_output_messages(value: &Value, binary: bool) -> Vec<Vec<u8>> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .filter(|item| !item.is_null())
            .map(|item| match item {
                Value::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            })
            .collect(),
        other => vec![binding_bytes(other, binary)],
    }
}

/// An incoming HTTP request, for functions the host does not forward.
#[derive(Debug, Clone)]
pub struct HttpRequestView<'a> {
    pub url: &'a str,
    pub method: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: Vec<(String, String)>,
    /// Route parameters.
    pub params: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// The HTTP envelope, as in the real capture (host 4.33.2): `Data.<binding>` is the request object
/// with headers as lists; `Metadata` repeats `Query` and `Headers` (single values) plus the route
/// parameters and `sys`. Octet-stream and multipart bodies are sent as base64, others as text.
pub fn http_envelope(
    binding: &str,
    request: &HttpRequestView<'_>,
    method_name: &str,
    now: OffsetDateTime,
    rand_guid: Uuid,
) -> Value {
    let mut query = Map::new();
    for pair in request.query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        query.insert(name.to_owned(), Value::String(value.replace('+', " ")));
    }
    let mut header_lists: Map<String, Value> = Map::new();
    let mut header_values: Map<String, Value> = Map::new();
    for (name, value) in &request.headers {
        let title = title_case(name);
        match header_lists.get_mut(&title) {
            Some(Value::Array(values)) => values.push(Value::String(value.clone())),
            _ => {
                header_lists.insert(title.clone(), json!([value]));
            }
        }
        header_values
            .entry(title)
            .and_modify(|v| {
                if let Value::String(s) = v {
                    s.push_str(", ");
                    s.push_str(value);
                }
            })
            .or_insert_with(|| Value::String(value.clone()));
    }
    let binary_body = request.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type")
            && (value.starts_with("application/octet-stream") || value.starts_with("multipart/"))
    });
    let params: Map<String, Value> = request
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut req = json!({
        "Url": request.url,
        "Method": request.method,
        "Query": query.clone(),
        "Headers": header_lists,
        "Params": params.clone(),
        "Identities": [{"AuthenticationType": null, "IsAuthenticated": false, "Claims": []}],
    });
    if !request.body.is_empty() {
        req["Body"] = if binary_body {
            Value::String(STANDARD.encode(request.body))
        } else {
            Value::String(String::from_utf8_lossy(request.body).into_owned())
        };
    }
    let mut metadata = Map::new();
    metadata.insert("Query".into(), Value::Object(query));
    metadata.insert("Headers".into(), Value::Object(header_values));
    for (name, value) in params {
        metadata.insert(name, host_value(&value));
    }
    metadata.insert("sys".into(), sys(method_name, now, rand_guid));
    let mut data = Map::new();
    data.insert(binding.to_owned(), req);
    json!({"Data": data, "Metadata": metadata})
}

/// `content-type` → `Content-Type`, as ASP.NET presents header names.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The response for an HTTP function's `res` output (`{statusCode, body, headers}`, any case). A
/// missing `res` is an empty 200, like the host's default; a malformed one a 500.
pub fn http_response(res: Option<&Value>) -> axum::response::Response {
    use axum::http::{HeaderName, HeaderValue, StatusCode};
    let mut response = axum::response::Response::new(axum::body::Body::empty());
    let Some(res) = res else {
        return response;
    };
    let Value::Object(res) = res else {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return response;
    };
    let field = |name: &str| {
        res.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let status = match field("statusCode").or_else(|| field("status")) {
        None | Some(Value::Null) => Some(200),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    let Some(status) = status.and_then(|s| StatusCode::from_u16(s).ok()) else {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return response;
    };
    *response.status_mut() = status;
    if let Some(Value::Object(headers)) = field("headers") {
        for (name, value) in headers {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&text),
            ) {
                response.headers_mut().append(name, value);
            }
        }
    }
    let body = match field("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    *response.body_mut() = axum::body::Body::from(body);
    response
}

/// Today in RFC 3339, for log lines.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixpence::host::{InvokeRequest, QueueTrigger, TimerInfo};
    use time::macros::datetime;

    fn delivery(body: &[u8]) -> QueueDelivery<'_> {
        QueueDelivery {
            id: "800ae4b3-bdd2-4c08-badd-f08e5a34b865",
            pop_receipt: "AgAAAAMAAAAAAAAAAgtnj8x+1QE=",
            dequeue_count: 1,
            insertion_time: Some(datetime!(2019-10-09 17:58:31 UTC)),
            expiration_time: Some(datetime!(2019-10-16 17:58:31 UTC)),
            next_visible_time: Some(datetime!(2019-10-09 18:08:32 UTC)),
            body,
        }
    }

    const NOW: OffsetDateTime = datetime!(2019-10-09 17:58:32.2205399 UTC);
    const GUID: Uuid = Uuid::from_u128(0x24ad4c06_24ad_4e5b_8294_3da9714877e9);

    #[test]
    fn timestamps_are_written_like_newtonsoft() {
        assert_eq!(utc_now(NOW), "2019-10-09T17:58:32.2205399Z");
        assert_eq!(
            utc_now(datetime!(2023-09-07 11:40:45.004275 UTC)),
            "2023-09-07T11:40:45.004275Z"
        );
        assert_eq!(
            utc_now(datetime!(2023-09-07 11:40:45 UTC)),
            "2023-09-07T11:40:45Z"
        );
        assert_eq!(
            date_time_offset(datetime!(2019-10-16 17:58:31 UTC)),
            "2019-10-16T17:58:31+00:00"
        );
    }

    #[test]
    fn queue_text_is_encoded_twice_and_metadata_quoted() {
        let text = r#"{ "message": "my message" }"#;
        let envelope = queue_envelope(
            "myQueueItem",
            false,
            &delivery(text.as_bytes()),
            "f",
            NOW,
            GUID,
        );
        // Exactly the §1.3 shape: a JSON string whose content is a JSON string literal.
        assert_eq!(
            envelope["Data"]["myQueueItem"],
            Value::String("\"{ \\\"message\\\": \\\"my message\\\" }\"".to_owned())
        );
        let metadata = &envelope["Metadata"];
        assert_eq!(metadata["DequeueCount"], json!("1"));
        assert_eq!(
            metadata["Id"],
            json!("\"800ae4b3-bdd2-4c08-badd-f08e5a34b865\"")
        );
        assert_eq!(
            metadata["PopReceipt"],
            json!("\"AgAAAAMAAAAAAAAAAgtnj8x+1QE=\"")
        );
        assert_eq!(
            metadata["ExpirationTime"],
            json!("2019-10-16T17:58:31+00:00")
        );
        assert_eq!(
            metadata["InsertionTime"],
            json!("2019-10-09T17:58:31+00:00")
        );
        assert_eq!(
            metadata["NextVisibleTime"],
            json!("2019-10-09T18:08:32+00:00")
        );
        assert_eq!(metadata["message"], json!("\"my message\""));
        assert_eq!(
            metadata["sys"],
            json!({"MethodName": "f", "UtcNow": "2019-10-09T17:58:32.2205399Z",
                   "RandGuid": "24ad4c06-24ad-4e5b-8294-3da9714877e9"})
        );
        assert!(metadata.get("QueueTrigger").is_none());
    }

    #[test]
    fn the_apps_own_decoder_reads_our_queue_envelope_back() {
        let text = r#"{"version":"1","id":"6f1c2b1e-8d2a-4a53-9d55-3a0c8f7b2e11","sent_at":"2019-10-09T17:58:31Z"}"#;
        let mut message = delivery(text.as_bytes());
        message.dequeue_count = 3;
        let envelope = queue_envelope("message", false, &message, "queue-probe", NOW, GUID);
        let request: InvokeRequest = serde_json::from_value(envelope).expect("envelope");
        let trigger = QueueTrigger::from_request(&request, "message").expect("decodes");
        assert_eq!(trigger.text, text);
        assert_eq!(trigger.metadata.dequeue_count, 3);
        assert_eq!(
            trigger.metadata.id.as_deref(),
            Some("800ae4b3-bdd2-4c08-badd-f08e5a34b865")
        );
        assert_eq!(
            trigger.metadata.pop_receipt.as_deref(),
            Some("AgAAAAMAAAAAAAAAAgtnj8x+1QE=")
        );
    }

    #[test]
    fn binary_queue_triggers_get_base64_once() {
        let envelope = queue_envelope("m", true, &delivery(&[0, 159, 146]), "f", NOW, GUID);
        assert_eq!(envelope["Data"]["m"], json!("AJ+S"));
    }

    #[test]
    fn timer_envelope_matches_the_real_capture() {
        let envelope = timer_envelope("timer", None, false, "azure", NOW, GUID);
        let capture: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/host/timer-real.json"))
                .expect("fixture");
        assert_eq!(envelope["Data"], capture["Data"]);
        let keys = |v: &Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(
            keys(&envelope["Metadata"]["sys"]),
            keys(&capture["Metadata"]["sys"])
        );

        let status = ScheduleStatus {
            last: datetime!(2026-11-20 02:00 UTC),
            next: datetime!(2026-11-21 02:00 UTC),
            last_updated: datetime!(2026-11-20 02:00:00.0123 UTC),
        };
        let envelope = timer_envelope("timer", Some(status), true, "heartbeat", NOW, GUID);
        let request: InvokeRequest = serde_json::from_value(envelope).expect("envelope");
        let info = TimerInfo::from_request(&request, "timer").expect("decodes");
        assert!(info.is_past_due);
        let read = info.schedule_status.expect("status");
        assert_eq!(read.last, Some(status.last));
        assert_eq!(read.next, Some(status.next));
        assert_eq!(read.last_updated, Some(status.last_updated));
    }

    #[test]
    fn output_strings_fall_into_the_base64_trap_unless_binary() {
        assert_eq!(binding_bytes(&json!("test"), false), vec![0xb5, 0xeb, 0x2d]);
        assert_eq!(binding_bytes(&json!("test"), true), b"test");
        assert_eq!(binding_bytes(&json!("not base64!"), false), b"not base64!");
        assert_eq!(binding_bytes(&json!({"a": 1}), false), br#"{"a":1}"#);
        assert_eq!(
            queue_output_messages(&json!([{"v": 1}, "test", null]), false),
            vec![br#"{"v":1}"#.to_vec(), b"test".to_vec()]
        );
        assert_eq!(
            queue_output_messages(&json!("aGVsbG8="), false),
            vec![b"hello".to_vec()]
        );
        assert!(queue_output_messages(&Value::Null, false).is_empty());
    }

    #[test]
    fn http_envelope_matches_the_real_capture() {
        let capture: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/host/http-payload.json"
        ))
        .expect("fixture");
        let request = HttpRequestView {
            url: "http://localhost:7071/api/health",
            method: "GET",
            query: "",
            headers: vec![
                ("accept".into(), "*/*".into()),
                ("host".into(), "localhost:7071".into()),
                ("user-agent".into(), "PostmanRuntime/7.37.3".into()),
            ],
            params: vec![],
            body: b"",
        };
        let envelope = http_envelope("req", &request, "health", NOW, GUID);
        assert_eq!(envelope["Data"], capture["Data"]);
        assert_eq!(envelope["Metadata"]["Query"], capture["Metadata"]["Query"]);
        assert_eq!(envelope["Metadata"]["Headers"]["Accept"], json!("*/*"));
        let request: InvokeRequest = serde_json::from_value(envelope).expect("envelope");
        let data = sixpence::host::HttpRequestData::from_request(&request, "req").expect("decodes");
        assert_eq!(data.method, "GET");
        assert_eq!(data.url, "http://localhost:7071/api/health");
    }

    #[test]
    fn results_are_read_case_insensitively() {
        let result = InvocationResult::parse(
            br#"{"outputs": {"Next": [1]}, "logs": ["a", 2], "ReturnValue": null}"#,
        )
        .unwrap();
        assert_eq!(result.output("next"), Some(&json!([1])));
        assert_eq!(result.logs, vec!["a".to_owned(), "2".to_owned()]);
        assert_eq!(result.output("$return"), None);
        assert_eq!(
            InvocationResult::parse(b"").unwrap(),
            InvocationResult::default()
        );
        assert!(InvocationResult::parse(b"ok").is_err());
        assert!(InvocationResult::parse(b"[1]").is_err());
    }
}
