//! `sixpence-local-host`: run the app locally as the Functions host would, or poke a running one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    let app_root = args
        .app_root
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
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
