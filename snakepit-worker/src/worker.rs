//! A started worker: its process, its client and its heartbeat, stopped together.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use snakepit_core::config::{
    HeartbeatConfig, LaunchContract, PoolConfig, TransportKind, WorkerProfile, ZeroCopySettings,
};
use snakepit_core::{ChunkStream, Error, Payload, ToolCall, WorkerId};
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::client::{connect, ExitProbe, WorkerAddress, WorkerClient};
use crate::heartbeat::{self, HeartbeatCounters, HeartbeatStatus};
use crate::process::{ExitInfo, HostSignal, PythonOutput, WorkerProcess};
use crate::run::RunContext;
use crate::shm::{ZeroCopy, ZERO_COPY_ENV_VAR};
use crate::transport::{FastTransport, GrpcTransport, Transport};

/// Environment variable carrying the run token to the worker (never the command line).
pub const TOKEN_ENV_VAR: &str = "SNAKEPIT_AUTH_TOKEN";

/// The timeout of [`Worker::execute`] when the call sets none (the seeds' `GRPCWorker.execute`
/// default of 30 000 ms; pools pass their own `execute_timeout_ms`).
pub const DEFAULT_WORKER_EXECUTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable carrying the run id; children a tool starts inherit it, which lets the
/// orphan sweep prove that a leftover process belongs to a dead run.
pub const RUN_ID_ENV_VAR: &str = "SNAKEPIT_RUN_ID";

/// What to start: one worker of a pool.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// The worker's id.
    pub id: WorkerId,
    /// The pool's configuration (adapter, environment, timeouts, heartbeat).
    pub pool: PoolConfig,
    /// The interpreter to run.
    pub python: PathBuf,
    /// The host bridge server's address (`--elixir-address`), when the host runs one.
    pub host_address: Option<String>,
}

impl WorkerSpec {
    /// Builds the spec of worker `id` of `pool`, run by `python`, with no host bridge.
    pub fn new(id: WorkerId, pool: PoolConfig, python: PathBuf) -> Self {
        Self {
            id,
            pool,
            python,
            host_address: None,
        }
    }

    /// Builds the command line and environment of the worker (without spawning it), for the
    /// pool's launch contract (`socket` is unused by the `snakepit` contract, which uses TCP).
    pub fn command(
        &self,
        run: &RunContext,
        socket: &std::path::Path,
        ready_file: &std::path::Path,
    ) -> Command {
        match self.pool.launch_contract {
            LaunchContract::Native => self.native_command(run, socket, ready_file),
            LaunchContract::Snakepit => crate::snakepit_contract::command(self, run, ready_file),
        }
    }

    /// The command line of our own server: Unix socket, token in the environment.
    fn native_command(
        &self,
        run: &RunContext,
        socket: &std::path::Path,
        ready_file: &std::path::Path,
    ) -> Command {
        let pool = &self.pool;
        let mut cmd = Command::new(&self.python);
        match &pool.server_script {
            Some(script) => cmd.arg(script),
            None => cmd.arg("-m").arg(&pool.server_module),
        };
        cmd.args(&pool.adapter_args)
            .arg("--address")
            .arg(format!("unix:{}", socket.display()))
            .arg("--snakepit-run-id")
            .arg(run.run_id().as_str())
            .arg("--worker-id")
            .arg(self.id.as_str())
            .arg("--shutdown-grace-ms")
            .arg(pool.graceful_shutdown_timeout.as_millis().to_string());
        if let Some(host) = &self.host_address {
            cmd.arg("--elixir-address").arg(host);
        }
        if pool.worker_profile == WorkerProfile::Thread {
            cmd.args(["--mode", "threaded", "--max-workers"])
                .arg(pool.threads_per_worker.to_string());
            if pool.thread_safety_checks {
                cmd.arg("--thread-safety-check");
            }
        }
        if pool.transport == TransportKind::Fast {
            cmd.env(
                "SNAKEPIT_FAST_ADDRESS",
                format!("unix:{}", fast_socket_path(socket).display()),
            )
            .env(
                "SNAKEPIT_FAST_MAX_MESSAGE_BYTES",
                pool.max_message_bytes.to_string(),
            );
        }
        // Thread limits ("1" for process workers) and GRPC_VERBOSITY sit under adapter_env.
        cmd.envs(&pool.thread_limits)
            .env("GRPC_VERBOSITY", pool.worker_output.grpc_verbosity)
            .env("GRPC_POLL_STRATEGY", "poll")
            .env("PYTHONUNBUFFERED", "1")
            .env("SNAKEPIT_OTEL_CONSOLE", "false")
            .env("SNAKEPIT_READY_FILE", ready_file)
            .env(TOKEN_ENV_VAR, run.token())
            .env(RUN_ID_ENV_VAR, run.run_id().as_str())
            .env("SNAKEPIT_PROCESS_GROUP", "0")
            .env("SNAKEPIT_PARENT_PID", std::process::id().to_string())
            .env("SNAKEPIT_PYTHON", &self.python)
            .env("SNAKEPIT_HEARTBEAT_CONFIG", heartbeat_json(&pool.heartbeat))
            .env(ZERO_COPY_ENV_VAR, ZeroCopy::env_value(&pool.zero_copy))
            .envs(&pool.adapter_env);
        cmd
    }
}

/// The `fast` transport's socket beside the worker's gRPC socket `<id>.sock`: `<id>.fast.sock`.
fn fast_socket_path(socket: &std::path::Path) -> PathBuf {
    socket.with_extension("fast.sock")
}

/// The pool's heartbeat settings for the Python side (the host is the authority).
pub(crate) fn heartbeat_json(h: &HeartbeatConfig) -> String {
    format!(
        r#"{{"enabled":{},"interval_ms":{},"timeout_ms":{},"max_missed_heartbeats":{},"initial_delay_ms":{},"dependent":{}}}"#,
        h.enabled,
        h.ping_interval.as_millis(),
        h.timeout.as_millis(),
        h.max_missed_heartbeats,
        h.initial_delay.as_millis(),
        h.dependent
    )
}

/// The zero-copy settings a worker's client uses: off for the `snakepit` contract, whose
/// server cannot map the host's shared memory (arrays then travel inside the message).
fn zero_copy_settings(pool: &PoolConfig) -> ZeroCopySettings {
    let mut settings = pool.zero_copy;
    if pool.launch_contract == LaunchContract::Snakepit {
        settings.enabled = false;
    }
    settings
}

/// One running Python worker. Dropping it kills its process group.
#[derive(Debug)]
pub struct Worker {
    id: WorkerId,
    process: Arc<WorkerProcess>,
    client: WorkerClient,
    started_at: Instant,
    grace: Duration,
    heartbeat: Option<JoinHandle<()>>,
    heartbeat_counters: Option<Arc<HeartbeatCounters>>,
    /// Consumes the worker's `StreamTelemetry` (Python events re-emitted on the host).
    telemetry: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct ProcessProbe(Arc<WorkerProcess>);

impl ExitProbe for ProcessProbe {
    fn crashed(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        Box::pin(async move {
            // A broken connection shows up a moment before the exit is reaped; on a loaded
            // machine (or a forked worker reported by its zygote) that can take well over
            // 250 ms, and only a failed call waits here.
            tokio::time::timeout(Duration::from_secs(2), self.0.exited())
                .await
                .ok()
                .map(|e| e.to_string())
        })
    }
}

impl Worker {
    /// Starts the worker and returns once it is ready to serve (its ready file appeared and it answers Ping).
    ///
    /// Fails after `pool_startup_timeout`, or as soon as the process exits, with an error that
    /// includes the worker's captured stderr.
    pub async fn start(spec: WorkerSpec, run: Arc<RunContext>) -> Result<Self, Error> {
        let socket = run.dir().join(format!("{}.sock", spec.id));
        let ready_file = run.dir().join(format!("{}.ready", spec.id));
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(&ready_file);
        let cmd = spec.command(&run, &socket, &ready_file);
        // Forked from the pool's zygote when it has one and forking is safe, else spawned.
        let forked = match run.zygotes().for_spec(&spec, &run) {
            Some(zygote) => zygote.fork(&cmd, &spec).await?,
            None => None,
        };
        let process = match forked {
            Some(process) => process,
            None => spawn_process(cmd, &spec)?,
        };
        let process = Arc::new(process);
        let timeout = spec.pool.startup_timeout;
        let started_at = Instant::now();
        let ready = match tokio::time::timeout(timeout, wait_ready(&process, &ready_file)).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(exit)) => {
                let stderr = process.stderr_tail();
                let output = if stderr.trim().is_empty() {
                    " without output; is it a Python 3.9+ interpreter? (set SNAKEPIT_PYTHON or python_executable)".to_owned()
                } else {
                    format!("; stderr:\n{stderr}")
                };
                return Err(Error::worker(
                    &spec.id,
                    format!(
                        "interpreter {} exited during start-up ({}){output}",
                        spec.python.display(),
                        exit,
                    ),
                ));
            }
            Err(_) => {
                process.stop(Duration::from_millis(500)).await;
                return Err(Error::worker(
                    &spec.id,
                    format!(
                        "not ready within pool_startup_timeout ({} ms); stderr:\n{}",
                        timeout.as_millis(),
                        process.stderr_tail()
                    ),
                ));
            }
        };
        let _ = std::fs::remove_file(&ready_file);
        let remaining = || {
            timeout
                .saturating_sub(started_at.elapsed())
                .max(Duration::from_millis(100))
        };
        let address = ready.address;
        let channel = tokio::time::timeout(remaining(), connect(&address))
            .await
            .map_err(|_| Error::timeout(format!("connecting to worker {}", spec.id), timeout))?
            .map_err(|e| Error::Worker {
                worker: spec.id.to_string(),
                message: format!("cannot connect to {address:?}: {e}"),
                source: Some(Box::new(e)),
            })?;
        let token = match spec.pool.launch_contract {
            LaunchContract::Native => run.token(),
            LaunchContract::Snakepit => "",
        };
        let telemetry = crate::telemetry_stream::start(
            channel.clone(),
            token,
            spec.pool.name.clone(),
            spec.id.clone(),
        );
        let control = GrpcTransport::new(channel, token)?;
        let calls = match spec.pool.transport {
            TransportKind::Grpc => None,
            TransportKind::Fast => {
                let fast = connect_fast(&spec, ready.fast, run.token(), remaining()).await?;
                Some(Arc::new(fast) as Arc<dyn Transport>)
            }
        };
        let client = WorkerClient::new(
            spec.id.clone(),
            control,
            calls,
            Arc::new(ProcessProbe(process.clone())),
            Arc::new(ZeroCopy::new(
                zero_copy_settings(&spec.pool),
                run.run_id().as_str(),
                spec.id.as_str(),
                process.pid(),
            )),
        );
        // The original's server takes no token (the control client sends none, see
        // `control` above); its host names a session for every call.
        let client = match spec.pool.launch_contract {
            LaunchContract::Native => client,
            LaunchContract::Snakepit => client.with_default_session(format!("{}-session", spec.id)),
        };
        client.ping().await?;
        let heartbeat_counters = spec
            .pool
            .heartbeat
            .enabled
            .then(|| Arc::new(HeartbeatCounters::default()));
        let heartbeat = heartbeat_counters.as_ref().map(|counters| {
            tokio::spawn(heartbeat::run(
                client.clone(),
                process.clone(),
                spec.pool.heartbeat.clone(),
                counters.clone(),
            ))
        });
        tracing::debug!(worker = %spec.id, pid = process.pid(), elapsed_ms = started_at.elapsed().as_millis() as u64, "worker ready");
        Ok(Self {
            id: spec.id,
            process,
            client,
            started_at,
            grace: spec.pool.graceful_shutdown_timeout,
            heartbeat,
            heartbeat_counters,
            telemetry,
        })
    }

    /// Returns the worker's id.
    pub fn id(&self) -> &WorkerId {
        &self.id
    }

    /// Returns the OS pid of the worker process (also its process group id).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Returns how long ago the worker started.
    pub fn uptime(&self) -> Duration {
        self.started_at.elapsed()
    }

    /// Returns what the heartbeat has seen (pings, pongs, misses), or `None` when the pool's
    /// heartbeat is disabled.
    pub fn heartbeat_status(&self) -> Option<HeartbeatStatus> {
        self.heartbeat_counters.as_ref().map(|c| c.status())
    }

    /// Returns the transport that carries this worker's tool calls.
    pub fn transport(&self) -> TransportKind {
        self.client.transport()
    }

    /// Returns a clone of the worker's client (a `tower::Service<ToolCall>`).
    pub fn client(&self) -> WorkerClient {
        self.client.clone()
    }

    /// Runs one tool call on this worker, bounded by the call's deadline, else its timeout,
    /// else [`DEFAULT_WORKER_EXECUTE_TIMEOUT`] (the seeds' 30 s for a direct worker call).
    pub async fn execute(&self, mut call: ToolCall) -> Result<Payload, Error> {
        let timeout = call
            .deadline
            .or(call.options.timeout)
            .unwrap_or(DEFAULT_WORKER_EXECUTE_TIMEOUT);
        // Sent along, so Python sees the same budget.
        call.deadline = Some(timeout);
        let tool = call.tool.clone();
        match tokio::time::timeout(timeout, self.client.execute(call)).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(
                format!("call '{tool}' on worker {}", self.id),
                timeout,
            )),
        }
    }

    /// Runs a streaming tool on this worker.
    pub async fn execute_stream(&self, call: ToolCall) -> Result<ChunkStream, Error> {
        self.client.execute_stream(call).await
    }

    /// Tells the worker to drop session `session` (`CleanupSession`); true if it had it.
    pub async fn cleanup_session(&self, session: &snakepit_core::SessionId) -> Result<bool, Error> {
        self.client.cleanup_session(session).await
    }

    /// Returns how the process ended, or `None` while it runs.
    pub fn exit_info(&self) -> Option<ExitInfo> {
        self.process.exit_info()
    }

    /// Waits until the process ends (crash, kill, or stop).
    pub async fn exited(&self) -> ExitInfo {
        self.process.exited().await
    }

    /// Kills the worker's process group at once (SIGKILL).
    pub fn kill(&self) {
        self.process.signal_for(HostSignal::Kill, Signal::SIGKILL);
    }

    /// Stops gracefully: SIGTERM, up to `graceful_shutdown_timeout` for Python to finish, then SIGKILL.
    ///
    /// Returns once the process is gone.
    pub async fn stop(&self) -> ExitInfo {
        if let Some(h) = &self.heartbeat {
            h.abort();
        }
        let exit = self.process.stop(self.grace).await;
        if let Some(t) = &self.telemetry {
            t.abort();
        }
        exit
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        for task in [&self.heartbeat, &self.telemetry].into_iter().flatten() {
            task.abort();
        }
    }
}

fn spawn_process(cmd: Command, spec: &WorkerSpec) -> Result<WorkerProcess, Error> {
    let output = if spec.pool.worker_output.log_python_output {
        PythonOutput::Echoed
    } else {
        PythonOutput::Hidden
    };
    WorkerProcess::spawn(cmd, spec.id.as_str(), output).map_err(|e| Error::Worker {
        worker: spec.id.to_string(),
        message: format!(
            "cannot start {} ({e}); set SNAKEPIT_PYTHON or python_executable",
            spec.python.display()
        ),
        source: Some(Box::new(e)),
    })
}

/// What a worker's ready file announces: its gRPC address and, on a second line
/// `fast:unix:<path>`, the socket of the `fast` transport when it opened one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadyAnnouncement {
    address: WorkerAddress,
    fast: Option<PathBuf>,
}

impl ReadyAnnouncement {
    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let address = WorkerAddress::parse(lines.next()?)?;
        let fast = lines
            .filter_map(|l| l.trim().strip_prefix("fast:unix:"))
            .map(PathBuf::from)
            .next();
        Some(Self { address, fast })
    }
}

async fn wait_ready(
    process: &WorkerProcess,
    ready_file: &std::path::Path,
) -> Result<ReadyAnnouncement, ExitInfo> {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            exit = process.exited() => return Err(exit),
            _ = tick.tick() => {
                if let Ok(text) = tokio::fs::read_to_string(ready_file).await {
                    if let Some(ready) = ReadyAnnouncement::parse(&text) {
                        return Ok(ready);
                    }
                }
            }
        }
    }
}

/// Opens the `fast` connection the worker announced (token handshake included).
async fn connect_fast(
    spec: &WorkerSpec,
    announced: Option<PathBuf>,
    token: &str,
    within: Duration,
) -> Result<FastTransport, Error> {
    let Some(path) = announced else {
        return Err(Error::worker(
            &spec.id,
            "its server did not open the fast transport (the ready file names no fast socket); \
             use snakepit_bridge.server, or set transport = \"grpc\" for a server that speaks only gRPC",
        ));
    };
    let opened = tokio::time::timeout(
        within,
        FastTransport::connect(path.clone(), token, spec.pool.max_message_bytes),
    )
    .await
    .map_err(|_| {
        Error::timeout(
            format!("opening the fast transport of worker {}", spec.id),
            within,
        )
    })?;
    opened.map_err(|status| {
        Error::worker(
            &spec.id,
            format!(
                "cannot open the fast transport at {}: {}",
                path.display(),
                status.message()
            ),
        )
    })
}
