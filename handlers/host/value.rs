//! Decoding rules for values the host serialised (functions-host.md §1.6).
//!
//! The host turns every trigger, input and metadata value into JSON with `JObject.FromObject`, and when
//! that fails (anything that is not an object) with `JsonConvert.SerializeObject`. A string therefore
//! arrives as a JSON string whose content is *another* JSON string literal, and a number as a string.
//! The documented examples show the un-doubled shapes, so every reader here accepts both.

use serde_json::Value;

/// The text of a string value, with one level of JSON string quoting removed when present.
///
/// `"\"hello\""` → `hello`; `"hello"` → `hello`; `"{\"a\":1}"` (a JSON object, not a string literal)
/// stays as it is, because only a JSON *string* literal is a second encoding.
pub fn unquote(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::String(inner)) => inner,
        _ => text.to_owned(),
    }
}

/// Reads a value that should be text, whichever of the host's shapes it came in.
///
/// Objects and arrays are returned as their JSON text: a queue message that is JSON may be delivered
/// already parsed.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(unquote(s)),
        Value::Object(_) | Value::Array(_) => Some(value.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
    }
}

/// Reads an unsigned integer sent as a number, as `"1"`, or as `"\"1\""`.
pub fn unsigned(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => unquote(s).trim().parse().ok(),
        _ => None,
    }
}

/// Reads a boolean sent as a JSON boolean or as a string (`"true"`, `"\"False\""`).
pub fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match unquote(s).trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Reads an RFC 3339 timestamp (the host writes `2019-10-16T17:58:31+00:00`), quoted or not.
pub fn timestamp(value: &Value) -> Option<time::OffsetDateTime> {
    let text = text(value)?;
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn double_encoded_strings_lose_exactly_one_level_of_quoting() {
        assert_eq!(unquote("\"hello\""), "hello");
        assert_eq!(unquote("hello"), "hello");
        assert_eq!(unquote("\"\\\"still quoted\\\"\""), "\"still quoted\"");
    }

    #[test]
    fn json_object_text_is_not_mistaken_for_a_second_encoding() {
        assert_eq!(unquote("{\"a\":1}"), "{\"a\":1}");
        assert_eq!(unquote("42"), "42");
    }

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        assert_eq!(unsigned(&json!(1)), Some(1));
        assert_eq!(unsigned(&json!("1")), Some(1));
        assert_eq!(unsigned(&json!("\"5\"")), Some(5));
        assert_eq!(unsigned(&json!("one")), None);
        assert_eq!(unsigned(&json!(-1)), None);
    }

    #[test]
    fn booleans_arrive_as_booleans_or_strings() {
        assert_eq!(boolean(&json!(true)), Some(true));
        assert_eq!(boolean(&json!("False")), Some(false));
        assert_eq!(boolean(&json!("\"true\"")), Some(true));
        assert_eq!(boolean(&json!(null)), None);
    }

    #[test]
    fn timestamps_parse_quoted_or_not() {
        let a = timestamp(&json!("2019-10-16T17:58:31+00:00")).expect("plain");
        let b = timestamp(&json!("\"2019-10-16T17:58:31+00:00\"")).expect("quoted");
        assert_eq!(a, b);
        assert!(timestamp(&json!("yesterday")).is_none());
    }
}
