//! The documented settings are exactly the ones the code reads.

use std::collections::BTreeMap;

use serde_json::Value;
use sixpence::config::{SETTINGS, Scope};

fn read(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn local_settings_example_lists_exactly_the_local_settings_with_their_defaults() {
    let example: Value = serde_json::from_str(&read("local.settings.example.json")).expect("json");
    let values: BTreeMap<String, String> = example["Values"]
        .as_object()
        .expect("Values")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string values").to_owned()))
        .collect();
    let expected: BTreeMap<String, String> = SETTINGS
        .iter()
        .filter(|s| matches!(s.scope, Scope::App | Scope::HostOnly))
        .map(|s| (s.name.to_owned(), s.local_value.to_owned()))
        .collect();
    assert_eq!(
        values, expected,
        "left: local.settings.example.json, right: config::SETTINGS"
    );
}

#[test]
fn the_example_settings_hold_no_secret() {
    for setting in SETTINGS.iter().filter(|s| s.secret) {
        let value = setting.local_value;
        // The development data key is published on purpose, and production refuses it.
        let harmless = value.is_empty()
            || value == "UseDevelopmentStorage=true"
            || value == sixpence::config::DEV_DATA_KEYS;
        assert!(
            harmless,
            "{} must not carry a secret value in the example",
            setting.name
        );
    }
}

#[test]
fn the_readme_documents_every_setting() {
    let readme = read("README.md");
    for setting in SETTINGS {
        assert!(
            readme.contains(&format!("| `{}` |", setting.name)),
            "README.md has no settings-table row for `{}`",
            setting.name
        );
    }
}
