//! Helpers for the tenant API tests: one call shape, problem checks, and a workspace with one member
//! of every role (built through the API itself: create, invite, accept).

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{TestApp, token};

/// What a call returned, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn request_id(&self) -> String {
        self.header("x-request-id")
            .expect("every response carries x-request-id")
            .to_owned()
    }

    /// Asserts a problem document with this status and `type` suffix (`None`: any sixpence type).
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: Option<&str>) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_problem_shape(self);
        if let Some(slug) = slug {
            assert_eq!(
                self.body["type"],
                format!("urn:sixpence:problem:{slug}"),
                "{}",
                self.text
            );
        }
    }
}

/// Every error leaves as `application/problem+json` with a stable sixpence `type`.
#[track_caller]
pub fn assert_problem_shape(answer: &Answer) {
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json"),
        "status {}: {}",
        answer.status,
        answer.text
    );
    assert!(
        answer.body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:sixpence:problem:")),
        "{}",
        answer.text
    );
    assert_eq!(answer.body["status"], answer.status, "{}", answer.text);
}

/// A request being built: method, path, optional bearer token, optional JSON body, extra headers.
pub struct Call {
    builder: reqwest::RequestBuilder,
}

impl Call {
    pub fn new(app: &TestApp, method: &str, path: &str) -> Self {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        Self {
            builder: app.http.request(method, app.url(path)),
        }
    }

    pub fn auth(mut self, bearer: Option<&str>) -> Self {
        if let Some(bearer) = bearer {
            self.builder = self.builder.bearer_auth(bearer);
        }
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    pub fn body_opt(self, body: Option<&Value>) -> Self {
        match body {
            Some(body) => self.json(body),
            None => self,
        }
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<reqwest::Body>) -> Self {
        self.builder = self.builder.header("content-type", content_type).body(body);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub async fn send(self) -> Answer {
        let response = self.builder.send().await.expect("request reaches the app");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }
}

impl TestApp {
    pub fn call(&self, method: &str, path: &str) -> Call {
        Call::new(self, method, path)
    }

    pub async fn get_as(&self, bearer: &str, path: &str) -> Answer {
        self.call("GET", path).auth(Some(bearer)).send().await
    }

    /// Creates a workspace as `owner`; returns its id.
    pub async fn create_workspace(&self, owner: &str, name: &str) -> String {
        let created = self
            .call("POST", "/api/v1/workspaces")
            .auth(Some(owner))
            .json(&json!({ "name": name }))
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        created.body["id"].as_str().expect("id").to_owned()
    }

    /// Invites `email` to `workspace` with `role`; returns the invitation id.
    pub async fn invite(&self, inviter: &str, workspace: &str, email: &str, role: &str) -> String {
        let invited = self
            .call(
                "POST",
                &format!("/api/v1/workspaces/{workspace}/invitations"),
            )
            .auth(Some(inviter))
            .json(&json!({ "email": email, "role": role }))
            .send()
            .await;
        assert_eq!(invited.status, 201, "{}", invited.text);
        invited.body["id"].as_str().expect("id").to_owned()
    }

    /// Invites `email` and accepts as them.
    pub async fn join(&self, inviter: &str, workspace: &str, email: &str, role: &str) {
        let invitation = self.invite(inviter, workspace, email, role).await;
        let accepted = self
            .call(
                "POST",
                &format!("/api/v1/workspaces/{workspace}/invitations/{invitation}/accept"),
            )
            .auth(Some(&token(email)))
            .send()
            .await;
        assert_eq!(accepted.status, 200, "{}", accepted.text);
    }

    /// Connects `workspace` to the app's simulated tenant (its first tenant's principal) and
    /// chooses its first subscription; returns the connection id.
    pub async fn connect_and_choose(&self, admin: &str, workspace: &str) -> String {
        let id = self.connect(admin, workspace).await;
        let chosen = self
            .call(
                "PUT",
                &format!("/api/v1/workspaces/{workspace}/connections/{id}/subscriptions"),
            )
            .auth(Some(admin))
            .json(&json!({ "subscriptionIds": [self.sim.credentials(0).subscriptions[0]] }))
            .send()
            .await;
        assert_eq!(chosen.status, 200, "{}", chosen.text);
        id
    }

    /// Connects `workspace` to the app's simulated tenant (its first tenant's principal); returns
    /// the connection id. The connection is verified.
    pub async fn connect(&self, admin: &str, workspace: &str) -> String {
        let c = self.sim.credentials(0);
        let created = self
            .call(
                "POST",
                &format!("/api/v1/workspaces/{workspace}/connections"),
            )
            .auth(Some(admin))
            .json(&json!({
                "name": "Simulated",
                "tenantId": c.tenant_id,
                "clientId": c.client_id,
                "clientSecret": c.client_secret,
            }))
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["state"], "verified", "{}", created.text);
        created.body["id"].as_str().expect("id").to_owned()
    }

    /// Creates an in-app channel (all event kinds, info and up) in `workspace`; returns its id.
    pub async fn in_app_channel(&self, admin: &str, workspace: &str) -> String {
        let created = self
            .call("POST", &format!("/api/v1/workspaces/{workspace}/channels"))
            .auth(Some(admin))
            .json(&json!({ "name": "In the app", "kind": "inApp", "minSeverity": "info" }))
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        created.body["id"].as_str().expect("id").to_owned()
    }

    /// Sends a test message to the in-app `channel` and runs the `notify` function on the queued
    /// messages (as the host would) until it is in `reader`'s inbox; returns its id, which every
    /// member shares.
    pub async fn in_app_notification(&self, admin: &str, workspace: &str, channel: &str) -> String {
        let sent = self
            .call(
                "POST",
                &format!("/api/v1/workspaces/{workspace}/channels/{channel}/test"),
            )
            .auth(Some(admin))
            .send()
            .await;
        assert_eq!(sent.status, 202, "{}", sent.text);
        let storage = sixpence::storage::Storage::connect(
            &sixpence::storage::StorageConnection::parse_connection_string(
                self._azurite.connection_string(),
            )
            .expect("connection string")
            .with_max_retries(2),
        )
        .expect("storage");
        let queue = storage.queues().queue("notifications").expect("queue");
        let started = std::time::Instant::now();
        loop {
            let inbox = self
                .get_as(
                    admin,
                    &format!("/api/v1/workspaces/{workspace}/notifications"),
                )
                .await;
            if let Some(id) = inbox.body["items"][0]["id"].as_str() {
                return id.to_owned();
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the test notification never arrived"
            );
            for message in queue
                .receive(16, std::time::Duration::from_secs(30))
                .await
                .expect("receive")
            {
                let text = message.text.clone().expect("text");
                let response = self
                    .invoke("notify", crate::connections::queue_envelope(&text))
                    .await;
                assert_eq!(response.status(), 200);
                queue
                    .delete_message(&message.id, &message.pop_receipt)
                    .await
                    .expect("delete");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The caller's user id (`GET /me`).
    pub async fn user_id(&self, bearer: &str) -> String {
        let me = self.get_as(bearer, "/api/v1/me").await;
        assert_eq!(me.status, 200, "{}", me.text);
        me.body["userId"].as_str().expect("userId").to_owned()
    }

    /// The whole audit trail of `workspace` (newest first), read as `reader`.
    pub async fn audit_records(&self, reader: &str, workspace: &str) -> Vec<Value> {
        let answer = self
            .get_as(
                reader,
                &format!("/api/v1/workspaces/{workspace}/audit?limit=200"),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["items"].as_array().expect("items").clone()
    }

    /// `(userId, role)` of every member, read as `reader`.
    pub async fn roster(&self, reader: &str, workspace: &str) -> Vec<(String, String)> {
        let answer = self
            .get_as(
                reader,
                &format!("/api/v1/workspaces/{workspace}/members?limit=200"),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let mut members: Vec<(String, String)> = answer.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| {
                (
                    m["userId"].as_str().expect("userId").to_owned(),
                    m["role"].as_str().expect("role").to_owned(),
                )
            })
            .collect();
        members.sort();
        members
    }
}

/// People in one scenario, each a distinct user (so per-user quotas never interfere across scenarios).
#[derive(Debug, Clone)]
pub struct Person {
    pub email: String,
    pub token: String,
    pub id: String,
}

/// Workspace A with an owner, an admin, an analyst and a viewer, plus a pending invitation for an
/// `invitee` who is not yet a member; workspace B with its own owner; and a signed-in stranger.
#[derive(Debug, Clone)]
pub struct Cast {
    pub a: String,
    pub b: String,
    pub owner: Person,
    pub admin: Person,
    pub analyst: Person,
    pub viewer: Person,
    pub invitee: Person,
    pub b_owner: Person,
    pub stranger: Person,
    /// A pending invitation to A for `invitee` (viewer role).
    pub invitation: String,
    /// A connection of A to the app's simulated tenant, its first subscription chosen.
    pub connection: String,
    /// An in-app notification channel of A.
    pub channel: String,
    /// An in-app notification (a test message on `channel`) every member of A has, unread.
    pub notification: String,
}

fn person(tag: &str, who: &str) -> Person {
    let email = format!("{who}.{tag}@{}.example.com", who.replace('_', "-"));
    Person {
        token: token(&email),
        email,
        id: String::new(),
    }
}

impl Cast {
    pub async fn build(app: &TestApp) -> Cast {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut owner = person(&tag, "owner");
        let mut admin = person(&tag, "admin");
        let mut analyst = person(&tag, "analyst");
        let mut viewer = person(&tag, "viewer");
        let mut invitee = person(&tag, "invitee");
        let mut b_owner = person(&tag, "b_owner");
        let mut stranger = person(&tag, "stranger");

        let (name_a, name_b) = (format!("A {tag}"), format!("B {tag}"));
        let (a, b) = tokio::join!(
            app.create_workspace(&owner.token, &name_a),
            app.create_workspace(&b_owner.token, &name_b)
        );
        tokio::join!(
            app.join(&owner.token, &a, &admin.email, "admin"),
            app.join(&owner.token, &a, &analyst.email, "analyst"),
            app.join(&owner.token, &a, &viewer.email, "viewer"),
        );
        let invitation = app.invite(&owner.token, &a, &invitee.email, "viewer").await;
        let connection = app.connect_and_choose(&owner.token, &a).await;
        let channel = app.in_app_channel(&owner.token, &a).await;
        let notification = app.in_app_notification(&owner.token, &a, &channel).await;
        let mut people = [
            &mut owner,
            &mut admin,
            &mut analyst,
            &mut viewer,
            &mut invitee,
            &mut b_owner,
            &mut stranger,
        ];
        let ids = futures::future::join_all(people.iter().map(|p| app.user_id(&p.token))).await;
        for (p, id) in people.iter_mut().zip(ids) {
            p.id = id;
        }
        Cast {
            a,
            b,
            owner,
            admin,
            analyst,
            viewer,
            invitee,
            b_owner,
            stranger,
            invitation,
            connection,
            channel,
            notification,
        }
    }
}

/// `value` percent-encoded for a query string.
pub fn q(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
