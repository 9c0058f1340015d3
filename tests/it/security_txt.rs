//! `/.well-known/security.txt` (RFC 9116) from the disclosure contact in configuration.

use crate::support::{settings, spawn_app, spawn_app_with};

#[tokio::test]
async fn security_txt_publishes_the_configured_contact_at_the_site_root() {
    let azurite = std::sync::Arc::new(
        sixpence_testkit::Azurite::start()
            .await
            .expect("Azurite starts"),
    );
    let mut config = settings(azurite.connection_string());
    config.security_txt.contacts = vec!["mailto:security@sixpence.example".to_owned()];
    config.security_txt.policy =
        Some(url::Url::parse("https://sixpence.example/disclosure").expect("url"));
    let app = spawn_app_with(azurite, config).await;

    let response = app
        .http
        .get(app.url("/.well-known/security.txt"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; charset=utf-8")
    );
    let text = response.text().await.expect("body");
    assert!(
        text.contains("Contact: mailto:security@sixpence.example\n"),
        "{text}"
    );
    assert!(
        text.contains("Policy: https://sixpence.example/disclosure\n"),
        "{text}"
    );
    assert!(text.contains("Preferred-Languages: en\n"), "{text}");
    assert!(
        text.contains("/.well-known/security.txt\n") && text.contains("Canonical: https://"),
        "{text}"
    );
    let expires = text
        .lines()
        .find_map(|l| l.strip_prefix("Expires: "))
        .expect("Expires is required");
    let expires =
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    let now = time::OffsetDateTime::now_utc();
    assert!(
        expires > now && expires < now + time::Duration::days(365),
        "{expires}"
    );
}

#[tokio::test]
async fn without_a_contact_there_is_no_security_txt() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/.well-known/security.txt"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 404);
}
