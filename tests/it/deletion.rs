//! Deleting a workspace: a fully populated workspace is deleted step by step, and afterwards every
//! table, container and queue (poison queues included) is scanned: nothing of it remains but the
//! retained records, minimised; another populated workspace is untouched, byte for byte. A deletion
//! cut short (Stripe down, the message lost) is completed by the daily sweeper.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sixpence::functions::{REGISTRY, Trigger};
use sixpence::storage::names;
use sixpence::storage::{Query, Storage, StorageConnection};

use crate::billing::{event, now, subscription, unique};
use crate::connections::queue_envelope;
use crate::support::api::Cast;
use crate::support::stripe::StripeStandIn;
use crate::support::{TestApp, spawn_app_with_stripe};

fn storage_of(app: &TestApp) -> Storage {
    Storage::connect(
        &StorageConnection::parse_connection_string(app._azurite.connection_string())
            .expect("connection string")
            .with_max_retries(2),
    )
    .expect("storage")
}

/// Every queue the app reads, with its function.
fn queue_functions() -> Vec<(&'static str, &'static str)> {
    REGISTRY
        .iter()
        .filter_map(|f| match f.trigger {
            Trigger::Queue { queue, .. } => Some((queue, f.name)),
            _ => None,
        })
        .collect()
}

/// Runs every queued message through its function, as the host would, until all queues are empty.
/// A failed invocation leaves its message (it returns after the visibility timeout, as with the
/// host); `keep_failing` says whether that is expected (otherwise the test fails).
async fn drain(app: &TestApp, storage: &Storage, keep_failing: bool) -> usize {
    let mut failures = 0;
    for _ in 0..200 {
        let mut handled = 0;
        for (queue, function) in queue_functions() {
            let queue = storage.queues().queue(queue).expect("queue");
            for message in queue
                .receive(32, Duration::from_secs(60))
                .await
                .expect("receive")
            {
                handled += 1;
                let text = message.text.clone().expect("text");
                let response = app.invoke(function, queue_envelope(&text)).await;
                if response.status() == 200 {
                    queue
                        .delete_message(&message.id, &message.pop_receipt)
                        .await
                        .expect("delete");
                } else {
                    assert!(
                        keep_failing,
                        "{function} failed: {}",
                        response.text().await.unwrap_or_default()
                    );
                    failures += 1;
                    // The host would retry and, after maxDequeueCount, park it in the poison queue.
                    queue
                        .delete_message(&message.id, &message.pop_receipt)
                        .await
                        .expect("delete");
                    let poison = storage
                        .queues()
                        .queue(&format!("{}-poison", queue.name()))
                        .expect("poison");
                    poison.create_if_not_exists().await.expect("poison queue");
                    poison.send(&text, None).await.expect("poison send");
                }
            }
        }
        if handled == 0 {
            return failures;
        }
    }
    panic!("the queues never drained");
}

/// Every stored thing that mentions `needle`: table rows (with their ETags), blobs (with their
/// bytes) and queued messages, keyed by where they are.
async fn mentions(storage: &Storage, needle: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for table in names::TABLES {
        let rows = storage
            .tables()
            .table(table)
            .expect("table")
            .query_all::<Map<String, Value>>(&Query::all())
            .await
            .expect("scan");
        for row in rows {
            let text = format!(
                "{} {} {}",
                row.partition_key,
                row.row_key,
                Value::Object(row.properties.clone())
            );
            if text.contains(needle) {
                found.insert(
                    format!("table {table} {} {}", row.partition_key, row.row_key),
                    format!("{:?} {text}", row.etag),
                );
            }
        }
    }
    for container in names::CONTAINERS {
        let container = storage.blobs().container(container).expect("container");
        for blob in container.list("").await.expect("list") {
            // Every blob of a workspace is under `<workspace>/`; its size stands for its bytes.
            if blob.name.contains(needle) {
                found.insert(
                    format!("blob {} {}", container.name(), blob.name),
                    format!("{} bytes", blob.size),
                );
            }
        }
    }
    for queue in names::QUEUES {
        for name in [queue.to_string(), format!("{queue}-poison")] {
            let queue = storage.queues().queue(&name).expect("queue");
            let _ = queue.create_if_not_exists().await;
            for message in queue.peek(32).await.expect("peek") {
                let text = message.text.clone().unwrap_or(message.raw.clone());
                if text.contains(needle) || message.raw.contains(needle) {
                    found.insert(format!("queue {name} {}", message.id), text);
                }
            }
        }
    }
    found
}

/// A workspace with everything a customer accumulates: members, a pending invitation, a connection
/// with a synced subscription (costs, inventory, recommendations, raw pages, sync runs), an anomaly,
/// a budget (evaluated), an in-app channel with a delivered notification, an idempotency record, a
/// Stripe subscription, and an export archive.
async fn populate(app: &TestApp, stripe_customer: &str) -> (Cast, String) {
    let cast = Cast::build(app).await;
    let owner = cast.owner.token.clone();
    let ws = cast.a.clone();
    // A budget, created with an Idempotency-Key.
    let budget = app
        .call("POST", &format!("/api/v1/workspaces/{ws}/budgets"))
        .auth(Some(&owner))
        .header("Idempotency-Key", &unique("key"))
        .json(&json!({
            "name": "Monthly",
            "amount": "1000",
            "period": "monthly",
            "thresholds": [{"percent": 1, "basis": "actual"}],
        }))
        .send()
        .await;
    assert_eq!(budget.status, 201, "{}", budget.text);
    // A night's sync of the chosen subscription (then detection and budget checks from its queues).
    let sim = app.sim.credentials(0);
    let message = json!({
        "version": 1,
        "workspace": ws,
        "connection": cast.connection,
        "subscription": sim.subscriptions[0],
        "night": app.sim.today().to_string(),
    })
    .to_string();
    let synced = app.invoke("cost-sync", queue_envelope(&message)).await;
    assert_eq!(
        synced.status(),
        200,
        "{}",
        synced.text().await.unwrap_or_default()
    );
    crate::anomalies::seed_anomaly(app, &ws).await;
    // A paid plan.
    let sub = unique("sub");
    app.deliver_signed(&event(
        &unique("evt"),
        "customer.subscription.created",
        now() - 30,
        subscription(
            &sub,
            stripe_customer,
            Some(&ws),
            "active",
            "price_team_standin",
            3,
        ),
    ))
    .await;
    // An export archive, as the export function writes them.
    let storage = storage_of(app);
    storage
        .blobs()
        .container(names::EXPORTS_CONTAINER)
        .expect("container")
        .put(
            &format!("{ws}/{}/manifest.json", uuid::Uuid::new_v4()),
            bytes::Bytes::from(format!("{{\"workspace\":\"{ws}\"}}")),
            "application/json",
        )
        .await
        .expect("export blob");
    (cast, sub)
}

async fn delete_workspace(app: &TestApp, cast: &Cast) -> crate::support::api::Answer {
    app.call("DELETE", &format!("/api/v1/workspaces/{}", cast.a))
        .auth(Some(&cast.owner.token))
        .json(&json!({ "confirm": cast.a }))
        .send()
        .await
}

async fn status(app: &TestApp, cast: &Cast) -> Value {
    let answer = app
        .get_as(&cast.owner.token, &format!("/api/v1/deletions/{}", cast.a))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

#[tokio::test]
async fn deleting_a_populated_workspace_leaves_only_minimised_retained_records() {
    let (app, stripe): (TestApp, StripeStandIn) = spawn_app_with_stripe(|_| {}).await;
    let storage = storage_of(&app);
    let (victim, sub) = populate(&app, "cus_victim").await;
    let (bystander, _) = populate(&app, "cus_bystander").await;
    drain(&app, &storage, false).await;
    let a = victim.a.clone();
    let before = mentions(&storage, &a).await;
    for kind in [
        "table connections",
        "table costs",
        "table inventory",
        "table recommendations",
        "table anomalies",
        "table budgets",
        "table channels",
        "table deliveries",
        "table inbox",
        "table tenancy",
        "table memberships",
        "table syncs",
        "table billing",
        "blob raw-cost-pages",
        "blob exports",
    ] {
        assert!(
            before.keys().any(|k| k.starts_with(kind)),
            "the victim has no {kind} to delete: {:#?}",
            before.keys().collect::<Vec<_>>()
        );
    }
    let untouched = mentions(&storage, &bystander.a).await;

    // Work already queued for the victim when it is deleted: a test notification, a sync, and a
    // message parked in a poison queue.
    let test = app
        .call(
            "POST",
            &format!("/api/v1/workspaces/{a}/channels/{}/test", victim.channel),
        )
        .auth(Some(&victim.owner.token))
        .send()
        .await;
    assert_eq!(test.status, 202, "{}", test.text);
    let sync = app
        .call("POST", &format!("/api/v1/workspaces/{a}/syncs"))
        .auth(Some(&victim.owner.token))
        .send()
        .await;
    assert!(sync.status < 300, "{}", sync.text);
    let poison = storage.queues().queue("cost-sync-poison").expect("queue");
    poison.create_if_not_exists().await.expect("poison queue");
    poison
        .send(&json!({"version": 1, "workspace": a}).to_string(), None)
        .await
        .expect("poison");

    // Only the owner, and only with the confirmation.
    let by_admin = app
        .call("DELETE", &format!("/api/v1/workspaces/{a}"))
        .auth(Some(&victim.admin.token))
        .json(&json!({ "confirm": a }))
        .send()
        .await;
    by_admin.assert_problem(403, Some("forbidden"));
    let unconfirmed = app
        .call("DELETE", &format!("/api/v1/workspaces/{a}"))
        .auth(Some(&victim.owner.token))
        .json(&json!({ "confirm": "something else" }))
        .send()
        .await;
    unconfirmed.assert_problem(400, None);

    let started = delete_workspace(&app, &victim).await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(
        started.header("location"),
        Some(format!("/api/v1/deletions/{a}").as_str())
    );
    assert_eq!(started.body["status"], "inProgress");
    // Stopped at once: no member reaches it, it is gone from listings.
    for person in [&victim.owner, &victim.admin, &victim.viewer] {
        app.get_as(&person.token, &format!("/api/v1/workspaces/{a}"))
            .await
            .assert_problem(404, Some("not-found"));
    }
    let me = app.get_as(&victim.owner.token, "/api/v1/me").await;
    assert!(!me.text.contains(&a), "{}", me.text);
    // The status is the requester's alone.
    app.get_as(&victim.admin.token, &format!("/api/v1/deletions/{a}"))
        .await
        .assert_problem(404, Some("not-found"));

    drain(&app, &storage, false).await;
    let done = status(&app, &victim).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["lastStep"], "finish");

    // Stripe: the subscription cancelled once, with an idempotency key.
    let cancels = stripe.deletes();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0].path, format!("subscriptions/{sub}"));
    assert!(cancels[0].idempotency_key.is_some());

    // The scan: only retained tables still mention the victim.
    let after = mentions(&storage, &a).await;
    let people = [
        &victim.owner,
        &victim.admin,
        &victim.analyst,
        &victim.viewer,
        &victim.invitee,
    ];
    for (place, content) in &after {
        let table = place
            .strip_prefix("table ")
            .and_then(|p| p.split(' ').next());
        assert!(
            table.is_some_and(|t| names::RETAINED_TABLES.contains(&t)),
            "{place} still holds the deleted workspace: {content}"
        );
        assert!(
            !content.contains('@'),
            "{place}: an email remains: {content}"
        );
        for person in people {
            assert!(
                !content.contains(&person.id) && !content.contains(&person.email),
                "{place}: {} remains: {content}",
                person.email
            );
        }
    }
    // One audit record per step, by the deletion itself.
    let plan = sixpence::deletion::plan();
    for step in &plan {
        let target = format!("deletion/{}", step.name());
        assert!(
            after
                .iter()
                .any(|(k, v)| k.starts_with("table audit") && v.contains(&target)),
            "no audit record for {target}"
        );
    }
    assert!(after.keys().any(|k| k.starts_with("table billing")));

    // The other workspace: byte for byte (ETags included) as it was.
    assert_eq!(mentions(&storage, &bystander.a).await, untouched);
    let still = app
        .get_as(
            &bystander.owner.token,
            &format!("/api/v1/workspaces/{}", bystander.a),
        )
        .await;
    assert_eq!(still.status, 200, "{}", still.text);

    // Asking again changes nothing (the workspace is gone for everyone).
    delete_workspace(&app, &victim)
        .await
        .assert_problem(404, Some("not-found"));
}

#[tokio::test]
async fn a_deletion_cut_short_is_completed_by_the_sweeper_and_cancels_once() {
    let (app, stripe) = spawn_app_with_stripe(|_| {}).await;
    let storage = storage_of(&app);
    let (victim, sub) = populate(&app, "cus_cut").await;
    drain(&app, &storage, false).await;
    let a = victim.a.clone();

    // Stripe is down for the whole of the host's retries: the cancel step fails and its message
    // ends in the poison queue. The workspace is stopped all the same.
    stripe.fail_next_deletes(1000);
    assert_eq!(delete_workspace(&app, &victim).await.status, 202);
    let failures = drain(&app, &storage, true).await;
    assert!(failures >= 1);
    let stuck = status(&app, &victim).await;
    assert_eq!(stuck["status"], "inProgress");
    assert_eq!(stuck["lastStep"], "stop", "{stuck}");
    app.get_as(&victim.owner.token, &format!("/api/v1/workspaces/{a}"))
        .await
        .assert_problem(404, Some("not-found"));
    // Nothing after the failed step ran: the connection secret is still there.
    assert!(
        mentions(&storage, &a)
            .await
            .keys()
            .any(|k| k.starts_with("table connections"))
    );

    // Stripe is back; the daily sweep resumes the deletion where it stopped.
    stripe.fail_next_deletes(0);
    let swept = app
        .invoke(
            "retention-sweeper",
            crate::support::host_fixture("timer-real.json"),
        )
        .await;
    assert_eq!(swept.status(), 200);
    drain(&app, &storage, false).await;
    // The poison copy of the failed step is removed by the queues step, like any of its messages.
    let done = status(&app, &victim).await;
    assert_eq!(done["status"], "completed", "{done}");

    // Every attempt used the same idempotency key, so Stripe cancelled once.
    let cancels = stripe.deletes();
    assert!(cancels.len() >= 2, "{cancels:?}");
    let keys: std::collections::BTreeSet<_> = cancels
        .iter()
        .map(|c| c.idempotency_key.clone().expect("key"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        cancels
            .iter()
            .all(|c| c.path == format!("subscriptions/{sub}"))
    );
    let after = mentions(&storage, &a).await;
    for place in after.keys() {
        let table = place
            .strip_prefix("table ")
            .and_then(|p| p.split(' ').next());
        assert!(
            table.is_some_and(|t| names::RETAINED_TABLES.contains(&t)),
            "{place} still holds the deleted workspace"
        );
    }

    // A duplicate of an old step (a redelivery) finds it done and does nothing.
    let duplicate = json!({"version": 1, "workspace": a, "step": "table:costs"}).to_string();
    let response = app.invoke("deletion", queue_envelope(&duplicate)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(mentions(&storage, &a).await, after);
}

#[tokio::test]
async fn the_sweeper_alerts_on_overdue_deletions_and_purges_after_retention() {
    use sixpence::domain::deletion::{Deletion, Reason};
    use sixpence::domain::tenancy::{UserId, WorkspaceId};
    use time::{Duration as Days, OffsetDateTime};

    let (app, _stripe) = spawn_app_with_stripe(|_| {}).await;
    let storage = storage_of(&app);
    storage.ensure_resources().await.expect("resources");
    let store = sixpence::storage::deletion::DeletionStorage::new(storage.clone());
    let nobody = UserId {
        tenant: uuid::Uuid::new_v4(),
        object: uuid::Uuid::new_v4(),
    };
    let now = OffsetDateTime::now_utc();
    // Requested 8 days ago and never run (say its messages were lost).
    let overdue = Deletion::new(
        WorkspaceId::new(),
        Reason::WorkspaceDeleted,
        nobody,
        now - Days::days(8),
    );
    store.start(&overdue).await.expect("record");
    // Completed long ago: past both retention periods.
    let mut old = Deletion::new(
        WorkspaceId::new(),
        Reason::AccountClosed,
        nobody,
        now - Days::days(4000),
    );
    old.done = Some("finish".into());
    old.completed_at = Some(now - Days::days(3000));
    store.start(&old).await.expect("record");
    let audit = sixpence::storage::audit::TableAuditLog::new(storage.clone());
    use sixpence::domain::audit::AuditLog as _;
    audit
        .append(&sixpence::domain::audit::AuditRecord {
            workspace: old.workspace,
            at: now - Days::days(3001),
            actor: sixpence::domain::audit::Actor::System {
                component: "test".into(),
            },
            action: "deletion.complete".into(),
            target: "deletion/finish".into(),
            request_id: "r".into(),
            outcome: sixpence::domain::audit::Outcome::Succeeded,
            changes: Vec::new(),
        })
        .await
        .expect("audit");
    assert!(
        !mentions(&storage, &old.workspace.to_string())
            .await
            .is_empty()
    );

    let swept = app
        .invoke(
            "retention-sweeper",
            crate::support::host_fixture("timer-real.json"),
        )
        .await;
    assert_eq!(swept.status(), 200);
    // The overdue deletion is resumed and completes.
    drain(&app, &storage, false).await;
    let resumed = store
        .get(overdue.workspace)
        .await
        .expect("read")
        .expect("record");
    assert!(resumed.completed_at.is_some(), "{resumed:?}");
    // The old one's retained records are purged, its record too.
    assert!(
        mentions(&storage, &old.workspace.to_string())
            .await
            .is_empty()
    );
    assert_eq!(store.get(old.workspace).await.expect("read"), None);
}

/// The audit records of `workspace` as stored (newest first), for a workspace whose members can no
/// longer read them through the API.
pub(crate) async fn audit_trail(app: &TestApp, workspace: &str) -> Vec<Value> {
    let rows = storage_of(app)
        .tables()
        .table(names::AUDIT_TABLE)
        .expect("table")
        .query_all::<Map<String, Value>>(&Query::partition(workspace))
        .await
        .expect("audit rows");
    rows.iter()
        .map(|row| {
            serde_json::from_str(row.properties["Record"].as_str().expect("record"))
                .expect("record JSON")
        })
        .collect()
}

#[tokio::test]
async fn closing_an_account_leaves_shared_workspaces_and_deletes_the_ones_nobody_else_uses() {
    let (app, _stripe) = spawn_app_with_stripe(|_| {}).await;
    let storage = storage_of(&app);
    let cast = Cast::build(&app).await;
    let solo = app.create_workspace(&cast.admin.token, "Admin's own").await;
    let close = |person: &crate::support::api::Person, confirm: &str| {
        app.call("DELETE", "/api/v1/me")
            .auth(Some(&person.token))
            .json(&json!({ "confirm": confirm }))
            .send()
    };
    let workspaces_of = |person: crate::support::api::Person| {
        let app = &app;
        async move {
            let me = app.get_as(&person.token, "/api/v1/me").await;
            assert_eq!(me.status, 200, "{}", me.text);
            let mut ids: Vec<String> = me.body["workspaces"]
                .as_array()
                .expect("workspaces")
                .iter()
                .map(|w| w["id"].as_str().expect("id").to_owned())
                .collect();
            ids.sort();
            ids
        }
    };

    // A confirmation that is not the caller's changes nothing.
    close(&cast.admin, &cast.owner.email)
        .await
        .assert_problem(400, Some("invalid-request"));
    // The only owner of a workspace others use is refused, and keeps everything.
    let refused = close(&cast.owner, &cast.owner.email).await;
    refused.assert_problem(409, None);
    assert!(refused.text.contains(&cast.a), "{}", refused.text);
    assert_eq!(
        workspaces_of(cast.owner.clone()).await,
        vec![cast.a.clone()]
    );

    // The admin closes theirs: A (shared) is left, their own workspace is deleted.
    let closed = close(&cast.admin, &cast.admin.email.to_uppercase()).await;
    assert_eq!(closed.status, 202, "{}", closed.text);
    assert_eq!(closed.body["left"], json!([cast.a]));
    assert_eq!(closed.body["deleted"][0]["id"], solo.as_str());
    assert_eq!(closed.body["deleted"][0]["reason"], "accountClosed");
    assert!(workspaces_of(cast.admin.clone()).await.is_empty());
    app.get_as(&cast.admin.token, &format!("/api/v1/workspaces/{}", cast.a))
        .await
        .assert_problem(404, Some("not-found"));
    let members = app
        .get_as(
            &cast.owner.token,
            &format!("/api/v1/workspaces/{}/members", cast.a),
        )
        .await;
    assert!(!members.text.contains(&cast.admin.id), "{}", members.text);
    // Recorded in the shared workspace's own trail.
    let trail = app.audit_records(&cast.owner.token, &cast.a).await;
    assert_eq!(trail[0]["action"], "account.close");
    assert_eq!(trail[0]["actor"], cast.admin.id.as_str());
    assert_eq!(trail[0]["requestId"], closed.request_id().as_str());

    // The deletion of the sole workspace runs to completion like any other.
    drain(&app, &storage, false).await;
    let done = app
        .get_as(&cast.admin.token, &format!("/api/v1/deletions/{solo}"))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["status"], "completed", "{}", done.text);
}
