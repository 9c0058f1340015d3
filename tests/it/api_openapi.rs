//! The served OpenAPI document agrees with the router: the same operations, each with its declared
//! permission, a documented success, its request body, and examples in the schemas it references.
//! CI fails when they drift apart: this test is that check.

use std::collections::BTreeSet;

use serde_json::Value;
use sixpence::functions::http::api::specs;

use crate::support::spawn_app;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The component schema names a JSON value references (`#/components/schemas/<name>`).
fn refs(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                found.insert(name.to_owned());
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

/// Whether a schema (or a schema it references, transitively) shows an example.
fn has_example(schema: &Value, components: &Value, seen: &mut BTreeSet<String>) -> bool {
    match schema {
        Value::Object(map) => {
            if map.contains_key("example") || map.contains_key("examples") {
                return true;
            }
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                return seen.insert(name.to_owned())
                    && has_example(&components[name], components, seen);
            }
            map.values().any(|v| has_example(v, components, seen))
        }
        Value::Array(items) => items.iter().any(|v| has_example(v, components, seen)),
        _ => false,
    }
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_served() {
    let app = spawn_app().await;
    let answer = app.call("GET", "/api/v1/openapi.json").send().await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        answer.headers
    );
    let doc = answer.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    let components = &doc["components"]["schemas"];

    // The same set of (method, path), both ways.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let declared: BTreeSet<(String, String)> = specs()
        .iter()
        .map(|s| (s.method.to_owned(), s.path.to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&declared).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not routed"
    );
    assert_eq!(
        declared.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routed but not documented"
    );
    assert_eq!(declared.len(), specs().len(), "no route is declared twice");

    let mut referenced = BTreeSet::new();
    for spec in specs() {
        let label = format!("{} {}", spec.method, spec.path);
        let operation = &doc["paths"][spec.path][spec.method.to_lowercase()];

        // The permission the router enforces is the one documented.
        assert_eq!(
            operation["x-sixpence-permission"],
            serde_json::to_value(spec.permission).expect("permission"),
            "{label}"
        );
        assert_eq!(
            operation
                .get("x-sixpence-audit-action")
                .and_then(Value::as_str),
            spec.action,
            "{label}"
        );

        // A documented success: 204 without a body, anything else with a JSON schema.
        let responses = operation["responses"].as_object().expect("responses");
        let successes: Vec<(&String, &Value)> = responses
            .iter()
            .filter(|(code, _)| code.starts_with('2'))
            .collect();
        assert!(!successes.is_empty(), "{label}: no 2xx response");
        for (code, response) in &successes {
            if code.as_str() == "204" {
                continue;
            }
            // An export's download is the archive itself.
            if spec.path.ends_with("/exports/{exportId}/download") {
                assert!(
                    response["content"]["application/zip"].is_object(),
                    "{label}: {code} is not documented as a zip"
                );
                continue;
            }
            let json = &response["content"]["application/json"];
            assert!(
                json.is_object(),
                "{label}: {code} has no application/json content: {response}"
            );
            if spec.path != "/api/v1/openapi.json" {
                assert!(json["schema"].is_object(), "{label}: {code} has no schema");
            }
        }

        // Error answers are documented as problems, including the ones this route can give.
        if spec.permission != sixpence::domain::tenancy::Permission::Public {
            for code in ["401", "429"] {
                assert!(responses.contains_key(code), "{label}: {code} undocumented");
            }
        }
        if spec.path.contains("{id}") {
            assert!(responses.contains_key("404"), "{label}: 404 undocumented");
        }
        for (code, response) in responses.iter().filter(|(c, _)| c.starts_with(['4', '5'])) {
            assert!(
                response["content"]["application/problem+json"].is_object(),
                "{label}: {code} is not documented as a problem"
            );
        }

        // Routes that read a body document it; routes that do not, do not.
        let takes_body = matches!(spec.method, "PATCH" | "PUT")
            || (spec.method == "POST"
                && !spec.path.ends_with("/leave")
                && !spec.path.ends_with("/accept")
                && !spec.path.ends_with("/verify")
                && !spec.path.ends_with("/syncs")
                && !spec.path.ends_with("/exports")
                && !spec.path.ends_with("/test")
                && !spec.path.ends_with("/read"))
            // Deleting a workspace, or closing an account, takes its confirmation in the body.
            || (spec.method == "DELETE"
                && matches!(spec.path, "/api/v1/workspaces/{id}" | "/api/v1/me"));
        assert_eq!(
            operation["requestBody"].is_object(),
            takes_body,
            "{label}: requestBody"
        );
        if takes_body {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{label}: request body without a JSON schema"
            );
        }

        // Bearer-protected unless public; path parameters documented.
        assert_eq!(
            operation["security"].is_array(),
            spec.permission != sixpence::domain::tenancy::Permission::Public,
            "{label}: security"
        );
        let params: BTreeSet<String> = operation["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let in_path: BTreeSet<String> = spec
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}').map(str::to_owned))
            .collect();
        assert_eq!(params, in_path, "{label}: path parameters");

        refs(operation, &mut referenced);
    }

    // Every schema an operation references exists and shows an example somewhere in it.
    assert!(referenced.contains("Problem"));
    for name in &referenced {
        let schema = &components[name];
        assert!(
            schema.is_object(),
            "schema {name} is referenced but missing"
        );
        assert!(
            has_example(schema, components, &mut BTreeSet::new()),
            "schema {name} has no example: {schema}"
        );
    }
}
