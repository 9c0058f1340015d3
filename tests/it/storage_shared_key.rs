//! The local authentication path: account keys from `AzureWebJobsStorage`, signed by us for the 1.x
//! clients and by the 0.21 crate for tables.

use secrecy::SecretString;
use sixpence::storage::{Storage, StorageConnection, StorageError};
use sixpence_testkit::{Azurite, unique_name};

#[tokio::test]
async fn the_app_setting_is_enough_to_reach_all_three_services() {
    let azurite = Azurite::shared().await.unwrap_or_else(|e| panic!("{e:#}"));
    let connection = StorageConnection::from_lookup(|name| {
        (name == "AzureWebJobsStorage").then(|| azurite.connection_string().to_owned())
    })
    .unwrap()
    .with_max_retries(2);
    let storage = Storage::connect(&connection).unwrap();

    let name = unique_name("setting");
    storage
        .tables()
        .table(&name)
        .unwrap()
        .create_if_not_exists()
        .await
        .unwrap();
    storage
        .queues()
        .queue(&name)
        .unwrap()
        .create_if_not_exists()
        .await
        .unwrap();
    storage
        .blobs()
        .container(&name)
        .unwrap()
        .create_if_not_exists()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_account_key_is_an_auth_error_on_every_service() {
    let azurite = Azurite::shared().await.unwrap_or_else(|e| panic!("{e:#}"));
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="; // base64, but not the account's key
    let connection = StorageConnection::with_shared_key(
        "devstoreaccount1",
        SecretString::from(wrong_key.to_owned()),
        azurite.endpoints().clone(),
    )
    .unwrap()
    .with_max_retries(0);
    let storage = Storage::connect(&connection).unwrap();
    let name = unique_name("wrongkey");

    let errors = [
        storage
            .tables()
            .table(&name)
            .unwrap()
            .create_if_not_exists()
            .await
            .unwrap_err(),
        storage
            .queues()
            .queue(&name)
            .unwrap()
            .create_if_not_exists()
            .await
            .unwrap_err(),
        storage
            .blobs()
            .container(&name)
            .unwrap()
            .create_if_not_exists()
            .await
            .unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, StorageError::Auth(_)), "{error}");
        assert!(!error.to_string().contains(wrong_key), "{error}");
    }
}
