//! Configuration: app settings, typed and validated once at start-up.
//!
//! [`SETTINGS`] is the one list of every setting Sixpence knows. `Settings::from_vars` may only read
//! names on it (reading any other name is a bug the tests catch), `local.settings.example.json`,
//! the README's table and `infra/bicep` are all held equal to it by tests, so an operator can trust
//! that the documented settings are exactly the ones that matter.

use std::collections::BTreeSet;

use secrecy::SecretString;

use crate::storage::StorageConnection;

/// Who reads a setting and where it is set, which decides where it must be documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read by the binary; listed in `local.settings.example.json` and set in Azure.
    App,
    /// Read by the binary in Azure only (identity-based storage); locally a connection string is used.
    AzureOnly,
    /// Set by the Functions host for the binary; never configured by hand.
    HostProvided,
    /// Read by the Functions host or a binding expression (`%NAME%`), not by the binary.
    HostOnly,
}

/// One app setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    pub name: &'static str,
    pub scope: Scope,
    /// A secret: never logged, stored in Key Vault in Azure, empty in the example file.
    pub secret: bool,
    /// The value `local.settings.example.json` carries.
    pub local_value: &'static str,
    pub purpose: &'static str,
}

const fn setting(
    name: &'static str,
    scope: Scope,
    secret: bool,
    local_value: &'static str,
    purpose: &'static str,
) -> SettingSpec {
    SettingSpec {
        name,
        scope,
        secret,
        local_value,
        purpose,
    }
}

pub const PORT: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
pub const STORAGE_CONNECTION: &str = "AzureWebJobsStorage";
pub const STORAGE_ACCOUNT_NAME: &str = "AzureWebJobsStorage__accountName";
pub const STORAGE_CREDENTIAL: &str = "AzureWebJobsStorage__credential";
pub const STORAGE_CLIENT_ID: &str = "AzureWebJobsStorage__clientId";
pub const STORAGE_BLOB_URI: &str = "AzureWebJobsStorage__blobServiceUri";
pub const STORAGE_QUEUE_URI: &str = "AzureWebJobsStorage__queueServiceUri";
pub const STORAGE_TABLE_URI: &str = "AzureWebJobsStorage__tableServiceUri";
pub const ENVIRONMENT: &str = "SIXPENCE_ENVIRONMENT";
pub const LOG: &str = "SIXPENCE_LOG";
pub const DATA_KEYS: &str = "SIXPENCE_DATA_KEYS";
pub const STRIPE_SECRET_KEY: &str = "STRIPE_SECRET_KEY";
pub const STRIPE_WEBHOOK_SECRET: &str = "STRIPE_WEBHOOK_SECRET";
pub const MAIL_SENDER: &str = "MAIL_SENDER";
pub const SMTP_URL: &str = "SMTP_URL";

/// Every setting, in the order the README documents them.
pub const SETTINGS: &[SettingSpec] = &[
    setting(
        PORT,
        Scope::HostProvided,
        false,
        "",
        "Loopback port the host assigns; the binary binds 127.0.0.1 on it before any slow work.",
    ),
    setting(
        "FUNCTIONS_WORKER_RUNTIME",
        Scope::HostOnly,
        false,
        "custom",
        "Core Tools only: marks the app as a custom handler. Not set on Flex Consumption.",
    ),
    setting(
        STORAGE_CONNECTION,
        Scope::App,
        true,
        "UseDevelopmentStorage=true",
        "Storage connection string for local runs (Azurite). In Azure the identity-based settings below replace it.",
    ),
    setting(
        STORAGE_ACCOUNT_NAME,
        Scope::AzureOnly,
        false,
        "",
        "Storage account used with an Entra token (managed identity); shared-key access stays disabled.",
    ),
    setting(
        STORAGE_CREDENTIAL,
        Scope::AzureOnly,
        false,
        "",
        "`managedidentity` in Azure.",
    ),
    setting(
        STORAGE_CLIENT_ID,
        Scope::AzureOnly,
        false,
        "",
        "Client id of the user-assigned managed identity.",
    ),
    setting(
        STORAGE_BLOB_URI,
        Scope::AzureOnly,
        false,
        "",
        "Optional blob endpoint override (sovereign clouds, private endpoints).",
    ),
    setting(
        STORAGE_QUEUE_URI,
        Scope::AzureOnly,
        false,
        "",
        "Optional queue endpoint override.",
    ),
    setting(
        STORAGE_TABLE_URI,
        Scope::AzureOnly,
        false,
        "",
        "Optional table endpoint override.",
    ),
    setting(
        ENVIRONMENT,
        Scope::App,
        false,
        "development",
        "`production` (the default) or `development`. Development-only conveniences refuse to start in production.",
    ),
    setting(
        LOG,
        Scope::App,
        false,
        "info",
        "Log filter in `tracing` syntax, e.g. `info,sixpence=debug`. Logs are JSON lines on stdout.",
    ),
    setting(
        "HEARTBEAT_SCHEDULE",
        Scope::HostOnly,
        false,
        "0 */5 * * * *",
        "NCRONTAB (6 fields, UTC) of the `heartbeat` timer.",
    ),
    setting(
        DATA_KEYS,
        Scope::App,
        true,
        "",
        "Data-encryption keyring for secrets at rest: `kid:base64(32 bytes)`, comma-separated, newest first. Key Vault reference in Azure.",
    ),
    setting(
        STRIPE_SECRET_KEY,
        Scope::App,
        true,
        "",
        "Stripe API secret key (`sk_...`). Key Vault reference in Azure.",
    ),
    setting(
        STRIPE_WEBHOOK_SECRET,
        Scope::App,
        true,
        "",
        "Stripe webhook signing secret(s) (`whsec_...`), comma-separated during rotation. Key Vault reference in Azure.",
    ),
    setting(
        MAIL_SENDER,
        Scope::App,
        false,
        "",
        "Mailbox Microsoft Graph sendMail sends as (the app's managed identity needs Mail.Send).",
    ),
    setting(
        SMTP_URL,
        Scope::App,
        true,
        "",
        "Optional SMTP alternative to Graph: `smtps://user:password@host:465`. Key Vault reference in Azure.",
    ),
];

/// Whether development-only conveniences may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Production,
    Development,
}

/// Every setting the binary reads, typed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub environment: Environment,
    pub log_filter: String,
    /// Parsed by the storage module from the same settings the Functions host reads.
    pub storage: StorageConnection,
    pub data_keys: Option<SecretString>,
    pub stripe_secret_key: Option<SecretString>,
    pub stripe_webhook_secret: Option<SecretString>,
    pub mail_sender: Option<String>,
    pub smtp_url: Option<SecretString>,
}

/// One or more settings are missing or invalid; each problem names its setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads settings through `var`, collecting every problem rather than stopping at the first, so an
    /// operator fixes a broken deployment in one round.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let get = |name: &str| -> Option<String> {
            debug_assert!(
                SETTINGS.iter().any(|s| s.name == name),
                "setting {name} is read but not declared in config::SETTINGS"
            );
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let port = match get(PORT) {
            None => {
                problems.push(format!(
                    "{PORT} is not set (the Functions host sets it; the local host does too)"
                ));
                0
            }
            Some(raw) => match raw.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    problems.push(format!("{PORT} must be a TCP port number, got `{raw}`"));
                    0
                }
            },
        };

        let environment = match get(ENVIRONMENT).as_deref() {
            None | Some("production") => Environment::Production,
            Some("development") => Environment::Development,
            Some(other) => {
                problems.push(format!(
                    "{ENVIRONMENT} must be `production` or `development`, got `{other}`"
                ));
                Environment::Production
            }
        };

        let log_filter = get(LOG).unwrap_or_else(|| "info".to_owned());
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            problems.push(format!("{LOG} is not a valid log filter: {err}"));
        }

        let storage = match StorageConnection::from_lookup(|name| get(name)) {
            Ok(connection) => Some(connection),
            Err(err) => {
                problems.push(err.to_string());
                None
            }
        };

        let data_keys = get(DATA_KEYS);
        if let Some(keys) = &data_keys {
            if let Err(reason) = validate_keyring(keys) {
                problems.push(format!("{DATA_KEYS} is invalid: {reason}"));
            }
        }
        let stripe_secret_key = get(STRIPE_SECRET_KEY);
        if let Some(key) = &stripe_secret_key {
            if !(key.starts_with("sk_") || key.starts_with("rk_")) {
                problems.push(format!(
                    "{STRIPE_SECRET_KEY} must be a Stripe secret or restricted key (sk_… or rk_…)"
                ));
            }
        }
        let stripe_webhook_secret = get(STRIPE_WEBHOOK_SECRET);
        if let Some(secrets) = &stripe_webhook_secret {
            if secrets.split(',').any(|s| !s.trim().starts_with("whsec_")) {
                problems.push(format!(
                    "{STRIPE_WEBHOOK_SECRET} must be one or more whsec_… secrets, comma-separated"
                ));
            }
        }
        let mail_sender = get(MAIL_SENDER);
        if let Some(sender) = &mail_sender {
            if !sender.contains('@') {
                problems.push(format!("{MAIL_SENDER} must be a mailbox address"));
            }
        }
        let smtp_url = get(SMTP_URL);
        if let Some(raw) = &smtp_url {
            match url::Url::parse(raw) {
                Ok(url) if matches!(url.scheme(), "smtp" | "smtps") => {}
                // Never echo the value: it carries a password.
                _ => problems.push(format!("{SMTP_URL} must be an smtp:// or smtps:// URL")),
            }
        }

        let Some(storage) = storage.filter(|_| problems.is_empty()) else {
            return Err(ConfigError { problems });
        };
        Ok(Self {
            port,
            environment,
            log_filter,
            storage,
            data_keys: data_keys.map(SecretString::from),
            stripe_secret_key: stripe_secret_key.map(SecretString::from),
            stripe_webhook_secret: stripe_webhook_secret.map(SecretString::from),
            mail_sender,
            smtp_url: smtp_url.map(SecretString::from),
        })
    }
}

/// Checks `kid:base64(32 bytes)[,kid:...]` without revealing any key material in the reason.
fn validate_keyring(raw: &str) -> Result<(), String> {
    use base64::Engine as _;
    let mut seen = BTreeSet::new();
    for (index, entry) in raw.split(',').enumerate() {
        let Some((kid, key)) = entry.trim().split_once(':') else {
            return Err(format!("entry {} is not `kid:key`", index + 1));
        };
        if kid.is_empty()
            || !kid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("entry {} has an invalid key id", index + 1));
        }
        if !seen.insert(kid) {
            return Err(format!("key id `{kid}` appears twice"));
        }
        match base64::engine::general_purpose::STANDARD.decode(key) {
            Ok(bytes) if bytes.len() == 32 => {}
            _ => return Err(format!("key `{kid}` is not 32 bytes of base64")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn minimal() -> HashMap<String, String> {
        vars(&[
            (PORT, "7100"),
            (STORAGE_CONNECTION, "UseDevelopmentStorage=true"),
        ])
    }

    #[test]
    fn minimal_local_settings_are_enough() {
        let env = minimal();
        let settings = Settings::from_vars(|n| env.get(n).cloned()).expect("valid");
        assert_eq!(settings.port, 7100);
        assert_eq!(settings.environment, Environment::Production);
        assert_eq!(settings.log_filter, "info");
        assert_eq!(settings.storage.account(), "devstoreaccount1");
    }

    #[test]
    fn every_problem_is_reported_by_setting_name() {
        let env = vars(&[
            (PORT, "seventy"),
            (ENVIRONMENT, "staging"),
            (DATA_KEYS, "k1:short"),
        ]);
        let err = Settings::from_vars(|n| env.get(n).cloned()).expect_err("invalid");
        let text = err.to_string();
        for name in [PORT, ENVIRONMENT, STORAGE_CONNECTION, DATA_KEYS] {
            assert!(text.contains(name), "{text} should mention {name}");
        }
    }

    #[test]
    fn secret_values_never_appear_in_errors() {
        let env = vars(&[
            (PORT, "7100"),
            (STORAGE_CONNECTION, "UseDevelopmentStorage=true"),
            (SMTP_URL, "http://user:hunter2@mail"),
            (STRIPE_SECRET_KEY, "pk_live_hunter2"),
            (DATA_KEYS, "k1:hunter2hunter2"),
        ]);
        let err = Settings::from_vars(|n| env.get(n).cloned()).expect_err("invalid");
        assert_eq!(err.problems.len(), 3);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_keyring_of_32_byte_keys_is_accepted() {
        let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert!(validate_keyring(&format!("k2:{key},k1:{key}")).is_ok());
        assert!(validate_keyring(&format!("k1:{key},k1:{key}")).is_err());
    }

    #[test]
    fn every_declared_binary_setting_is_read_and_nothing_else() {
        // Storage reads either the connection string or the identity-based settings, so both shapes
        // of configuration are read to see every name.
        let read = RefCell::new(Vec::new());
        let identity = vars(&[(PORT, "7100"), (STORAGE_ACCOUNT_NAME, "stsixpence"), (STORAGE_CREDENTIAL, "managedidentity")]);
        for env in [minimal(), identity] {
            let _ = Settings::from_vars(|name| {
                read.borrow_mut().push(name.to_owned());
                env.get(name).cloned()
            });
        }
        let read: BTreeSet<String> = read.into_inner().into_iter().collect();
        let declared: BTreeSet<String> = SETTINGS
            .iter()
            .filter(|s| s.scope != Scope::HostOnly)
            .map(|s| s.name.to_owned())
            .collect();
        assert_eq!(
            read, declared,
            "Settings::from_vars must read exactly the declared binary settings"
        );
    }
}
