use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use secrecy::{ExposeSecret as _, SecretString};

use super::*;

const PLAINTEXT: &str = "Zq8~spn-client-secret.Xy7_QwErTy-very-distinctive";
const WORKSPACE: &str = "6f1c2b9e-4d3a-4e8f-9a7b-1c2d3e4f5a6b";
const RECORD: &str = "connection/0b9e7c6d/client-secret";

/// 32 distinctive key bytes per seed, so their encodings are easy to search for.
fn key_bytes(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| {
        seed.wrapping_mul(31)
            .wrapping_add((i as u8).wrapping_mul(7))
            ^ 0xA5
    })
}

fn entry(kid: &str, seed: u8) -> String {
    format!("{kid}:{}", STANDARD.encode(key_bytes(seed)))
}

fn keyring(entries: &[(&str, u8)]) -> Keyring {
    let raw = entries
        .iter()
        .map(|(kid, seed)| entry(kid, *seed))
        .collect::<Vec<_>>()
        .join(",");
    Keyring::parse(&SecretString::from(raw)).expect("test keyring parses")
}

fn context() -> SealContext {
    SealContext::new(WORKSPACE, RECORD)
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text)
}

/// Every way key `seed` could show up in a formatted string.
fn key_renderings(seed: u8) -> Vec<String> {
    let bytes = key_bytes(seed);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        STANDARD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        hex.clone(),
        hex.to_uppercase(),
        format!("{bytes:?}"),
        format!("{:?}", &bytes[..8])
            .trim_end_matches(']')
            .to_owned(),
    ]
}

fn assert_shows_no_secret(formatted: &str, seeds: &[u8]) {
    assert!(
        !formatted.contains(PLAINTEXT) && !formatted.contains("Zq8~spn"),
        "plaintext in {formatted:?}"
    );
    for seed in seeds {
        for rendering in key_renderings(*seed) {
            assert!(
                !formatted.contains(&rendering),
                "key {seed} ({rendering}) in {formatted:?}"
            );
        }
    }
}

#[test]
fn a_sealed_secret_opens_to_the_same_plaintext() {
    let keys = keyring(&[("k1", 1)]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    let opened = keys.open(&sealed, &context()).unwrap();
    assert_eq!(opened.expose_secret(), PLAINTEXT);
    assert_eq!(sealed.ciphertext().len(), PLAINTEXT.len() + TAG_LEN);
}

#[test]
fn an_empty_secret_and_the_largest_allowed_secret_round_trip() {
    let keys = keyring(&[("k1", 1)]);
    for text in [String::new(), "é".repeat(MAX_PLAINTEXT_LEN / 2)] {
        let sealed = keys.seal(&secret(&text), &context()).unwrap();
        let stored: Sealed = sealed.to_string().parse().unwrap();
        assert_eq!(
            keys.open(&stored, &context()).unwrap().expose_secret(),
            text
        );
    }
}

#[test]
fn a_secret_over_the_size_limit_is_refused() {
    let keys = keyring(&[("k1", 1)]);
    let err = keys
        .seal(&secret(&"x".repeat(MAX_PLAINTEXT_LEN + 1)), &context())
        .unwrap_err();
    assert_eq!(
        err,
        SecretError::TooLarge {
            len: MAX_PLAINTEXT_LEN + 1,
            limit: MAX_PLAINTEXT_LEN
        }
    );
}

#[test]
fn a_keyring_of_one_key_seals_opens_and_never_asks_for_rotation() {
    let keys = keyring(&[("only", 9)]);
    assert_eq!(keys.current_key_id(), "only");
    assert_eq!(keys.key_ids().collect::<Vec<_>>(), ["only"]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    assert_eq!(sealed.key_id(), "only");
    assert!(!keys.needs_rotation(&sealed));
    assert_eq!(
        keys.open(&sealed, &context()).unwrap().expose_secret(),
        PLAINTEXT
    );
}

#[test]
fn a_secret_copied_to_another_workspace_does_not_open() {
    let keys = keyring(&[("k1", 1)]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    let elsewhere = SealContext::new("0e1c2b9e-4d3a-4e8f-9a7b-1c2d3e4f5a6b", RECORD);
    assert_eq!(
        keys.open(&sealed, &elsewhere).unwrap_err(),
        SecretError::DecryptionFailed
    );
}

#[test]
fn a_secret_copied_to_another_record_does_not_open() {
    let keys = keyring(&[("k1", 1)]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    for record in [
        "connection/0b9e7c6e/client-secret",
        "connection/0b9e7c6d/webhook-secret",
        "",
    ] {
        assert_eq!(
            keys.open(&sealed, &SealContext::new(WORKSPACE, record))
                .unwrap_err(),
            SecretError::DecryptionFailed,
            "{record}"
        );
    }
}

#[test]
fn contexts_whose_fields_concatenate_alike_are_still_different_places() {
    let keys = keyring(&[("k1", 1)]);
    let sealed = keys
        .seal(&secret(PLAINTEXT), &SealContext::new("ws-a", "bc"))
        .unwrap();
    assert_eq!(
        keys.open(&sealed, &SealContext::new("ws-ab", "c"))
            .unwrap_err(),
        SecretError::DecryptionFailed
    );
    assert_ne!(
        SealContext::new("ws-a", "bc").associated_data("k1"),
        SealContext::new("ws-ab", "c").associated_data("k1")
    );
}

#[test]
fn a_tampered_nonce_does_not_open() {
    let keys = keyring(&[("k1", 1)]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    for index in 0..NONCE_LEN {
        let mut tampered = sealed.clone();
        tampered.nonce[index] ^= 0x01;
        assert_eq!(
            keys.open(&tampered, &context()).unwrap_err(),
            SecretError::DecryptionFailed
        );
    }
}

#[test]
fn a_tampered_or_truncated_ciphertext_or_tag_does_not_open() {
    let keys = keyring(&[("k1", 1)]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    for index in 0..sealed.ciphertext.len() {
        let mut tampered = sealed.clone();
        tampered.ciphertext[index] ^= 0x80;
        assert_eq!(
            keys.open(&tampered, &context()).unwrap_err(),
            SecretError::DecryptionFailed,
            "byte {index}"
        );
    }
    let mut truncated = sealed.clone();
    truncated.ciphertext.pop();
    assert_eq!(
        keys.open(&truncated, &context()).unwrap_err(),
        SecretError::DecryptionFailed
    );
    let mut extended = sealed;
    extended.ciphertext.push(0);
    assert_eq!(
        keys.open(&extended, &context()).unwrap_err(),
        SecretError::DecryptionFailed
    );
}

#[test]
fn a_tampered_key_id_does_not_open() {
    let keys = keyring(&[("k2", 2), ("k1", 1)]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    assert_eq!(sealed.key_id(), "k2");

    let mut other_key = sealed.clone();
    other_key.key_id = "k1".to_owned();
    assert_eq!(
        keys.open(&other_key, &context()).unwrap_err(),
        SecretError::DecryptionFailed
    );

    let mut unknown = sealed;
    unknown.key_id = "k9".to_owned();
    let err = keys.open(&unknown, &context()).unwrap_err();
    assert_eq!(
        err,
        SecretError::UnknownKeyId {
            key_id: "k9".to_owned()
        }
    );
    assert!(err.to_string().contains("`k9`"), "{err}");
}

#[test]
fn the_same_key_bytes_under_another_key_id_do_not_open() {
    // The key id is in the associated data: relabelling a key does not carry old ciphertexts over.
    let original = keyring(&[("k1", 1)]);
    let relabelled = keyring(&[("k1-renamed", 1)]);
    let mut sealed = original.seal(&secret(PLAINTEXT), &context()).unwrap();
    sealed.key_id = "k1-renamed".to_owned();
    assert_eq!(
        relabelled.open(&sealed, &context()).unwrap_err(),
        SecretError::DecryptionFailed
    );
}

#[test]
fn a_secret_under_an_old_key_opens_after_a_new_key_is_prepended_and_reseal_moves_it() {
    let before = keyring(&[("k1", 1)]);
    let old = before.seal(&secret(PLAINTEXT), &context()).unwrap();

    let after = keyring(&[("k2", 2), ("k1", 1)]);
    assert_eq!(after.current_key_id(), "k2");
    assert_eq!(after.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
    assert_eq!(
        after.open(&old, &context()).unwrap().expose_secret(),
        PLAINTEXT
    );
    assert!(after.needs_rotation(&old));

    let moved = after.reseal(&old, &context()).unwrap();
    assert_eq!(moved.key_id(), "k2");
    assert!(!after.needs_rotation(&moved));
    assert_eq!(
        after.open(&moved, &context()).unwrap().expose_secret(),
        PLAINTEXT
    );

    // Once the old key is retired, the moved value still opens and the old one names its key.
    let retired = keyring(&[("k2", 2)]);
    assert_eq!(
        retired.open(&moved, &context()).unwrap().expose_secret(),
        PLAINTEXT
    );
    assert_eq!(
        retired.reseal(&old, &context()).unwrap_err(),
        SecretError::UnknownKeyId {
            key_id: "k1".to_owned()
        }
    );
}

#[test]
fn reseal_keeps_the_context_binding() {
    let keys = keyring(&[("k2", 2), ("k1", 1)]);
    let old = keyring(&[("k1", 1)])
        .seal(&secret(PLAINTEXT), &context())
        .unwrap();
    let elsewhere = SealContext::new(WORKSPACE, "connection/other/client-secret");
    assert_eq!(
        keys.reseal(&old, &elsewhere).unwrap_err(),
        SecretError::DecryptionFailed
    );
    let moved = keys.reseal(&old, &context()).unwrap();
    assert_eq!(
        keys.open(&moved, &elsewhere).unwrap_err(),
        SecretError::DecryptionFailed
    );
}

#[test]
fn two_seals_of_the_same_plaintext_differ() {
    let keys = keyring(&[("k1", 1)]);
    let first = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    let second = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    assert_ne!(first.nonce(), second.nonce());
    assert_ne!(first.ciphertext(), second.ciphertext());
    assert_ne!(first.to_string(), second.to_string());
}

#[test]
fn the_stored_form_round_trips_and_has_one_spelling() {
    let keys = keyring(&[("key-2025_11", 1)]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    let stored = sealed.to_string();
    assert!(stored.starts_with("v1.key-2025_11."), "{stored}");
    assert_eq!(stored.split('.').count(), 4);
    let parsed: Sealed = stored.parse().unwrap();
    assert_eq!(parsed, sealed);
    assert_eq!(parsed.to_string(), stored);

    let json = serde_json::to_string(&sealed).unwrap();
    assert_eq!(json, format!("\"{stored}\""));
    let back: Sealed = serde_json::from_str(&json).unwrap();
    assert_eq!(
        keys.open(&back, &context()).unwrap().expose_secret(),
        PLAINTEXT
    );
    assert!(serde_json::from_str::<Sealed>("\"v1.k1.x.y\"").is_err());
}

#[test]
fn malformed_stored_strings_are_rejected() {
    let keys = keyring(&[("k1", 1)]);
    let good = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    let nonce = URL_SAFE_NO_PAD.encode(good.nonce());
    let ct = URL_SAFE_NO_PAD.encode(good.ciphertext());
    let cases = [
        String::new(),
        "v1".to_owned(),
        PLAINTEXT.to_owned(),
        format!("v1.k1.{nonce}"),
        format!("v1.k1.{nonce}.{ct}.extra"),
        format!("v2.k1.{nonce}.{ct}"),
        format!("V1.k1.{nonce}.{ct}"),
        format!("v1..{nonce}.{ct}"),
        format!("v1.k 1.{nonce}.{ct}"),
        format!("v1.k1:x.{nonce}.{ct}"),
        format!("v1.{}.{nonce}.{ct}", "k".repeat(MAX_KEY_ID_LEN + 1)),
        format!("v1.k1..{ct}"),
        format!("v1.k1.{}.{ct}", URL_SAFE_NO_PAD.encode([0u8; 11])),
        format!("v1.k1.{}.{ct}", URL_SAFE_NO_PAD.encode([0u8; 13])),
        format!("v1.k1.{nonce}=.{ct}"),
        format!("v1.k1.+{}.{ct}", &nonce[1..]),
        format!("v1.k1.{nonce}./{}", &ct[1..]),
        format!("v1.k1.{nonce}.{ct}="),
        format!("v1.k1.{nonce}.{ct}!"),
        format!("v1.k1.{nonce}."),
        format!(
            "v1.k1.{nonce}.{}",
            URL_SAFE_NO_PAD.encode([0u8; TAG_LEN - 1])
        ),
        format!(
            "v1.k1.{nonce}.{}",
            URL_SAFE_NO_PAD.encode(vec![0u8; MAX_PLAINTEXT_LEN + TAG_LEN + 1])
        ),
        format!("v1.k1.{nonce}.{ct} "),
        format!(" v1.k1.{nonce}.{ct}"),
        "x".repeat(100_000),
    ];
    for case in &cases {
        match case.parse::<Sealed>() {
            Err(err @ SecretError::Malformed { .. }) => {
                let shown = err.to_string();
                assert!(
                    !shown.contains(&ct) && !shown.contains(PLAINTEXT),
                    "{shown}"
                );
            }
            other => panic!("{case:?} gave {other:?}"),
        }
    }
    // A final character with its unused low bit set is a second spelling of the same bytes: refused.
    assert_ne!(good.ciphertext().len() % 3, 0, "the test needs unused bits");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut spelling = ct.clone().into_bytes();
    let last = spelling.len() - 1;
    let position = alphabet.iter().position(|c| *c == spelling[last]).unwrap();
    spelling[last] = alphabet[position ^ 1];
    let second = format!("v1.k1.{nonce}.{}", String::from_utf8(spelling).unwrap());
    assert!(matches!(
        second.parse::<Sealed>(),
        Err(SecretError::Malformed { .. })
    ));
}

#[test]
fn invalid_keyrings_are_refused_without_showing_a_key() {
    let k1 = entry("k1", 1);
    let key = STANDARD.encode(key_bytes(1));
    let short = format!("k1:{}", STANDARD.encode([7u8; 31]));
    let long = format!("k1:{}", STANDARD.encode([7u8; 33]));
    let cases = [
        String::new(),
        ",".to_owned(),
        format!("{k1},"),
        key.clone(),
        format!("{key}:k1"),
        format!(":{key}"),
        format!("k.1:{key}"),
        format!("{}:{key}", "k".repeat(MAX_KEY_ID_LEN + 1)),
        format!("{k1},{k1}"),
        short,
        long,
        format!("k1:{}", URL_SAFE_NO_PAD.encode(key_bytes(1))),
        format!("k1: {key}"),
    ];
    for case in &cases {
        match Keyring::parse(&SecretString::from(case.as_str())) {
            Err(err @ SecretError::KeyringInvalid { .. }) => {
                assert_shows_no_secret(&err.to_string(), &[1]);
                assert_shows_no_secret(&format!("{err:?}"), &[1]);
            }
            other => panic!("{case:?} gave {other:?}"),
        }
    }
}

#[test]
fn keyring_entries_may_have_spaces_around_them() {
    let raw = format!(" {} , {} ", entry("k2", 2), entry("k1", 1));
    let keys = Keyring::parse(&SecretString::from(raw)).unwrap();
    assert_eq!(keys.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
}

#[test]
fn formatting_never_shows_key_bytes_or_plaintext() {
    let keys = keyring(&[("k2", 2), ("k1", 1)]);
    let sealed = keys.seal(&secret(PLAINTEXT), &context()).unwrap();
    let mut tampered = sealed.clone();
    tampered.ciphertext[0] ^= 1;
    let errors = [
        keys.open(&tampered, &context()).unwrap_err(),
        keyring(&[("k3", 3)]).open(&sealed, &context()).unwrap_err(),
        PLAINTEXT.parse::<Sealed>().unwrap_err(),
        keys.seal(&secret(&PLAINTEXT.repeat(1000)), &context())
            .unwrap_err(),
        Keyring::parse(&SecretString::from(format!("{},k2:zz", entry("k2", 2)))).unwrap_err(),
        SecretError::SealFailed,
    ];
    let mut shown = vec![
        format!("{keys:?}"),
        format!("{keys:#?}"),
        keys.to_string(),
        format!("{sealed:?}"),
        format!("{sealed:#?}"),
        sealed.to_string(),
        format!("{:?}", keys.open(&sealed, &context()).unwrap()),
        format!("{:?}", keys.open(&tampered, &context())),
    ];
    for err in &errors {
        shown.push(err.to_string());
        shown.push(format!("{err:?}"));
        shown.push(format!("{:?}", anyhow::Error::new(err.clone())));
    }
    for text in &shown {
        assert_shows_no_secret(text, &[1, 2, 3]);
    }
    assert!(format!("{keys:?}").contains("k2") && format!("{keys:?}").contains("k1"));
    assert_eq!(keys.to_string(), "keyring of 2 key(s), current `k2`");
}

proptest! {
    #[test]
    fn any_secret_opens_in_its_own_place_and_nowhere_else(
        text in ".{0,200}",
        workspace in "[a-z0-9-]{0,40}",
        record in ".{0,60}",
        other_record in ".{0,60}",
    ) {
        let keys = keyring(&[("k2", 2), ("k1", 1)]);
        let here = SealContext::new(workspace.clone(), record.clone());
        let sealed = keys.seal(&secret(&text), &here).unwrap();
        let stored: Sealed = sealed.to_string().parse().unwrap();
        let opened = keys.open(&stored, &here).unwrap();
        prop_assert_eq!(opened.expose_secret(), text.as_str());
        if other_record != record {
            let there = SealContext::new(workspace, other_record);
            prop_assert_eq!(keys.open(&stored, &there).unwrap_err(), SecretError::DecryptionFailed);
        }
    }

    #[test]
    fn parsing_any_stored_text_never_panics(text in "(v1\\.)?[A-Za-z0-9_.=+/-]{0,120}") {
        let keys = keyring(&[("k1", 1)]);
        if let Ok(sealed) = text.parse::<Sealed>() {
            prop_assert_eq!(sealed.to_string(), text);
            prop_assert!(keys.open(&sealed, &context()).is_err());
        }
    }
}

/// Sealed once by this version; if this stops opening, every stored secret would too (the format,
/// the associated-data layout or the key parsing changed). Never regenerate it: add a new format.
const SEALED_BY_V1: &str = "v1.k1.mcwLPP2tf9HHUAzb.EkkyFOC3eWMHW4apSVAnOje1pOQ63PcS-by-apmDhKNd4XwBwDkkt-h6qth0MMzCyZC603d_ySNTaUMEPJta2CU";

#[test]
fn a_value_sealed_by_format_v1_still_opens() {
    let keys = keyring(&[("k2", 2), ("k1", 1)]);
    let sealed: Sealed = SEALED_BY_V1.parse().unwrap();
    assert_eq!(
        keys.open(&sealed, &context()).unwrap().expose_secret(),
        PLAINTEXT
    );
    assert!(keys.needs_rotation(&sealed));
}

#[test]
fn a_keyring_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Keyring>();
    shareable::<Sealed>();
    shareable::<SecretError>();
}
