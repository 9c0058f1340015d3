//! `sixpence-local-host`: run the app locally as the Functions host would, or poke a running one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sixpence_local_host::app_root::Settings;
use sixpence_local_host::demo::{self, DemoOptions};
use sixpence_local_host::{LocalHost, Options};

#[derive(Parser)]
#[command(
    name = "sixpence-local-host",
    about = "Development stand-in for the Azure Functions host (never deployed)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    start: StartArgs,
}

#[derive(clap::Args)]
struct StartArgs {
    /// Folder with host.json and function-specs/ (default: the repository root).
    #[arg(long)]
    app_root: Option<PathBuf>,
    /// The handler binary (default: the `sixpence` next to this executable).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Port to serve on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 7071)]
    port: u16,
    /// Override an app setting, e.g. --set HEARTBEAT_SCHEDULE='*/10 * * * * *' (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    settings: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the handler and serve (the default).
    Start,
    /// Fire a timer, or enqueue --input for a queue function, on a running local host.
    Fire {
        /// The function name (its folder under function-specs/).
        name: String,
        /// For a queue function: the message text.
        #[arg(long)]
        input: Option<String>,
        /// The running local host's port.
        #[arg(long, default_value_t = 7071)]
        port: u16,
    },
    /// Connect the demo workspace to the simulated Azure tenant on a running local host (what
    /// `make dev` does once the app answers); finds what an earlier run made instead of repeating it.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    /// The running local host's port.
    #[arg(long, default_value_t = 7071)]
    port: u16,
    /// The simulated tenant (`sixpence-azure-sim`); default: the app's SIXPENCE_AZURE_ARM_ENDPOINT.
    #[arg(long)]
    simulator: Option<String>,
    /// Folder whose local.settings.json (or .example.json) the app runs with (default: the
    /// repository root); SIXPENCE_DEV_AUTH from there signs the demo user's token.
    #[arg(long)]
    app_root: Option<PathBuf>,
    /// The demo user, who owns the demo workspace.
    #[arg(long, default_value = demo::DEMO_USER)]
    user: String,
    /// Seconds to wait for the app and the simulator to answer.
    #[arg(long, default_value_t = 180)]
    wait: u64,
}

fn main() -> ExitCode {
    // reqwest is built without a default TLS provider in this workspace; install the app's.
    sixpence::storage::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("[local-host] cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Fire { name, input, port }) => runtime.block_on(fire(&name, input, port)),
        Some(Command::Demo(args)) => match runtime.block_on(run_demo(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("[demo] FAILED: {err:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Start) | None => runtime.block_on(start(cli.start)),
    }
}

async fn start(args: StartArgs) -> ExitCode {
    let mut settings = BTreeMap::new();
    for pair in &args.settings {
        let Some((name, value)) = pair.split_once('=') else {
            println!("[local-host] --set expects NAME=VALUE, got `{pair}`");
            return ExitCode::from(2);
        };
        settings.insert(name.to_owned(), value.to_owned());
    }
    let app_root = args.app_root.unwrap_or_else(repository_root);
    let options = Options {
        app_root,
        binary: args.binary,
        port: args.port,
        settings,
    };
    let handle = match LocalHost::start(options).await {
        Ok(handle) => handle,
        Err(err) => {
            println!("[local-host] cannot start: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        status = handle.worker_exited() => {
            println!("[local-host] the handler exited unexpectedly ({status}); stopping");
            ExitCode::FAILURE
        }
        () = sixpence::app::shutdown_signal() => {
            println!("[local-host] stopping the handler");
            handle.shutdown().await;
            ExitCode::SUCCESS
        }
    }
}

async fn fire(name: &str, input: Option<String>, port: u16) -> ExitCode {
    let client = match reqwest::Client::builder().no_proxy().build() {
        Ok(client) => client,
        Err(err) => {
            println!("[local-host] {err}");
            return ExitCode::FAILURE;
        }
    };
    let body = match input {
        Some(input) => serde_json::json!({ "input": input }),
        None => serde_json::json!({}),
    };
    let url = format!("http://127.0.0.1:{port}/admin/functions/{name}");
    match client.post(&url).json(&body).send().await {
        Ok(response) if response.status().as_u16() == 202 => {
            println!("[local-host] {name}: accepted");
            ExitCode::SUCCESS
        }
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            println!("[local-host] {name}: HTTP {status}: {}", text.trim());
            ExitCode::FAILURE
        }
        Err(err) => {
            println!("[local-host] is the local host running on port {port}? {err}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root, where `host.json` and the settings files live.
fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    let app_root = args.app_root.unwrap_or_else(repository_root);
    let settings = Settings::load(&app_root, &BTreeMap::new())?;
    // The app must call the simulator the demo takes credentials from, or the connection would
    // send them elsewhere (and fail).
    let arm = settings.get(sixpence::config::AZURE_ARM_ENDPOINT);
    let authority = settings.get(sixpence::config::AZURE_AUTHORITY);
    let simulator = match args.simulator.or_else(|| arm.clone()) {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => anyhow::bail!(
            "{} is not set; the demo needs the app pointed at the simulated tenant",
            sixpence::config::AZURE_ARM_ENDPOINT
        ),
    };
    for (name, value) in [
        (sixpence::config::AZURE_ARM_ENDPOINT, &arm),
        (sixpence::config::AZURE_AUTHORITY, &authority),
    ] {
        let value = value.as_deref().unwrap_or("(not set)");
        if value.trim_end_matches('/') != simulator {
            anyhow::bail!(
                "the app's {name} is {value}, not the simulated tenant at {simulator}: set it to \
                 {simulator} (environment or local.settings.json under {}; \
                 local.settings.example.json has it)",
                app_root.display()
            );
        }
    }
    let passphrase = settings.get(sixpence::config::DEV_AUTH).with_context(|| {
        format!(
            "{} is not set (environment, local.settings.json or local.settings.example.json \
             under {}): the demo signs in with a development token",
            sixpence::config::DEV_AUTH,
            app_root.display()
        )
    })?;
    let token = sixpence::auth::mint_dev_token(
        &secrecy::SecretString::from(passphrase),
        &sixpence::auth::DevTokenRequest {
            email: args.user.clone(),
            tenant: None,
            name: Some("Demo".to_owned()),
            lifetime: Duration::from_secs(3600),
        },
    )?;
    let app_url = format!("http://127.0.0.1:{}", args.port);
    println!("[demo] waiting for {app_url}/api/health and the simulated tenant at {simulator}");
    let outcome = demo::connect_demo(&DemoOptions {
        app_url: app_url.clone(),
        simulator_url: simulator,
        token,
        patience: Duration::from_secs(args.wait),
    })
    .await?;
    println!(
        "{}",
        demo::summary(&outcome, &app_url, &sixpence_command(), &args.user)
    );
    Ok(())
}

/// How to run the `sixpence` next to this executable from the current directory: a relative path
/// when it is below it (`target/debug/sixpence`), else the absolute one.
fn sixpence_command() -> String {
    let name = format!("sixpence{}", std::env::consts::EXE_SUFFIX);
    let Some(path) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
    else {
        return name;
    };
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative.unwrap_or(path).display().to_string()
}
