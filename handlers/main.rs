//! The `sixpence` binary: the custom handler the Functions host starts, plus operator commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sixpence::app::{App, shutdown_signal};
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
