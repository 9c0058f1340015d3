//! `security-txt`: `/.well-known/security.txt` (RFC 9116), where security researchers find out how
//! to report a vulnerability.
//!
//! The contact (and optional policy) come from configuration, so the published address is the one
//! operators read. `Expires` is required and should be less than a year ahead (RFC 9116 §2.5.5);
//! because the file is generated from live settings it is never stale, so it says 30 days from the
//! start of today (stable for a day, for caches). Without a configured contact the file would be
//! invalid (`Contact` is required), so it is not served at all (404).
//!
//! Served at the site root, not under `/api`: that is why `host.json` sets an empty `routePrefix`
//! and every HTTP function's `route` carries its full path.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, Time};

use crate::app::AppState;
use crate::config::SecurityTxtSettings;
use crate::functions::{FunctionDef, Trigger};

pub const NAME: &str = "security-txt";
pub const PATH: &str = "/.well-known/security.txt";

pub const FUNCTION: FunctionDef = FunctionDef {
    name: NAME,
    trigger: Trigger::Http {
        route: ".well-known/security.txt",
        methods: &["get"],
    },
    handler: None,
};

/// How far ahead `Expires` points.
const LIFETIME: Duration = Duration::days(30);

/// `GET /.well-known/security.txt`: `text/plain; charset=utf-8`, or 404 when no contact is set.
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let config = &state.settings().security_txt;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| is_plain_host(h));
    match render(config, host, OffsetDateTime::now_utc()) {
        Some(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            response
        }
        None => crate::error::Error::NotFound.into_response(),
    }
}

/// A `Host` header fit to put in a URL: a host name or address with an optional port, nothing else.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The file's text, or `None` when there is no contact to publish.
pub fn render(
    config: &SecurityTxtSettings,
    request_host: Option<&str>,
    now: OffsetDateTime,
) -> Option<String> {
    if config.contacts.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = config
        .contacts
        .iter()
        .map(|c| format!("Contact: {c}"))
        .collect();
    let expires = now.replace_time(Time::MIDNIGHT) + LIFETIME;
    lines.push(format!("Expires: {}", expires.format(&Rfc3339).ok()?));
    lines.push("Preferred-Languages: en".to_owned());
    let canonical = match (&config.public_url, request_host) {
        (Some(base), _) => base
            .join(PATH.trim_start_matches('/'))
            .ok()
            .map(String::from),
        (None, Some(host)) => Some(format!("https://{host}{PATH}")),
        (None, None) => None,
    };
    if let Some(canonical) = canonical {
        lines.push(format!("Canonical: {canonical}"));
    }
    if let Some(policy) = &config.policy {
        lines.push(format!("Policy: {policy}"));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    #[test]
    fn every_required_field_is_present_and_expiry_is_under_a_year_away() {
        let config = SecurityTxtSettings {
            contacts: vec![
                "mailto:security@sixpence.example".to_owned(),
                "https://sixpence.example/security".to_owned(),
            ],
            policy: Some(url::Url::parse("https://sixpence.example/disclosure").unwrap()),
            public_url: Some(url::Url::parse("https://api.sixpence.example").unwrap()),
        };
        let text = render(&config, Some("evil.example"), at("2026-11-23T17:45:00Z")).unwrap();
        assert_eq!(
            text,
            "Contact: mailto:security@sixpence.example\n\
             Contact: https://sixpence.example/security\n\
             Expires: 2026-12-23T00:00:00Z\n\
             Preferred-Languages: en\n\
             Canonical: https://api.sixpence.example/.well-known/security.txt\n\
             Policy: https://sixpence.example/disclosure\n"
        );
    }

    #[test]
    fn without_a_contact_there_is_no_file_and_without_a_public_url_the_host_is_canonical() {
        assert!(
            render(
                &SecurityTxtSettings::default(),
                None,
                OffsetDateTime::UNIX_EPOCH
            )
            .is_none()
        );
        let config = SecurityTxtSettings {
            contacts: vec!["mailto:s@x.example".to_owned()],
            ..Default::default()
        };
        let text = render(
            &config,
            Some("app.example:8443"),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert!(text.contains("Canonical: https://app.example:8443/.well-known/security.txt\n"));
        assert!(!text.contains("Policy:"));
        assert!(!is_plain_host("a.example/evil?x"));
    }
}
