//! The `sixpence` binary: the custom handler the Functions host starts, plus operator commands.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use sixpence::app::{App, shutdown_signal};
use sixpence::auth::{DevTokenRequest, dev, mint_dev_token};
use sixpence::config::Settings;

#[derive(Parser)]
#[command(
    name = "sixpence",
    version,
    about = "Sixpence Azure cost management (Functions custom handler)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Functions host on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT (the default).
    Serve,
    /// Replay one daily series causally through the anomaly detector and print one JSON line per
    /// flagged day: `sixpence detect --csv FILE [--min-impact 0]`.
    #[command(disable_help_flag = true)]
    Detect {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print a bearer token a local run (SIXPENCE_ENVIRONMENT=development) accepts.
    DevToken(DevTokenArgs),
    /// Re-encrypt every connection secret not sealed under the newest key of SIXPENCE_DATA_KEYS
    /// (run after prepending a new key; idempotent and resumable). Reads the app's settings from
    /// the environment.
    RotateSecrets,
    /// Record a security or availability incident (what, when, which workspaces) in the retained
    /// incident records, with an audit record in each workspace concerned. Prints the record as
    /// JSON. Reads the app's settings from the environment.
    RecordIncident(RecordIncidentArgs),
}

#[derive(Args)]
struct RecordIncidentArgs {
    /// What happened, without personal data (1 to 2000 characters).
    #[arg(long)]
    what: String,
    /// When it happened or began (RFC 3339, e.g. 2026-11-20T09:30:00Z); now by default.
    #[arg(long)]
    when: Option<String>,
    /// A workspace it touched (its id); repeat for each.
    #[arg(long = "workspace")]
    workspaces: Vec<String>,
}

#[derive(Args)]
struct DevTokenArgs {
    /// The user's email address; the same address always gets the same user id.
    #[arg(long)]
    user: String,
    /// Entra tenant id (GUID) the user belongs to; a fixed development tenant by default.
    #[arg(long)]
    tenant: Option<uuid::Uuid>,
    /// Display name; the part of the address before `@` by default.
    #[arg(long)]
    name: Option<String>,
    /// Hours until the token expires.
    #[arg(long, default_value_t = 8)]
    hours: u64,
    /// The app's SIXPENCE_DEV_AUTH passphrase; read from the environment, else from
    /// ./local.settings.json.
    #[arg(long, env = "SIXPENCE_DEV_AUTH", hide_env_values = true)]
    dev_auth: Option<String>,
}

fn main() -> ExitCode {
    sixpence::storage::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sixpence: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve()),
        Command::DevToken(args) => dev_token(args),
        Command::Detect { args } => detect(&args),
        Command::RotateSecrets => runtime.block_on(rotate_secrets()),
        Command::RecordIncident(args) => runtime.block_on(record_incident(args)),
    }
}

/// The app's own settings for an operator command, minus the port the host would assign: such a
/// command serves nothing.
fn operator_settings() -> Result<Settings, ExitCode> {
    Settings::from_vars(|name| {
        if name == sixpence::config::PORT {
            Some("1".to_owned())
        } else {
            std::env::var(name).ok()
        }
    })
    .map_err(|err| {
        eprintln!("sixpence: {err}");
        ExitCode::from(2)
    })
}

async fn record_incident(args: RecordIncidentArgs) -> ExitCode {
    use sixpence::domain::audit::{Actor, AuditLog as _, AuditRecord, Outcome};
    use sixpence::domain::incidents::{Incident, IncidentLog as _};
    use sixpence::domain::tenancy::{TenancyStore as _, WorkspaceId};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    let settings = match operator_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let now = OffsetDateTime::now_utc();
    let occurred_at = match args
        .when
        .as_deref()
        .map(|w| OffsetDateTime::parse(w, &Rfc3339))
    {
        None => now,
        Some(Ok(at)) => at,
        Some(Err(_)) => {
            eprintln!("sixpence: --when must be an RFC 3339 time such as 2026-11-20T09:30:00Z");
            return ExitCode::from(2);
        }
    };
    let mut workspaces = Vec::new();
    for raw in &args.workspaces {
        match WorkspaceId::parse(raw.trim()) {
            Some(id) => workspaces.push(id),
            None => {
                eprintln!("sixpence: --workspace `{raw}` is not a workspace id");
                return ExitCode::from(2);
            }
        }
    }
    let incident = match Incident::new(&args.what, occurred_at, workspaces, now) {
        Ok(incident) => incident,
        Err(err) => {
            eprintln!("sixpence: {err}");
            return ExitCode::from(2);
        }
    };
    let storage = match sixpence::storage::Storage::connect(&settings.storage) {
        Ok(storage) => storage,
        Err(err) => {
            eprintln!("sixpence: cannot reach storage: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = sixpence::storage::names::ensure_all(&storage).await {
        eprintln!("sixpence: cannot prepare storage: {err}");
        return ExitCode::FAILURE;
    }
    let tenancy = sixpence::storage::tenancy::TableTenancyStore::new(storage.clone());
    for workspace in &incident.workspaces {
        match tenancy.workspace(*workspace).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                eprintln!("sixpence: there is no workspace {workspace}; nothing was recorded");
                return ExitCode::from(2);
            }
            Err(err) => {
                eprintln!("sixpence: cannot read workspaces: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let log = sixpence::storage::incidents::TableIncidentLog::new(storage.clone());
    if let Err(err) = log.record(&incident).await {
        eprintln!("sixpence: the incident could not be recorded: {err}");
        return ExitCode::FAILURE;
    }
    let audit = sixpence::storage::audit::TableAuditLog::new(storage);
    let mut code = ExitCode::SUCCESS;
    for workspace in &incident.workspaces {
        let record = AuditRecord {
            workspace: *workspace,
            at: now,
            actor: Actor::System {
                component: "operator".to_owned(),
            },
            action: "incident.record".to_owned(),
            target: format!("incident/{}", incident.id),
            request_id: incident.id.to_string(),
            outcome: Outcome::Succeeded,
            changes: Vec::new(),
        };
        if let Err(err) = audit.append(&record).await {
            eprintln!("sixpence: the audit record of workspace {workspace} failed: {err}");
            code = ExitCode::FAILURE;
        }
    }
    match serde_json::to_string(&incident) {
        Ok(json) => println!("{json}"),
        Err(err) => eprintln!("sixpence: {err}"),
    }
    code
}

async fn rotate_secrets() -> ExitCode {
    let settings = match operator_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let storage = match sixpence::storage::Storage::connect(&settings.storage) {
        Ok(storage) => storage,
        Err(err) => {
            eprintln!("sixpence: cannot reach storage: {err}");
            return ExitCode::FAILURE;
        }
    };
    let audit = std::sync::Arc::new(sixpence::storage::audit::TableAuditLog::new(
        storage.clone(),
    ));
    let service = sixpence::app::connection_service(&settings, &storage, audit);
    match service.rotate_keys().await {
        Ok(report) => {
            println!(
                "resealed {} secret(s); {} already under the current key",
                report.resealed, report.already_current
            );
            for failure in &report.failures {
                eprintln!("failed: {failure}");
            }
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("sixpence: {err}");
            ExitCode::FAILURE
        }
    }
}

fn detect(args: &[String]) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // The engine's CLI parses the whole command line, subcommand included.
    let full: Vec<String> = std::iter::once("detect".to_owned())
        .chain(args.iter().cloned())
        .collect();
    match sixpence_analytics::detect_cli(&full, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sixpence detect: {err}");
            ExitCode::from(2)
        }
    }
}

fn dev_token(args: DevTokenArgs) -> ExitCode {
    let passphrase = match args.dev_auth {
        Some(value) => Some(SecretString::from(value)),
        // The same files, in the same order, as the local host reads its settings from.
        None => {
            let mut found = None;
            for file in ["local.settings.json", "local.settings.example.json"] {
                match dev::passphrase_from_local_settings(Path::new(file)) {
                    Ok(Some(value)) => {
                        found = Some(value);
                        break;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        eprintln!("sixpence: {err:#}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            found
        }
    };
    let Some(passphrase) = passphrase else {
        eprintln!(
            "sixpence: SIXPENCE_DEV_AUTH is not set (not in the environment, ./local.settings.json \
             or ./local.settings.example.json); use the same value the running app has"
        );
        return ExitCode::from(2);
    };
    let request = DevTokenRequest {
        email: args.user,
        tenant: args.tenant,
        name: args.name,
        lifetime: Duration::from_secs(args.hours.saturating_mul(3600)),
    };
    match mint_dev_token(&passphrase, &request) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("sixpence: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            // Before logging is configured (the filter is a setting), so plain stderr, which the
            // host records as an error.
            eprintln!("sixpence: {err}");
            return ExitCode::from(2);
        }
    };
    sixpence::telemetry::init(&settings.log_filter);
    for name in &settings.unresolved_key_vault_references {
        tracing::warn!(
            setting = name,
            "Key Vault reference did not resolve (secret missing or no access); treated as unset"
        );
    }
    let app = match App::build(settings).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port = app.port(), "listening");
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}
