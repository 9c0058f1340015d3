//! The custom-handler contract, checked against payloads in the shapes the host really sends.

use serde_json::Value;
use sixpence::domain::system::ProbeMessage;
use sixpence::host::{HttpRequestData, InvokeRequest, QueueTrigger, TimerInfo};
use time::macros::datetime;

fn fixture(name: &str) -> InvokeRequest {
    let path = format!("{}/tests/fixtures/host/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_documented_and_the_real_queue_payloads_decode_to_the_same_message() {
    let documented = QueueTrigger::from_request(&fixture("queue-documented.json"), "message")
        .expect("documented");
    let real = QueueTrigger::from_request(&fixture("queue-real.json"), "message").expect("real");
    let a: ProbeMessage = documented.json().expect("documented message is a probe");
    let b: ProbeMessage = real.json().expect("real message is a probe");
    assert_eq!(a, b);
}

#[test]
fn queue_metadata_is_read_whether_or_not_the_host_quoted_it() {
    let documented = QueueTrigger::from_request(&fixture("queue-documented.json"), "message")
        .expect("documented");
    let real = QueueTrigger::from_request(&fixture("queue-real.json"), "message").expect("real");
    assert_eq!(documented.metadata.dequeue_count, 1);
    assert_eq!(
        real.metadata.dequeue_count, 3,
        "DequeueCount arrives as the string \"3\""
    );
    for metadata in [&documented.metadata, &real.metadata] {
        assert_eq!(
            metadata.id.as_deref(),
            Some("800ae4b3-bdd2-4c08-badd-f08e5a34b865")
        );
        assert_eq!(
            metadata.pop_receipt.as_deref(),
            Some("AgAAAAMAAAAAAAAAAgtnj8x+1QE=")
        );
        assert_eq!(
            metadata.insertion_time,
            Some(datetime!(2019-10-09 17:58:31 UTC))
        );
        assert_eq!(
            metadata.expiration_time,
            Some(datetime!(2019-10-16 17:58:31 UTC))
        );
    }
}

#[test]
fn a_timer_with_a_null_schedule_status_is_a_normal_first_run() {
    let timer = TimerInfo::from_request(&fixture("timer-real.json"), "timer").expect("timer");
    assert!(!timer.is_past_due);
    assert_eq!(timer.schedule_status, None);
}

#[test]
fn a_late_timer_reports_past_due_and_its_schedule() {
    let timer = TimerInfo::from_request(&fixture("timer-status.json"), "timer").expect("timer");
    assert!(timer.is_past_due);
    let status = timer.schedule_status.expect("status");
    assert_eq!(status.last, Some(datetime!(2026-11-20 02:00:00 UTC)));
    assert_eq!(status.next, Some(datetime!(2026-11-21 02:00:00 UTC)));
}

#[test]
fn an_http_payload_carries_method_url_and_grouped_headers() {
    let request = HttpRequestData::from_request(&fixture("http-payload.json"), "req").expect("req");
    assert_eq!(request.method, "GET");
    assert_eq!(request.url, "http://localhost:7071/api/health");
    assert_eq!(request.headers.get("Accept"), Some(&vec!["*/*".to_owned()]));
    assert!(request.body.is_empty());
}

#[test]
fn a_missing_or_malformed_binding_is_an_error_naming_it_not_a_panic() {
    let empty = InvokeRequest::default();
    let err = TimerInfo::from_request(&empty, "timer").expect_err("missing");
    assert!(err.to_string().contains("`timer`"), "{err}");

    let mut bad = InvokeRequest::default();
    bad.data.insert("timer".into(), Value::from(42));
    assert!(TimerInfo::from_request(&bad, "timer").is_err());
    bad.data.insert("message".into(), Value::Null);
    assert!(QueueTrigger::from_request(&bad, "message").is_err());
    bad.data.insert("req".into(), serde_json::json!({"Url": 1}));
    assert!(HttpRequestData::from_request(&bad, "req").is_err());
}
