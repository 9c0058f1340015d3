//! The custom handler end to end in-process: envelopes in, storage effects and host answers out.

use serde_json::Value;

use crate::support::{host_fixture, spawn_app, spawn_app_with};

#[tokio::test]
async fn readiness_is_answered_on_the_root_path() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/")).send().await.expect("reachable");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_timer_invocation_records_a_heartbeat_that_health_reports() {
    let app = spawn_app().await;
    let response = app
        .invoke("heartbeat", host_fixture("timer-status.json"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "application/json"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"Outputs": {}, "Logs": [], "ReturnValue": null})
    );

    let health: Value = app
        .http
        .get(app.url("/api/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["lastHeartbeat"]["past_due"], true, "{health}");
}

#[tokio::test]
async fn a_queue_message_in_the_hosts_real_shape_is_processed_idempotently() {
    let app = spawn_app().await;
    for _ in 0..2 {
        let response = app
            .invoke("queue-probe", host_fixture("queue-real.json"))
            .await;
        assert_eq!(response.status(), 200);
    }
    let health: Value = app
        .http
        .get(app.url("/api/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    let probe = &health["lastQueueProbe"];
    assert_eq!(probe["probeId"], "6f1c2b1e-8d2a-4a53-9d55-3a0c8f7b2e11");
    assert_eq!(
        probe["attempts"], 3,
        "DequeueCount \"3\" is the number of attempts"
    );
}

#[tokio::test]
async fn a_malformed_envelope_fails_the_invocation_with_a_reason_and_no_panic() {
    let app = spawn_app().await;
    for body in ["not json", "[]", "{\"Data\": 5}"] {
        let response = app.invoke("queue-probe", body).await;
        assert_eq!(response.status(), 500, "{body}");
        let answer: Value = response.json().await.expect("still a JSON answer");
        assert!(
            answer["Logs"][0]
                .as_str()
                .is_some_and(|l| l.contains("envelope")),
            "{answer}"
        );
    }
    // The app is still serving.
    assert_eq!(
        app.http
            .get(app.url("/"))
            .send()
            .await
            .expect("alive")
            .status(),
        200
    );
}

#[tokio::test]
async fn a_message_that_is_not_a_probe_fails_so_the_host_retries_then_poisons_it() {
    let app = spawn_app().await;
    let envelope = serde_json::json!({
        "Data": {"message": "\"{\\\"version\\\":\\\"9\\\"}\""},
        "Metadata": {"DequeueCount": "1"}
    });
    let response = app.invoke("queue-probe", envelope.to_string()).await;
    assert_eq!(response.status(), 500);
    let answer: Value = response.json().await.expect("json");
    assert!(
        answer["Logs"][0]
            .as_str()
            .is_some_and(|l| l.contains("not a probe message")),
        "{answer}"
    );
}

#[tokio::test]
async fn an_http_function_invoked_with_the_envelope_answers_through_res() {
    let app = spawn_app().await;
    let response = app
        .invoke("health", host_fixture("http-payload.json"))
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    let res = &answer["Outputs"]["res"];
    assert_eq!(res["statusCode"], "200", "{answer}");
    let body: Value =
        serde_json::from_str(res["body"].as_str().expect("body text")).expect("json body");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn health_is_a_503_problem_when_storage_is_unreachable() {
    let azurite = std::sync::Arc::new(
        sixpence_testkit::Azurite::start()
            .await
            .expect("Azurite starts"),
    );
    // A port nothing listens on: bind one, then drop it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{dead}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{dead}/devstoreaccount1"
    );
    let app = spawn_app_with(azurite, crate::support::settings(&connection)).await;
    let response = app
        .http
        .get(app.url("/api/health"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["type"], "urn:sixpence:problem:unavailable");
    assert!(!problem.to_string().contains("AccountKey"), "{problem}");
}
