//! Table Storage against a real Azurite: CRUD, ETags, paging, batches, Edm types.

use serde::{Deserialize, Serialize};
use sixpence::storage::{
    Batch, Entity, IfMatch, Query, StorageError, Table, UpdateMode, edm, names,
};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::support::{storage, unique_name};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Budget {
    name: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(with = "edm::int64")]
    limit_micros: i64,
}

/// Only some of the properties, for merge tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NoteOnly {
    note: String,
}

async fn new_table(prefix: &str) -> Table {
    let table = storage()
        .await
        .tables()
        .table(&unique_name(prefix))
        .expect("valid table name");
    table.create_if_not_exists().await.expect("create table");
    table
}

fn budget(row: &str, name: &str, limit_micros: i64) -> Entity<Budget> {
    Entity::new(
        "ws1",
        row,
        Budget {
            name: name.to_owned(),
            note: None,
            limit_micros,
        },
    )
}

#[tokio::test]
async fn creating_a_table_twice_is_not_an_error() {
    let table = new_table("idem").await;
    table.create_if_not_exists().await.unwrap();
    assert!(table.delete_table().await.unwrap());
    assert!(!table.delete_table().await.unwrap());
}

#[tokio::test]
async fn ensuring_the_application_resources_is_idempotent() {
    let storage = storage().await;
    storage.ensure_resources().await.unwrap();
    storage.ensure_resources().await.unwrap();
    for name in names::TABLES {
        let page = storage
            .tables()
            .table(name)
            .unwrap()
            .query::<serde_json::Value>(&Query::all().top(1))
            .await;
        assert!(page.is_ok(), "table {name} is queryable");
    }
    for name in names::QUEUES {
        storage
            .queues()
            .queue(name)
            .unwrap()
            .approximate_count()
            .await
            .unwrap();
    }
    for name in names::CONTAINERS {
        storage
            .blobs()
            .container(name)
            .unwrap()
            .list("")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn entities_are_inserted_read_and_a_second_insert_conflicts() {
    let table = new_table("crud").await;
    let entity = budget("b1", "Monthly", 1_500_000_000);

    let etag = table.insert(&entity).await.unwrap();
    let read = table
        .get::<Budget>("ws1", "b1")
        .await
        .unwrap()
        .expect("entity exists");

    assert_eq!(read.properties, entity.properties);
    assert_eq!(read.etag.as_ref(), Some(&etag));
    assert!(read.timestamp.is_some());
    let again = table.insert(&entity).await.unwrap_err();
    assert!(matches!(again, StorageError::Conflict(_)), "{again}");
    assert_eq!(again.status(), Some(409));
}

#[tokio::test]
async fn missing_entities_read_as_none_and_delete_as_false() {
    let table = new_table("missing").await;
    assert!(table.get::<Budget>("ws1", "nope").await.unwrap().is_none());
    assert!(!table.delete("ws1", "nope", IfMatch::Any).await.unwrap());
    let error = table
        .update(&budget("nope", "x", 1), UpdateMode::Replace, IfMatch::Any)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::NotFound(_)), "{error}");
}

#[tokio::test]
async fn merge_keeps_other_properties_and_replace_removes_them() {
    let table = new_table("upsert").await;
    table.insert(&budget("b1", "Monthly", 10)).await.unwrap();

    table
        .upsert(
            &Entity::new(
                "ws1",
                "b1",
                NoteOnly {
                    note: "merged".into(),
                },
            ),
            UpdateMode::Merge,
        )
        .await
        .unwrap();
    let merged = table.get::<Budget>("ws1", "b1").await.unwrap().unwrap();
    assert_eq!(merged.properties.name, "Monthly");
    assert_eq!(merged.properties.note.as_deref(), Some("merged"));

    table
        .upsert(
            &Entity::new(
                "ws1",
                "b1",
                NoteOnly {
                    note: "replaced".into(),
                },
            ),
            UpdateMode::Replace,
        )
        .await
        .unwrap();
    let replaced = table
        .get::<serde_json::Value>("ws1", "b1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.properties, serde_json::json!({"note": "replaced"}));

    // Upsert also inserts.
    table
        .upsert(&budget("b2", "New", 1), UpdateMode::Replace)
        .await
        .unwrap();
    assert!(table.get::<Budget>("ws1", "b2").await.unwrap().is_some());
}

#[tokio::test]
async fn a_stale_etag_fails_updates_and_deletes_with_precondition_failed() {
    let table = new_table("etag").await;
    let first = table.insert(&budget("b1", "v1", 1)).await.unwrap();

    // Writer A updates with the current ETag.
    let second = table
        .update(
            &budget("b1", "v2", 2),
            UpdateMode::Replace,
            IfMatch::ETag(first.clone()),
        )
        .await
        .unwrap();
    assert_ne!(first, second);

    // Writer B still holds the first ETag.
    let stale_update = table
        .update(
            &budget("b1", "v3", 3),
            UpdateMode::Merge,
            IfMatch::ETag(first.clone()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(stale_update, StorageError::PreconditionFailed(_)),
        "{stale_update}"
    );
    let stale_delete = table
        .delete("ws1", "b1", IfMatch::ETag(first))
        .await
        .unwrap_err();
    assert!(
        matches!(stale_delete, StorageError::PreconditionFailed(_)),
        "{stale_delete}"
    );

    let current = table.get::<Budget>("ws1", "b1").await.unwrap().unwrap();
    assert_eq!(current.properties.name, "v2");
    assert!(
        table
            .delete("ws1", "b1", IfMatch::ETag(second))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn queries_page_with_continuation_tokens() {
    let table = new_table("paging").await;
    let mut batch = Batch::new("ws1");
    for i in 0..25 {
        batch.insert(&budget(&format!("r{i:03}"), "b", i)).unwrap();
    }
    table.submit(batch).await.unwrap();
    // Another partition that the partition query must not return.
    table
        .insert(&Entity::new(
            "ws2",
            "r000",
            budget("r000", "other", 0).properties,
        ))
        .await
        .unwrap();

    let mut rows = Vec::new();
    let mut pages = 0;
    let mut query = Query::partition("ws1").top(10);
    loop {
        let page = table.query::<Budget>(&query).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        rows.extend(page.items.into_iter().map(|e| e.row_key));
        match page.continuation {
            // The token survives being handed to a client and back.
            Some(token) => {
                let token = sixpence::storage::ContinuationToken::decode(&token.encode()).unwrap();
                query = Query::partition("ws1").top(10).after(token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("r{i:03}")).collect();
    assert_eq!(rows, expected);

    let all = table
        .query_all::<Budget>(&Query::partition("ws1").top(7))
        .await
        .unwrap();
    assert_eq!(all.len(), 25);

    let filtered = table
        .query_all::<Budget>(&Query::filter(
            "PartitionKey eq 'ws1' and RowKey ge 'r020'".to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(filtered.len(), 5);
}

#[tokio::test]
async fn a_batch_applies_every_operation() {
    let table = new_table("batch").await;
    let etag = table.insert(&budget("existing", "old", 1)).await.unwrap();
    table.insert(&budget("doomed", "x", 1)).await.unwrap();

    let mut batch = Batch::new("ws1");
    batch.insert(&budget("new", "n", 1)).unwrap();
    batch
        .upsert(&budget("upserted", "u", 2), UpdateMode::Replace)
        .unwrap();
    batch
        .update(
            &budget("existing", "updated", 3),
            UpdateMode::Merge,
            IfMatch::ETag(etag),
        )
        .unwrap();
    batch.delete("doomed", IfMatch::Any).unwrap();
    let etags = table.submit(batch).await.unwrap();

    assert_eq!(etags.len(), 4);
    assert!(etags[..3].iter().all(Option::is_some));
    let rows: Vec<String> = table
        .query_all::<Budget>(&Query::partition("ws1"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}={}", e.row_key, e.properties.name))
        .collect();
    assert_eq!(rows, ["existing=updated", "new=n", "upserted=u"]);
}

#[tokio::test]
async fn a_failing_operation_fails_the_whole_batch_with_its_status() {
    let table = new_table("batchfail").await;
    table.insert(&budget("taken", "first", 1)).await.unwrap();

    let mut batch = Batch::new("ws1");
    batch.insert(&budget("fresh", "would be new", 1)).unwrap();
    batch.insert(&budget("taken", "second", 2)).unwrap();
    let error = table.submit(batch).await.unwrap_err();

    assert!(matches!(error, StorageError::Conflict(_)), "{error}");
    // Atomic: the valid insert was not applied either.
    assert!(table.get::<Budget>("ws1", "fresh").await.unwrap().is_none());
    assert_eq!(
        table
            .get::<Budget>("ws1", "taken")
            .await
            .unwrap()
            .unwrap()
            .properties
            .name,
        "first"
    );
}

#[tokio::test]
async fn a_stale_etag_inside_a_batch_fails_it_with_precondition_failed() {
    let table = new_table("batchetag").await;
    let old = table.insert(&budget("b1", "v1", 1)).await.unwrap();
    table
        .update(&budget("b1", "v2", 2), UpdateMode::Replace, IfMatch::Any)
        .await
        .unwrap();

    let mut batch = Batch::new("ws1");
    batch.insert(&budget("b2", "n", 1)).unwrap();
    batch
        .update(
            &budget("b1", "v3", 3),
            UpdateMode::Replace,
            IfMatch::ETag(old),
        )
        .unwrap();
    let error = table.submit(batch).await.unwrap_err();

    assert!(
        matches!(error, StorageError::PreconditionFailed(_)),
        "{error}"
    );
    assert!(table.get::<Budget>("ws1", "b2").await.unwrap().is_none());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AllTypes {
    text: String,
    flag: bool,
    small: i32,
    ratio: f64,
    #[serde(with = "edm::int64")]
    big: i64,
    #[serde(with = "edm::int64")]
    negative_big: i64,
    #[serde(with = "edm::datetime")]
    at: OffsetDateTime,
    #[serde(default, with = "edm::int64_option")]
    maybe_big: Option<i64>,
    #[serde(default, with = "edm::int64_option")]
    absent_big: Option<i64>,
    #[serde(default, with = "edm::datetime_option")]
    maybe_at: Option<OffsetDateTime>,
}

#[tokio::test]
async fn edm_types_round_trip() {
    let table = new_table("edm").await;
    let value = AllTypes {
        text: "it's £12.50 — ok".into(),
        flag: true,
        small: -7,
        ratio: 0.125,
        big: 1_099_511_627_776,
        negative_big: i64::MIN + 1,
        at: datetime!(2024-05-01 12:34:56.123456 UTC),
        maybe_big: Some(i64::MAX),
        absent_big: None,
        maybe_at: Some(datetime!(1999-12-31 23:59:59 UTC)),
    };
    // Keys with a single quote exercise the OData escaping of entity URLs.
    let entity = Entity::new("o'brien", "row'1", value.clone());
    table.insert(&entity).await.unwrap();

    let read = table
        .get::<AllTypes>("o'brien", "row'1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.properties, value);

    // The service really stored Edm.Int64 (a JSON number would have overflowed Edm.Int32/Double).
    let raw = table
        .get::<serde_json::Value>("o'brien", "row'1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.properties["big"], "1099511627776");
    assert!(raw.properties.get("absent_big").is_none());

    let queried = table
        .query_all::<AllTypes>(&Query::partition("o'brien"))
        .await
        .unwrap();
    assert_eq!(queried.len(), 1);
    assert_eq!(queried[0].properties, value);
}
