//! Blob Storage against a real Azurite (shared-key signing policy on the 1.x SDK).

use bytes::Bytes;
use sixpence::storage::{Container, StorageError};

use crate::support::{storage, unique_name};

async fn new_container(prefix: &str) -> Container {
    let container = storage()
        .await
        .blobs()
        .container(&unique_name(prefix))
        .expect("valid container name");
    container
        .create_if_not_exists()
        .await
        .expect("create container");
    container
}

#[tokio::test]
async fn creating_a_container_twice_is_not_an_error() {
    let container = new_container("idem").await;
    container.create_if_not_exists().await.unwrap();
    assert!(container.delete_container().await.unwrap());
}

#[tokio::test]
async fn blobs_are_written_read_listed_and_deleted() {
    let container = new_container("crud").await;
    let body = Bytes::from_static(br#"{"rows":[1,2,3]}"#);

    container
        .put(
            "ws-1/sub-a/2024-05/page-0001.json",
            body.clone(),
            "application/json",
        )
        .await
        .unwrap();
    container
        .put(
            "ws-1/sub-a/2024-05/page-0002.json",
            Bytes::from_static(b"{}"),
            "application/json",
        )
        .await
        .unwrap();
    container
        .put(
            "ws-2/sub-b/page.json",
            Bytes::from_static(b"{}"),
            "application/json",
        )
        .await
        .unwrap();

    let read = container
        .get_with_properties("ws-1/sub-a/2024-05/page-0001.json")
        .await
        .unwrap()
        .expect("blob exists");
    assert_eq!(read.bytes, body);
    assert_eq!(read.content_type.as_deref(), Some("application/json"));
    assert!(read.etag.is_some());

    let listed: Vec<(String, u64)> = container
        .list("ws-1/")
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.name, b.size))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "ws-1/sub-a/2024-05/page-0001.json".to_owned(),
                body.len() as u64
            ),
            ("ws-1/sub-a/2024-05/page-0002.json".to_owned(), 2),
        ]
    );
    assert_eq!(container.list("").await.unwrap().len(), 3);

    assert!(container.delete("ws-2/sub-b/page.json").await.unwrap());
    assert!(!container.delete("ws-2/sub-b/page.json").await.unwrap());
    assert!(
        container
            .get("ws-2/sub-b/page.json")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_zero_byte_blob_reads_back_empty() {
    let container = new_container("empty").await;
    container
        .put("empty.txt", Bytes::new(), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        container.get("empty.txt").await.unwrap(),
        Some(Bytes::new())
    );
}

#[tokio::test]
async fn a_missing_blob_or_container_reads_as_none() {
    let container = new_container("none").await;
    assert!(container.get("nothing-here").await.unwrap().is_none());
    let missing = storage()
        .await
        .blobs()
        .container(&unique_name("nocontainer"))
        .unwrap();
    assert!(missing.get("x").await.unwrap().is_none());
}

#[tokio::test]
async fn put_if_absent_writes_once_and_then_conflicts() {
    let container = new_container("absent").await;
    container
        .put_if_absent("once.json", Bytes::from_static(b"1"), "application/json")
        .await
        .unwrap();
    let error = container
        .put_if_absent("once.json", Bytes::from_static(b"2"), "application/json")
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Conflict(_)), "{error}");
    assert_eq!(
        container.get("once.json").await.unwrap(),
        Some(Bytes::from_static(b"1"))
    );
}

#[tokio::test]
async fn put_if_match_refuses_a_stale_etag() {
    let container = new_container("ifmatch").await;
    let first = container
        .put("doc", Bytes::from_static(b"v1"), "text/plain")
        .await
        .unwrap();
    let second = container
        .put_if_match("doc", Bytes::from_static(b"v2"), "text/plain", &first)
        .await
        .unwrap();
    let error = container
        .put_if_match("doc", Bytes::from_static(b"v3"), "text/plain", &first)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::PreconditionFailed(_)),
        "{error}"
    );
    assert_ne!(first, second);
    assert_eq!(
        container.get("doc").await.unwrap(),
        Some(Bytes::from_static(b"v2"))
    );
}

#[tokio::test]
async fn invalid_blob_names_are_refused_before_any_request() {
    let container = new_container("names").await;
    let error = container.get("a/../b").await.unwrap_err();
    assert!(matches!(error, StorageError::InvalidInput(_)), "{error}");
}
