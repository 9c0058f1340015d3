//! The axum side: `Principal` as an extractor and the one response every failure gets.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Authenticator, MAX_TOKEN_LEN, Principal, Reason};
use crate::app::AppState;
use crate::functions::http::problem::Problem;

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.auth().clone()
    }
}

/// A handler that takes a [`Principal`] runs only for an authenticated caller.
///
/// Works with any router state the [`Authenticator`] can be taken from (`AppState` in the app, the
/// `Authenticator` itself in tests).
impl<S> FromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let result = match bearer_token(&parts.headers) {
            Ok(token) => Authenticator::from_ref(state).authenticate(token).await,
            Err(reason) => Err(reason),
        };
        result.map_err(|reason| {
            // The reason helps whoever debugs a sign-in; the token itself is never logged.
            match reason {
                Reason::MissingHeader => tracing::debug!(%reason, "request not authenticated"),
                Reason::KeysUnavailable => tracing::warn!(%reason, "request not authenticated"),
                _ => tracing::info!(%reason, "request not authenticated"),
            }
            AuthRejection::from(reason)
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1).
fn bearer_token(headers: &HeaderMap) -> Result<&str, Reason> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(Reason::MissingHeader)?;
    if values.next().is_some() {
        return Err(Reason::MalformedHeader);
    }
    let value = value.to_str().map_err(|_| Reason::MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(Reason::MalformedHeader)?;
    let token = token.trim_start_matches(' ');
    // A compact JWS is base64url segments joined by dots; anything else cannot be a token of ours.
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.len() > MAX_TOKEN_LEN
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(Reason::MalformedHeader);
    }
    Ok(token)
}

/// What an unauthenticated request gets.
///
/// Every failure of the caller's (no header, bad token, wrong tenant, ...) is one identical `401`,
/// so a response never tells an attacker which check a forged token failed. Only when no signing keys
/// could be fetched at all is the answer `503`: the token may be fine and the client should retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRejection {
    Unauthenticated,
    Unavailable,
}

impl From<Reason> for AuthRejection {
    fn from(reason: Reason) -> Self {
        match reason {
            Reason::KeysUnavailable => AuthRejection::Unavailable,
            _ => AuthRejection::Unauthenticated,
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Unauthenticated => {
                let mut response = Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Authentication is required",
                    None,
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            AuthRejection::Unavailable => {
                let mut response = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The service is temporarily unavailable",
                    None,
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("header"),
            );
        }
        headers
    }

    #[test]
    fn a_bearer_token_is_taken_from_the_header() {
        assert_eq!(bearer_token(&headers(&["Bearer a.b.c"])), Ok("a.b.c"));
        assert_eq!(bearer_token(&headers(&["bearer  a-_.b.c"])), Ok("a-_.b.c"));
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(bearer_token(&headers(&[])), Err(Reason::MissingHeader));
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic YWxpY2U6c2VjcmV0",
            "Bearer a.b.c extra",
            "Bearer a+b/c=",
            "Token a.b.c",
        ] {
            assert_eq!(
                bearer_token(&headers(&[bad])),
                Err(Reason::MalformedHeader),
                "{bad}"
            );
        }
        assert_eq!(
            bearer_token(&headers(&["Bearer a.b.c", "Bearer d.e.f"])),
            Err(Reason::MalformedHeader)
        );
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(
            bearer_token(&headers(&[&huge])),
            Err(Reason::MalformedHeader)
        );
    }
}
