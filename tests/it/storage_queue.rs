//! Queue Storage against a real Azurite (shared-key signing policy on the 1.x SDK).

use std::time::Duration;

use base64::Engine as _;
use sixpence::storage::{Queue, StorageError};

use crate::support::{storage, unique_name};

const VISIBILITY: Duration = Duration::from_secs(30);

async fn new_queue(prefix: &str) -> Queue {
    let queue = storage()
        .await
        .queues()
        .queue(&unique_name(prefix))
        .expect("valid queue name");
    queue.create_if_not_exists().await.expect("create queue");
    queue
}

#[tokio::test]
async fn creating_a_queue_twice_is_not_an_error() {
    let queue = new_queue("idem").await;
    queue.create_if_not_exists().await.unwrap();
    assert!(queue.delete_queue().await.unwrap());
    assert!(!queue.delete_queue().await.unwrap());
}

#[tokio::test]
async fn messages_are_stored_base64_and_received_decoded() {
    let queue = new_queue("roundtrip").await;
    let text = r#"{"type":"V1","workspace":"ws-1","note":"<£&>"}"#;

    let sent = queue.send(text, None).await.unwrap();

    // What the Functions host would see: base64 of the UTF-8 text.
    let peeked = queue.peek(1).await.unwrap();
    assert_eq!(peeked.len(), 1);
    assert_eq!(
        peeked[0].raw,
        base64::engine::general_purpose::STANDARD.encode(text)
    );
    assert_eq!(peeked[0].text.as_deref(), Some(text));

    let received = queue.receive(32, VISIBILITY).await.unwrap();
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message.id, sent.id);
    assert_eq!(message.text.as_deref(), Some(text));
    assert_eq!(message.dequeue_count, 1);
    assert!(message.insertion_time.is_some());
    assert!(message.expiration_time.is_some());
    assert!(message.next_visible_time.is_some());

    queue
        .delete_message(&message.id, &message.pop_receipt)
        .await
        .unwrap();
    assert_eq!(queue.approximate_count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_message_that_is_not_base64_is_still_delivered_raw() {
    let queue = new_queue("raw").await;
    queue.send_raw("not base64 at all!", None).await.unwrap();

    let received = queue.receive(1, VISIBILITY).await.unwrap();

    assert_eq!(received.len(), 1);
    assert_eq!(received[0].text, None);
    assert_eq!(received[0].raw, "not base64 at all!");
    // A consumer can still get rid of it (e.g. after copying it to a poison queue).
    queue
        .delete_message(&received[0].id, &received[0].pop_receipt)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_received_message_stays_hidden_until_made_visible_again() {
    let queue = new_queue("visibility").await;
    queue.send("retry me", None).await.unwrap();

    let first = queue.receive(1, VISIBILITY).await.unwrap().remove(0);
    assert!(queue.receive(1, VISIBILITY).await.unwrap().is_empty());

    let updated = queue
        .update_visibility(&first.id, &first.pop_receipt, Duration::ZERO)
        .await
        .unwrap();
    assert_ne!(updated.pop_receipt, first.pop_receipt);

    let second = queue.receive(1, VISIBILITY).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first.id);
    assert_eq!(second[0].dequeue_count, 2);

    // The first receipt is no longer valid.
    let stale = queue
        .delete_message(&first.id, &first.pop_receipt)
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            StorageError::NotFound(_) | StorageError::InvalidInput(_)
        ),
        "{stale}"
    );
    queue
        .delete_message(&second[0].id, &second[0].pop_receipt)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_delayed_message_is_invisible_until_its_delay_passes() {
    let queue = new_queue("delay").await;
    queue
        .send("later", Some(Duration::from_secs(60)))
        .await
        .unwrap();

    assert!(queue.receive(1, VISIBILITY).await.unwrap().is_empty());
    assert!(queue.peek(1).await.unwrap().is_empty());
    assert_eq!(queue.approximate_count().await.unwrap(), 1);
}

#[tokio::test]
async fn oversized_messages_and_bad_arguments_are_refused_locally() {
    let queue = new_queue("limits").await;
    let too_big = "x".repeat(49_200); // 65,600 bytes once base64-encoded
    let error = queue.send(&too_big, None).await.unwrap_err();
    assert!(matches!(error, StorageError::InvalidInput(_)), "{error}");

    assert!(matches!(
        queue.receive(0, VISIBILITY).await,
        Err(StorageError::InvalidInput(_))
    ));
    assert!(matches!(
        queue.receive(1, Duration::ZERO).await,
        Err(StorageError::InvalidInput(_))
    ));
    assert_eq!(queue.approximate_count().await.unwrap(), 0);
}
