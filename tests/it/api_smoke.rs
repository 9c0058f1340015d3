//! The tenant API's main path, end to end against Azurite: create, read, update with If-Match,
//! invite, accept, change a role, and read the audit trail.

use serde_json::{Value, json};

use crate::support::{spawn_app, token};

#[tokio::test]
async fn a_workspace_is_created_shared_and_audited() {
    let app = spawn_app().await;
    let owner = token("olivia@contoso.com");
    let bob = token("bob@fabrikam.com");

    let created = app
        .http
        .post(app.url("/api/v1/workspaces"))
        .bearer_auth(&owner)
        .json(&json!({"name": "Contoso FinOps"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("etag"));
    assert!(created.headers().contains_key("x-request-id"));
    let workspace: Value = created.json().await.expect("json");
    assert_eq!(workspace["role"], "owner");
    assert_eq!(workspace["displayCurrency"], "GBP");
    let id = workspace["id"].as_str().expect("id").to_owned();

    let read = app
        .http
        .get(app.url(&format!("/api/v1/workspaces/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("get");
    assert_eq!(read.status(), 200);
    let etag = read.headers()["etag"].to_str().expect("etag").to_owned();

    let renamed = app
        .http
        .patch(app.url(&format!("/api/v1/workspaces/{id}")))
        .bearer_auth(&owner)
        .header("if-match", &etag)
        .json(&json!({"name": "Contoso Cloud Costs", "timeZone": "Europe/Dublin"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(renamed.status(), 200);
    let stale = app
        .http
        .patch(app.url(&format!("/api/v1/workspaces/{id}")))
        .bearer_auth(&owner)
        .header("if-match", &etag)
        .json(&json!({"name": "Lost update"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(stale.status(), 412);

    // Bob is not a member: the workspace does not exist for him.
    let hidden = app
        .http
        .get(app.url(&format!("/api/v1/workspaces/{id}")))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("get");
    assert_eq!(hidden.status(), 404);

    let invited = app
        .http
        .post(app.url(&format!("/api/v1/workspaces/{id}/invitations")))
        .bearer_auth(&owner)
        .json(&json!({"email": "Bob@Fabrikam.com", "role": "viewer"}))
        .send()
        .await
        .expect("invite");
    assert_eq!(invited.status(), 201);
    let invitation: Value = invited.json().await.expect("json");
    let invitation_id = invitation["id"].as_str().expect("id");

    let accepted = app
        .http
        .post(app.url(&format!(
            "/api/v1/workspaces/{id}/invitations/{invitation_id}/accept"
        )))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("accept");
    assert_eq!(
        accepted.status(),
        200,
        "{}",
        accepted.text().await.unwrap_or_default()
    );

    let members: Value = app
        .http
        .get(app.url(&format!("/api/v1/workspaces/{id}/members")))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("members")
        .json()
        .await
        .expect("json");
    assert_eq!(members["items"].as_array().map(Vec::len), Some(2));

    // Bob is a viewer: he may read but not rename.
    let denied = app
        .http
        .patch(app.url(&format!("/api/v1/workspaces/{id}")))
        .bearer_auth(&bob)
        .json(&json!({"name": "Bob's now"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(denied.status(), 403);
    assert_eq!(denied.headers()["content-type"], "application/problem+json");

    let me: Value = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["workspaces"][0]["role"], "viewer");
    assert_eq!(me["emailVerified"], true);

    let audit: Value = app
        .http
        .get(app.url(&format!("/api/v1/workspaces/{id}/audit")))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "workspace.update",
            "invitation.accept",
            "invitation.create",
            "workspace.update",
            "workspace.update",
            "workspace.create"
        ],
        "{audit:#}"
    );
    let outcomes: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes,
        [
            "denied",
            "succeeded",
            "succeeded",
            "rejected",
            "succeeded",
            "succeeded"
        ]
    );
    assert!(
        !audit.to_string().contains("bob@fabrikam.com"),
        "the invitee's email is not in the audit trail"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_token() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["paths"]["/api/v1/workspaces/{id}"]["patch"]["x-sixpence-permission"],
        "administer"
    );
}
