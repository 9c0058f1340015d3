//! `function-specs/` and the binary's registry describe the same functions, binding for binding.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use sixpence::config::SETTINGS;
use sixpence::functions::{REGISTRY, Trigger};

fn specs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("function-specs")
}

/// Every `function-specs/<name>/function.json`, parsed.
fn specs() -> Vec<(String, Value)> {
    let mut specs = Vec::new();
    for entry in std::fs::read_dir(specs_dir()).expect("function-specs/ exists") {
        let entry = entry.expect("readable");
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path().join("function.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        specs.push((name, json));
    }
    specs.sort_by(|a, b| a.0.cmp(&b.0));
    specs
}

fn trigger_of(spec: &Value) -> &Value {
    let bindings = spec["bindings"].as_array().expect("bindings array");
    let triggers: Vec<&Value> = bindings
        .iter()
        .filter(|b| b["type"].as_str().is_some_and(|t| t.ends_with("Trigger")))
        .collect();
    assert_eq!(triggers.len(), 1, "exactly one trigger binding in {spec}");
    triggers[0]
}

#[test]
fn every_spec_has_a_handler_and_every_handler_has_a_spec() {
    let spec_names: BTreeSet<String> = specs().into_iter().map(|(name, _)| name).collect();
    let registry: BTreeSet<String> = REGISTRY.iter().map(|f| f.name.to_owned()).collect();
    assert_eq!(
        spec_names, registry,
        "left: function-specs/ folders, right: functions::REGISTRY"
    );
}

#[test]
fn each_spec_trigger_matches_its_handler() {
    for (name, spec) in specs() {
        let function = sixpence::functions::find(&name).expect("registered");
        let trigger = trigger_of(&spec);
        assert_eq!(
            trigger["type"].as_str(),
            Some(function.trigger.binding_type()),
            "{name}: trigger type"
        );
        match function.trigger {
            Trigger::Http { route, methods } => {
                assert_eq!(trigger["route"].as_str(), Some(route), "{name}: route");
                let spec_methods: Vec<&str> = trigger["methods"]
                    .as_array()
                    .expect("methods")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(spec_methods, methods, "{name}: methods");
                assert_eq!(
                    trigger["name"].as_str(),
                    Some("req"),
                    "{name}: request binding"
                );
                let out = spec["bindings"]
                    .as_array()
                    .expect("bindings")
                    .iter()
                    .find(|b| b["type"] == "http")
                    .expect("an http output binding");
                // `$return` would put the response through the host's base64 trap.
                assert_eq!(
                    out["name"].as_str(),
                    Some("res"),
                    "{name}: response binding"
                );
                assert!(
                    function.handler.is_none(),
                    "{name}: HTTP functions are routes"
                );
            }
            Trigger::Timer { binding } => {
                assert_eq!(
                    trigger["name"].as_str(),
                    Some(binding),
                    "{name}: binding name"
                );
                assert!(trigger["schedule"].is_string(), "{name}: schedule");
                assert!(function.handler.is_some(), "{name}: handler");
            }
            Trigger::Queue { binding, queue } => {
                assert_eq!(
                    trigger["name"].as_str(),
                    Some(binding),
                    "{name}: binding name"
                );
                assert_eq!(trigger["queueName"].as_str(), Some(queue), "{name}: queue");
                assert_eq!(
                    trigger["connection"].as_str(),
                    Some("AzureWebJobsStorage"),
                    "{name}: connection"
                );
                assert!(function.handler.is_some(), "{name}: handler");
            }
        }
    }
}

#[test]
fn every_setting_a_spec_references_is_declared() {
    let declared: BTreeSet<&str> = SETTINGS.iter().map(|s| s.name).collect();
    for (name, spec) in specs() {
        let text = spec.to_string();
        for reference in text.split('%').skip(1).step_by(2) {
            assert!(
                declared.contains(reference),
                "{name} references %{reference}% which config::SETTINGS does not declare"
            );
        }
        for binding in spec["bindings"].as_array().expect("bindings") {
            if let Some(connection) = binding["connection"].as_str() {
                assert!(
                    declared.contains(connection),
                    "{name}: connection {connection} is not a declared setting"
                );
            }
        }
    }
}

#[test]
fn http_routes_are_whole_paths_because_the_route_prefix_is_empty() {
    // `/.well-known/security.txt` must be served at the site root, which a route prefix would forbid;
    // so the prefix is empty and each HTTP function's route spells out its full path.
    let host: Value = serde_json::from_str(
        &std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("host.json"))
            .expect("host.json"),
    )
    .expect("host.json is JSON");
    assert_eq!(host["extensions"]["http"]["routePrefix"], "");
    for function in REGISTRY {
        if let Trigger::Http { route, .. } = function.trigger {
            assert!(
                route.starts_with("api/") || route.starts_with(".well-known/"),
                "{}: route `{route}` must be under api/ (or .well-known/)",
                function.name
            );
        }
    }
}
