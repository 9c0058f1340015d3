//! The app root as the Functions host sees it: `host.json`, the function folders and the app settings.
//!
//! Everything the host decides from configuration is read here once, with the host's defaults
//! (functions-host.md §1.1, §1.8), so the rest of the crate works with typed values. `host.json` keys
//! are matched case-insensitively because the host reads them through .NET configuration, which is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Map, Value};

use crate::spec::FunctionSpec;

/// Where function folders live in this repository; in a deploy package they sit at the app root.
pub const SPECS_DIR: &str = "function-specs";

/// Everything read from an app root.
#[derive(Debug, Clone)]
pub struct AppRoot {
    pub root: PathBuf,
    pub host: HostConfig,
    pub settings: Settings,
    /// Functions that could be read; sorted by name.
    pub functions: Vec<FunctionSpec>,
    /// Function folders that could not be used, with the reason (the real host reports these as
    /// indexing errors and serves the rest).
    pub errors: Vec<(String, String)>,
}

impl AppRoot {
    /// Reads `host.json`, the settings and every `function.json` under `root`.
    ///
    /// `overrides` win over the process environment, which wins over `local.settings.json` (the order
    /// Core Tools uses, plus one layer for tests and `--set`).
    pub fn load(root: &Path, overrides: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let root = root
            .canonicalize()
            .with_context(|| format!("app root {} does not exist", root.display()))?;
        let settings = Settings::load(&root, overrides)?;
        let host_json = read_json(&root.join("host.json"))?;
        let host = HostConfig::from_json(&host_json, &settings)?;

        let specs_dir = if root.join(SPECS_DIR).is_dir() {
            root.join(SPECS_DIR)
        } else {
            root.clone()
        };
        let mut folders: Vec<PathBuf> = std::fs::read_dir(&specs_dir)
            .with_context(|| format!("cannot list {}", specs_dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.join("function.json").is_file())
            .collect();
        folders.sort();

        let mut functions = Vec::new();
        let mut errors = Vec::new();
        for folder in folders {
            // The folder name is the function name: the path the host POSTs to.
            let Some(name) = folder
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
            else {
                continue;
            };
            let parsed = read_json(&folder.join("function.json"))
                .and_then(|json| FunctionSpec::from_json(&name, &json, &settings));
            match parsed {
                Ok(spec) => functions.push(spec),
                Err(err) => errors.push((name, format!("{err:#}"))),
            }
        }
        Ok(Self {
            root,
            host,
            settings,
            functions,
            errors,
        })
    }

    pub fn function(&self, name: &str) -> Option<&FunctionSpec> {
        // Function names are case-insensitive on the host (the admin API and routing agree).
        self.functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Case-insensitive lookup of a key in a JSON object.
pub fn get_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn object_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    get_ci(object, key).and_then(Value::as_object)
}

/// App settings: `Values` of `local.settings.json` (or the example file), then the environment, then
/// explicit overrides.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where the file values came from, for the start-up banner.
    pub source: Option<PathBuf>,
    file_values: BTreeMap<String, String>,
    overrides: BTreeMap<String, String>,
}

impl Settings {
    pub fn load(root: &Path, overrides: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let mut settings = Self {
            overrides: overrides.clone(),
            ..Self::default()
        };
        for file in ["local.settings.json", "local.settings.example.json"] {
            let path = root.join(file);
            if !path.is_file() {
                continue;
            }
            let json = read_json(&path)?;
            if let Some(values) = json.as_object().and_then(|o| object_ci(o, "Values")) {
                for (name, value) in values {
                    // Core Tools accepts numbers and booleans here and passes their text.
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    settings.file_values.insert(name.clone(), text);
                }
            }
            settings.source = Some(path);
            break;
        }
        Ok(settings)
    }

    /// A setting's value: override, then environment, then the settings file.
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(value) = self.overrides.get(name) {
            return Some(value.clone());
        }
        if let Ok(value) = std::env::var(name) {
            return Some(value);
        }
        self.file_values.get(name).cloned()
    }

    /// The app settings the host passes to the child as environment variables (the child also
    /// inherits this process's environment, as the host's child does).
    pub fn app_settings(&self) -> BTreeMap<String, String> {
        let mut all: BTreeMap<String, String> = BTreeMap::new();
        for name in self.file_values.keys().chain(self.overrides.keys()) {
            if let Some(value) = self.get(name) {
                all.insert(name.clone(), value);
            }
        }
        all
    }

    /// Expands `%NAME%` references the way binding expressions do; an unknown name is an error that
    /// names it (the host refuses to index such a function).
    pub fn expand(&self, text: &str) -> anyhow::Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                bail!("unterminated %…% in `{text}`");
            };
            let name = &after[..end];
            if name.is_empty() {
                // `%%` is a literal percent sign.
                out.push('%');
            } else {
                let value = self
                    .get(name)
                    .ok_or_else(|| anyhow!("`%{name}%` does not resolve to an app setting"))?;
                out.push_str(&value);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The parts of `host.json` the host acts on.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// `customHandler.description.defaultExecutablePath`.
    pub executable: String,
    /// `customHandler.description.arguments`, with `%SETTING%` expanded.
    pub arguments: Vec<String>,
    /// `customHandler.description.workingDirectory`, relative to the app root when relative.
    pub working_directory: Option<String>,
    /// `customHandler.enableForwardingHttpRequest`.
    pub forward_http: bool,
    /// `extensions.http.routePrefix` without surrounding slashes (`api` by default, may be empty).
    pub route_prefix: String,
    pub queues: QueueOptions,
    /// `functionTimeout`; the host's HTTP client waits this plus one minute.
    pub function_timeout: Option<Duration>,
}

impl HostConfig {
    pub fn from_json(json: &Value, settings: &Settings) -> anyhow::Result<Self> {
        let root = json
            .as_object()
            .ok_or_else(|| anyhow!("host.json is not an object"))?;
        let handler = object_ci(root, "customHandler")
            .ok_or_else(|| anyhow!("host.json has no customHandler section"))?;
        let description = object_ci(handler, "description")
            .ok_or_else(|| anyhow!("host.json has no customHandler.description"))?;
        let executable = get_ci(description, "defaultExecutablePath")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("customHandler.description.defaultExecutablePath is missing"))?
            .to_owned();
        let arguments = match get_ci(description, "arguments") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => settings.expand(s),
                    other => Ok(other.to_string()),
                })
                .collect::<anyhow::Result<_>>()
                .context("customHandler.description.arguments")?,
            Some(_) => bail!("customHandler.description.arguments must be an array"),
        };
        let working_directory = get_ci(description, "workingDirectory")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let forward_http = get_ci(handler, "enableForwardingHttpRequest")
            .and_then(Value::as_bool)
            .unwrap_or(false);

        let extensions = object_ci(root, "extensions");
        let route_prefix = extensions
            .and_then(|e| object_ci(e, "http"))
            .and_then(|h| get_ci(h, "routePrefix"))
            .and_then(Value::as_str)
            .unwrap_or("api")
            .trim_matches('/')
            .to_owned();
        let queues = match extensions.and_then(|e| object_ci(e, "queues")) {
            Some(q) => QueueOptions::from_json(q)?,
            None => QueueOptions::default(),
        };
        let function_timeout = match get_ci(root, "functionTimeout") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "-1" => None,
            Some(Value::String(s)) => Some(parse_timespan(s).context("functionTimeout")?),
            Some(_) => bail!("functionTimeout must be a TimeSpan string"),
        };
        Ok(Self {
            executable,
            arguments,
            working_directory,
            forward_http,
            route_prefix,
            queues,
            function_timeout,
        })
    }
}

/// How queue messages are encoded in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageEncoding {
    Base64,
    None,
}

/// `extensions.queues`, with the defaults of the queue extension (`QueuesOptions`).
#[derive(Debug, Clone)]
pub struct QueueOptions {
    pub batch_size: u32,
    /// A new batch is fetched once the messages in flight fall to this number.
    pub new_batch_threshold: u32,
    pub max_polling_interval: Duration,
    /// How long a failed message stays invisible before its retry.
    pub visibility_timeout: Duration,
    pub max_dequeue_count: u64,
    pub message_encoding: MessageEncoding,
}

impl Default for QueueOptions {
    fn default() -> Self {
        let batch_size = 16;
        Self {
            batch_size,
            new_batch_threshold: default_new_batch_threshold(batch_size),
            // The extension's default is one minute, but Core Tools runs with 2 s locally.
            max_polling_interval: Duration::from_secs(2),
            visibility_timeout: Duration::ZERO,
            max_dequeue_count: 5,
            message_encoding: MessageEncoding::Base64,
        }
    }
}

/// The host's default: half a batch per processor.
fn default_new_batch_threshold(batch_size: u32) -> u32 {
    let processors = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1);
    (batch_size / 2).saturating_mul(processors)
}

/// The storage service caps one receive at 32 messages.
pub const MAX_BATCH_SIZE: u32 = 32;
/// The listener never polls faster than this, whatever `maxPollingInterval` says.
pub const MIN_POLLING_INTERVAL: Duration = Duration::from_millis(100);

impl QueueOptions {
    fn from_json(queues: &Map<String, Value>) -> anyhow::Result<Self> {
        let mut options = Self::default();
        let number = |key: &str| -> anyhow::Result<Option<u64>> {
            match get_ci(queues, key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .map(Some)
                    .ok_or_else(|| anyhow!("extensions.queues.{key} must be a whole number")),
            }
        };
        let span = |key: &str| -> anyhow::Result<Option<Duration>> {
            match get_ci(queues, key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => parse_timespan(s)
                    .map(Some)
                    .with_context(|| format!("extensions.queues.{key}")),
                Some(_) => bail!("extensions.queues.{key} must be a TimeSpan string like 00:00:02"),
            }
        };
        if let Some(n) = number("batchSize")? {
            if n == 0 || n > u64::from(MAX_BATCH_SIZE) {
                bail!("extensions.queues.batchSize must be between 1 and {MAX_BATCH_SIZE}");
            }
            options.batch_size = u32::try_from(n).unwrap_or(MAX_BATCH_SIZE);
            options.new_batch_threshold = default_new_batch_threshold(options.batch_size);
        }
        if let Some(n) = number("newBatchThreshold")? {
            options.new_batch_threshold = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(d) = span("maxPollingInterval")? {
            options.max_polling_interval = d.max(MIN_POLLING_INTERVAL);
        }
        if let Some(d) = span("visibilityTimeout")? {
            options.visibility_timeout = d;
        }
        if let Some(n) = number("maxDequeueCount")? {
            if n == 0 {
                bail!("extensions.queues.maxDequeueCount must be at least 1");
            }
            options.max_dequeue_count = n;
        }
        if let Some(v) = get_ci(queues, "messageEncoding") {
            options.message_encoding = match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("base64") => MessageEncoding::Base64,
                Some("none") => MessageEncoding::None,
                _ => bail!("extensions.queues.messageEncoding must be `base64` or `none`"),
            };
        }
        Ok(options)
    }
}

/// Parses a .NET `TimeSpan` string: `[d.]hh:mm[:ss[.fffffff]]`.
pub fn parse_timespan(text: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow!("`{text}` is not a TimeSpan like 00:00:10 or 1.00:00:00");
    let text = text.trim();
    let (days, clock) = match text.split_once(':') {
        Some((head, _)) if head.contains('.') => {
            let (d, _) = head.split_once('.').ok_or_else(bad)?;
            (d.parse::<u64>().map_err(|_| bad())?, &text[d.len() + 1..])
        }
        Some(_) => (0, text),
        // A bare number is a number of days, as in .NET.
        None => (text.parse::<u64>().map_err(|_| bad())?, ""),
    };
    if clock.is_empty() {
        return Ok(Duration::from_secs(days * 86_400));
    }
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    let hours: u64 = parts[0].parse().map_err(|_| bad())?;
    let minutes: u64 = parts[1].parse().map_err(|_| bad())?;
    let seconds: f64 = match parts.get(2) {
        Some(s) => s.parse().map_err(|_| bad())?,
        None => 0.0,
    };
    if hours > 23 || minutes > 59 || !(0.0..60.0).contains(&seconds) {
        return Err(bad());
    }
    let whole = days * 86_400 + hours * 3_600 + minutes * 60;
    Ok(Duration::from_secs(whole) + Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timespans_parse_like_dotnet() {
        assert_eq!(parse_timespan("00:00:10").unwrap(), Duration::from_secs(10));
        assert_eq!(
            parse_timespan("00:00:00.200").unwrap(),
            Duration::from_millis(200)
        );
        assert_eq!(
            parse_timespan("00:30:00").unwrap(),
            Duration::from_secs(1800)
        );
        assert_eq!(
            parse_timespan("1.02:00:00").unwrap(),
            Duration::from_secs(86_400 + 7_200)
        );
        assert!(parse_timespan("10 seconds").is_err());
        assert!(parse_timespan("00:61:00").is_err());
    }

    #[test]
    fn settings_expand_percent_references() {
        let overrides =
            BTreeMap::from([("LH_TEST_SCHEDULE".to_owned(), "*/1 * * * * *".to_owned())]);
        let settings = Settings {
            overrides,
            ..Settings::default()
        };
        assert_eq!(
            settings.expand("%LH_TEST_SCHEDULE%").unwrap(),
            "*/1 * * * * *"
        );
        assert_eq!(settings.expand("a%%b").unwrap(), "a%b");
        let err = settings.expand("%LH_TEST_MISSING_SETTING%").unwrap_err();
        assert!(err.to_string().contains("LH_TEST_MISSING_SETTING"));
    }

    #[test]
    fn host_json_defaults_and_repo_values() {
        let settings = Settings::default();
        let minimal = json!({"version": "2.0", "customHandler": {"description": {"defaultExecutablePath": "x"}}});
        let host = HostConfig::from_json(&minimal, &settings).unwrap();
        assert_eq!(host.route_prefix, "api");
        assert_eq!(host.queues.max_dequeue_count, 5);
        assert_eq!(host.queues.batch_size, 16);
        assert_eq!(host.queues.visibility_timeout, Duration::ZERO);
        assert_eq!(host.queues.message_encoding, MessageEncoding::Base64);
        assert!(!host.forward_http);

        let repo: Value = serde_json::from_str(include_str!("../../../host.json")).unwrap();
        let host = HostConfig::from_json(&repo, &settings).unwrap();
        assert_eq!(host.executable, "sixpence");
        assert_eq!(host.arguments, vec!["serve".to_owned()]);
        assert!(host.forward_http);
        assert_eq!(host.queues.batch_size, 8);
        assert_eq!(host.queues.new_batch_threshold, 4);
        assert_eq!(host.queues.max_polling_interval, Duration::from_secs(10));
        assert_eq!(host.queues.visibility_timeout, Duration::from_secs(30));
        assert_eq!(host.function_timeout, Some(Duration::from_secs(1800)));
    }
}
