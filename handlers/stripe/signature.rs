//! The `Stripe-Signature` header: `t=<unix seconds>,v1=<hex hmac>[,v1=…][,v0=…]`.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 under the endpoint's signing secret (the whole
//! `whsec_…` string is the key). During a secret rotation Stripe sends one `v1` per active secret
//! and we may hold several secrets: any (secret, signature) pair that matches is accepted. The
//! comparison is the `hmac` crate's `verify_slice`, which is constant-time. A timestamp further than
//! the tolerance from now (either way) is refused, so a captured delivery cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's own libraries' default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    #[error("no signature matches this endpoint's signing secret")]
    NoMatch,
    #[error("the signature's timestamp is outside the {TOLERANCE_SECS} s tolerance")]
    Stale,
}

/// Checks `header` for `payload` against every secret in `secrets` at time `now` (unix seconds).
pub fn verify(
    header: &str,
    payload: &[u8],
    secrets: &[&str],
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = Some(value),
            "v1" => {
                if let Some(bytes) = decode_hex(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp_text = timestamp.ok_or(SignatureError::Malformed)?;
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut matched = false;
    for secret in secrets {
        for signature in &signatures {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                continue;
            };
            mac.update(timestamp_text.as_bytes());
            mac.update(b".");
            mac.update(payload);
            // Every pair is checked (no early exit), so timing says nothing about which matched.
            matched |= mac.verify_slice(signature).is_ok();
        }
    }
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    // Checked after the signature, so an attacker cannot learn anything from the order of answers,
    // and the timestamp is trusted only once signed.
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The header Stripe would send for `payload` signed with `secret` at `timestamp` (for tests and
/// local tooling).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    format!(
        "t={timestamp},v1={}",
        hex_signature(payload, secret, timestamp)
    )
}

/// The hex `v1` value for `payload` under `secret` at `timestamp`.
pub fn hex_signature(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    #[test]
    fn a_signature_under_any_configured_secret_is_accepted() {
        let now = 1_700_000_000;
        let old = sign(BODY, "whsec_old", now);
        assert_eq!(verify(&old, BODY, &["whsec_new", "whsec_old"], now), Ok(()));
        // Stripe sends one v1 per active secret while a rotation is in progress.
        let both = format!("{old},v1={}", hex_signature(BODY, "whsec_new", now));
        assert_eq!(verify(&both, BODY, &["whsec_new"], now), Ok(()));
        assert_eq!(
            verify(&old, BODY, &["whsec_other"], now),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_tampered_body_a_stale_timestamp_or_a_broken_header_is_refused() {
        let now = 1_700_000_000;
        let header = sign(BODY, "whsec_a", now);
        assert_eq!(
            verify(&header, b"{}", &["whsec_a"], now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&header, BODY, &["whsec_a"], now + TOLERANCE_SECS + 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&header, BODY, &["whsec_a"], now + TOLERANCE_SECS),
            Ok(())
        );
        for broken in [
            "",
            "t=abc,v1=00",
            "v1=00",
            &format!("t={now}"),
            &format!("t={now},v0=ab"),
        ] {
            assert_eq!(
                verify(broken, BODY, &["whsec_a"], now),
                Err(SignatureError::Malformed),
                "{broken}"
            );
        }
    }
}
