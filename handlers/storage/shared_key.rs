//! Shared-key signing for the 1.x blob and queue clients, which only support Entra ID tokens.
//!
//! The policy is pushed into `ClientOptions::per_try_policies`, so it runs after the SDK has set every
//! header (`x-ms-version`, conditional headers, content type) and again on every retry, with a fresh date.
//! The algorithm is the Blob/Queue "Shared Key" scheme (version 2015-02-21 and later):
//! <https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key>.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use time::OffsetDateTime;
use time::macros::format_description;

use super::connection::SharedKey;

/// Signs each request with the account key.
#[derive(Debug)]
pub(crate) struct SharedKeyPolicy {
    key: SharedKey,
}

impl SharedKeyPolicy {
    pub(crate) fn new(key: SharedKey) -> Arc<Self> {
        Arc::new(Self { key })
    }
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        request.insert_header("x-ms-date", rfc1123(OffsetDateTime::now_utc()));
        let content_length = request.body().len().unwrap_or(0);
        let string_to_sign = string_to_sign(request, content_length, &self.key.account);
        let signature = sign(&self.key, &string_to_sign)?;
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{}", self.key.account, signature),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

fn sign(key: &SharedKey, string_to_sign: &str) -> azure_core::Result<String> {
    use base64::Engine as _;
    // Both failures are impossible for a key validated at parse time; the messages stay key-free anyway.
    let bytes = key.key_bytes().map_err(|_| {
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "the account key is not valid base64",
        )
    })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&bytes).map_err(|_| {
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "the account key cannot be used for HMAC",
        )
    })?;
    mac.update(string_to_sign.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn rfc1123(at: OffsetDateTime) -> String {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    // Formatting a UTC timestamp with a fixed description cannot fail.
    at.format(&format).unwrap_or_default()
}

fn string_to_sign(request: &Request, content_length: u64, account: &str) -> String {
    let headers = request.headers();
    let header = |name: &'static str| {
        headers
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
            .unwrap_or_default()
            .to_owned()
    };
    // From 2015-02-21 a zero length is signed as the empty string.
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut out = String::new();
    for part in [
        request.method().as_ref().to_owned(),
        header("content-encoding"),
        header("content-language"),
        length,
        header("content-md5"),
        header("content-type"),
        String::new(), // Date: we send x-ms-date instead
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ] {
        out.push_str(&part);
        out.push('\n');
    }

    let mut ms_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ms-"))
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                value.as_str().trim().to_owned(),
            )
        })
        .collect();
    ms_headers.sort();
    for (name, value) in ms_headers {
        out.push_str(&name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }

    out.push_str(&canonicalized_resource(request.url(), account));
    out
}

/// `/{account}{encoded path}` then one `\nname:v1,v2` line per query parameter, names lowercased and sorted,
/// values decoded and sorted.
fn canonicalized_resource(url: &Url, account: &str) -> String {
    let mut out = format!("/{account}{}", url.path());
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in url.query_pairs() {
        let name = name.to_ascii_lowercase();
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value.into_owned()),
            None => params.push((name, vec![value.into_owned()])),
        }
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut values) in params {
        values.sort();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::Method;
    use secrecy::SecretString;

    #[test]
    fn rfc1123_dates_are_in_gmt() {
        let at = time::macros::datetime!(1994-11-06 08:49:37 UTC);
        assert_eq!(rfc1123(at), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn canonicalized_resource_sorts_and_lowercases_query_parameters() {
        let url = Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/container?restype=container&comp=list&prefix=a%2Fb",
        )
        .unwrap();
        assert_eq!(
            canonicalized_resource(&url, "devstoreaccount1"),
            "/devstoreaccount1/devstoreaccount1/container\ncomp:list\nprefix:a/b\nrestype:container"
        );
    }

    #[test]
    fn string_to_sign_has_the_documented_shape() {
        let mut request = Request::new(
            Url::parse("https://acct.queue.core.windows.net/q/messages?visibilitytimeout=30")
                .unwrap(),
            Method::Put,
        );
        request.insert_header("x-ms-version", "2026-04-06");
        request.insert_header("x-ms-date", "Sun, 06 Nov 1994 08:49:37 GMT");
        request.insert_header("content-type", "application/xml");
        let signed = string_to_sign(&request, 12, "acct");
        assert_eq!(
            signed,
            "PUT\n\n\n12\n\napplication/xml\n\n\n\n\n\n\n\
             x-ms-date:Sun, 06 Nov 1994 08:49:37 GMT\nx-ms-version:2026-04-06\n\
             /acct/q/messages\nvisibilitytimeout:30"
        );
    }

    #[test]
    fn signature_is_base64_hmac_sha256_of_the_string_to_sign() {
        // HMAC-SHA256 with key "key" of "The quick brown fox jumps over the lazy dog" (RFC 4231 style vector).
        let key = SharedKey {
            account: "acct".into(),
            key: SecretString::from("a2V5".to_owned()),
        };
        assert_eq!(
            sign(&key, "The quick brown fox jumps over the lazy dog").unwrap(),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }
}
