//! Zygote start mode: one preloaded Python process per pool forks ready workers on request.
//!
//! The zygote (`python -m snakepit_bridge.zygote`) imports grpc, the stubs, the bridge, the
//! adapter's module and the pool's `preload` modules once, creates no gRPC object, thread or
//! event loop, and listens on a control socket in the run's 0700 directory that only accepts
//! the run token. [`Zygote::fork`] sends it the exact command line and environment a spawned
//! worker would get ([`crate::WorkerSpec::command`]); the child resets inherited state, calls
//! `setsid` (its own process group, like a spawned worker) and runs the same serve path, so the
//! rest of [`crate::Worker::start`] (ready file, connect, ping, heartbeat) is unchanged.
//!
//! Supervision: the child is the zygote's, not ours. The host proves the pid is the child by its
//! start time, learns of its exit from the zygote (or by polling `/proc` once the zygote is gone)
//! and signals its group only while the start time still matches ([`child`]). Killing the zygote leaves its children serving (they are in their own sessions
//! and watch the host, not the zygote, through an inherited pidfd); a dead zygote is restarted,
//! at once by its watcher and on demand by the next fork. When the imports leave threads running
//! or CUDA initialised, forking is unsafe: the pool warns once and spawns from then on.

mod child;
mod control;

pub(crate) use child::is_same_process;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;
use snakepit_core::config::{StartMode, DEFAULT_SERVER_MODULE};
use snakepit_core::Error;
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::process::{PythonOutput, WorkerProcess};
use crate::run::RunContext;
use crate::worker::WorkerSpec;
use control::ControlConnection;

/// The Python module a zygote runs.
const ZYGOTE_MODULE: &str = "snakepit_bridge.zygote";
/// A zygote that dies sooner than this after starting is restarted only after this long.
const MIN_ZYGOTE_LIFETIME: Duration = Duration::from_secs(1);

/// Numbers zygote sockets so two configurations of one pool never share a path.
static ZYGOTE_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The zygotes of one run, one per distinct pool configuration (owned by the [`RunContext`]).
#[derive(Debug, Default)]
pub(crate) struct ZygoteSet {
    zygotes: Mutex<HashMap<String, Arc<Zygote>>>,
}

impl ZygoteSet {
    /// Returns the zygote that forks workers of `spec`, or `None` when they must be spawned.
    ///
    /// Spawned are: pools with `start_mode = "spawn"`, pools running their own `server_script`
    /// or `server_module` (the zygote forks into `snakepit_bridge.server` only), non-Linux hosts.
    pub(crate) fn for_spec(&self, spec: &WorkerSpec, run: &RunContext) -> Option<Arc<Zygote>> {
        let pool = &spec.pool;
        let eligible = cfg!(target_os = "linux")
            && pool.start_mode == StartMode::Zygote
            && pool.server_script.is_none()
            && pool.server_module == DEFAULT_SERVER_MODULE;
        if !eligible {
            return None;
        }
        let command = ZygoteCommand::new(spec, run);
        let key = format!("{}|{command:?}", pool.name);
        let mut zygotes = self.zygotes.lock().ok()?;
        let zygote = zygotes
            .entry(key)
            .or_insert_with(|| Arc::new(Zygote::new(spec, run, command)));
        Some(zygote.clone())
    }

    /// Stops every zygote (SIGTERM, then SIGKILL after `grace`) and keeps them from restarting.
    pub(crate) async fn stop_all(&self, grace: Duration) {
        let zygotes: Vec<Arc<Zygote>> = match self.zygotes.lock() {
            Ok(mut z) => z.drain().map(|(_, z)| z).collect(),
            Err(_) => return,
        };
        futures::future::join_all(zygotes.iter().map(|z| z.stop(grace))).await;
    }
}

/// How to start one pool's zygote: the worker's interpreter, arguments and environment.
#[derive(Debug, Clone)]
struct ZygoteCommand {
    python: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ZygoteCommand {
    fn new(spec: &WorkerSpec, run: &RunContext) -> Self {
        let pool = &spec.pool;
        let mut args = vec!["-m".to_owned(), ZYGOTE_MODULE.to_owned()];
        for module in &pool.preload {
            args.extend(["--preload".to_owned(), module.clone()]);
        }
        args.extend(pool.adapter_args.iter().cloned());
        // The run id on the zygote's command line is on its children's too (they share its
        // argv), so the orphan sweep recognises them.
        args.extend(["--snakepit-run-id".to_owned(), run.run_id().to_string()]);
        let template = spec.command(run, &run.dir().join("unused"), &run.dir().join("unused"));
        let env = command_env(&template)
            .into_iter()
            .filter(|(k, _)| k != "SNAKEPIT_READY_FILE")
            .collect();
        Self {
            python: spec.python.clone(),
            args,
            env,
        }
    }
}

/// The variables a command sets explicitly (what a forked child applies over the zygote's).
fn command_env(cmd: &Command) -> Vec<(String, String)> {
    cmd.as_std()
        .get_envs()
        .filter_map(|(k, v)| {
            Some((
                k.to_string_lossy().into_owned(),
                v?.to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

/// A running zygote and the connection to it.
#[derive(Debug)]
struct Live {
    process: WorkerProcess,
    control: ControlConnection,
    started: Instant,
}

impl Live {
    fn usable(&self) -> bool {
        self.process.exit_info().is_none() && self.control.is_open()
    }
}

/// What the zygote's ready file says.
#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum Status {
    Ready,
    Unsafe { reason: String },
}

/// One pool's zygote, started on first use and restarted when it dies.
#[derive(Debug)]
pub(crate) struct Zygote {
    pool: String,
    command: ZygoteCommand,
    socket: PathBuf,
    ready_file: PathBuf,
    token: String,
    startup_timeout: Duration,
    live: tokio::sync::Mutex<Option<Arc<Live>>>,
    /// Set once forking was found unsafe: every later worker is spawned.
    unsafe_reason: OnceLock<String>,
    restarter: Mutex<Option<JoinHandle<()>>>,
    /// Set by [`Zygote::stop`]: no more forks, no restart.
    stopped: std::sync::atomic::AtomicBool,
}

impl Zygote {
    fn new(spec: &WorkerSpec, run: &RunContext, command: ZygoteCommand) -> Self {
        let n = ZYGOTE_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stem = format!("zygote-{}-{n}", spec.pool.name);
        Self {
            pool: spec.pool.name.clone(),
            command,
            socket: run.dir().join(format!("{stem}.sock")),
            ready_file: run.dir().join(format!("{stem}.ready")),
            token: run.token().to_owned(),
            startup_timeout: spec.pool.startup_timeout,
            live: tokio::sync::Mutex::new(None),
            unsafe_reason: OnceLock::new(),
            restarter: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Forks a worker running `cmd`'s arguments and environment; `None` means spawn it instead
    /// (forking is unsafe for this adapter).
    pub(crate) async fn fork(
        self: &Arc<Self>,
        cmd: &Command,
        spec: &WorkerSpec,
    ) -> Result<Option<WorkerProcess>, Error> {
        // The worker server's arguments: the command minus `-m snakepit_bridge.server`.
        let args: Vec<String> = cmd
            .as_std()
            .get_args()
            .skip(2)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let env: HashMap<String, String> = command_env(cmd).into_iter().collect();
        let mut last_error = String::new();
        // A zygote found dead (or dying under the request) is restarted once, then we give up.
        for _ in 0..2 {
            let Some(live) = self.live().await? else {
                return Ok(None);
            };
            match live.control.fork(&args, &env, self.startup_timeout).await {
                Ok(reply) => {
                    let process = child::adopt(
                        reply.pid,
                        reply.start_time,
                        reply.exit_status,
                        live.process.stderr_tail_handle(),
                    );
                    tracing::debug!(target: "snakepit::zygote", pool = %self.pool, worker = %spec.id, pid = reply.pid, "worker forked");
                    return Ok(Some(process));
                }
                Err(e) => last_error = e,
            }
        }
        Err(Error::worker(
            &spec.id,
            format!(
                "the zygote of pool '{}' could not fork it: {last_error}",
                self.pool
            ),
        ))
    }

    /// Returns the running zygote, starting one if none runs; `None` once forking is unsafe.
    async fn live(self: &Arc<Self>) -> Result<Option<Arc<Live>>, Error> {
        if self.unsafe_reason.get().is_some() {
            return Ok(None);
        }
        let mut live = self.live.lock().await;
        if self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(self.error("is stopped (the pool is shutting down)".into()));
        }
        if let Some(l) = live.as_ref().filter(|l| l.usable()) {
            return Ok(Some(l.clone()));
        }
        *live = None;
        match self.start().await? {
            Some(started) => {
                let started = Arc::new(started);
                *live = Some(started.clone());
                self.watch_for_restart(started.clone());
                Ok(Some(started))
            }
            None => Ok(None),
        }
    }

    /// Stops the running zygote for good; its forked workers are not touched.
    async fn stop(&self, grace: Duration) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(task) = self.restarter.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        let live = self.live.lock().await.take();
        if let Some(live) = live {
            live.process.stop(grace).await;
        }
    }

    /// Restarts the zygote as soon as this one dies (unless the set is gone by then).
    fn watch_for_restart(self: &Arc<Self>, live: Arc<Live>) {
        let zygote: Weak<Self> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let exit = live.process.exited().await;
            let lived = live.started.elapsed();
            drop(live);
            tracing::warn!(target: "snakepit::zygote", exit = %exit, "zygote exited; restarting it (its workers keep serving)");
            if lived < MIN_ZYGOTE_LIFETIME {
                tokio::time::sleep(MIN_ZYGOTE_LIFETIME).await;
            }
            if let Some(z) = zygote.upgrade() {
                if let Err(e) = z.live().await {
                    tracing::warn!(target: "snakepit::zygote", pool = %z.pool, error = %e, "zygote restart failed; the next worker start retries");
                }
            }
        });
        if let Ok(mut slot) = self.restarter.lock() {
            if let Some(old) = slot.replace(task) {
                old.abort();
            }
        }
    }

    /// Spawns the zygote and waits for its verdict: ready (connected), unsafe (`None`), or failed.
    async fn start(&self) -> Result<Option<Live>, Error> {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.ready_file);
        let mut cmd = Command::new(&self.command.python);
        cmd.args(&self.command.args)
            .arg("--control")
            .arg(&self.socket)
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .env("SNAKEPIT_READY_FILE", &self.ready_file);
        let label = format!("zygote:{}", self.pool);
        let process = WorkerProcess::spawn(cmd, &label, PythonOutput::Hidden).map_err(|e| {
            self.error(format!(
                "cannot start {} ({e}); set SNAKEPIT_PYTHON or python_executable",
                self.command.python.display()
            ))
        })?;
        let started = Instant::now();
        let status = tokio::time::timeout(self.startup_timeout, self.wait_status(&process)).await;
        let status = match status {
            Ok(Ok(status)) => status,
            Ok(Err(description)) => {
                let stderr = process.stderr_tail();
                let output = if stderr.trim().is_empty() {
                    " without output; is it a Python 3.9+ interpreter? (set SNAKEPIT_PYTHON or python_executable)".to_owned()
                } else {
                    format!("; stderr:\n{stderr}")
                };
                return Err(self.error(format!(
                    "interpreter {} exited during start-up ({description}){output}",
                    self.command.python.display()
                )));
            }
            Err(_) => {
                process.stop(Duration::from_millis(500)).await;
                return Err(self.error(format!(
                    "not ready within pool_startup_timeout ({} ms); stderr:\n{}",
                    self.startup_timeout.as_millis(),
                    process.stderr_tail()
                )));
            }
        };
        let _ = std::fs::remove_file(&self.ready_file);
        match status {
            Status::Unsafe { reason } => {
                tracing::warn!(target: "snakepit::zygote", pool = %self.pool, reason = %reason, "forking workers from a zygote is unsafe for pool '{}': {reason}; falling back to start_mode = \"spawn\" (move thread or CUDA start-up from import time into initialize())", self.pool);
                let _ = self.unsafe_reason.set(reason);
                Ok(None)
            }
            Status::Ready => {
                let control = ControlConnection::connect(&self.socket, &self.token)
                    .await
                    .map_err(|e| self.error(e))?;
                tracing::info!(target: "snakepit::zygote", pool = %self.pool, pid = process.pid(), elapsed_ms = started.elapsed().as_millis() as u64, "zygote ready");
                Ok(Some(Live {
                    process,
                    control,
                    started,
                }))
            }
        }
    }

    async fn wait_status(&self, process: &WorkerProcess) -> Result<Status, String> {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tokio::select! {
                exit = process.exited() => {
                    // An unsafe verdict is written just before the zygote exits: read it first.
                    return match tokio::fs::read_to_string(&self.ready_file).await {
                        Ok(text) => serde_json::from_str(&text)
                            .map_err(|e| format!("unreadable zygote status {text:?}: {e}")),
                        Err(_) => Err(exit.to_string()),
                    };
                }
                _ = tick.tick() => {
                    if let Ok(text) = tokio::fs::read_to_string(&self.ready_file).await {
                        return serde_json::from_str(&text)
                            .map_err(|e| format!("unreadable zygote status {text:?}: {e}"));
                    }
                }
            }
        }
    }

    fn error(&self, message: String) -> Error {
        Error::pool(format!("the zygote of pool '{}' {message}", self.pool))
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.restarter.lock() {
            if let Some(task) = slot.take() {
                task.abort();
            }
        }
    }
}
