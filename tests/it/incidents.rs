//! Incident records: the operator command records what, when and which workspaces, in the retained
//! incident table, and each workspace concerned sees it in its audit trail.

use sixpence::domain::incidents::IncidentLog as _;
use sixpence::storage::StorageConnection;

use crate::support::spawn_app;
use crate::support::token;

#[tokio::test]
async fn the_operator_command_records_an_incident_and_each_workspace_sees_it() {
    let app = spawn_app().await;
    let owner = token("incident-owner@contoso.com");
    let a = app.create_workspace(&owner, "Incident A").await;
    let b = app.create_workspace(&owner, "Incident B").await;
    let untouched = app.create_workspace(&owner, "Untouched").await;

    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sixpence"))
            .arg("record-incident")
            .args(args)
            .env_clear()
            .env("AzureWebJobsStorage", app._azurite.connection_string())
            .env("SIXPENCE_ENVIRONMENT", "development")
            .output()
            .expect("runs")
    };
    let output = run(&[
        "--what",
        "Cost exports readable by another tenant for 20 minutes",
        "--when",
        "2026-11-20T09:30:00Z",
        "--workspace",
        &a,
        "--workspace",
        &b,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON record");
    assert_eq!(printed["occurredAt"], "2026-11-20T09:30:00Z");

    // Stored in the retained incident table.
    let connection = StorageConnection::parse_connection_string(app._azurite.connection_string())
        .expect("parses");
    let storage = sixpence::storage::Storage::connect(&connection).expect("connects");
    let incidents = sixpence::storage::incidents::TableIncidentLog::new(storage)
        .list()
        .await
        .expect("listed");
    assert_eq!(incidents.len(), 1);
    let incident = &incidents[0];
    assert_eq!(
        incident.summary,
        "Cost exports readable by another tenant for 20 minutes"
    );
    let ids: Vec<String> = incident.workspaces.iter().map(|w| w.to_string()).collect();
    assert_eq!(ids, vec![a.clone(), b.clone()]);
    assert_eq!(printed["id"], incident.id.to_string());

    // Each workspace concerned has an audit record pointing at it; the other has none.
    for ws in [&a, &b] {
        let records = app.audit_records(&owner, ws).await;
        let record = records
            .iter()
            .find(|r| r["action"] == "incident.record")
            .unwrap_or_else(|| panic!("no incident record in {ws}: {records:#?}"));
        assert_eq!(record["target"], format!("incident/{}", incident.id));
    }
    let records = app.audit_records(&owner, &untouched).await;
    assert!(records.iter().all(|r| r["action"] != "incident.record"));

    // Mistakes are refused before anything is written.
    let unknown = uuid::Uuid::new_v4().to_string();
    let refused = run(&["--what", "typo", "--workspace", &unknown]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&unknown));
    let refused = run(&["--what", "bad time", "--when", "yesterday"]);
    assert_eq!(refused.status.code(), Some(2));
    let connection = StorageConnection::parse_connection_string(app._azurite.connection_string())
        .expect("parses");
    let storage = sixpence::storage::Storage::connect(&connection).expect("connects");
    let count = sixpence::storage::incidents::TableIncidentLog::new(storage)
        .list()
        .await
        .expect("listed")
        .len();
    assert_eq!(count, 1, "nothing recorded for refused commands");
}
