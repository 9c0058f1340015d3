//! Azure connections through the tenant API, against Azurite and the simulated Azure tenant:
//! onboarding and its audit trail, least privilege, error translation, the health check's role
//! events, deletion, sealed secrets bound to their place, and key rotation.

use std::sync::Arc;

use serde_json::{Value, json};
use sixpence::storage::{Storage, StorageConnection};
use sixpence_azure_sim::{Fault, Revocation, Role, SimTenant};
use sixpence_testkit::Azurite;

use crate::support::{TestApp, settings, spawn_app_with, token};

pub struct World {
    pub app: TestApp,
    pub storage: Storage,
    pub owner: String,
    pub workspace: String,
}

pub async fn world() -> World {
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    let storage = Storage::connect(
        &StorageConnection::parse_connection_string(azurite.connection_string())
            .expect("connection string")
            .with_max_retries(2),
    )
    .expect("storage");
    let app = spawn_app_with(azurite.clone(), settings(azurite.connection_string())).await;
    let owner = token("owner@contoso.example");
    let workspace = app.create_workspace(&owner, "Contoso").await;
    World {
        app,
        storage,
        owner,
        workspace,
    }
}

impl World {
    pub fn sim(&self) -> &SimTenant {
        &self.app.sim
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/workspaces/{}{rest}", self.workspace)
    }

    /// The first simulated tenant's credentials as a create body.
    pub fn create_body(&self, secret: Option<&str>) -> Value {
        let c = self.sim().credentials(0);
        json!({
            "name": "Contoso production",
            "tenantId": c.tenant_id,
            "clientId": c.client_id,
            "clientSecret": secret.unwrap_or(&c.client_secret),
        })
    }

    pub async fn connect(&self, body: &Value) -> crate::support::api::Answer {
        self.app
            .call("POST", &self.path("/connections"))
            .auth(Some(&self.owner))
            .json(body)
            .send()
            .await
    }

    /// Runs the `connection-health` timer, then every `connection-check` message it enqueued, as
    /// the host would.
    pub async fn run_health_check(&self) -> usize {
        let timer = self
            .app
            .invoke(
                "connection-health",
                crate::support::host_fixture("timer-real.json"),
            )
            .await;
        assert_eq!(
            timer.status(),
            200,
            "{}",
            timer.text().await.unwrap_or_default()
        );
        let queue = self
            .storage
            .queues()
            .queue("connection-check")
            .expect("queue");
        let mut handled = 0;
        loop {
            let messages = queue
                .receive(32, std::time::Duration::from_secs(60))
                .await
                .expect("receive");
            if messages.is_empty() {
                return handled;
            }
            for message in messages {
                let text = message.text.clone().expect("base64 text");
                let response = self
                    .app
                    .invoke("connection-check", queue_envelope(&text))
                    .await;
                assert_eq!(
                    response.status(),
                    200,
                    "{}",
                    response.text().await.unwrap_or_default()
                );
                queue
                    .delete_message(&message.id, &message.pop_receipt)
                    .await
                    .expect("delete");
                handled += 1;
            }
        }
    }

    /// The events raised so far (peeked, so they stay for the notifications side).
    pub async fn events(&self) -> Vec<Value> {
        let queue = self.storage.queues().queue("events").expect("queue");
        queue
            .peek(32)
            .await
            .expect("peek")
            .into_iter()
            .map(|m| serde_json::from_str(&m.text.expect("text")).expect("event JSON"))
            .collect()
    }

    pub async fn get_connection(&self, id: &str) -> Value {
        let answer = self
            .app
            .get_as(&self.owner, &self.path(&format!("/connections/{id}")))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body
    }
}

/// The host's queue envelope for `text` (the message arrives JSON-encoded twice).
pub fn queue_envelope(text: &str) -> String {
    let once = serde_json::to_string(text).expect("encode");
    json!({
        "Data": { "message": once },
        "Metadata": { "DequeueCount": "1", "Id": "\"m-1\"" }
    })
    .to_string()
}

fn subscription<'a>(connection: &'a Value, id: &str) -> &'a Value {
    connection["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .find(|s| {
            s["subscriptionId"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(id))
        })
        .unwrap_or_else(|| panic!("subscription {id} in {connection}"))
}

#[tokio::test]
async fn onboarding_verifies_at_once_and_each_step_is_stored_shown_and_audited() {
    let w = world().await;
    let created = w.connect(&w.create_body(None)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["state"], "verified", "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert!(created.header("location").is_some_and(|l| l.ends_with(&id)));
    let subs = w.sim().credentials(0).subscriptions;
    assert_eq!(
        created.body["subscriptions"].as_array().map(Vec::len),
        Some(subs.len())
    );
    for sub in &subs {
        let s = subscription(&created.body, sub);
        assert_eq!(s["usable"], true, "{s}");
        assert_eq!(s["missingFeatures"], json!([]), "{s}");
        assert_eq!(s["overPrivileged"], false);
    }
    assert_eq!(created.body["overPrivileged"], false);

    // A subscription that is not visible, then a real choice.
    let bad = w
        .app
        .call("PUT", &w.path(&format!("/connections/{id}/subscriptions")))
        .auth(Some(&w.owner))
        .json(&json!({ "subscriptionIds": ["00000000-0000-0000-0000-000000000000"] }))
        .send()
        .await;
    bad.assert_problem(400, Some("invalid-request"));
    let chosen = w
        .app
        .call("PUT", &w.path(&format!("/connections/{id}/subscriptions")))
        .auth(Some(&w.owner))
        .json(&json!({ "subscriptionIds": [subs[0]] }))
        .send()
        .await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    assert_eq!(chosen.body["state"], "subscriptionsChosen");
    assert_eq!(subscription(&chosen.body, &subs[0])["selected"], true);
    assert_eq!(subscription(&chosen.body, &subs[1])["selected"], false);

    // Stored: a fresh read and the listing say the same.
    assert_eq!(w.get_connection(&id).await["state"], "subscriptionsChosen");
    let listed = w.app.get_as(&w.owner, &w.path("/connections")).await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());

    // Audited step by step, oldest first: created (with what the verification found, on the same
    // request), then subscriptions chosen.
    let mut records: Vec<Value> = w
        .app
        .audit_records(&w.owner, &w.workspace)
        .await
        .into_iter()
        .filter(|r| r["target"] == format!("connection/{id}"))
        .collect();
    records.reverse();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        ["connection.create", "connection.subscriptions.choose"]
    );
    assert!(records.iter().all(|r| r["outcome"] == "succeeded"));
    assert!(
        records[0]["changes"]
            .as_array()
            .expect("changes")
            .contains(&json!({"field": "state", "from": "created", "to": "verified"})),
        "{}",
        records[0]
    );

    // A verification whose secret is then refused: recorded as a step, and its outcome.
    w.sim()
        .apply_fault(
            0,
            Fault::RevokeCredentials {
                reason: Revocation::SecretInvalid,
            },
        )
        .expect("fault");
    let refused = w
        .app
        .call("POST", &w.path(&format!("/connections/{id}/verify")))
        .auth(Some(&w.owner))
        .send()
        .await;
    assert_eq!(refused.status, 200, "{}", refused.text);
    assert_eq!(refused.body["state"], "revoked");
    let newest = &w.app.audit_records(&w.owner, &w.workspace).await[0];
    assert_eq!(newest["action"], "connection.verify");
    assert!(
        newest["changes"]
            .as_array()
            .expect("changes")
            .contains(&json!({"field": "problem", "from": null, "to": "wrongSecret"})),
        "{newest}"
    );
    w.sim().clear_faults(0).expect("clear");

    // Members who are not admins may look but not change.
    w.app
        .join(&w.owner, &w.workspace, "analyst@contoso.example", "analyst")
        .await;
    let analyst = token("analyst@contoso.example");
    assert_eq!(
        w.app.get_as(&analyst, &w.path("/connections")).await.status,
        200
    );
    let denied = w
        .app
        .call("POST", &w.path(&format!("/connections/{id}/verify")))
        .auth(Some(&analyst))
        .send()
        .await;
    denied.assert_problem(403, Some("forbidden"));
}

#[tokio::test]
async fn over_privileged_and_cost_reader_only_principals_are_explained_with_the_fix() {
    let w = world().await;
    let subs = w.sim().credentials(0).subscriptions;
    w.sim()
        .apply_fault(
            0,
            Fault::OverPrivileged {
                subscription: subs[0].clone(),
                role: Role::Contributor,
            },
        )
        .expect("fault");
    w.sim()
        .apply_fault(
            0,
            Fault::SetRoles {
                subscription: subs[1].clone(),
                roles: vec![Role::CostManagementReader],
            },
        )
        .expect("fault");
    let created = w.connect(&w.create_body(None)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let c = &created.body;
    assert_eq!(c["overPrivileged"], true, "{c}");
    assert_eq!(
        c["fixes"],
        json!(["Assign Reader and Cost Management Reader instead of Contributor"])
    );
    let over = subscription(c, &subs[0]);
    assert_eq!(over["overPrivileged"], true);
    assert!(
        over["excessActions"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{over}"
    );
    // Cost Management Reader alone: costs yes, inventory and Advisor no, and how to fix it.
    let reader_only = subscription(c, &subs[1]);
    assert_eq!(reader_only["usable"], true, "{reader_only}");
    assert_eq!(
        reader_only["missingFeatures"],
        json!(["resources", "advisor"])
    );
    assert!(
        reader_only["fixes"][0]
            .as_str()
            .is_some_and(|f| f.contains("Reader role")),
        "{reader_only}"
    );
    // The over-privilege is recorded and raised for the notifications side.
    let events = w.events().await;
    assert!(
        events.iter().any(|e| e["event"]["kind"]["kind"] == "role"
            && e["event"]["kind"]["problem"] == "overPrivileged"),
        "{events:?}"
    );
    assert_eq!(w.sim().write_attempts(), vec![], "Sixpence never writes");
}

#[tokio::test]
async fn azure_errors_become_messages_a_customer_can_act_on() {
    let w = world().await;
    // Wrong secret: kept as failed, with the exact fix, then corrected by rotating the secret.
    let wrong = w
        .connect(&w.create_body(Some("the-secret-id-not-its-value")))
        .await;
    assert_eq!(wrong.status, 201, "{}", wrong.text);
    assert_eq!(wrong.body["state"], "failed");
    assert_eq!(wrong.body["problem"]["kind"], "wrongSecret");
    assert!(
        wrong.body["problem"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Value (not its Secret ID)")),
        "{}",
        wrong.text
    );
    let id = wrong.body["id"].as_str().expect("id").to_owned();
    let rotated = w
        .app
        .call("PUT", &w.path(&format!("/connections/{id}/secret")))
        .auth(Some(&w.owner))
        .json(&json!({ "clientSecret": w.sim().credentials(0).client_secret }))
        .send()
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.body["state"], "verified", "{}", rotated.text);
    assert!(rotated.body.get("problem").is_none());

    // Wrong client id and an expired secret.
    let mut unknown_app = w.create_body(None);
    unknown_app["clientId"] = json!(uuid::Uuid::new_v4().to_string());
    let answer = w.connect(&unknown_app).await;
    assert_eq!(
        answer.body["problem"]["kind"], "unknownApplication",
        "{}",
        answer.text
    );
    w.sim()
        .apply_fault(
            0,
            Fault::RevokeCredentials {
                reason: Revocation::SecretExpired,
            },
        )
        .expect("fault");
    let expired = w.connect(&w.create_body(None)).await;
    assert_eq!(
        expired.body["problem"]["kind"], "secretExpired",
        "{}",
        expired.text
    );
    assert!(
        expired.body["problem"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired") && m.contains("Certificates & secrets")),
        "{}",
        expired.text
    );
    w.sim().clear_faults(0).expect("clear");

    // No subscriptions at all.
    for sub in w.sim().credentials(0).subscriptions {
        w.sim()
            .apply_fault(0, Fault::RemoveRoleAssignment { subscription: sub })
            .expect("fault");
    }
    let none = w.connect(&w.create_body(None)).await;
    assert_eq!(
        none.body["problem"]["kind"], "noSubscriptions",
        "{}",
        none.text
    );

    // Invalid input is a 400 problem, and no stack trace or raw Azure body leaks anywhere.
    let mut bad = w.create_body(None);
    bad["tenantId"] = json!("not a tenant");
    w.connect(&bad)
        .await
        .assert_problem(400, Some("invalid-request"));
    for answer in [&wrong, &answer, &expired, &none] {
        assert!(
            !answer.text.contains("AADSTS7000215: Invalid"),
            "{}",
            answer.text
        );
        assert!(!answer.text.contains("Trace ID"), "{}", answer.text);
    }
}

#[tokio::test]
async fn the_health_check_revokes_once_raises_a_role_event_and_only_an_admin_re_enables() {
    let w = world().await;
    let created = w.connect(&w.create_body(None)).await;
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        w.run_health_check().await,
        1,
        "one active connection, one check"
    );
    assert_eq!(w.get_connection(&id).await["state"], "verified");

    // The customer deletes the secret: the next hourly check notices, revokes, raises one event.
    w.sim()
        .apply_fault(
            0,
            Fault::RevokeCredentials {
                reason: Revocation::SecretInvalid,
            },
        )
        .expect("fault");
    w.run_health_check().await;
    let revoked = w.get_connection(&id).await;
    assert_eq!(revoked["state"], "revoked", "{revoked}");
    assert_eq!(revoked["problem"]["kind"], "wrongSecret");
    let role_events = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["event"]["kind"]["problem"] == "credentialsRevoked")
            .count()
    };
    assert_eq!(role_events(&w.events().await), 1);

    // A revoked connection is not called again, by the timer or anything else: no retry storm.
    let token_calls = w.sim().request_count("token");
    assert_eq!(w.run_health_check().await, 0);
    assert_eq!(w.sim().request_count("token"), token_calls);
    assert_eq!(role_events(&w.events().await), 1);

    // Fixed by the customer: still revoked until an admin re-verifies.
    w.sim()
        .apply_fault(0, Fault::RestoreCredentials)
        .expect("fault");
    w.run_health_check().await;
    assert_eq!(w.get_connection(&id).await["state"], "revoked");
    let verified = w
        .app
        .call("POST", &w.path(&format!("/connections/{id}/verify")))
        .auth(Some(&w.owner))
        .send()
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.body["state"], "verified");
}

#[tokio::test]
async fn a_newly_granted_write_and_an_expiring_secret_are_each_reported_once() {
    let w = world().await;
    let mut body = w.create_body(None);
    let soon = time::OffsetDateTime::now_utc().date() + time::Duration::days(5);
    body["secretExpiresOn"] = json!(soon.to_string());
    let created = w.connect(&body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["secretExpiresOn"], soon.to_string());
    let sub = w.sim().credentials(0).subscriptions[0].clone();
    w.sim()
        .apply_fault(
            0,
            Fault::OverPrivileged {
                subscription: sub,
                role: Role::Owner,
            },
        )
        .expect("fault");
    w.run_health_check().await;
    w.run_health_check().await;
    let events = w.events().await;
    let count = |problem: &str| {
        events
            .iter()
            .filter(|e| e["event"]["kind"]["problem"] == problem)
            .count()
    };
    assert_eq!(count("overPrivileged"), 1, "{events:?}");
    assert_eq!(count("secretExpiring"), 1, "{events:?}");
    let expiring = events
        .iter()
        .find(|e| e["event"]["kind"]["problem"] == "secretExpiring")
        .expect("reminder");
    assert_eq!(expiring["event"]["kind"]["daysLeft"], 5);
    assert_eq!(expiring["event"]["severity"], "critical");
    assert_eq!(
        w.get_connection(created.body["id"].as_str().unwrap()).await["overPrivileged"],
        true
    );
}

#[tokio::test]
async fn deleting_a_connection_removes_its_secret_and_stops_every_later_call() {
    let w = world().await;
    let created = w.connect(&w.create_body(None)).await;
    let id = created.body["id"].as_str().expect("id").to_owned();
    let deleted = w
        .app
        .call("DELETE", &w.path(&format!("/connections/{id}")))
        .auth(Some(&w.owner))
        .send()
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let row: Option<sixpence::storage::table::Entity<Value>> = w
        .storage
        .tables()
        .table("connections")
        .expect("table")
        .get(&w.workspace, &id)
        .await
        .expect("read");
    assert!(row.is_none(), "the row and its sealed secret are gone");
    w.app
        .get_as(&w.owner, &w.path(&format!("/connections/{id}")))
        .await
        .assert_problem(404, Some("not-found"));
    let calls = w.sim().request_count("token") + w.sim().request_count("subscriptions");
    assert_eq!(w.run_health_check().await, 0);
    let verify = w
        .app
        .call("POST", &w.path(&format!("/connections/{id}/verify")))
        .auth(Some(&w.owner))
        .send()
        .await;
    verify.assert_problem(404, Some("not-found"));
    assert_eq!(
        w.sim().request_count("token") + w.sim().request_count("subscriptions"),
        calls
    );
}

#[tokio::test]
async fn a_sealed_secret_copied_to_another_workspace_does_not_open_and_rotation_reseals() {
    let w = world().await;
    let first = w.connect(&w.create_body(None)).await;
    let first_id = first.body["id"].as_str().expect("id").to_owned();
    let other_workspace = w.app.create_workspace(&w.owner, "Other").await;
    let second = w
        .app
        .call(
            "POST",
            &format!("/api/v1/workspaces/{other_workspace}/connections"),
        )
        .auth(Some(&w.owner))
        .json(&w.create_body(Some("something-else")))
        .send()
        .await;
    let second_id = second.body["id"].as_str().expect("id").to_owned();
    let table = w.storage.tables().table("connections").expect("table");
    let read = |pk: String, rk: String| {
        let table = table.clone();
        async move {
            table
                .get::<serde_json::Map<String, Value>>(&pk, &rk)
                .await
                .expect("read")
                .expect("row")
        }
    };
    let original = read(w.workspace.clone(), first_id.clone()).await;
    let sealed = original.properties["Secret"]
        .as_str()
        .expect("Secret")
        .to_owned();
    let plaintext = w.sim().credentials(0).client_secret;
    assert!(sealed.starts_with("v1.dev1."), "{sealed}");
    assert!(!sealed.contains(&plaintext));

    // Paste workspace A's ciphertext into workspace B's row: it must not open there.
    let mut stolen = read(other_workspace.clone(), second_id.clone()).await;
    stolen
        .properties
        .insert("Secret".to_owned(), Value::String(sealed.clone()));
    table
        .update(
            &stolen,
            sixpence::storage::table::UpdateMode::Replace,
            sixpence::storage::table::IfMatch::Any,
        )
        .await
        .expect("tamper");
    let tokens_before = w.sim().request_count("token");
    let verify = w
        .app
        .call(
            "POST",
            &format!("/api/v1/workspaces/{other_workspace}/connections/{second_id}/verify"),
        )
        .auth(Some(&w.owner))
        .send()
        .await;
    verify.assert_problem(500, None);
    assert!(!verify.text.contains(&plaintext));
    assert_eq!(
        w.sim().request_count("token"),
        tokens_before,
        "nothing was sent"
    );

    // Rotation: a new key in front; the operator command reseals under it, the app still opens it.
    let new_key = "k2026:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let keyring = format!("{new_key},{}", sixpence::config::DEV_DATA_KEYS);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sixpence"))
        .arg("rotate-secrets")
        .env_clear()
        .env("AzureWebJobsStorage", w.app._azurite.connection_string())
        .env("SIXPENCE_ENVIRONMENT", "development")
        .env("SIXPENCE_DATA_KEYS", &keyring)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The tampered row cannot be opened: reported by record, without values, and the run fails.
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("resealed 1 secret(s)"), "{stdout}{stderr}");
    assert!(stderr.contains(&second_id), "{stderr}");
    assert!(!stderr.contains(&plaintext) && !stdout.contains(&plaintext));
    let resealed = read(w.workspace.clone(), first_id.clone()).await;
    let resealed = resealed.properties["Secret"].as_str().expect("Secret");
    assert!(resealed.starts_with("v1.k2026."), "{resealed}");

    let mut settings = settings(w.app._azurite.connection_string());
    settings.data_keys = Some(secrecy::SecretString::from(keyring));
    // The same simulated tenant as the first app's.
    let base = url::Url::parse(&w.sim().base_url()).expect("url");
    settings.azure = sixpence::azure::AzureEndpoints {
        arm: base.clone(),
        authority: base,
    };
    let rotated_app = spawn_app_with(w.app._azurite.clone(), settings).await;
    let verify = rotated_app
        .call("POST", &w.path(&format!("/connections/{first_id}/verify")))
        .auth(Some(&w.owner))
        .send()
        .await;
    assert_eq!(verify.status, 200, "{}", verify.text);
    assert_eq!(verify.body["state"], "verified");
}

#[tokio::test]
async fn the_sync_scheduler_enqueues_each_chosen_subscription_once_a_night() {
    let w = world().await;
    let subs = w.sim().credentials(0).subscriptions;
    let created = w.connect(&w.create_body(None)).await;
    let id = created.body["id"].as_str().expect("id").to_owned();
    let chosen = w
        .app
        .call("PUT", &w.path(&format!("/connections/{id}/subscriptions")))
        .auth(Some(&w.owner))
        .json(&json!({ "subscriptionIds": [subs[0], subs[2]] }))
        .send()
        .await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    // Another workspace's connection (the second simulated tenant), revoked: not synced.
    let other = w.app.create_workspace(&w.owner, "Revoked one").await;
    let second = w.sim().credentials(1);
    let connected = w
        .app
        .call("POST", &format!("/api/v1/workspaces/{other}/connections"))
        .auth(Some(&w.owner))
        .json(&json!({
            "name": "Second tenant",
            "tenantId": second.tenant_id,
            "clientId": second.client_id,
            "clientSecret": second.client_secret,
        }))
        .send()
        .await;
    let other_id = connected.body["id"].as_str().expect("id").to_owned();
    let chose = w
        .app
        .call(
            "PUT",
            &format!("/api/v1/workspaces/{other}/connections/{other_id}/subscriptions"),
        )
        .auth(Some(&w.owner))
        .json(&json!({ "subscriptionIds": [second.subscriptions[0]] }))
        .send()
        .await;
    assert_eq!(chose.status, 200, "{}", chose.text);
    w.sim()
        .apply_fault(
            1,
            Fault::RevokeCredentials {
                reason: Revocation::SecretExpired,
            },
        )
        .expect("fault");
    w.run_health_check().await;

    for _ in 0..2 {
        let fired = w
            .app
            .invoke(
                "sync-scheduler",
                crate::support::host_fixture("timer-real.json"),
            )
            .await;
        assert_eq!(fired.status(), 200);
    }
    let messages: Vec<Value> = w
        .storage
        .queues()
        .queue("cost-sync")
        .expect("queue")
        .peek(32)
        .await
        .expect("peek")
        .into_iter()
        .map(|m| serde_json::from_str(&m.text.expect("text")).expect("JSON"))
        .collect();
    let mut scheduled: Vec<String> = messages
        .iter()
        .map(|m| m["subscription"].as_str().expect("subscription").to_owned())
        .collect();
    scheduled.sort();
    let mut wanted = vec![subs[0].to_ascii_lowercase(), subs[2].to_ascii_lowercase()];
    wanted.sort();
    assert_eq!(scheduled, wanted, "{messages:#?}");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    for message in &messages {
        assert_eq!(message["version"], 1);
        assert_eq!(message["workspace"], w.workspace.as_str());
        assert_eq!(message["connection"], id.as_str());
        assert_eq!(message["night"], today.as_str());
    }
}

#[tokio::test]
async fn a_sync_now_queues_the_chosen_subscriptions_a_few_times_an_hour_then_429() {
    let w = world().await;
    let nothing = w
        .app
        .call("POST", &w.path("/syncs"))
        .auth(Some(&w.owner))
        .send()
        .await;
    nothing.assert_problem(409, Some("conflict"));
    let id = w.app.connect_and_choose(&w.owner, &w.workspace).await;
    let _ = id;
    w.app
        .join(&w.owner, &w.workspace, "analyst@contoso.example", "analyst")
        .await;
    let analyst = token("analyst@contoso.example");
    for _ in 0..4 {
        let queued = w
            .app
            .call("POST", &w.path("/syncs"))
            .auth(Some(&analyst))
            .send()
            .await;
        assert_eq!(queued.status, 202, "{}", queued.text);
        assert_eq!(
            queued.body["subscriptions"],
            json!([w.sim().credentials(0).subscriptions[0].to_ascii_lowercase()])
        );
    }
    let limited = w
        .app
        .call("POST", &w.path("/syncs"))
        .auth(Some(&w.owner))
        .send()
        .await;
    limited.assert_problem(429, Some("rate-limited"));
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let queued = w
        .storage
        .queues()
        .queue("cost-sync")
        .expect("queue")
        .peek(32)
        .await
        .expect("peek");
    assert_eq!(queued.len(), 4, "one message per accepted request");
}
