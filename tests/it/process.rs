//! The `sixpence` binary as the host runs it: configuration errors, readiness, JSON logs, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_sixpence");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn a_missing_or_invalid_setting_stops_start_up_with_a_message_naming_it() {
    let output = Command::new(BINARY)
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "not-a-port")
        .env("SIXPENCE_ENVIRONMENT", "staging")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        "SIXPENCE_ENVIRONMENT",
        "AzureWebJobsStorage",
    ] {
        assert!(stderr.contains(name), "stderr should name {name}: {stderr}");
    }
}

#[tokio::test]
async fn the_binary_answers_readiness_logs_json_with_the_invocation_id_and_stops_on_sigterm() {
    let azurite = sixpence_testkit::Azurite::start()
        .await
        .expect("Azurite starts");
    let port = free_port();
    let mut child = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("AzureWebJobsStorage", azurite.connection_string())
        .env("SIXPENCE_LOG", "info")
        // Production mode (the default), which requires the API audience.
        .env("SIXPENCE_AUTH_AUDIENCE", "api://sixpence-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    // Readiness: the host polls GET / until anything answers.
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(format!("http://127.0.0.1:{port}/")).send().await {
            assert_eq!(response.status(), 200);
            break;
        }
        if let Some(exit) = child.try_wait().expect("wait") {
            panic!("sixpence exited before answering readiness: {exit:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no readiness answer within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let response = http
        .post(format!("http://127.0.0.1:{port}/heartbeat"))
        .header("x-azure-functions-invocationid", "inv-7f3a")
        .header("content-type", "application/json")
        .body(crate::support::host_fixture("timer-real.json"))
        .send()
        .await
        .expect("invocation");
    assert_eq!(response.status(), 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");

    let lines = lines.join().expect("reader");
    assert!(!lines.is_empty(), "the binary logged nothing");
    for line in &lines {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
    let carried = lines.iter().filter(|l| l.contains("inv-7f3a")).count();
    assert!(
        carried >= 1,
        "no log line carries the invocation id: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("heartbeat recorded") && l.contains("inv-7f3a")),
        "the function's own log line carries the invocation id: {lines:#?}"
    );
}
