//! Black-box tests of authentication: real tokens, a loopback identity provider, the real
//! extractor.

mod support;

use std::time::Duration;

use axum::http::{StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey};
use secrecy::SecretString;
use serde_json::json;

use super::dev::{DEFAULT_DEV_TENANT, DevTokenRequest, mint_dev_token};
use super::{Authenticator, EntraOptions, Reason};
use crate::config::{AuthSettings, Environment};
use support::{
    Idp, KEYS, OTHER_TENANT, TENANT, USER, bearer, call, claims, claims_with, entra, issuer, now,
    quick_refresh, router, sign, sign_with, unsigned,
};

const EXPECTED_401_BODY: &str = r#"{"type":"urn:sixpence:problem:unauthenticated","title":"Authentication is required","status":401}"#;

#[tokio::test]
async fn a_valid_token_yields_the_principal() {
    let idp = Idp::start(&[&KEYS.a]).await;
    let router = router(entra(&idp, &[], EntraOptions::default()));

    let reply = call(&router, Some(&bearer(&sign(&KEYS.a, "key-a", &claims())))).await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({
            "user_id": USER,
            "tenant_id": TENANT,
            "verified_email": "alice@contoso.com",
            "email": "alice@contoso.com",
            "display_name": "Alice Example",
        })
    );
}

#[tokio::test]
async fn any_configured_audience_is_accepted_and_the_email_may_be_unverified() {
    let idp = Idp::start(&[&KEYS.a]).await;
    let router = router(entra(&idp, &[], EntraOptions::default()));
    let token = sign(
        &KEYS.a,
        "key-a",
        &claims_with(json!({
            "aud": "11111111-2222-3333-4444-555555555555",
            "xms_edov": null,
        })),
    );

    let reply = call(&router, Some(&bearer(&token))).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["verified_email"], json!(null));
    assert_eq!(reply.json()["email"], json!("alice@contoso.com"));
}

#[tokio::test]
async fn tokens_within_the_clock_skew_are_accepted() {
    let idp = Idp::start(&[&KEYS.a]).await;
    let auth = entra(&idp, &[], EntraOptions::default());
    let now = now();

    let just_expired = claims_with(json!({"exp": now - 60}));
    let almost_valid = claims_with(json!({"nbf": now + 60, "iat": now + 60}));

    for claims in [just_expired, almost_valid] {
        let token = sign(&KEYS.a, "key-a", &claims);
        assert!(auth.authenticate(&token).await.is_ok(), "{claims}");
    }
}

/// Every way a request can fail authentication, the reason it must fail for, and the one response
/// all of them share.
#[tokio::test]
async fn every_failure_is_the_same_401_and_leaks_nothing() {
    let idp = Idp::start(&[&KEYS.a]).await;
    // Only TENANT may sign in, so `disallowed tenant` fails for its tenant alone.
    let auth = entra(&idp, &[TENANT], EntraOptions::default());
    let router = router(auth.clone());
    // Load the keys first, so `unknown kid` below is refused by the rate limit, not a cold start.
    assert!(
        auth.authenticate(&sign(&KEYS.a, "key-a", &claims()))
            .await
            .is_ok()
    );
    let now = now();
    let a = &KEYS.a;
    let dev_token = mint_dev_token(
        &SecretString::from("local-development-only"),
        &DevTokenRequest {
            email: "mallory@example.com".to_owned(),
            tenant: Some(TENANT.parse().expect("guid")),
            name: None,
            lifetime: Duration::from_secs(3600),
        },
    )
    .expect("dev token");

    let tokens: Vec<(&str, String, Reason)> = vec![
        (
            "wrong signature",
            sign(&KEYS.b, "key-a", &claims()),
            Reason::BadSignature,
        ),
        (
            "wrong issuer",
            sign(
                a,
                "key-a",
                &claims_with(json!({"iss": issuer(OTHER_TENANT)})),
            ),
            Reason::WrongIssuer,
        ),
        (
            "v1 issuer",
            sign(
                a,
                "key-a",
                &claims_with(json!({"iss": format!("https://sts.windows.net/{TENANT}/")})),
            ),
            Reason::WrongIssuer,
        ),
        (
            "wrong audience",
            sign(
                a,
                "key-a",
                &claims_with(json!({"aud": "api://someone-else"})),
            ),
            Reason::WrongAudience,
        ),
        (
            "expired",
            sign(a, "key-a", &claims_with(json!({"exp": now - 300}))),
            Reason::Expired,
        ),
        (
            "not yet valid",
            sign(a, "key-a", &claims_with(json!({"nbf": now + 300}))),
            Reason::NotYetValid,
        ),
        (
            "nbf as a string (CVE-2026-25537)",
            sign(a, "key-a", &claims_with(json!({"nbf": "99999999999"}))),
            Reason::ClaimsInvalid,
        ),
        (
            "no nbf",
            sign(a, "key-a", &claims_with(json!({"nbf": null}))),
            Reason::ClaimsInvalid,
        ),
        (
            "no exp",
            sign(a, "key-a", &claims_with(json!({"exp": null}))),
            Reason::ClaimsInvalid,
        ),
        (
            "alg none",
            unsigned(
                &json!({"alg": "none", "typ": "JWT", "kid": "key-a"}),
                &claims(),
            ),
            Reason::MalformedToken,
        ),
        (
            "HS256 keyed with the public key PEM",
            sign_with(
                Algorithm::HS256,
                &EncodingKey::from_secret(a.public_pem.as_bytes()),
                "key-a",
                &claims(),
            ),
            Reason::AlgorithmNotAllowed,
        ),
        (
            "HS256 keyed with the modulus",
            sign_with(
                Algorithm::HS256,
                &EncodingKey::from_secret(&a.modulus),
                "key-a",
                &claims(),
            ),
            Reason::AlgorithmNotAllowed,
        ),
        (
            "RS512 with the right key",
            sign_with(Algorithm::RS512, &a.encoding, "key-a", &claims()),
            Reason::AlgorithmNotAllowed,
        ),
        (
            "PS256 with the right key",
            sign_with(Algorithm::PS256, &a.encoding, "key-a", &claims()),
            Reason::AlgorithmNotAllowed,
        ),
        (
            "disallowed tenant",
            sign(
                a,
                "key-a",
                &claims_with(json!({"tid": OTHER_TENANT, "iss": issuer(OTHER_TENANT)})),
            ),
            Reason::TenantNotAllowed,
        ),
        (
            "app-only token",
            sign(
                a,
                "key-a",
                &claims_with(json!({"scp": null, "roles": ["Reader"], "idtyp": "app"})),
            ),
            Reason::NotAUser,
        ),
        (
            "no oid",
            sign(a, "key-a", &claims_with(json!({"oid": null}))),
            Reason::ClaimsInvalid,
        ),
        (
            "tid not a GUID",
            sign(
                a,
                "key-a",
                &claims_with(json!({"tid": "contoso", "iss": issuer("contoso")})),
            ),
            Reason::ClaimsInvalid,
        ),
        (
            "unknown kid",
            sign(&KEYS.b, "key-b", &claims()),
            Reason::UnknownKey,
        ),
        (
            "no kid",
            {
                let header = jsonwebtoken::Header::new(Algorithm::RS256);
                jsonwebtoken::encode(&header, &claims(), &a.encoding).expect("sign")
            },
            Reason::UnknownKey,
        ),
        (
            "development token in production",
            dev_token,
            Reason::AlgorithmNotAllowed,
        ),
        ("not a JWT", "not-a-jwt".to_owned(), Reason::MalformedToken),
    ];

    let mut headers: Vec<(String, Option<String>)> = vec![
        ("missing header".to_owned(), None),
        (
            "basic auth".to_owned(),
            Some("Basic YWxpY2U6c2VjcmV0".to_owned()),
        ),
        ("bearer without token".to_owned(), Some("Bearer".to_owned())),
        (
            "token with spaces".to_owned(),
            Some(format!("Bearer {} trailing", sign(a, "key-a", &claims()))),
        ),
    ];
    for (name, token, reason) in &tokens {
        assert_eq!(
            auth.authenticate(token).await.err(),
            Some(*reason),
            "{name}"
        );
        headers.push(((*name).to_owned(), Some(bearer(token))));
    }

    for (name, header_value) in &headers {
        let reply = call(&router, header_value.as_deref()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            reply
                .headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..]),
            "{name}"
        );
        assert_eq!(
            reply
                .headers
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "{name}"
        );
        assert_eq!(
            std::str::from_utf8(&reply.body).expect("utf-8"),
            EXPECTED_401_BODY,
            "{name}: every failure must have the same body"
        );
        if let Some(value) = header_value {
            let body = String::from_utf8_lossy(&reply.body);
            for part in value.split(['.', ' ']).filter(|p| p.len() >= 8) {
                assert!(!body.contains(part), "{name}: body echoes the token");
            }
        }
    }
    // The shared IdP saw one fetch: none of the failures made us call Entra again.
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn keys_are_fetched_once_for_many_requests() {
    let idp = Idp::start(&[&KEYS.a]).await;
    let router = router(entra(&idp, &[], EntraOptions::default()));
    let header = bearer(&sign(&KEYS.a, "key-a", &claims()));

    // A burst before anything is cached waits for one fetch rather than starting many.
    let burst = futures::future::join_all((0..32).map(|_| call(&router, Some(&header)))).await;
    for _ in 0..32 {
        assert_eq!(call(&router, Some(&header)).await.status, StatusCode::OK);
    }

    assert!(burst.iter().all(|reply| reply.status == StatusCode::OK));
    assert_eq!(idp.jwks_fetches(), 1);
    assert_eq!(idp.metadata_fetches(), 1);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refresh() {
    let idp = Idp::start(&[&KEYS.a]).await;
    let auth = entra(&idp, &[], quick_refresh(Duration::from_millis(200)));
    let old = sign(&KEYS.a, "key-a", &claims());
    let new = sign(&KEYS.b, "key-b", &claims());
    assert!(auth.authenticate(&old).await.is_ok());

    // Entra rotates: key-b is published and key-a withdrawn.
    idp.publish(&[&KEYS.b]);
    tokio::time::sleep(Duration::from_millis(250)).await;

    assert!(auth.authenticate(&new).await.is_ok());
    assert!(auth.authenticate(&new).await.is_ok());
    assert_eq!(idp.jwks_fetches(), 2);
    // The withdrawn key is gone with the refresh.
    assert_eq!(
        auth.authenticate(&old).await.err(),
        Some(Reason::UnknownKey)
    );
}

#[tokio::test]
async fn refresh_on_an_unknown_kid_is_rate_limited() {
    let idp = Idp::start(&[&KEYS.a]).await;
    let interval = Duration::from_secs(1);
    let auth = entra(&idp, &[], quick_refresh(interval));
    // Signing is slow in a debug build: sign everything before the clock starts mattering.
    let valid = sign(&KEYS.a, "key-a", &claims());
    let new = sign(&KEYS.b, "key-b", &claims());
    let random_kids: Vec<String> = (0..20)
        .map(|i| sign(&KEYS.a, &format!("made-up-{i}"), &claims()))
        .collect();
    assert!(auth.authenticate(&valid).await.is_ok());
    idp.publish(&[&KEYS.a, &KEYS.b]);

    // Right after a fetch, a flood of unknown kids costs Entra nothing...
    for token in &random_kids {
        assert_eq!(
            auth.authenticate(token).await.err(),
            Some(Reason::UnknownKey)
        );
    }
    assert_eq!(
        auth.authenticate(&new).await.err(),
        Some(Reason::UnknownKey)
    );
    assert_eq!(idp.jwks_fetches(), 1);

    // ...and once the interval has passed, a concurrent flood costs it exactly one fetch.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let results =
        futures::future::join_all(random_kids.iter().map(|token| auth.authenticate(token))).await;
    assert!(results.iter().all(|r| *r == Err(Reason::UnknownKey)));
    assert_eq!(idp.jwks_fetches(), 2);
    // That fetch brought key-b, which now verifies without another.
    assert!(auth.authenticate(&new).await.is_ok());
    assert_eq!(idp.jwks_fetches(), 2);
}

#[tokio::test]
async fn no_reachable_keys_is_a_503_not_a_401() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let auth = Authenticator::new(
        Environment::Production,
        &support::entra_settings(format!("http://{closed}/organizations"), &[]),
        EntraOptions::default(),
    )
    .expect("authenticator");
    let token = sign(&KEYS.a, "key-a", &claims());

    assert_eq!(
        auth.authenticate(&token).await.err(),
        Some(Reason::KeysUnavailable)
    );
    let reply = call(&router(auth), Some(&bearer(&token))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json()["type"],
        json!("urn:sixpence:problem:unavailable")
    );
}

fn dev_settings(passphrase: &str) -> AuthSettings {
    AuthSettings {
        authority: crate::config::DEFAULT_AUTH_AUTHORITY.to_owned(),
        audiences: Vec::new(),
        allowed_tenants: Vec::new(),
        dev_auth: Some(SecretString::from(passphrase.to_owned())),
    }
}

fn dev_request(email: &str) -> DevTokenRequest {
    DevTokenRequest {
        email: email.to_owned(),
        tenant: None,
        name: Some("Alice Dev".to_owned()),
        lifetime: Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn a_dev_token_is_accepted_in_development() {
    let auth = Authenticator::new(
        Environment::Development,
        &dev_settings("local-development-only"),
        EntraOptions::default(),
    )
    .expect("authenticator");
    let token = mint_dev_token(
        &SecretString::from("local-development-only"),
        &dev_request("alice@example.com"),
    )
    .expect("token");

    let reply = call(&router(auth.clone()), Some(&bearer(&token))).await;

    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["tenant_id"], json!(DEFAULT_DEV_TENANT.to_string()));
    assert_eq!(body["verified_email"], json!("alice@example.com"));
    assert_eq!(body["display_name"], json!("Alice Dev"));
    // Without an audience no Entra verifier exists, so an RS256 token is refused outright.
    assert_eq!(
        auth.authenticate(&sign(&KEYS.a, "key-a", &claims()))
            .await
            .err(),
        Some(Reason::AlgorithmNotAllowed)
    );
    // A token from another passphrase is not ours.
    let foreign = mint_dev_token(
        &SecretString::from("other"),
        &dev_request("alice@example.com"),
    )
    .expect("token");
    assert_eq!(
        auth.authenticate(&foreign).await.err(),
        Some(Reason::BadSignature)
    );
}

#[tokio::test]
async fn a_dev_token_is_refused_in_production() {
    let idp = Idp::start(&[&KEYS.a]).await;
    let production = entra(&idp, &[], EntraOptions::default());
    let token = mint_dev_token(
        &SecretString::from("local-development-only"),
        &dev_request("alice@example.com"),
    )
    .expect("token");

    assert_eq!(
        production.authenticate(&token).await.err(),
        Some(Reason::AlgorithmNotAllowed)
    );
    let reply = call(&router(production), Some(&bearer(&token))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "a dev token must not even reach the key cache"
    );

    // Settings built by hand cannot switch development sign-in on in production either.
    let mut settings = support::entra_settings(idp.authority(), &[]);
    settings.dev_auth = Some(SecretString::from("local-development-only"));
    assert!(
        Authenticator::new(Environment::Production, &settings, EntraOptions::default()).is_err()
    );
}

#[tokio::test]
async fn development_can_also_accept_entra_tokens() {
    let idp = Idp::start(&[&KEYS.a]).await;
    let mut settings = support::entra_settings(idp.authority(), &[]);
    settings.dev_auth = Some(SecretString::from("local-development-only"));
    let auth = Authenticator::new(Environment::Development, &settings, EntraOptions::default())
        .expect("authenticator");
    let dev = mint_dev_token(
        &SecretString::from("local-development-only"),
        &dev_request("alice@example.com"),
    )
    .expect("token");

    assert!(auth.authenticate(&dev).await.is_ok());
    assert!(
        auth.authenticate(&sign(&KEYS.a, "key-a", &claims()))
            .await
            .is_ok()
    );
    assert_eq!(idp.jwks_fetches(), 1);
}
