//! Tenant isolation of the tenant API, driven by the route table itself.
//!
//! The permission matrix calls every route of `specs()` as every kind of caller (anonymous, a signed-in
//! stranger, the owner of another workspace, a user holding an invitation, and a member of each role)
//! and holds each answer to the rule the route declares. A route added to the table without being
//! classified here fails the test, and so does a route whose declared permission is not enforced.

use futures::StreamExt;
use serde_json::{Value, json};
use sixpence::domain::tenancy::{Permission, Role};
use sixpence::functions::http::api::{RouteSpec, specs};

use crate::support::api::{Answer, Cast, assert_problem_shape, q};
use crate::support::{TestApp, spawn_app, token};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// Signed in, belongs to no workspace here.
    Stranger,
    /// Owner of workspace B, not a member of A.
    BOwner,
    /// Holds the pending invitation to A, not (yet) a member.
    Invitee,
    Viewer,
    Analyst,
    Admin,
    Owner,
}

const EVERYONE: [Who; 8] = [
    Who::Anonymous,
    Who::Stranger,
    Who::BOwner,
    Who::Invitee,
    Who::Viewer,
    Who::Analyst,
    Who::Admin,
    Who::Owner,
];

impl Who {
    /// The caller's role in workspace A.
    fn role_in_a(self) -> Option<Role> {
        match self {
            Who::Viewer => Some(Role::Viewer),
            Who::Analyst => Some(Role::Analyst),
            Who::Admin => Some(Role::Admin),
            Who::Owner => Some(Role::Owner),
            _ => None,
        }
    }

    fn bearer(self, cast: &Cast) -> Option<String> {
        let person = match self {
            Who::Anonymous => return None,
            Who::Stranger => &cast.stranger,
            Who::BOwner => &cast.b_owner,
            Who::Invitee => &cast.invitee,
            Who::Viewer => &cast.viewer,
            Who::Analyst => &cast.analyst,
            Who::Admin => &cast.admin,
            Who::Owner => &cast.owner,
        };
        Some(person.token.clone())
    }
}

const WS: &str = "/api/v1/workspaces/{id}";
const LEAVE: &str = "/api/v1/workspaces/{id}/leave";
/// An anomaly id no workspace has.
const NO_ANOMALY: &str = "00000000-0000-4000-8000-000000000000";

/// The permission each route must declare (pinned here, so loosening one is a reviewed change to this
/// test), what an authorised call answers, and the body it sends. Every route must be classified:
/// a new route fails the matrix until someone decides who may call it and what success looks like.
fn classify(spec: &RouteSpec) -> (Permission, u16, Option<Value>) {
    use Permission::{Administer, Invitee, Own, Public, Read, SignedIn};
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let (permission, status, body) = match (spec.method, spec.path) {
        ("GET", "/api/v1/openapi.json") => (Public, 200, None),
        ("GET", "/api/v1/me" | "/api/v1/workspaces") => (SignedIn, 200, None),
        ("POST", "/api/v1/workspaces") => (
            SignedIn,
            201,
            Some(json!({ "name": format!("Matrix {unique}") })),
        ),
        ("GET", WS) => (Read, 200, None),
        ("PATCH", WS) => (
            Administer,
            200,
            Some(json!({ "name": format!("Renamed {unique}") })),
        ),
        // The confirmation names the workspace (`{id}` is filled in by `call`).
        ("DELETE", WS) => (Own, 202, Some(json!({ "confirm": "{id}" }))),
        // Nobody here asked for a deletion: it does not exist for anyone.
        ("GET", "/api/v1/deletions/{deletionId}") => (SignedIn, 404, None),
        // Closing an account for real would end the matrix's cast: a confirmation that names
        // nobody shows the route is open to everyone signed in and refuses it (tests/it/deletion.rs
        // closes accounts).
        ("DELETE", "/api/v1/me") => (
            SignedIn,
            400,
            Some(json!({ "confirm": "nobody@example.invalid" })),
        ),
        ("GET", "/api/v1/workspaces/{id}/members") => (Read, 200, None),
        ("PATCH", "/api/v1/workspaces/{id}/members/{userId}") => {
            (Administer, 200, Some(json!({ "role": "analyst" })))
        }
        ("DELETE", "/api/v1/workspaces/{id}/members/{userId}") => (Administer, 204, None),
        ("POST", LEAVE) => (Read, 204, None),
        ("GET", "/api/v1/workspaces/{id}/invitations") => (Administer, 200, None),
        ("POST", "/api/v1/workspaces/{id}/invitations") => (
            Administer,
            201,
            Some(json!({ "email": format!("new-{unique}@example.org"), "role": "viewer" })),
        ),
        ("DELETE", "/api/v1/workspaces/{id}/invitations/{invitationId}") => (Administer, 204, None),
        ("POST", "/api/v1/workspaces/{id}/invitations/{invitationId}/accept") => {
            (Invitee, 200, None)
        }
        ("GET", "/api/v1/workspaces/{id}/audit") => (Administer, 200, None),
        (
            "GET",
            "/api/v1/workspaces/{id}/resources" | "/api/v1/workspaces/{id}/recommendations",
        ) => (Read, 200, None),
        ("GET", "/api/v1/workspaces/{id}/connections") => (Read, 200, None),
        // Without `from` and `to`: a member reaches the parameter check (400), others are stopped first.
        ("GET", "/api/v1/workspaces/{id}/costs") => (Read, 400, None),
        ("GET", "/api/v1/workspaces/{id}/subscriptions") => (Read, 200, None),
        ("GET", "/api/v1/workspaces/{id}/syncs") => (Read, 200, None),
        ("GET", "/api/v1/workspaces/{id}/connections/{connectionId}") => (Read, 200, None),
        ("POST", "/api/v1/workspaces/{id}/connections") => (
            Administer,
            201,
            // The ids of a tenant the simulator does not know: created, and failed, all the same.
            Some(json!({
                "name": format!("Matrix {unique}"),
                "tenantId": uuid::Uuid::new_v4().to_string(),
                "clientId": uuid::Uuid::new_v4().to_string(),
                "clientSecret": "not-a-real-secret",
            })),
        ),
        ("DELETE", "/api/v1/workspaces/{id}/connections/{connectionId}") => (Administer, 204, None),
        ("POST", "/api/v1/workspaces/{id}/connections/{connectionId}/verify") => {
            (Administer, 200, None)
        }
        ("PUT", "/api/v1/workspaces/{id}/connections/{connectionId}/secret") => (
            Administer,
            200,
            Some(json!({ "clientSecret": "another-secret" })),
        ),
        ("PUT", "/api/v1/workspaces/{id}/connections/{connectionId}/subscriptions") => (
            Administer,
            // The body names a subscription the principal cannot see: a member with the role
            // reaches the rule (400), everyone else is stopped before it.
            400,
            Some(json!({ "subscriptionIds": ["00000000-0000-0000-0000-000000000000"] })),
        ),
        ("POST", "/api/v1/workspaces/{id}/syncs") => (Permission::Analyse, 202, None),
        ("GET", "/api/v1/workspaces/{id}/billing") => (Read, 200, None),
        // Owners reach the body's checks (400) before any call to Stripe; everyone else is stopped
        // first. (tests/it/billing.rs covers the successful calls against a Stripe stand-in.)
        ("POST", "/api/v1/workspaces/{id}/billing/checkout") => (
            Permission::Own,
            400,
            Some(json!({
                "plan": "no-such-plan",
                "successUrl": "https://app.example/ok",
                "cancelUrl": "https://app.example/back",
            })),
        ),
        ("POST", "/api/v1/workspaces/{id}/billing/portal") => (
            Permission::Own,
            400,
            Some(json!({ "returnUrl": "http://not-https.example/" })),
        ),
        ("GET", "/api/v1/workspaces/{id}/anomalies") => (Read, 200, None),
        // The matrix's workspace has no anomaly: a member learns that (404), others are stopped first.
        ("GET", "/api/v1/workspaces/{id}/anomalies/{anomalyId}") => (Read, 404, None),
        ("POST", "/api/v1/workspaces/{id}/anomalies/{anomalyId}/feedback") => (
            Permission::Analyse,
            404,
            Some(json!({ "verdict": "expected" })),
        ),
        ("GET", "/api/v1/workspaces/{id}/analytics-settings") => (Read, 200, None),
        ("POST", "/api/v1/workspaces/{id}/exports") => (Administer, 202, None),
        ("GET", "/api/v1/workspaces/{id}/exports") => (Administer, 200, None),
        // The matrix's workspace has no such export: an owner or admin learns that (404).
        (
            "GET",
            "/api/v1/workspaces/{id}/exports/{exportId}"
            | "/api/v1/workspaces/{id}/exports/{exportId}/download",
        ) => (Administer, 404, None),
        ("GET", "/api/v1/workspaces/{id}/budgets") => (Read, 200, None),
        ("POST", "/api/v1/workspaces/{id}/budgets") => (
            Permission::Analyse,
            201,
            Some(json!({
                "name": format!("Budget {unique}"),
                "amount": "1000",
                "period": "monthly",
                "thresholds": [{"percent": 80, "basis": "actual"}],
            })),
        ),
        // The matrix's workspace has no such budget: a member learns that (404).
        ("GET", "/api/v1/workspaces/{id}/budgets/{budgetId}") => (Read, 404, None),
        ("PUT", "/api/v1/workspaces/{id}/budgets/{budgetId}") => (
            Permission::Analyse,
            404,
            Some(json!({
                "name": "Renamed",
                "amount": "1000",
                "period": "monthly",
                "thresholds": [{"percent": 80, "basis": "actual"}],
            })),
        ),
        ("DELETE", "/api/v1/workspaces/{id}/budgets/{budgetId}") => {
            (Permission::Analyse, 404, None)
        }
        // Nothing synced: the forecast is all zeros, still a forecast.
        ("GET", "/api/v1/workspaces/{id}/forecast") => (Read, 200, None),
        ("PUT", "/api/v1/workspaces/{id}/analytics-settings") => (
            Administer,
            200,
            Some(json!({
                "sensitivity": "medium",
                "minImpact": "10",
                "minImpactPercent": 10.0,
                "dimensions": ["subscription", "resourceGroup", "service"],
            })),
        ),
        (
            "GET",
            "/api/v1/workspaces/{id}/channels" | "/api/v1/workspaces/{id}/channels/{channelId}",
        ) => (Administer, 200, None),
        ("GET", "/api/v1/workspaces/{id}/deliveries") => (Administer, 200, None),
        ("POST", "/api/v1/workspaces/{id}/channels") => (
            Administer,
            201,
            Some(json!({ "name": format!("Matrix {unique}"), "kind": "inApp" })),
        ),
        ("PUT", "/api/v1/workspaces/{id}/channels/{channelId}") => (
            Administer,
            200,
            Some(json!({ "name": format!("Renamed {unique}"), "kind": "inApp", "enabled": false })),
        ),
        ("DELETE", "/api/v1/workspaces/{id}/channels/{channelId}") => (Administer, 204, None),
        ("POST", "/api/v1/workspaces/{id}/channels/{channelId}/test") => (Administer, 202, None),
        // Each member reads and marks their own notifications.
        ("GET", "/api/v1/workspaces/{id}/notifications") => (Read, 200, None),
        (
            "POST",
            "/api/v1/workspaces/{id}/notifications/read"
            | "/api/v1/workspaces/{id}/notifications/{notificationId}/read",
        ) => (Read, 200, None),
        (method, path) => panic!(
            "{method} {path} is not classified in api_isolation::classify: declare who may call it, \
             what an authorised call answers and the body it needs, so the permission matrix covers it"
        ),
    };
    assert_eq!(
        spec.permission, permission,
        "{} {} declares {:?}; this test pins {:?}: change both if that is intended",
        spec.method, spec.path, spec.permission, permission
    );
    (permission, status, body)
}

/// The least role that holds a workspace permission, stated independently of the product's code.
fn rank(role: Role) -> u8 {
    match role {
        Role::Viewer => 1,
        Role::Analyst => 2,
        Role::Admin => 3,
        Role::Owner => 4,
    }
}

fn needs(permission: Permission) -> u8 {
    match permission {
        Permission::Read => 1,
        Permission::Analyse => 2,
        Permission::Administer => 3,
        Permission::Own => 4,
        other => panic!("{other:?} is not a workspace permission"),
    }
}

/// The status (and problem type) the route's declared permission promises this caller.
fn expected(spec: &RouteSpec, who: Who, success: u16) -> (u16, Option<&'static str>) {
    if spec.permission == Permission::Public {
        return (success, None);
    }
    if who == Who::Anonymous {
        return (401, Some("unauthenticated"));
    }
    match spec.permission {
        Permission::Public => (success, None),
        Permission::SignedIn => (success, None),
        // Only the holder of the invitation's verified email; anyone else learns nothing.
        Permission::Invitee if who == Who::Invitee => (success, None),
        Permission::Invitee => (404, Some("not-found")),
        needed @ (Permission::Read
        | Permission::Analyse
        | Permission::Administer
        | Permission::Own) => match who.role_in_a() {
            // Not a member: exactly what a missing workspace gets.
            None => (404, Some("not-found")),
            Some(role) if rank(role) < needs(needed) => (403, Some("forbidden")),
            // The documented rule: the only owner cannot leave.
            Some(Role::Owner) if spec.method == "POST" && spec.path == LEAVE => {
                (409, Some("last-owner"))
            }
            Some(_) => (success, None),
        },
    }
}

/// A call of the matrix: the route, the caller, the answer, and the status and problem type wanted.
type Outcome = (RouteSpec, Who, Answer, (u16, Option<&'static str>));

fn path_for(spec: &RouteSpec, cast: &Cast) -> String {
    let path = spec
        .path
        .replace("{id}", &cast.a)
        .replace("{userId}", &cast.viewer.id)
        .replace("{invitationId}", &cast.invitation)
        .replace("{deletionId}", &cast.a)
        .replace("{connectionId}", &cast.connection)
        .replace("{anomalyId}", NO_ANOMALY)
        .replace("{budgetId}", NO_ANOMALY)
        .replace("{exportId}", NO_ANOMALY)
        .replace("{channelId}", &cast.channel)
        .replace("{notificationId}", &cast.notification);
    assert!(
        !path.contains('{'),
        "{} {}: a path parameter this test does not know; substitute it in api_isolation::path_for",
        spec.method,
        spec.path
    );
    path
}

/// The body a missing workspace gets; a non-member must get exactly this, byte for byte.
const NOT_FOUND: &str =
    r#"{"type":"urn:sixpence:problem:not-found","title":"Not found","status":404}"#;

async fn call(
    app: &TestApp,
    spec: &RouteSpec,
    who: Who,
    cast: &Cast,
    body: Option<&Value>,
) -> Answer {
    let bearer = who.bearer(cast);
    let body = body.map(|b| {
        serde_json::from_str::<Value>(&b.to_string().replace("{id}", &cast.a)).expect("body")
    });
    let body = body.as_ref();
    app.call(spec.method, &path_for(spec, cast))
        .auth(bearer.as_deref())
        .body_opt(body)
        .send()
        .await
}

#[tokio::test]
async fn every_route_enforces_its_declared_permission_for_every_kind_of_caller() {
    let app = spawn_app().await;
    let specs = specs();
    assert!(!specs.is_empty());

    // Declarations are coherent: a route about one workspace is scoped to it (or is the invitee's).
    for spec in &specs {
        if spec.path.contains("{id}") {
            assert!(
                !matches!(spec.permission, Permission::Public | Permission::SignedIn),
                "{} {} names a workspace but declares {:?}: it must check membership",
                spec.method,
                spec.path,
                spec.permission
            );
        }
        assert_eq!(
            spec.changes_state(),
            spec.action.is_some(),
            "{} {}: every state-changing route declares its audit action, and only those",
            spec.method,
            spec.path
        );
    }

    // One shared scenario for calls that cannot change A (reads and refusals); a fresh one for each
    // call expected to change it, so every role's destructive call runs against the same start.
    let shared = Cast::build(&app).await;
    let roster_before = app.roster(&shared.owner.token, &shared.a).await;
    let name_before = app
        .get_as(
            &shared.owner.token,
            &format!("/api/v1/workspaces/{}", shared.a),
        )
        .await
        .body["name"]
        .clone();

    let mut cases = Vec::new();
    for spec in &specs {
        for who in EVERYONE {
            let (_, success, _) = classify(spec);
            let (status, _) = expected(spec, who, success);
            let fresh = spec.changes_state() && spec.path.contains("{id}") && status < 300;
            cases.push((*spec, who, fresh));
        }
    }
    let app_ref = &app;
    let shared_ref = &shared;
    let results: Vec<Outcome> = futures::stream::iter(cases)
        .map(|(spec, who, fresh)| async move {
            let (_, success, body) = classify(&spec);
            let want = expected(&spec, who, success);
            let answer = if fresh {
                let cast = Cast::build(app_ref).await;
                call(app_ref, &spec, who, &cast, body.as_ref()).await
            } else {
                call(app_ref, &spec, who, shared_ref, body.as_ref()).await
            };
            (spec, who, answer, want)
        })
        .buffer_unordered(6)
        .collect()
        .await;

    let mut failures = Vec::new();
    for (spec, who, answer, (status, slug)) in &results {
        let label = format!("{} {} as {who:?}", spec.method, spec.path);
        if answer.status != *status {
            failures.push(format!(
                "{label}: expected {status}, got {}: {}",
                answer.status, answer.text
            ));
            continue;
        }
        if answer.status >= 400 {
            assert_problem_shape(answer);
            if let Some(slug) = slug {
                assert_eq!(
                    answer.body["type"],
                    format!("urn:sixpence:problem:{slug}"),
                    "{label}: {}",
                    answer.text
                );
            }
        }
        if answer.status == 404 {
            assert_eq!(answer.text, NOT_FOUND, "{label}: a 404 must give no hint");
        }
        assert!(answer.header("x-request-id").is_some(), "{label}");
    }
    assert!(
        failures.is_empty(),
        "{} wrong answers:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(results.len(), specs.len() * EVERYONE.len());

    // The refused and read-only calls left the shared workspace as it was.
    assert_eq!(
        app.roster(&shared.owner.token, &shared.a).await,
        roster_before
    );
    let after = app
        .get_as(
            &shared.owner.token,
            &format!("/api/v1/workspaces/{}", shared.a),
        )
        .await;
    assert_eq!(after.body["name"], name_before);
    let invitations = app
        .get_as(
            &shared.owner.token,
            &format!("/api/v1/workspaces/{}/invitations", shared.a),
        )
        .await;
    let pending = invitations.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["id"] == shared.invitation.as_str())
        .expect("the invitation is listed");
    assert_eq!(pending["status"], "pending");
}

#[tokio::test]
async fn the_router_serves_exactly_the_declared_routes() {
    let app = spawn_app().await;
    let owner = token("router-owner@contoso.com");
    let a = app.create_workspace(&owner, "Router").await;
    let specs = specs();

    // Every declared (method, path) is routed to its handler: an authorised call is not the
    // fallback's 404 or 405 (the matrix checks the exact status).
    // Every other method on a declared path is 405, as problem+json.
    let mut paths: Vec<&str> = specs.iter().map(|s| s.path).collect();
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        let concrete = path
            .replace("{id}", &a)
            .replace(
                "{userId}",
                "00000000-0000-0000-0000-000000000001.00000000-0000-0000-0000-000000000002",
            )
            .replace("{invitationId}", &uuid::Uuid::new_v4().to_string())
            .replace("{channelId}", &uuid::Uuid::new_v4().to_string())
            .replace(
                "{notificationId}",
                "0000000000000000-00000000000000000000000000000000",
            );
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let declared = specs.iter().any(|s| s.path == path && s.method == method);
            let answer = app
                .call(method, &concrete)
                .auth(Some(&owner))
                .header("content-type", "application/json")
                .send()
                .await;
            if declared {
                assert_ne!(
                    answer.status, 405,
                    "{method} {path} is declared but not routed"
                );
            } else {
                answer.assert_problem(405, Some("method-not-allowed"));
            }
        }
    }

    // Anything else under the API is the fallback's 404, signed in or not.
    for path in [
        "/api/v1/nope".to_owned(),
        "/api/v1/workspaces/{a}/nope".replace("{a}", &a),
        format!("/api/v1/workspaces/{a}/audit/some-record"),
        format!("/api/v1/workspaces/{a}/members/x/y/z"),
    ]
    .iter()
    {
        for bearer in [Some(owner.as_str()), None] {
            let answer = app.call("GET", path).auth(bearer).send().await;
            answer.assert_problem(404, Some("not-found"));
            assert_eq!(answer.text, NOT_FOUND);
        }
    }
}

/// B's workspace, members, invitation and audit trail as B's owner sees them.
async fn snapshot_b(app: &TestApp, cast: &Cast) -> (Value, Vec<(String, String)>, Value, usize) {
    let b = &cast.b;
    let reader = &cast.b_owner.token;
    let mut workspace = app
        .get_as(reader, &format!("/api/v1/workspaces/{b}"))
        .await
        .body;
    workspace.as_object_mut().map(|o| o.remove("role"));
    let roster = app.roster(reader, b).await;
    let invitations = app
        .get_as(reader, &format!("/api/v1/workspaces/{b}/invitations"))
        .await
        .body;
    let audit = app.audit_records(reader, b).await.len();
    (workspace, roster, invitations, audit)
}

#[tokio::test]
async fn no_id_in_a_path_query_or_body_reaches_another_workspace() {
    let app = spawn_app().await;
    let cast = Cast::build(&app).await;
    let (a, b) = (cast.a.clone(), cast.b.clone());
    // B gets a second member and a pending invitation of its own.
    let b_viewer_email = format!("b-viewer.{}@fabrikam.example.com", &cast.invitee.id[..8]);
    let b_viewer = token(&b_viewer_email);
    app.join(&cast.b_owner.token, &b, &b_viewer_email, "viewer")
        .await;
    let b_viewer_id = app.user_id(&b_viewer).await;
    let b_invitee_email = format!("b-invitee.{}@fabrikam.example.com", &cast.invitee.id[..8]);
    let b_invitation = app
        .invite(&cast.b_owner.token, &b, &b_invitee_email, "admin")
        .await;
    let before = snapshot_b(&app, &cast).await;
    let a_audit_before = app.audit_records(&cast.owner.token, &a).await.len();

    let owner = cast.owner.token.as_str();
    let b_owner_id = cast.b_owner.id.as_str();

    // Ids in the query are not scopes: A's listings list A, whatever the query says.
    let members = app
        .get_as(
            owner,
            &format!("/api/v1/workspaces/{a}/members?id={b}&workspace={b}&workspaceId={b}"),
        )
        .await;
    assert_eq!(members.status, 200, "{}", members.text);
    assert!(!members.text.contains(b_owner_id) && !members.text.contains(&b_viewer_id));
    assert_eq!(members.body["items"].as_array().map(Vec::len), Some(4));
    let by_b_owner = app
        .get_as(
            owner,
            &format!("/api/v1/workspaces/{a}/audit?actor={}", q(b_owner_id)),
        )
        .await;
    assert_eq!(by_b_owner.status, 200, "{}", by_b_owner.text);
    assert_eq!(by_b_owner.body["items"], json!([]));
    let audit = app
        .get_as(
            owner,
            &format!("/api/v1/workspaces/{a}/audit?workspace={b}&limit=200"),
        )
        .await;
    assert!(
        !audit.text.contains(&b) && !audit.text.contains(b_owner_id),
        "{}",
        audit.text
    );

    let attempts: Vec<(&str, String, Option<Value>, Option<String>)> = vec![
        // B's routes, as A's owner.
        ("GET", format!("/api/v1/workspaces/{b}"), None, None),
        (
            "PATCH",
            format!("/api/v1/workspaces/{b}"),
            Some(json!({"name": "pwned"})),
            None,
        ),
        ("GET", format!("/api/v1/workspaces/{b}/members"), None, None),
        (
            "PATCH",
            format!("/api/v1/workspaces/{b}/members/{b_viewer_id}"),
            Some(json!({"role": "owner"})),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/workspaces/{b}/members/{b_viewer_id}"),
            None,
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/workspaces/{b}/members/{b_owner_id}"),
            None,
            None,
        ),
        ("POST", format!("/api/v1/workspaces/{b}/leave"), None, None),
        (
            "GET",
            format!("/api/v1/workspaces/{b}/invitations"),
            None,
            None,
        ),
        (
            "POST",
            format!("/api/v1/workspaces/{b}/invitations"),
            Some(json!({"email": cast.owner.email, "role": "owner"})),
            None,
        ),
        (
            "POST",
            format!("/api/v1/workspaces/{b}/invitations"),
            Some(json!({"email": cast.owner.email, "role": "owner"})),
            Some("replay-me".to_owned()),
        ),
        (
            "DELETE",
            format!("/api/v1/workspaces/{b}/invitations/{b_invitation}"),
            None,
            None,
        ),
        (
            "POST",
            format!("/api/v1/workspaces/{b}/invitations/{b_invitation}/accept"),
            None,
            None,
        ),
        ("GET", format!("/api/v1/workspaces/{b}/audit"), None, None),
        // A's routes, naming B's member and B's invitation.
        (
            "PATCH",
            format!("/api/v1/workspaces/{a}/members/{b_viewer_id}"),
            Some(json!({"role": "admin"})),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/workspaces/{a}/members/{b_viewer_id}"),
            None,
            None,
        ),
        (
            "PATCH",
            format!("/api/v1/workspaces/{a}/members/{b_owner_id}"),
            Some(json!({"role": "viewer"})),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/workspaces/{a}/members/{b_owner_id}"),
            None,
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/workspaces/{a}/invitations/{b_invitation}"),
            None,
            None,
        ),
        (
            "POST",
            format!("/api/v1/workspaces/{a}/invitations/{b_invitation}/accept"),
            None,
            None,
        ),
    ];
    for (method, path, body, key) in &attempts {
        let mut request = app
            .call(method, path)
            .auth(Some(owner))
            .body_opt(body.as_ref());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let answer = request.send().await;
        answer.assert_problem(404, Some("not-found"));
        assert_eq!(answer.text, NOT_FOUND, "{method} {path}");
    }
    // Even the invitee of B's invitation cannot redeem it through A's path.
    let b_invitee = token(&b_invitee_email);
    let through_a = app
        .call(
            "POST",
            &format!("/api/v1/workspaces/{a}/invitations/{b_invitation}/accept"),
        )
        .auth(Some(&b_invitee))
        .send()
        .await;
    through_a.assert_problem(404, Some("not-found"));

    // Ids in the body are refused, not obeyed.
    let smuggled = app
        .call("PATCH", &format!("/api/v1/workspaces/{a}"))
        .auth(Some(owner))
        .json(&json!({"name": "Moved", "id": b, "workspaceId": b}))
        .send()
        .await;
    smuggled.assert_problem(400, Some("invalid-request"));
    let smuggled = app
        .call("POST", &format!("/api/v1/workspaces/{a}/invitations"))
        .auth(Some(owner))
        .json(&json!({"email": "x@example.org", "role": "viewer", "workspaceId": b}))
        .send()
        .await;
    smuggled.assert_problem(400, Some("invalid-request"));

    // B is exactly as it was, and nothing A's owner did was written into B's audit trail.
    assert_eq!(snapshot_b(&app, &cast).await, before);
    // A's own trail holds what A's owner tried on A's routes (five 404s naming B's ids, two 400s),
    // each `rejected`; the calls on B's routes are nowhere.
    let a_audit = app.audit_records(owner, &a).await;
    let new = &a_audit[..a_audit.len() - a_audit_before];
    assert_eq!(new.len(), 7, "{a_audit:#?}");
    for record in new {
        assert_eq!(record["outcome"], "rejected", "{record}");
        assert_eq!(record["actor"], cast.owner.id.as_str(), "{record}");
    }
    // B's invitation still works for the person it names, through B's path.
    let accepted = app
        .call(
            "POST",
            &format!("/api/v1/workspaces/{b}/invitations/{b_invitation}/accept"),
        )
        .auth(Some(&b_invitee))
        .send()
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
}

fn forge(listing: &str, position: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({ "s": listing, "k": position }).to_string())
}

fn unwrap_cursor(cursor: &str) -> Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .expect("cursors are base64url");
    serde_json::from_slice(&bytes).expect("cursors are JSON")
}

#[tokio::test]
async fn cursors_are_bound_to_the_listing_they_came_from() {
    let app = spawn_app().await;
    let cast = Cast::build(&app).await;
    let (a, b) = (cast.a.clone(), cast.b.clone());
    let owner = cast.owner.token.as_str();
    let b_owner = cast.b_owner.token.as_str();
    // B gets a few audit records and a second member, so its listings have pages too.
    app.join(
        b_owner,
        &b,
        &format!("b2.{}@fabrikam.example.com", &cast.b_owner.id[..8]),
        "viewer",
    )
    .await;

    let next = |answer: &Answer| {
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["nextCursor"]
            .as_str()
            .expect("a first page of one has a next page")
            .to_owned()
    };
    let a_members = next(
        &app.get_as(owner, &format!("/api/v1/workspaces/{a}/members?limit=1"))
            .await,
    );
    let a_audit = next(
        &app.get_as(owner, &format!("/api/v1/workspaces/{a}/audit?limit=1"))
            .await,
    );
    let b_audit = next(
        &app.get_as(b_owner, &format!("/api/v1/workspaces/{b}/audit?limit=1"))
            .await,
    );

    // A's cursors on B's listings, by B's owner.
    for path in [
        format!(
            "/api/v1/workspaces/{b}/members?limit=1&cursor={}",
            q(&a_members)
        ),
        format!(
            "/api/v1/workspaces/{b}/audit?limit=1&cursor={}",
            q(&a_audit)
        ),
        format!("/api/v1/workspaces/{b}/members?cursor={}", q(&a_audit)),
    ] {
        app.get_as(b_owner, &path)
            .await
            .assert_problem(400, Some("invalid-request"));
    }
    // Hand-forged cursors naming B's listings, on A's routes.
    let b_position = unwrap_cursor(&b_audit)["k"].as_str().expect("k").to_owned();
    for path in [
        format!(
            "/api/v1/workspaces/{a}/members?cursor={}",
            q(&forge(&format!("workspace:{b}:members"), "1"))
        ),
        format!(
            "/api/v1/workspaces/{a}/audit?cursor={}",
            q(&forge(&format!("workspace:{b}:audit"), &b_position))
        ),
        format!(
            "/api/v1/workspaces?cursor={}",
            q(&forge(&format!("user:{}", cast.b_owner.id), "1"))
        ),
    ] {
        app.get_as(owner, &path)
            .await
            .assert_problem(400, Some("invalid-request"));
    }
    // A forged cursor that names A's listing but carries B's storage position reads only A.
    let smuggled = app
        .get_as(
            owner,
            &format!(
                "/api/v1/workspaces/{a}/audit?limit=200&cursor={}",
                q(&forge(&format!("workspace:{a}:audit"), &b_position))
            ),
        )
        .await;
    assert!(matches!(smuggled.status, 200 | 400), "{}", smuggled.text);
    if smuggled.status == 200 {
        for record in smuggled.body["items"].as_array().expect("items") {
            assert_ne!(
                record["actor"],
                cast.b_owner.id.as_str(),
                "{}",
                smuggled.text
            );
            assert!(!record["target"].as_str().unwrap_or_default().contains(&b));
        }
    }
    // A cursor that is not one at all is the client's mistake: 400, never 404 or 500.
    for garbage in [
        "not-a-cursor".to_owned(),
        forge(&format!("workspace:{a}:audit"), "garbage"),
        forge(&format!("workspace:{a}:members"), "-1"),
    ] {
        for listing in ["members", "audit"] {
            let answer = app
                .get_as(
                    owner,
                    &format!("/api/v1/workspaces/{a}/{listing}?cursor={}", q(&garbage)),
                )
                .await;
            answer.assert_problem(400, Some("invalid-request"));
        }
    }
}
