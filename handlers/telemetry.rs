//! Structured logs: JSON lines on stdout, which the Functions host forwards to Application Insights.
//!
//! Every invocation runs inside an `invocation` span carrying `invocation_id` and `function`, so every
//! line it logs carries them too. Values that could be secrets are never passed to a log macro: types
//! that hold them (`SecretString`, connection settings) do not print their contents.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Installs the global subscriber. Safe to call more than once (tests): later calls do nothing.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_span_events(FmtSpan::NONE)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}
