//! The production authentication path: Entra ID bearer tokens over HTTPS, against Azurite in OAuth mode
//! with a certificate generated for the test. Each test starts its own HTTPS Azurite (the shared one is
//! plain HTTP with shared keys).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sixpence::storage::{Entity, Storage, StorageConnection, StorageError, edm};
use sixpence_testkit::{Azurite, unique_name};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Probe {
    #[serde(with = "edm::int64")]
    value: i64,
}

async fn oauth_azurite() -> Azurite {
    Azurite::start_oauth_https()
        .await
        .unwrap_or_else(|e| panic!("starting Azurite in OAuth/HTTPS mode: {e:#}"))
}

#[tokio::test]
async fn bearer_tokens_over_https_work_for_tables_blobs_and_queues() {
    let azurite = oauth_azurite().await;
    let connection = azurite.token_connection().unwrap();
    assert!(connection.uses_token_credential());
    let storage = Storage::connect(&connection).unwrap();

    let table = storage.tables().table(&unique_name("oauth")).unwrap();
    table.create_if_not_exists().await.unwrap();
    table
        .insert(&Entity::new("ws1", "r1", Probe { value: 1 << 40 }))
        .await
        .unwrap();
    let read = table.get::<Probe>("ws1", "r1").await.unwrap().unwrap();
    assert_eq!(read.properties, Probe { value: 1 << 40 });

    let container = storage.blobs().container(&unique_name("oauth")).unwrap();
    container.create_if_not_exists().await.unwrap();
    container
        .put("a/b.json", Bytes::from_static(b"{}"), "application/json")
        .await
        .unwrap();
    assert_eq!(
        container.get("a/b.json").await.unwrap(),
        Some(Bytes::from_static(b"{}"))
    );

    let queue = storage.queues().queue(&unique_name("oauth")).unwrap();
    queue.create_if_not_exists().await.unwrap();
    queue.send("hello", None).await.unwrap();
    let received = queue.receive(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(received[0].text.as_deref(), Some("hello"));
    queue
        .delete_message(&received[0].id, &received[0].pop_receipt)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_server_certificate_is_verified_unless_its_ca_is_trusted() {
    let azurite = oauth_azurite().await;
    // Same endpoints and credential, but the test CA is not added: TLS must fail, for every service.
    let untrusted = StorageConnection::with_token_credential(
        "devstoreaccount1",
        azurite.endpoints().clone(),
        sixpence_testkit::test_token_credential(),
    )
    .with_max_retries(0);
    let storage = Storage::connect(&untrusted).unwrap();

    let blob = storage
        .blobs()
        .container("tls")
        .unwrap()
        .create_if_not_exists()
        .await
        .unwrap_err();
    let queue = storage
        .queues()
        .queue("tls")
        .unwrap()
        .create_if_not_exists()
        .await
        .unwrap_err();
    let table = storage
        .tables()
        .table("tls")
        .unwrap()
        .create_if_not_exists()
        .await
        .unwrap_err();
    for error in [blob, queue, table] {
        assert!(matches!(error, StorageError::Transport(_)), "{error}");
        assert!(error.to_string().contains("UnknownIssuer"), "{error}");
        assert_eq!(error.status(), None, "{error}");
    }
}

/// A credential whose token expired an hour ago.
#[derive(Debug)]
struct ExpiredToken;

#[async_trait]
impl TokenCredential for ExpiredToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let fresh = sixpence_testkit::AzuriteTokenCredential
            .get_token(scopes, options)
            .await?;
        // Re-mint with exp in the past but tell the SDK it is still valid, so it is actually sent.
        let now = time::OffsetDateTime::now_utc();
        let claims = serde_json::json!({
            "aud": "https://storage.azure.com",
            "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
            "iat": now.unix_timestamp() - 7200,
            "nbf": now.unix_timestamp() - 7200,
            "exp": now.unix_timestamp() - 3600,
        });
        use base64::Engine as _;
        let header = fresh
            .token
            .secret()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
        Ok(AccessToken::new(
            format!("{header}.{body}."),
            fresh.expires_on,
        ))
    }
}

#[tokio::test]
async fn a_rejected_token_is_an_auth_error_on_every_service() {
    let azurite = oauth_azurite().await;
    let connection = StorageConnection::with_token_credential(
        "devstoreaccount1",
        azurite.endpoints().clone(),
        Arc::new(ExpiredToken),
    )
    .with_extra_root_certificates_pem(azurite.ca_pem().unwrap().as_bytes().to_vec())
    .with_max_retries(0);
    let storage = Storage::connect(&connection).unwrap();

    let errors = [
        storage
            .blobs()
            .container("expired")
            .unwrap()
            .create_if_not_exists()
            .await
            .unwrap_err(),
        storage
            .queues()
            .queue("expired")
            .unwrap()
            .create_if_not_exists()
            .await
            .unwrap_err(),
        storage
            .tables()
            .table("expired")
            .unwrap()
            .create_if_not_exists()
            .await
            .unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, StorageError::Auth(_)), "{error}");
        // Nothing secret in the message: no bearer token, no JWT.
        assert!(!error.to_string().contains("eyJ"), "{error}");
    }
}

#[tokio::test]
async fn token_credentials_refuse_plain_http_endpoints() {
    let connection = StorageConnection::with_token_credential(
        "devstoreaccount1",
        sixpence::storage::Endpoints::development(),
        sixpence_testkit::test_token_credential(),
    );
    let error = Storage::connect(&connection).unwrap_err();
    assert!(matches!(error, StorageError::InvalidInput(_)), "{error}");
}
