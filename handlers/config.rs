//! Configuration: app settings, typed and validated once at start-up.
//!
//! [`SETTINGS`] is the one list of every setting Sixpence knows. `Settings::from_vars` may only read
//! names on it (reading any other name is a bug the tests catch), `local.settings.example.json`,
//! the README's table and `infra/bicep` are all held equal to it by tests, so an operator can trust
//! that the documented settings are exactly the ones that matter.

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
pub const EMAIL_TRANSPORT: &str = "SIXPENCE_EMAIL_TRANSPORT";
pub const GRAPH_URL: &str = "SIXPENCE_GRAPH_URL";
pub const AUTH_AUTHORITY: &str = "SIXPENCE_AUTH_AUTHORITY";
pub const AUTH_AUDIENCE: &str = "SIXPENCE_AUTH_AUDIENCE";
pub const AUTH_ALLOWED_TENANTS: &str = "SIXPENCE_AUTH_ALLOWED_TENANTS";
pub const DEV_AUTH: &str = "SIXPENCE_DEV_AUTH";
pub const AZURE_ARM_ENDPOINT: &str = "SIXPENCE_AZURE_ARM_ENDPOINT";
pub const AZURE_AUTHORITY: &str = "SIXPENCE_AZURE_AUTHORITY";
pub const STRIPE_API_BASE: &str = "STRIPE_API_BASE";
pub const STRIPE_PLANS: &str = "STRIPE_PLANS";
pub const FREE_SUBSCRIPTIONS: &str = "SIXPENCE_FREE_SUBSCRIPTIONS";
pub const EXPORT_TTL_HOURS: &str = "SIXPENCE_EXPORT_TTL_HOURS";
pub const SECURITY_CONTACT: &str = "SIXPENCE_SECURITY_CONTACT";
pub const SECURITY_POLICY: &str = "SIXPENCE_SECURITY_POLICY";
pub const PUBLIC_URL: &str = "SIXPENCE_PUBLIC_URL";
pub const RETENTION_AUDIT_DAYS: &str = "SIXPENCE_RETENTION_AUDIT_DAYS";
pub const RETENTION_BILLING_DAYS: &str = "SIXPENCE_RETENTION_BILLING_DAYS";

/// The Stripe API, unless `STRIPE_API_BASE` names another (tests: a loopback stand-in).
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";
/// Azure subscriptions a workspace may choose for sync while it has no paid Stripe subscription.
pub const DEFAULT_FREE_SUBSCRIPTIONS: u32 = 5;
/// How long a finished workspace export can be downloaded.
pub const DEFAULT_EXPORT_TTL_HOURS: u32 = 24;
pub const APP_URL: &str = "SIXPENCE_APP_URL";
pub const WEBHOOK_EXTRA_HOSTS: &str = "SIXPENCE_WEBHOOK_EXTRA_HOSTS";
pub const WEBHOOK_ALLOW_LOOPBACK: &str = "SIXPENCE_WEBHOOK_ALLOW_LOOPBACK";

/// The data key `local.settings.example.json` ships with, for local runs only. Published, so it
/// protects nothing: start-up refuses it in production.
pub const DEV_DATA_KEYS: &str = "dev1:4t1bmBXYqcdvRgPFmEGCz73qNrvEf48yx/RVs27gj8M=";
const DEV_DATA_KEY_MATERIAL: &str = "4t1bmBXYqcdvRgPFmEGCz73qNrvEf48yx/RVs27gj8M=";

/// The Entra ID authority for multi-tenant work and school accounts in the public cloud.
pub const DEFAULT_AUTH_AUTHORITY: &str = "https://login.microsoftonline.com/organizations";

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
        DEV_DATA_KEYS,
        "Data-encryption keyring for secrets at rest: `kid:base64(32 bytes)`, comma-separated, newest first. Key Vault reference in Azure. The local value is a published development key that production refuses.",
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
        STRIPE_API_BASE,
        Scope::App,
        false,
        "",
        "Stripe API base URL. Default `https://api.stripe.com`; tests point it at a loopback stand-in.",
    ),
    setting(
        STRIPE_PLANS,
        Scope::App,
        false,
        "",
        "The plans owners may buy: `name=price_id`, comma-separated (e.g. `team=price_123,business=price_456`). Each plan is priced per connected Azure subscription: the quantity bought is the workspace's subscription limit (a price's `subscription_limit` metadata overrides it).",
    ),
    setting(
        FREE_SUBSCRIPTIONS,
        Scope::App,
        false,
        "5",
        "Azure subscriptions a workspace may choose for sync without a paid (active, trialing or past-due) Stripe subscription. Default 5.",
    ),
    setting(
        EXPORT_TTL_HOURS,
        Scope::App,
        false,
        "24",
        "Hours a finished workspace export can be downloaded (1 to 168); after that its download answers 410 and the archive is deleted. Default 24.",
    ),
    setting(
        RETENTION_AUDIT_DAYS,
        Scope::App,
        false,
        "730",
        "Days a deleted workspace's (minimised) audit trail is kept after its deletion completes; the `retention-sweeper` purges it after that. Default 730 (two years).",
    ),
    setting(
        RETENTION_BILLING_DAYS,
        Scope::App,
        false,
        "2557",
        "Days a deleted workspace's billing records (and every incident record, from when it was recorded) are kept; the `retention-sweeper` purges them after that. Default 2557 (seven years: UK tax records are kept six years after the accounting period).",
    ),
    setting(
        SECURITY_CONTACT,
        Scope::App,
        false,
        "mailto:security@example.com",
        "Vulnerability disclosure contact(s) for `/.well-known/security.txt` (RFC 9116): `mailto:`/`https:` URIs or email addresses, comma-separated. Unset: the file is not served.",
    ),
    setting(
        SECURITY_POLICY,
        Scope::App,
        false,
        "",
        "Optional disclosure policy URL for `/.well-known/security.txt` (`Policy:`).",
    ),
    setting(
        PUBLIC_URL,
        Scope::App,
        false,
        "",
        "Optional public base URL of the app (`https://api.example.com`), used for the `Canonical:` line of security.txt. Unset: the request's host.",
    ),
    setting(
        MAIL_SENDER,
        Scope::App,
        false,
        "notifications@sixpence.localhost",
        "Mailbox notification email is sent as (`From`). With Graph the app's managed identity needs the Mail.Send application permission, limited to this mailbox by an application access policy.",
    ),
    setting(
        EMAIL_TRANSPORT,
        Scope::App,
        false,
        "graph",
        "How notification email leaves: `graph` (Microsoft Graph sendMail as MAIL_SENDER, with the app's managed identity), `smtp` (SMTP_URL) or `none` (email channels' deliveries fail and show why in the delivery log). Unset: `smtp` if SMTP_URL is set, `graph` if MAIL_SENDER is, else `none`.",
    ),
    setting(
        GRAPH_URL,
        Scope::App,
        false,
        "http://127.0.0.1:8089",
        "Microsoft Graph's base URL (`https://graph.microsoft.com` when unset; a national cloud's Graph, or in development a loopback stand-in over http://). Tokens are asked for `<this URL>/.default`.",
    ),
    setting(
        SMTP_URL,
        Scope::App,
        true,
        "",
        "SMTP alternative to Graph: `smtps://user:password@host` (implicit TLS, port 465), `smtp://user:password@host` (STARTTLS required, port 587); `smtp://127.0.0.1:1025?tls=none` only to a loopback server. Key Vault reference in Azure.",
    ),
    setting(
        AUTH_AUTHORITY,
        Scope::App,
        false,
        DEFAULT_AUTH_AUTHORITY,
        "Entra ID authority whose `/v2.0/.well-known/openid-configuration` names the token signing keys. Default `https://login.microsoftonline.com/organizations`; change the host for sovereign clouds.",
    ),
    setting(
        AUTH_AUDIENCE,
        Scope::App,
        false,
        "",
        "The tenant API's application (client) id and/or app ID URI, comma-separated; tokens for any other audience are refused. Required in production.",
    ),
    setting(
        AUTH_ALLOWED_TENANTS,
        Scope::App,
        false,
        "",
        "Optional allow-list of Entra tenant ids (GUIDs), comma-separated. Empty: any work or school tenant may sign in.",
    ),
    setting(
        DEV_AUTH,
        Scope::App,
        false,
        "local-development-only",
        "Development only: passphrase the local sign-in key is derived from (`sixpence dev-token` mints tokens with it). Start-up refuses it in production.",
    ),
    setting(
        AZURE_ARM_ENDPOINT,
        Scope::App,
        false,
        "http://127.0.0.1:8089",
        "Azure Resource Manager endpoint for calls into customers' tenants. Default `https://management.azure.com`; change it for sovereign clouds. The local run points it at the simulated tenant.",
    ),
    setting(
        AZURE_AUTHORITY,
        Scope::App,
        false,
        "http://127.0.0.1:8089",
        "Entra ID authority customers' service principals sign in at. Default `https://login.microsoftonline.com`; change it for sovereign clouds. The local run points it at the simulated tenant.",
    ),
    setting(
        APP_URL,
        Scope::App,
        false,
        "http://localhost:3000",
        "Base URL of the Sixpence web app; notifications link to it (`<url>/workspaces/<id>/anomalies/<id>`). Links are left out when unset.",
    ),
    setting(
        WEBHOOK_EXTRA_HOSTS,
        Scope::App,
        false,
        "",
        "Optional extra Slack/Teams webhook hosts, comma-separated: `host` (exactly) or `.domain` (any subdomain). The defaults are `hooks.slack.com`, `*.webhook.office.com`, `*.logic.azure.com`, `*.powerplatform.com`, `*.powerautomate.com`.",
    ),
    setting(
        WEBHOOK_ALLOW_LOOPBACK,
        Scope::App,
        false,
        "true",
        "Development only: `true` lets webhook channels post to `http://127.0.0.1:<port>` receivers (the local run and tests). Start-up refuses it in production.",
    ),
    setting(
        "SYNC_SCHEDULE",
        Scope::HostOnly,
        false,
        "0 30 1 * * *",
        "NCRONTAB (6 fields, UTC) of the `sync-scheduler` timer, which enqueues one `cost-sync` message per chosen subscription. Nightly at 01:30 UTC by default.",
    ),
    setting(
        "CONNECTION_HEALTH_SCHEDULE",
        Scope::HostOnly,
        false,
        "0 17 * * * *",
        "NCRONTAB (6 fields, UTC) of the `connection-health` timer, which re-verifies every active connection. Hourly by default.",
    ),
    setting(
        "RETENTION_SWEEPER_SCHEDULE",
        Scope::HostOnly,
        false,
        "0 45 3 * * *",
        "NCRONTAB (6 fields, UTC) of the `retention-sweeper` timer, which resumes unfinished deletions, alerts on overdue ones and purges retained records past their retention. Daily at 03:45 UTC by default.",
    ),
];

/// The retention periods: whole days, at least one.
fn read_retention(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> crate::domain::deletion::Retention {
    let defaults = crate::domain::deletion::Retention::default();
    let mut days = |name: &str, default: time::Duration| match get(name) {
        None => default,
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) if n >= 1 => time::Duration::days(n.into()),
            _ => {
                problems.push(format!(
                    "{name} must be a whole number of days (1 or more), got `{raw}`"
                ));
                default
            }
        },
    };
    crate::domain::deletion::Retention {
        audit: days(RETENTION_AUDIT_DAYS, defaults.audit),
        billing: days(RETENTION_BILLING_DAYS, defaults.billing),
    }
}

/// Whether development-only conveniences may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Production,
    Development,
}

/// How callers of the tenant API are authenticated.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Entra ID authority (`https://host/tenant-or-organizations`), without a trailing slash.
    pub authority: String,
    /// Accepted `aud` values; empty only in development (then only development tokens are accepted).
    pub audiences: Vec<String>,
    /// Tenants allowed to sign in; empty means any.
    pub allowed_tenants: Vec<uuid::Uuid>,
    /// Passphrase of the development signing key; only ever `Some` in development.
    pub dev_auth: Option<SecretString>,
}

/// The contents of `/.well-known/security.txt` that come from configuration.
#[derive(Debug, Clone, Default)]
pub struct SecurityTxtSettings {
    /// `Contact:` URIs; empty means the file is not served.
    pub contacts: Vec<String>,
    pub policy: Option<url::Url>,
    /// Public base URL for `Canonical:`; the request's host when unset.
    pub public_url: Option<url::Url>,
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
    /// Stripe REST base URL, without a trailing slash.
    pub stripe_api_base: url::Url,
    /// Plans owners may buy: (name, Stripe price id).
    pub stripe_plans: Vec<(String, String)>,
    /// Subscriptions a workspace may choose without a paid Stripe subscription.
    pub free_subscriptions: u32,
    /// How long a finished workspace export can be downloaded.
    pub export_ttl: std::time::Duration,
    /// How long a deleted workspace's retained records are kept.
    pub retention: crate::domain::deletion::Retention,
    /// What `/.well-known/security.txt` says.
    pub security_txt: SecurityTxtSettings,
    pub mail_sender: Option<String>,
    pub smtp_url: Option<SecretString>,
    /// How notification email is sent.
    pub email: EmailSettings,
    pub auth: AuthSettings,
    /// Where customers' tenants are reached.
    pub azure: crate::azure::AzureEndpoints,
    /// Base URL of the web app, for links in notifications.
    pub app_url: Option<String>,
    /// What webhook channels may post to.
    pub webhooks: crate::notify::WebhookPolicy,
    /// The first notification retry's delay. Not an app setting: tests shorten it.
    pub notify_retry_base: std::time::Duration,
    /// How long anomalies are gathered into one digest. Not an app setting: tests shorten it.
    pub notify_gather: std::time::Duration,
    /// How long a receiver has to answer before the attempt counts as transient. Not an app
    /// setting: tests shorten it (production: `domain::notifications::SEND_TIMEOUT`).
    pub notify_send_timeout: std::time::Duration,
    /// The cost sync's own Cost Management pacing instead of the documented per-tenant quotas. Not an
    /// app setting: only benchmarks set it, to measure the worker rather than the quota.
    pub cost_pacing: Option<crate::azure::pacer::PacingOptions>,
    /// Settings whose Key Vault reference did not resolve; treated as unset and logged at start-up.
    pub unresolved_key_vault_references: Vec<&'static str>,
}

/// How notification email leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTransport {
    Graph,
    Smtp,
    None,
}

/// Email delivery settings.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub transport: EmailTransport,
    /// Microsoft Graph's root (a loopback stand-in in tests and the local run).
    pub graph_url: url::Url,
    /// The identity Graph tokens come from. Not an app setting: production uses the app's managed
    /// identity (the one storage uses); tests and the local run inject a stand-in's credential.
    pub graph_credential: Option<std::sync::Arc<dyn azure_core::credentials::TokenCredential>>,
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
        let unresolved = std::cell::RefCell::new(Vec::new());
        let get = |name: &str| -> Option<String> {
            debug_assert!(
                SETTINGS.iter().any(|s| s.name == name),
                "setting {name} is read but not declared in config::SETTINGS"
            );
            let value = var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())?;
            // App Service hands an unresolvable Key Vault reference (missing secret, no access) to the
            // app as its literal text. That is never a usable value: treat it as unset and say so.
            if value.starts_with("@Microsoft.KeyVault(") {
                if let Some(spec) = SETTINGS.iter().find(|s| s.name == name) {
                    unresolved.borrow_mut().push(spec.name);
                }
                return None;
            }
            Some(value)
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
        if let Some(keys) = &data_keys
            && let Err(reason) = validate_keyring(keys)
        {
            problems.push(format!("{DATA_KEYS} is invalid: {reason}"));
        }
        let stripe_secret_key = get(STRIPE_SECRET_KEY);
        if let Some(key) = &stripe_secret_key
            && !(key.starts_with("sk_") || key.starts_with("rk_"))
        {
            problems.push(format!(
                "{STRIPE_SECRET_KEY} must be a Stripe secret or restricted key (sk_… or rk_…)"
            ));
        }
        let stripe_webhook_secret = get(STRIPE_WEBHOOK_SECRET);
        if let Some(secrets) = &stripe_webhook_secret
            && secrets.split(',').any(|s| !s.trim().starts_with("whsec_"))
        {
            problems.push(format!(
                "{STRIPE_WEBHOOK_SECRET} must be one or more whsec_… secrets, comma-separated"
            ));
        }
        let stripe_api_base = match get(STRIPE_API_BASE) {
            None => url::Url::parse(DEFAULT_STRIPE_API_BASE).ok(),
            Some(raw) => match url::Url::parse(raw.trim_end_matches('/')) {
                Ok(url)
                    if validate_authority(url.as_str().trim_end_matches('/')).is_ok()
                        && url.path() == "/" =>
                {
                    Some(url)
                }
                _ => {
                    problems.push(format!(
                        "{STRIPE_API_BASE} must be an https:// URL without a path (http:// only to a loopback address), got `{raw}`"
                    ));
                    None
                }
            },
        };
        let stripe_plans = get(STRIPE_PLANS)
            .map(|raw| read_plans(&raw, &mut problems))
            .unwrap_or_default();
        let free_subscriptions = match get(FREE_SUBSCRIPTIONS) {
            None => DEFAULT_FREE_SUBSCRIPTIONS,
            Some(raw) => raw.parse::<u32>().unwrap_or_else(|_| {
                problems.push(format!(
                    "{FREE_SUBSCRIPTIONS} must be a whole number (0 or more), got `{raw}`"
                ));
                DEFAULT_FREE_SUBSCRIPTIONS
            }),
        };
        let export_ttl_hours = match get(EXPORT_TTL_HOURS) {
            None => DEFAULT_EXPORT_TTL_HOURS,
            Some(raw) => match raw.parse::<u32>() {
                Ok(h @ 1..=168) => h,
                _ => {
                    problems.push(format!(
                        "{EXPORT_TTL_HOURS} must be a whole number of hours from 1 to 168, got `{raw}`"
                    ));
                    DEFAULT_EXPORT_TTL_HOURS
                }
            },
        };
        let retention = read_retention(&get, &mut problems);
        let security_txt = read_security_txt(&get, &mut problems);
        let mail_sender = get(MAIL_SENDER);
        if let Some(sender) = &mail_sender
            && !sender.contains('@')
        {
            problems.push(format!("{MAIL_SENDER} must be a mailbox address"));
        }
        let smtp_url = get(SMTP_URL);
        let mut email_ok = true;
        if let Some(raw) = &smtp_url
            && let Err(reason) = crate::notify::email::parse_smtp_url(raw)
        {
            // Never echo the value: it carries a password.
            problems.push(format!("{SMTP_URL} is invalid: {reason}"));
            email_ok = false;
        }
        let graph_url = match get(GRAPH_URL) {
            None => url::Url::parse(crate::notify::email::DEFAULT_GRAPH_URL).expect("a URL"),
            Some(raw) => match url::Url::parse(raw.trim_end_matches('/')) {
                Ok(url)
                    if validate_authority(url.as_str().trim_end_matches('/')).is_ok()
                        && url.path() == "/" =>
                {
                    url
                }
                _ => {
                    problems.push(format!(
                        "{GRAPH_URL} must be an https:// URL without a path (http:// only to a loopback address), got `{raw}`"
                    ));
                    email_ok = false;
                    url::Url::parse(crate::notify::email::DEFAULT_GRAPH_URL).expect("a URL")
                }
            },
        };
        let transport = match get(EMAIL_TRANSPORT).as_deref() {
            None if smtp_url.is_some() => EmailTransport::Smtp,
            None if mail_sender.is_some() => EmailTransport::Graph,
            None | Some("none") => EmailTransport::None,
            Some("graph") => EmailTransport::Graph,
            Some("smtp") => EmailTransport::Smtp,
            Some(other) => {
                problems.push(format!(
                    "{EMAIL_TRANSPORT} must be `graph`, `smtp` or `none`, got `{other}`"
                ));
                email_ok = false;
                EmailTransport::None
            }
        };
        if email_ok && transport != EmailTransport::None && mail_sender.is_none() {
            problems.push(format!(
                "{EMAIL_TRANSPORT} `{}` needs {MAIL_SENDER} (the mailbox email is sent as)",
                if transport == EmailTransport::Graph {
                    "graph"
                } else {
                    "smtp"
                }
            ));
        }
        if email_ok && transport == EmailTransport::Smtp && smtp_url.is_none() {
            problems.push(format!("{EMAIL_TRANSPORT} `smtp` needs {SMTP_URL}"));
        }

        if environment == Environment::Production
            && data_keys
                .as_deref()
                .is_some_and(|keys| keys.contains(DEV_DATA_KEY_MATERIAL))
        {
            problems.push(format!(
                "{DATA_KEYS} contains the published development key, which protects nothing; \
                 generate a key (`openssl rand -base64 32`) for production"
            ));
        }

        let app_url = get(APP_URL).map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &app_url
            && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problems.push(format!("{APP_URL} must be an http(s) URL"));
        }
        let extra_hosts: Vec<String> = get(WEBHOOK_EXTRA_HOSTS)
            .map(|v| {
                v.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = extra_hosts.iter().find(|h| {
            let bare = h.trim_start_matches('.');
            bare.is_empty()
                || !bare.contains('.')
                || !bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }) {
            problems.push(format!(
                "{WEBHOOK_EXTRA_HOSTS} must list host names or .domain suffixes with a dot, got `{bad}`"
            ));
        }
        let allow_loopback = match get(WEBHOOK_ALLOW_LOOPBACK).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                problems.push(format!(
                    "{WEBHOOK_ALLOW_LOOPBACK} must be `true` or `false`"
                ));
                false
            }
        };
        if allow_loopback && environment == Environment::Production {
            problems.push(format!(
                "{WEBHOOK_ALLOW_LOOPBACK} is a development allowance and is refused in production"
            ));
        }

        let auth = read_auth(&get, environment, &mut problems);
        let azure = read_azure(&get, &mut problems);

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
            stripe_api_base: stripe_api_base
                .unwrap_or_else(|| url::Url::parse(DEFAULT_STRIPE_API_BASE).expect("a URL")),
            stripe_plans,
            free_subscriptions,
            export_ttl: std::time::Duration::from_secs(u64::from(export_ttl_hours) * 3600),
            retention,
            security_txt,
            mail_sender,
            smtp_url: smtp_url.map(SecretString::from),
            email: EmailSettings {
                transport,
                graph_url,
                graph_credential: None,
            },
            auth,
            azure,
            app_url,
            webhooks: crate::notify::WebhookPolicy {
                extra_hosts,
                allow_loopback,
            },
            notify_retry_base: crate::domain::notifications::BASE_RETRY_DELAY,
            notify_gather: crate::domain::notifications::ANOMALY_GATHER,
            notify_send_timeout: crate::domain::notifications::SEND_TIMEOUT,
            cost_pacing: None,
            unresolved_key_vault_references: unresolved.into_inner(),
        })
    }
}

/// `name=price_id` pairs; names are what owners ask for, price ids what Stripe knows.
fn read_plans(raw: &str, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let mut plans: Vec<(String, String)> = Vec::new();
    for (index, entry) in raw.split(',').map(str::trim).enumerate() {
        let parsed = entry.split_once('=').and_then(|(name, price)| {
            let (name, price) = (name.trim(), price.trim());
            let name_ok = !name.is_empty()
                && name.len() <= 40
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            (name_ok && price.starts_with("price_") && !plans.iter().any(|(n, _)| n == name))
                .then(|| (name.to_owned(), price.to_owned()))
        });
        match parsed {
            Some(plan) => plans.push(plan),
            None => problems.push(format!(
                "{STRIPE_PLANS} must be `name=price_…` pairs (lower-case names, each once), comma-separated; entry {} is not",
                index + 1
            )),
        }
    }
    plans
}

/// The disclosure contact, policy and public URL of security.txt.
fn read_security_txt(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> SecurityTxtSettings {
    let mut settings = SecurityTxtSettings::default();
    if let Some(raw) = get(SECURITY_CONTACT) {
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let uri = if !entry.contains(':') && entry.contains('@') {
                format!("mailto:{entry}")
            } else {
                entry.to_owned()
            };
            match url::Url::parse(&uri) {
                Ok(url) if matches!(url.scheme(), "mailto" | "https" | "tel") => {
                    settings.contacts.push(uri)
                }
                _ => problems.push(format!(
                    "{SECURITY_CONTACT} entries must be mailto:, https: or tel: URIs or email addresses; `{entry}` is not"
                )),
            }
        }
    }
    for (name, slot) in [
        (SECURITY_POLICY, &mut settings.policy),
        (PUBLIC_URL, &mut settings.public_url),
    ] {
        let Some(raw) = get(name) else { continue };
        match url::Url::parse(&raw) {
            Ok(url) if url.scheme() == "https" && url.host().is_some() => *slot = Some(url),
            _ => problems.push(format!("{name} must be an https:// URL, got `{raw}`")),
        }
    }
    settings
}

/// Reads and checks the authentication settings, adding each problem to `problems`.
fn read_auth(
    get: &impl Fn(&str) -> Option<String>,
    environment: Environment,
    problems: &mut Vec<String>,
) -> AuthSettings {
    let authority = get(AUTH_AUTHORITY)
        .unwrap_or_else(|| DEFAULT_AUTH_AUTHORITY.to_owned())
        .trim_end_matches('/')
        .to_owned();
    if let Err(reason) = validate_authority(&authority) {
        problems.push(format!("{AUTH_AUTHORITY} {reason}"));
    }

    let audiences: Vec<String> = get(AUTH_AUDIENCE)
        .map(|raw| {
            raw.split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() && environment == Environment::Production {
        problems.push(format!(
            "{AUTH_AUDIENCE} is required in production: the tenant API's application (client) id or app ID URI"
        ));
    }

    let mut allowed_tenants = Vec::new();
    if let Some(raw) = get(AUTH_ALLOWED_TENANTS) {
        for (index, entry) in raw.split(',').map(str::trim).enumerate() {
            match uuid::Uuid::parse_str(entry) {
                Ok(tenant) => allowed_tenants.push(tenant),
                Err(_) => problems.push(format!(
                    "{AUTH_ALLOWED_TENANTS} must be tenant ids (GUIDs), comma-separated; entry {} is not",
                    index + 1
                )),
            }
        }
    }

    // Development sign-in mints tokens from a passphrase anyone with the repository knows, so it
    // must never be reachable in production: refuse to start rather than silently ignore it.
    let dev_auth = get(DEV_AUTH);
    if dev_auth.is_some() && environment == Environment::Production {
        problems.push(format!(
            "{DEV_AUTH} is set but {ENVIRONMENT} is `production` (the default): development sign-in cannot be enabled in production; unset {DEV_AUTH} or set {ENVIRONMENT}=development"
        ));
    }

    AuthSettings {
        authority,
        audiences,
        allowed_tenants,
        dev_auth: dev_auth.map(SecretString::from),
    }
}

/// An authority must be HTTPS; plain HTTP only to a loopback address (tests, local simulators), where
/// nobody can tamper with the keys on the way.
pub(crate) fn validate_authority(raw: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(raw).map_err(|_| "is not a URL")?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment");
    }
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(url::Host::Ipv4(ip))) if ip.is_loopback() => Ok(()),
        ("http", Some(url::Host::Ipv6(ip))) if ip.is_loopback() => Ok(()),
        ("http", Some(url::Host::Domain("localhost"))) => Ok(()),
        _ => Err("must be an https:// URL (http:// only to a loopback address)"),
    }
}

/// Checks the keyring with the same parser the secrets module uses, so there is one rule set; the
/// reason never contains key material.
/// Reads the endpoints of customers' tenants.
fn read_azure(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> crate::azure::AzureEndpoints {
    let mut endpoints = crate::azure::AzureEndpoints::default();
    for (name, slot) in [
        (AZURE_ARM_ENDPOINT, &mut endpoints.arm),
        (AZURE_AUTHORITY, &mut endpoints.authority),
    ] {
        let Some(raw) = get(name) else { continue };
        match url::Url::parse(raw.trim_end_matches('/')) {
            Ok(url) if crate::azure::validate_endpoint(&url, name).is_ok() => *slot = url,
            _ => problems.push(format!(
                "{name} must be an https:// URL without query or fragment (http:// only to a \
                 loopback address), got `{raw}`"
            )),
        }
    }
    endpoints
}

fn validate_keyring(raw: &str) -> Result<(), String> {
    crate::secrets::Keyring::parse(&SecretString::from(raw.to_owned()))
        .map(|_| ())
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

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
            (AUTH_AUDIENCE, "api://sixpence"),
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
    fn production_refuses_the_published_development_data_key_and_a_foreign_azure_endpoint() {
        let env = vars(&[
            (PORT, "7100"),
            (STORAGE_CONNECTION, "UseDevelopmentStorage=true"),
            (
                DATA_KEYS,
                &format!("k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,{DEV_DATA_KEYS}"),
            ),
            (AUTH_AUDIENCE, "api://sixpence"),
            (AZURE_ARM_ENDPOINT, "http://management.example.com"),
        ]);
        let err = Settings::from_vars(|n| env.get(n).cloned()).expect_err("invalid");
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(
            err.to_string().contains("published development key"),
            "{err}"
        );
        assert!(err.to_string().contains(AZURE_ARM_ENDPOINT), "{err}");
        assert!(!err.to_string().contains(DEV_DATA_KEY_MATERIAL), "{err}");

        let mut dev = env.clone();
        dev.insert(ENVIRONMENT.to_owned(), "development".to_owned());
        dev.insert(
            AZURE_ARM_ENDPOINT.to_owned(),
            "http://127.0.0.1:8089/".to_owned(),
        );
        let settings = Settings::from_vars(|n| dev.get(n).cloned()).expect("valid locally");
        assert_eq!(settings.azure.arm.as_str(), "http://127.0.0.1:8089/");
        assert_eq!(
            settings.azure.authority.as_str(),
            "https://login.microsoftonline.com/"
        );
    }

    #[test]
    fn secret_values_never_appear_in_errors() {
        let env = vars(&[
            (PORT, "7100"),
            (STORAGE_CONNECTION, "UseDevelopmentStorage=true"),
            (SMTP_URL, "http://user:hunter2@mail"),
            (STRIPE_SECRET_KEY, "pk_live_hunter2"),
            (DATA_KEYS, "k1:hunter2hunter2"),
            (AUTH_AUDIENCE, "api://sixpence"),
        ]);
        let err = Settings::from_vars(|n| env.get(n).cloned()).expect_err("invalid");
        assert_eq!(err.problems.len(), 3);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn an_unresolved_key_vault_reference_counts_as_unset_and_is_reported() {
        let mut env = minimal();
        env.insert(
            SMTP_URL.to_owned(),
            "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/smtp-url)".to_owned(),
        );
        let settings = Settings::from_vars(|n| env.get(n).cloned()).expect("valid");
        assert!(settings.smtp_url.is_none());
        assert_eq!(settings.unresolved_key_vault_references, vec![SMTP_URL]);
    }

    #[test]
    fn a_keyring_of_32_byte_keys_is_accepted() {
        let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert!(validate_keyring(&format!("k2:{key},k1:{key}")).is_ok());
        assert!(validate_keyring(&format!("k1:{key},k1:{key}")).is_err());
    }

    #[test]
    fn authentication_defaults_to_multi_tenant_entra() {
        let env = minimal();
        let settings = Settings::from_vars(|n| env.get(n).cloned()).expect("valid");
        assert_eq!(settings.auth.authority, DEFAULT_AUTH_AUTHORITY);
        assert_eq!(settings.auth.audiences, vec!["api://sixpence".to_owned()]);
        assert!(settings.auth.allowed_tenants.is_empty());
        assert!(settings.auth.dev_auth.is_none());
    }

    #[test]
    fn start_up_refuses_dev_auth_in_production() {
        for environment in [None, Some("production")] {
            let mut env = minimal();
            env.insert(DEV_AUTH.to_owned(), "local-development-only".to_owned());
            if let Some(value) = environment {
                env.insert(ENVIRONMENT.to_owned(), value.to_owned());
            }
            let err = Settings::from_vars(|n| env.get(n).cloned()).expect_err("refused");
            assert_eq!(err.problems.len(), 1, "{err}");
            let text = err.to_string();
            assert!(
                text.contains(DEV_AUTH) && text.contains(ENVIRONMENT),
                "{text}"
            );
            assert!(!text.contains("local-development-only"), "{text}");
        }
    }

    #[test]
    fn dev_auth_is_accepted_in_development_without_an_audience() {
        let env = vars(&[
            (PORT, "7100"),
            (STORAGE_CONNECTION, "UseDevelopmentStorage=true"),
            (ENVIRONMENT, "development"),
            (DEV_AUTH, "local-development-only"),
        ]);
        let settings = Settings::from_vars(|n| env.get(n).cloned()).expect("valid");
        assert!(settings.auth.dev_auth.is_some());
        assert!(settings.auth.audiences.is_empty());
    }

    #[test]
    fn production_requires_an_audience() {
        let mut env = minimal();
        env.remove(AUTH_AUDIENCE);
        let err = Settings::from_vars(|n| env.get(n).cloned()).expect_err("refused");
        assert!(err.to_string().contains(AUTH_AUDIENCE), "{err}");
    }

    #[test]
    fn auth_settings_are_parsed_and_checked() {
        let mut env = minimal();
        env.insert(
            AUTH_AUDIENCE.to_owned(),
            " api://sixpence , 11111111-2222-3333-4444-555555555555 ".to_owned(),
        );
        env.insert(
            AUTH_ALLOWED_TENANTS.to_owned(),
            "72f988bf-86f1-41af-91ab-2d7cd011db47, 9188040d-6c67-4c5b-b112-36a304b66dad".to_owned(),
        );
        env.insert(
            AUTH_AUTHORITY.to_owned(),
            "https://login.microsoftonline.us/organizations/".to_owned(),
        );
        let settings = Settings::from_vars(|n| env.get(n).cloned()).expect("valid");
        assert_eq!(settings.auth.audiences.len(), 2);
        assert_eq!(settings.auth.allowed_tenants.len(), 2);
        assert_eq!(
            settings.auth.authority,
            "https://login.microsoftonline.us/organizations"
        );

        for (name, value) in [
            (
                AUTH_ALLOWED_TENANTS,
                "72f988bf-86f1-41af-91ab-2d7cd011db47,contoso",
            ),
            (AUTH_AUTHORITY, "http://login.example.com/organizations"),
            (AUTH_AUTHORITY, "not a url"),
        ] {
            let mut env = minimal();
            env.insert(name.to_owned(), value.to_owned());
            let err = Settings::from_vars(|n| env.get(n).cloned()).expect_err(value);
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(validate_authority("http://127.0.0.1:8080/organizations").is_ok());
        assert!(validate_authority("http://[::1]:8080/organizations").is_ok());
    }

    #[test]
    fn billing_and_security_txt_settings_are_parsed_and_checked() {
        let mut env = minimal();
        env.insert(
            STRIPE_PLANS.to_owned(),
            "team=price_123, business=price_456".to_owned(),
        );
        env.insert(
            STRIPE_API_BASE.to_owned(),
            "http://127.0.0.1:9999/".to_owned(),
        );
        env.insert(FREE_SUBSCRIPTIONS.to_owned(), "2".to_owned());
        env.insert(
            SECURITY_CONTACT.to_owned(),
            "security@sixpence.example, https://sixpence.example/report".to_owned(),
        );
        let settings = Settings::from_vars(|n| env.get(n).cloned()).expect("valid");
        assert_eq!(
            settings.stripe_plans,
            vec![
                ("team".to_owned(), "price_123".to_owned()),
                ("business".to_owned(), "price_456".to_owned())
            ]
        );
        assert_eq!(settings.stripe_api_base.as_str(), "http://127.0.0.1:9999/");
        assert_eq!(settings.free_subscriptions, 2);
        assert_eq!(
            settings.security_txt.contacts,
            vec![
                "mailto:security@sixpence.example".to_owned(),
                "https://sixpence.example/report".to_owned()
            ]
        );
        let defaults = Settings::from_vars(|n| minimal().get(n).cloned()).expect("valid");
        assert_eq!(defaults.stripe_api_base.as_str(), "https://api.stripe.com/");
        assert_eq!(defaults.free_subscriptions, DEFAULT_FREE_SUBSCRIPTIONS);
        assert!(defaults.security_txt.contacts.is_empty());

        for (name, value) in [
            (STRIPE_PLANS, "team=prod_1"),
            (STRIPE_PLANS, "team=price_1,team=price_2"),
            (STRIPE_API_BASE, "http://api.stripe.example"),
            (STRIPE_API_BASE, "https://api.stripe.com/v1"),
            (FREE_SUBSCRIPTIONS, "-1"),
            (SECURITY_CONTACT, "ftp://x.example"),
            (SECURITY_POLICY, "http://sixpence.example/policy"),
        ] {
            let mut env = minimal();
            env.insert(name.to_owned(), value.to_owned());
            let err = Settings::from_vars(|n| env.get(n).cloned()).expect_err(value);
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn every_declared_binary_setting_is_read_and_nothing_else() {
        // Storage reads either the connection string or the identity-based settings, so both shapes
        // of configuration are read to see every name.
        let read = RefCell::new(Vec::new());
        let identity = vars(&[
            (PORT, "7100"),
            (STORAGE_ACCOUNT_NAME, "stsixpence"),
            (STORAGE_CREDENTIAL, "managedidentity"),
        ]);
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
