//! One `function.json`: its trigger and output bindings, with `%SETTING%` references resolved.

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Map, Value};

use crate::app_root::{Settings, get_ci};
use crate::http_proxy::RouteTemplate;

/// A function as the host indexes it. `name` is the folder name.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub trigger: Trigger,
    pub outputs: Vec<OutputBinding>,
    /// Other input bindings (blob inputs, …), which this local host does not resolve.
    pub other_inputs: Vec<String>,
    /// `"disabled": true` or the `AzureWebJobs.<name>.Disabled` setting.
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Http {
        binding: String,
        /// The route under the prefix (`api/health`, `api/v1/{*path}` with the repo's empty prefix); the
        /// function name when unset.
        route: RouteTemplate,
        /// Upper-case method names; `None` accepts every method.
        methods: Option<Vec<String>>,
    },
    Timer {
        binding: String,
        /// The NCRONTAB expression (or TimeSpan) after `%SETTING%` expansion.
        schedule: String,
        run_on_startup: bool,
    },
    Queue {
        binding: String,
        queue: String,
        connection: String,
        /// `dataType: binary`: the trigger value is the message bytes as base64, not text.
        binary: bool,
    },
    /// A trigger this local host cannot fire (blob, Event Grid, …): listed, not served.
    Unsupported { kind: String },
}

#[derive(Debug, Clone)]
pub enum OutputBinding {
    /// The `res` of an HTTP function.
    Http {
        name: String,
    },
    Queue {
        name: String,
        queue: String,
        connection: String,
        binary: bool,
    },
    Blob {
        name: String,
        /// `container/path/with/{expressions}`.
        path: String,
        connection: String,
        binary: bool,
    },
    Unsupported {
        name: String,
        kind: String,
    },
}

impl OutputBinding {
    pub fn name(&self) -> &str {
        match self {
            Self::Http { name }
            | Self::Queue { name, .. }
            | Self::Blob { name, .. }
            | Self::Unsupported { name, .. } => name,
        }
    }
}

impl FunctionSpec {
    pub fn from_json(name: &str, json: &Value, settings: &Settings) -> anyhow::Result<Self> {
        let root = json
            .as_object()
            .ok_or_else(|| anyhow!("function.json is not an object"))?;
        let bindings = get_ci(root, "bindings")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("function.json has no bindings array"))?;
        let mut trigger = None;
        let mut outputs = Vec::new();
        let mut other_inputs = Vec::new();
        for binding in bindings {
            let binding = binding
                .as_object()
                .ok_or_else(|| anyhow!("a binding is not an object"))?;
            let kind = string(binding, "type").ok_or_else(|| anyhow!("a binding has no type"))?;
            let binding_name = string(binding, "name").unwrap_or_default();
            let direction = string(binding, "direction").unwrap_or_default();
            let is_trigger = kind.to_ascii_lowercase().ends_with("trigger");
            if is_trigger {
                if trigger.is_some() {
                    bail!("more than one trigger binding");
                }
                trigger = Some(
                    read_trigger(name, &kind, binding_name, binding, settings)
                        .with_context(|| format!("trigger `{kind}`"))?,
                );
            } else if direction.eq_ignore_ascii_case("out") {
                outputs.push(
                    read_output(&kind, binding_name.clone(), binding, settings)
                        .with_context(|| format!("output binding `{binding_name}`"))?,
                );
            } else {
                other_inputs.push(binding_name);
            }
        }
        let trigger = trigger.ok_or_else(|| anyhow!("no trigger binding"))?;
        let disabled = get_ci(root, "disabled").is_some_and(truthy)
            || settings
                .get(&format!("AzureWebJobs.{name}.Disabled"))
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1");
        Ok(Self {
            name: name.to_owned(),
            trigger,
            outputs,
            other_inputs,
            disabled,
        })
    }

    /// Forwarded as plain HTTP: exactly an `httpTrigger` in and an `http` out, nothing else
    /// (`IsHttpInAndOutFunction`); any other binding makes the host use the JSON envelope.
    pub fn is_http_in_and_out(&self) -> bool {
        matches!(self.trigger, Trigger::Http { .. })
            && self.other_inputs.is_empty()
            && self.outputs.len() == 1
            && matches!(self.outputs[0], OutputBinding::Http { .. })
    }

    /// A one-line description for the start-up banner.
    pub fn describe(&self, route_prefix: &str) -> String {
        let what = match &self.trigger {
            Trigger::Http { route, methods, .. } => {
                let methods = methods
                    .as_ref()
                    .map(|m| m.join(","))
                    .unwrap_or_else(|| "ANY".to_owned());
                let prefix = if route_prefix.is_empty() {
                    String::new()
                } else {
                    format!("/{route_prefix}")
                };
                format!("http {methods} {prefix}/{route}")
            }
            Trigger::Timer {
                schedule,
                run_on_startup,
                ..
            } => format!(
                "timer `{schedule}` (UTC){}",
                if *run_on_startup {
                    ", runOnStartup"
                } else {
                    ""
                }
            ),
            Trigger::Queue { queue, .. } => format!("queue `{queue}` (poison: `{queue}-poison`)"),
            Trigger::Unsupported { kind } => format!("{kind} (not supported by the local host)"),
        };
        let disabled = if self.disabled { " [disabled]" } else { "" };
        format!("{}: {what}{disabled}", self.name)
    }
}

fn string(binding: &Map<String, Value>, key: &str) -> Option<String> {
    get_ci(binding, key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn is_binary(binding: &Map<String, Value>) -> bool {
    string(binding, "dataType").is_some_and(|t| t.eq_ignore_ascii_case("binary"))
}

fn connection(binding: &Map<String, Value>) -> String {
    // An empty or absent connection means the host's own storage.
    string(binding, "connection")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "AzureWebJobsStorage".to_owned())
}

fn read_trigger(
    function: &str,
    kind: &str,
    binding: String,
    json: &Map<String, Value>,
    settings: &Settings,
) -> anyhow::Result<Trigger> {
    Ok(match kind.to_ascii_lowercase().as_str() {
        "httptrigger" => {
            let route = string(json, "route")
                .map(|r| settings.expand(&r))
                .transpose()?
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| function.to_owned());
            let methods = match get_ci(json, "methods") {
                None | Some(Value::Null) => None,
                Some(Value::Array(items)) if items.is_empty() => None,
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|m| {
                            m.as_str()
                                .map(str::to_ascii_uppercase)
                                .ok_or_else(|| anyhow!("methods must be strings"))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?,
                ),
                Some(_) => bail!("methods must be an array"),
            };
            Trigger::Http {
                binding,
                route: RouteTemplate::parse(&route)?,
                methods,
            }
        }
        "timertrigger" => {
            let schedule = string(json, "schedule").ok_or_else(|| anyhow!("no schedule"))?;
            Trigger::Timer {
                binding,
                schedule: settings.expand(&schedule)?,
                run_on_startup: get_ci(json, "runOnStartup").is_some_and(truthy),
            }
        }
        "queuetrigger" => {
            let queue = string(json, "queueName").ok_or_else(|| anyhow!("no queueName"))?;
            // The host lower-cases queue names after expansion; storage rejects upper case anyway.
            Trigger::Queue {
                binding,
                queue: settings.expand(&queue)?.to_ascii_lowercase(),
                connection: connection(json),
                binary: is_binary(json),
            }
        }
        _ => Trigger::Unsupported {
            kind: kind.to_owned(),
        },
    })
}

fn read_output(
    kind: &str,
    name: String,
    json: &Map<String, Value>,
    settings: &Settings,
) -> anyhow::Result<OutputBinding> {
    Ok(match kind.to_ascii_lowercase().as_str() {
        "http" => OutputBinding::Http { name },
        "queue" => {
            let queue = string(json, "queueName").ok_or_else(|| anyhow!("no queueName"))?;
            OutputBinding::Queue {
                name,
                queue: settings.expand(&queue)?.to_ascii_lowercase(),
                connection: connection(json),
                binary: is_binary(json),
            }
        }
        "blob" => {
            let path = string(json, "path").ok_or_else(|| anyhow!("no path"))?;
            OutputBinding::Blob {
                name,
                path: settings.expand(&path)?,
                connection: connection(json),
                binary: is_binary(json),
            }
        }
        _ => OutputBinding::Unsupported {
            name,
            kind: kind.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn repo_specs() -> Vec<FunctionSpec> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let overrides =
            BTreeMap::from([("HEARTBEAT_SCHEDULE".to_owned(), "0 */5 * * * *".to_owned())]);
        let app = crate::app_root::AppRoot::load(&root, &overrides).expect("repo app root loads");
        assert!(app.errors.is_empty(), "{:?}", app.errors);
        app.functions
    }

    #[test]
    fn the_repo_specs_are_understood() {
        let specs = repo_specs();
        let health = specs.iter().find(|f| f.name == "health").expect("health");
        assert!(health.is_http_in_and_out());
        match &health.trigger {
            Trigger::Http { methods, route, .. } => {
                assert_eq!(methods.as_deref(), Some(&["GET".to_owned()][..]));
                assert_eq!(route.to_string(), "api/health");
            }
            other => panic!("{other:?}"),
        }
        let heartbeat = specs
            .iter()
            .find(|f| f.name == "heartbeat")
            .expect("heartbeat");
        match &heartbeat.trigger {
            Trigger::Timer {
                schedule,
                run_on_startup,
                binding,
            } => {
                assert_eq!(schedule, "0 */5 * * * *");
                assert!(!run_on_startup);
                assert_eq!(binding, "timer");
            }
            other => panic!("{other:?}"),
        }
        let probe = specs
            .iter()
            .find(|f| f.name == "queue-probe")
            .expect("probe");
        match &probe.trigger {
            Trigger::Queue {
                queue,
                binding,
                connection,
                binary,
            } => {
                assert_eq!(queue, "queue-probe");
                assert_eq!(binding, "message");
                assert_eq!(connection, "AzureWebJobsStorage");
                assert!(!binary);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outputs_and_unresolved_settings() {
        let settings = Settings::default();
        let json = serde_json::json!({"bindings": [
            {"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": "orders-in"},
            {"type": "queue", "direction": "out", "name": "next", "queueName": "Orders-Out"},
            {"type": "blob", "direction": "out", "name": "archive", "path": "archive/{rand-guid}.json", "connection": "AzureWebJobsStorage"}
        ]});
        let spec = FunctionSpec::from_json("orders", &json, &settings).unwrap();
        assert_eq!(spec.outputs.len(), 2);
        assert!(
            matches!(&spec.outputs[0], OutputBinding::Queue { queue, .. } if queue == "orders-out")
        );
        assert!(!spec.is_http_in_and_out());

        let json = serde_json::json!({"bindings": [
            {"type": "timerTrigger", "direction": "in", "name": "t", "schedule": "%LH_TEST_NOT_SET_ANYWHERE%"}
        ]});
        let err = FunctionSpec::from_json("t", &json, &settings).unwrap_err();
        assert!(format!("{err:#}").contains("LH_TEST_NOT_SET_ANYWHERE"));
    }
}
