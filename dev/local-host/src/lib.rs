//! A development-only stand-in for the Azure Functions host, for machines where Core Tools cannot be
//! installed. It is never part of the deploy package.
//!
//! It re-implements the host's side of the custom-handler contract (`functions-host.md`): start the
//! handler with the host's environment and wait for it ([`process`]), forward HTTP functions
//! ([`http_proxy`]), fire timers on their NCRONTAB schedules ([`timers`]), poll storage queues with
//! the queue extension's retry and poison rules ([`queues`]), and send exactly the envelopes the host
//! sends ([`payload`]). What it reads comes from the app root ([`app_root`], [`spec`]).
//!
//! Use it as a library from tests with [`LocalHost::start`], or through the `sixpence-local-host`
//! binary, a thin wrapper.

/// Prints one log line of the local host, prefixed so it stands apart from the handler's JSON lines.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("[local-host] {}", format_args!($($arg)*))
    };
}

pub mod app_root;
pub mod demo;
pub mod http_proxy;
pub mod invoke;
pub mod payload;
pub mod process;
pub mod queues;
pub mod spec;
pub mod storage;
pub mod timers;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::app_root::AppRoot;
use crate::invoke::Invoker;
use crate::process::{Launch, WorkerProcess};
use crate::spec::Trigger;

/// How to start the local host.
#[derive(Debug, Clone)]
pub struct Options {
    /// The folder with `host.json` and `function-specs/` (or the function folders).
    pub app_root: PathBuf,
    /// The handler binary; by default the `sixpence` next to this executable.
    pub binary: Option<PathBuf>,
    /// The public port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Settings that win over the environment and `local.settings.json`.
    pub settings: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            app_root: PathBuf::from("."),
            binary: None,
            port: 7071,
            settings: BTreeMap::new(),
        }
    }
}

/// State shared by the HTTP server, the timers and the queue pollers.
pub struct Host {
    pub app: AppRoot,
    pub invoker: Invoker,
    pub routes: http_proxy::Routes,
    /// `None` when no function needs storage or it could not be configured.
    pub queues: Option<queues::Queues>,
    /// The in-memory schedule monitor of each timer.
    pub timer_status: Mutex<HashMap<String, payload::ScheduleStatus>>,
    /// What happened, for tests and tools (the log lines say the same for people).
    pub events: tokio::sync::broadcast::Sender<Event>,
}

impl Host {
    pub(crate) fn emit(&self, event: Event) {
        // No subscriber is the normal case outside tests.
        let _ = self.events.send(event);
    }
}

/// Something the local host did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One delivery of a queue message ended. `invoked` is false when the message could not be bound
    /// (not base64); `succeeded` means the handler answered 2xx and the outputs were written.
    QueueAttempt {
        function: String,
        message_id: String,
        dequeue_count: u64,
        invoked: bool,
        succeeded: bool,
    },
    /// A message was copied to `<queue>-poison` and deleted.
    Poisoned {
        function: String,
        message_id: String,
        dequeue_count: u64,
        reason: String,
    },
    /// A timer function was invoked (on schedule, at start-up or on demand).
    TimerFired { function: String, succeeded: bool },
}

/// The entry point of the library.
pub struct LocalHost;

/// A running local host. Dropping it stops the background tasks and kills the handler; prefer
/// [`LocalHostHandle::shutdown`], which lets the handler stop cleanly.
pub struct LocalHostHandle {
    port: u16,
    worker: WorkerProcess,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    host: Arc<Host>,
}

impl LocalHost {
    /// Reads the app root, starts the handler, waits until it is ready, then serves HTTP, fires
    /// timers and polls queues in the background.
    pub async fn start(options: Options) -> anyhow::Result<LocalHostHandle> {
        sixpence::storage::install_crypto_provider();
        let app = AppRoot::load(&options.app_root, &options.settings)?;
        for (name, error) in &app.errors {
            say!("function `{name}` is not loaded: {error}");
        }

        // Bind the public port first: a port in use should fail before a child is started.
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, options.port)))
                .await
                .with_context(|| format!("cannot listen on 127.0.0.1:{}", options.port))?;
        let port = listener.local_addr()?.port();

        let working_directory = match &app.host.working_directory {
            Some(dir) => app.root.join(dir),
            None => app.root.clone(),
        };
        let executable = process::resolve_executable(
            options.binary.as_deref(),
            &app.host.executable,
            &working_directory,
        )?;
        let launch = Launch {
            executable,
            arguments: app.host.arguments.clone(),
            working_directory,
            app_root: app.root.clone(),
            app_settings: app.settings.app_settings(),
        };
        let readiness = reqwest::Client::builder().no_proxy().build()?;
        let worker = WorkerProcess::start(&launch, &readiness).await?;
        say!("the handler is ready on {}", worker.base_url());
        let invoker = Invoker::new(worker.base_url(), app.host.function_timeout)?;

        let needs_storage = app.functions.iter().any(|f| {
            matches!(f.trigger, Trigger::Queue { .. })
                || f.outputs.iter().any(|o| {
                    matches!(
                        o,
                        spec::OutputBinding::Queue { .. } | spec::OutputBinding::Blob { .. }
                    )
                })
        });
        let queues = if needs_storage {
            let settings = app.settings.clone();
            match queues::Queues::connect(&app.functions, app.host.queues.clone(), &|name| {
                settings.get(name)
            }) {
                Ok(queues) => Some(queues),
                Err(err) => {
                    say!("queue triggers and storage outputs are OFF: {err:#}");
                    None
                }
            }
        } else {
            None
        };

        let routes = http_proxy::Routes::new(&app.functions, &app.host.route_prefix);
        let host = Arc::new(Host {
            app,
            invoker,
            routes,
            queues,
            timer_status: Mutex::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(1024).0,
        });

        let mut tasks = Vec::new();
        let router = http_proxy::router(host.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                say!("the HTTP server stopped: {err}");
            }
        }));
        for function in host.app.functions.iter().filter(|f| !f.disabled) {
            match function.trigger {
                Trigger::Timer { .. } => {
                    tasks.push(tokio::spawn(timers::run(host.clone(), function.clone())));
                }
                Trigger::Queue { .. } if host.queues.is_some() => {
                    tasks.push(tokio::spawn(queues::run_poller(
                        host.clone(),
                        function.clone(),
                    )));
                }
                _ => {}
            }
        }
        banner(&host, port);
        Ok(LocalHostHandle {
            port,
            worker,
            tasks,
            host,
        })
    }
}

fn banner(host: &Host, port: u16) {
    let app = &host.app;
    let prefix = if app.host.route_prefix.is_empty() {
        String::new()
    } else {
        format!("/{}", app.host.route_prefix)
    };
    say!("app root: {}", app.root.display());
    if let Some(source) = &app.settings.source {
        say!(
            "settings: {} (overridden by the environment)",
            source.display()
        );
    }
    say!("functions:");
    for function in &app.functions {
        say!("  {}", function.describe(&app.host.route_prefix));
    }
    for function in &app.functions {
        if let Trigger::Http { route, .. } = &function.trigger {
            say!("  -> http://127.0.0.1:{port}{prefix}/{route}");
        }
    }
    say!(
        "fire a timer or enqueue for a queue function: POST http://127.0.0.1:{port}/admin/functions/{{name}} with an optional {{\"input\": \"...\"}}"
    );
    let health = app
        .functions
        .iter()
        .find_map(|f| match &f.trigger {
            Trigger::Http { route, .. } if f.name == "health" => Some(route.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "health".to_owned());
    say!("ready: http://127.0.0.1:{port}{prefix}/{health}");
}

impl LocalHostHandle {
    /// The public port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The handler's own loopback port.
    pub fn worker_port(&self) -> u16 {
        self.worker.port
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.host.events.subscribe()
    }

    /// Resolves when the handler exits (on its own, or after [`Self::shutdown`]).
    pub async fn worker_exited(&self) -> ExitStatus {
        let mut exited = self.worker.exited();
        match exited.wait_for(Option::is_some).await {
            Ok(status) => status.unwrap_or_else(unreachable_status),
            Err(_) => unreachable_status(),
        }
    }

    /// Stops polling, timers and HTTP, then stops the handler (SIGTERM, then SIGKILL).
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.worker.stop().await;
    }
}

impl Drop for LocalHostHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The watcher always publishes a status before closing; this is only for the type checker.
fn unreachable_status() -> ExitStatus {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        ExitStatus::from_raw(1 << 8)
    }
    #[cfg(not(unix))]
    {
        use std::os::windows::process::ExitStatusExt as _;
        ExitStatus::from_raw(1)
    }
}
