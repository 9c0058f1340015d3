//! Starting, watching and stopping the custom handler the way the host does (functions-host.md §1.2).
//!
//! - environment: this process's environment (the child inherits it, as the host's does), every app
//!   setting, `FUNCTIONS_CUSTOMHANDLER_PORT` (a free loopback port), `FUNCTIONS_CUSTOMHANDLER_WORKER_ID`,
//!   `FUNCTIONS_APP_ROOT_PATH`, and the legacy `FUNCTIONS_HTTPWORKER_*` twins;
//! - arguments from `customHandler.description.arguments`, working directory from `workingDirectory`
//!   (the app root by default);
//! - readiness: `GET /` every 25 ms until any HTTP answer, for at most 30 s;
//! - stdout and stderr pass straight through to ours.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

/// The host's `InitializationTimeout`.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(30);
/// The host's readiness poll interval.
pub const READINESS_INTERVAL: Duration = Duration::from_millis(25);
/// How long the child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What to start.
#[derive(Debug, Clone)]
pub struct Launch {
    pub executable: PathBuf,
    pub arguments: Vec<String>,
    pub working_directory: PathBuf,
    pub app_root: PathBuf,
    pub app_settings: BTreeMap<String, String>,
}

/// A running handler process.
pub struct WorkerProcess {
    pub port: u16,
    pub worker_id: Uuid,
    pub pid: Option<u32>,
    exited: watch::Receiver<Option<ExitStatus>>,
    stop: Option<oneshot::Sender<()>>,
    watcher: tokio::task::JoinHandle<()>,
}

/// A free loopback port, found the way the host does (`GetUnusedTcpPort`: bind port 0, release).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .context("cannot find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Finds the handler binary: `explicit` if given, else a file named like `defaultExecutablePath` next
/// to this executable (both live in the same cargo target dir), else `defaultExecutablePath` in the
/// working directory as the host resolves it.
pub fn resolve_executable(
    explicit: Option<&Path>,
    default_executable: &str,
    working_directory: &Path,
) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("the handler binary {} does not exist", path.display());
    }
    let file_name = Path::new(default_executable)
        .file_name()
        .ok_or_else(|| anyhow!("defaultExecutablePath `{default_executable}` has no file name"))?;
    let mut candidates = Vec::new();
    if let Ok(me) = std::env::current_exe()
        && let Some(dir) = me.parent()
    {
        candidates.push(dir.join(file_name));
        // Test binaries live one level down, in `deps/`.
        if let Some(up) = dir.parent() {
            candidates.push(up.join(file_name));
        }
    }
    candidates.push(working_directory.join(default_executable));
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| {
            anyhow!(
                "cannot find the handler binary `{default_executable}` next to the local host or in {}; \
                 build it with `cargo build --bin sixpence` or pass --binary",
                working_directory.display()
            )
        })
}

impl WorkerProcess {
    /// Starts the handler and waits until it answers `GET /`.
    pub async fn start(launch: &Launch, client: &reqwest::Client) -> anyhow::Result<Self> {
        let port = free_port()?;
        let worker_id = Uuid::new_v4();
        let mut command = Command::new(&launch.executable);
        command
            .args(&launch.arguments)
            .current_dir(&launch.working_directory)
            .envs(&launch.app_settings)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", worker_id.to_string())
            .env("FUNCTIONS_HTTPWORKER_ID", worker_id.to_string())
            .env("FUNCTIONS_APP_ROOT_PATH", &launch.app_root)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            // Last resort if this process is torn down without `stop` (a panic, a dropped handle).
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", launch.executable.display()))?;
        let pid = child.id();
        say!(
            "started {} {} (pid {}, port {port})",
            launch.executable.display(),
            launch.arguments.join(" "),
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        );
        let (exited_tx, exited) = watch::channel(None);
        let (stop_tx, stop_rx) = oneshot::channel();
        let watcher = tokio::spawn(watch_child(child, exited_tx, stop_rx));
        let mut worker = Self {
            port,
            worker_id,
            pid,
            exited,
            stop: Some(stop_tx),
            watcher,
        };
        if let Err(err) = worker.wait_ready(client).await {
            worker.stop().await;
            return Err(err);
        }
        Ok(worker)
    }

    /// `http://127.0.0.1:<port>`: the host always calls the loopback address.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}/", self.base_url());
        let deadline = tokio::time::Instant::now() + READINESS_TIMEOUT;
        loop {
            if let Some(status) = *self.exited.borrow() {
                bail!("the handler exited before it was ready ({status})");
            }
            // Any HTTP answer counts, 404 included; only a socket error means "not yet".
            if client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the handler did not answer GET {url} within {} s (the host's initialization timeout)",
                    READINESS_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(READINESS_INTERVAL).await;
        }
    }

    /// Resolves when the child exits on its own (or was stopped), with its status.
    pub fn exited(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exited.clone()
    }

    /// SIGTERM, a grace period, then SIGKILL; waits for the exit.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut exited = self.exited.clone();
        let _ = exited.wait_for(Option::is_some).await;
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Dropping the watcher drops the child, whose kill_on_drop sends SIGKILL.
        if self.exited.borrow().is_none() {
            self.watcher.abort();
        }
    }
}

async fn watch_child(
    mut child: Child,
    exited: watch::Sender<Option<ExitStatus>>,
    stop: oneshot::Receiver<()>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        _ = stop => {
            terminate(&child);
            match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    say!("the handler did not stop within {} s of SIGTERM; killing it", STOP_GRACE.as_secs());
                    let _ = child.start_kill();
                    child.wait().await
                }
            }
        }
    };
    match status {
        Ok(status) => {
            let _ = exited.send(Some(status));
        }
        Err(err) => {
            say!("lost track of the handler process: {err}");
            let _ = child.start_kill();
            // No status to report; pretend a failure so watchers wake up.
            let _ = exited.send(Some(failed_status()));
        }
    }
}

#[cfg(unix)]
fn terminate(child: &Child) {
    use rustix::process::{Pid, Signal, kill_process};
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    if let Some(pid) = pid {
        let _ = kill_process(pid, Signal::TERM);
    }
}

#[cfg(not(unix))]
fn terminate(child: &Child) {
    let _ = child;
}

#[cfg(unix)]
fn failed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt as _;
    ExitStatus::from_raw(1 << 8)
}

#[cfg(not(unix))]
fn failed_status() -> ExitStatus {
    use std::os::windows::process::ExitStatusExt as _;
    ExitStatus::from_raw(1)
}
