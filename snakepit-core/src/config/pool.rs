//! Per-pool configuration: raw TOML tables, defaults and the normalized [`PoolConfig`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::launch::LaunchContract;
use super::start_mode::{is_module_path, validate_preload};
use super::{
    ConfigError, CrashBarrierSettings, CrashBarrierTable, SessionSettings, SessionStoreTable,
    SnakepitConfig, StartMode,
};

/// The bundled showcase adapter, used when nothing else is configured.
pub const DEFAULT_ADAPTER: &str = "snakepit_bridge.adapters.showcase.ShowcaseAdapter";
/// The Python module that serves the bridge protocol (`python -m snakepit_bridge.server`).
pub const DEFAULT_SERVER_MODULE: &str = "snakepit_bridge.server";

const DEFAULT_POOL_STARTUP_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_POOL_QUEUE_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_POOL_MAX_QUEUE_SIZE: usize = 1_000;
const DEFAULT_GRACEFUL_SHUTDOWN_MS: u64 = 6_000;
const DEFAULT_STARTUP_BATCH_SIZE: usize = 8;
const DEFAULT_STARTUP_BATCH_DELAY_MS: u64 = 750;
const DEFAULT_THREADS_PER_WORKER: usize = 10;
const DEFAULT_EXECUTE_TIMEOUT_MS: u64 = 60_000;
const DEFAULT_STREAM_TIMEOUT_MS: u64 = 300_000;
const DEFAULT_LIFECYCLE_CHECK_INTERVAL_MS: u64 = 60_000;
/// Default bound on one message of the `fast` transport (256 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 << 20;
/// The seeds' hard ceiling on workers per pool.
const MAX_WORKERS: usize = 1_000;

/// How a pool's workers run Python code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerProfile {
    /// One single-threaded process per worker, one request at a time (the default).
    #[default]
    Process,
    /// Few processes, each serving `threads_per_worker` requests at once.
    Thread,
}

/// The largest `pipeline_depth`.
pub const MAX_PIPELINE_DEPTH: usize = 64;

/// Which transport carries a pool's tool calls to its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Length-prefixed protobuf frames on a private Unix socket (the default; our own
    /// `snakepit_bridge` workers only).
    #[default]
    Fast,
    /// gRPC (`snakepit.bridge.BridgeService`), what the original's workers and other hosts speak.
    Grpc,
}

impl TransportKind {
    /// Returns the name used in configuration (`fast` or `grpc`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Grpc => "grpc",
        }
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `worker_ttl`: `"infinity"`, a number of seconds, or `{ value = N, unit = "minutes" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WorkerLifetime {
    /// A bare number of seconds.
    Seconds(u64),
    /// `"infinity"`.
    Keyword(String),
    /// A value with a unit: seconds, minutes, hours or days.
    WithUnit {
        /// The amount.
        value: u64,
        /// seconds | minutes | hours | days.
        unit: String,
    },
}

/// `worker_max_requests`: `"infinity"` or a positive count.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WorkerMaxRequests {
    /// A positive count.
    Count(u64),
    /// `"infinity"`.
    Keyword(String),
}

/// `adapter_env`: a table, or the seeds' list of `[key, value]` pairs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum AdapterEnv {
    Table(BTreeMap<String, String>),
    Pairs(Vec<(String, String)>),
}

/// Heartbeat options as written in a file (every key optional, merged over the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatOverrides {
    /// Whether heartbeats run.
    pub enabled: Option<bool>,
    /// Interval between pings (ms).
    pub ping_interval_ms: Option<u64>,
    /// Time to wait for a pong (ms).
    pub timeout_ms: Option<u64>,
    /// Missed pongs before the worker is declared dead.
    pub max_missed_heartbeats: Option<u32>,
    /// Delay before the first ping (ms).
    pub initial_delay_ms: Option<u64>,
    /// Whether a dead heartbeat kills the worker (`true`) or only logs (`false`).
    pub dependent: Option<bool>,
}

/// The heartbeat settings of a pool, defaults filled in (seeds: on, 2 s, 10 s, 3 missed, dependent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Whether heartbeats run (default true).
    pub enabled: bool,
    /// Interval between pings (default 2 000 ms).
    pub ping_interval: Duration,
    /// Time to wait for a pong (default 10 000 ms).
    pub timeout: Duration,
    /// Missed pongs before the worker is declared dead (default 3).
    pub max_missed_heartbeats: u32,
    /// Delay before the first ping (default 0).
    pub initial_delay: Duration,
    /// Whether a dead heartbeat kills the worker (default true).
    pub dependent: bool,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ping_interval: Duration::from_millis(2_000),
            timeout: Duration::from_millis(10_000),
            max_missed_heartbeats: 3,
            initial_delay: Duration::ZERO,
            dependent: true,
        }
    }
}

impl HeartbeatConfig {
    fn merged(mut self, o: Option<&HeartbeatOverrides>) -> Self {
        if let Some(o) = o {
            self.enabled = o.enabled.unwrap_or(self.enabled);
            self.ping_interval = o
                .ping_interval_ms
                .map(Duration::from_millis)
                .unwrap_or(self.ping_interval);
            self.timeout = o
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(self.timeout);
            self.max_missed_heartbeats = o
                .max_missed_heartbeats
                .unwrap_or(self.max_missed_heartbeats);
            self.initial_delay = o
                .initial_delay_ms
                .map(Duration::from_millis)
                .unwrap_or(self.initial_delay);
            self.dependent = o.dependent.unwrap_or(self.dependent);
        }
        self
    }
}

/// One pool's options as written in a file (`[[pools]]` or the legacy `pool_config`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolTable {
    /// Unique pool name (required in the multi-pool form).
    pub name: Option<String>,
    /// `process` (default) or `thread`.
    pub worker_profile: Option<WorkerProfile>,
    /// Number of worker processes.
    pub pool_size: Option<usize>,
    /// `fast` or `grpc`: what carries tool calls to the workers (default `fast` with our own
    /// server, `grpc` with a `server_script` or another `server_module`).
    pub transport: Option<TransportKind>,
    /// Largest message (request, response or chunk) of the `fast` transport, in bytes
    /// (default 256 MiB).
    pub max_message_bytes: Option<usize>,
    /// Calls the host sends one process worker before the earlier ones answered (default 1,
    /// at most 64); the worker still runs them one at a time, in order of arrival.
    pub pipeline_depth: Option<usize>,
    /// Python adapter class, `module.Class`.
    pub adapter_spec: Option<String>,
    /// Arguments for the worker server (`["--adapter", "pkg.mod.Class"]`).
    pub adapter_args: Option<Vec<String>>,
    /// Environment for the worker processes.
    pub(crate) adapter_env: Option<AdapterEnv>,
    /// Python interpreter for this pool.
    pub python_executable: Option<PathBuf>,
    /// Python module serving the protocol (default `snakepit_bridge.server`).
    pub server_module: Option<String>,
    /// A server script to run instead of `-m server_module` (one speaking the same protocol).
    pub server_script: Option<PathBuf>,
    /// `native` (default) or `snakepit`: the original worker server's launch contract.
    pub launch_contract: Option<LaunchContract>,
    /// `spawn` or `zygote` (default `zygote` on Linux).
    pub start_mode: Option<StartMode>,
    /// Modules the zygote imports before forking (heavy libraries: `["numpy", "torch"]`).
    pub preload: Option<Vec<String>>,
    /// Workers started per batch (default 8).
    pub startup_batch_size: Option<usize>,
    /// Delay between start-up batches in ms (default 750).
    pub startup_batch_delay_ms: Option<u64>,
    /// Threads per worker for the thread profile (default 10).
    pub threads_per_worker: Option<usize>,
    /// Runtime thread-safety checks in the thread profile (default false).
    pub thread_safety_checks: Option<bool>,
    /// Worker lifetime before recycling (default infinity).
    pub worker_ttl: Option<WorkerLifetime>,
    /// Requests before recycling (default infinity).
    pub worker_max_requests: Option<WorkerMaxRequests>,
    /// Recycle a worker whose Python RSS exceeds this many MiB.
    pub memory_threshold_mb: Option<u64>,
    /// How often TTL and memory are checked, in ms (default 60 000).
    pub lifecycle_check_interval_ms: Option<u64>,
    /// Per-pool heartbeat overrides.
    pub heartbeat: Option<HeartbeatOverrides>,
    /// Per-pool `pool_startup_timeout` (ms).
    pub pool_startup_timeout: Option<u64>,
    /// Per-pool `pool_queue_timeout` (ms).
    pub pool_queue_timeout: Option<u64>,
    /// Per-pool `pool_max_queue_size`.
    pub pool_max_queue_size: Option<usize>,
    /// Per-pool `graceful_shutdown_timeout_ms`.
    pub graceful_shutdown_timeout_ms: Option<u64>,
    /// Default timeout of `execute` in ms (default 60 000).
    pub execute_timeout_ms: Option<u64>,
    /// Default timeout of `execute_stream` in ms (default 300 000).
    pub stream_timeout_ms: Option<u64>,
    /// Legacy: upper bound on workers (default and ceiling 1 000).
    pub max_workers: Option<usize>,
    /// Circuit breaker options (`enabled`, `failure_threshold`, `reset_timeout_ms`, ...).
    pub circuit_breaker: Option<toml::Table>,
    /// Retry options (`max_attempts`, `backoff_ms`, `retriable_errors`, ...).
    pub retry: Option<toml::Table>,
    /// Per-attempt and overall timeouts of the resilience stack.
    pub timeouts: Option<toml::Table>,
    /// The host-side adapter (only `Snakepit.Adapters.GRPCPython`).
    pub adapter_module: Option<String>,
    /// `pool` only (each pool manages its own capacity).
    pub capacity_strategy: Option<String>,
    /// A human-friendly label for the pool, reported with its workers.
    pub pool_identifier: Option<String>,
    /// This pool's host bridge TCP port (overrides the global `grpc_port`).
    pub grpc_port: Option<u16>,
    /// This pool's thread-limit overrides, over the global `thread_limits`.
    pub thread_limits: Option<super::ThreadLimitsTable>,
    /// This pool's zero-copy options, over the global `zero_copy` table.
    pub zero_copy: Option<super::ZeroCopyTable>,
    /// Session store options of this pool (over the global `session_store`).
    pub session_store: Option<SessionStoreTable>,
    /// Crash barrier options of this pool (over the global `crash_barrier`).
    pub crash_barrier: Option<CrashBarrierTable>,
}

/// A pool's configuration with every default filled in and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The pool's name.
    pub name: String,
    /// The worker profile.
    pub worker_profile: WorkerProfile,
    /// Number of worker processes.
    pub pool_size: usize,
    /// What carries tool calls to the workers (heartbeat and telemetry always use gRPC).
    pub transport: TransportKind,
    /// Largest message of the `fast` transport in bytes; bigger ones are refused on both sides.
    pub max_message_bytes: usize,
    /// Calls in flight to one process worker (1: the next call waits in the host's queue until
    /// the worker answered; more keeps the worker's socket full while it runs them one at a
    /// time, in order). See [`MAX_PIPELINE_DEPTH`].
    pub pipeline_depth: usize,
    /// The adapter class (`module.Class`).
    pub adapter_spec: String,
    /// Arguments for the worker server; always contains `--adapter <adapter_spec>`.
    pub adapter_args: Vec<String>,
    /// Extra environment for workers (the thread limits are added by the worker crate).
    pub adapter_env: BTreeMap<String, String>,
    /// Configured interpreter, if any (`SNAKEPIT_PYTHON` still wins).
    pub python_executable: Option<PathBuf>,
    /// The Python environment (`python_runtime`, `python_packages`; global keys).
    pub python_env: super::PythonEnvConfig,
    /// Python module serving the protocol.
    pub server_module: String,
    /// A server script to run instead of the module.
    pub server_script: Option<PathBuf>,
    /// How the worker server is started and reached (`native` or the original's `snakepit`).
    pub launch_contract: LaunchContract,
    /// How worker processes are started (spawned, or forked from a preloaded zygote).
    pub start_mode: StartMode,
    /// Modules the zygote imports before forking, besides grpc and the adapter's module.
    pub preload: Vec<String>,
    /// Workers started per batch.
    pub startup_batch_size: usize,
    /// Delay between batches.
    pub startup_batch_delay: Duration,
    /// Threads per worker (1 in the process profile).
    pub threads_per_worker: usize,
    /// Thread-safety checks for the thread profile.
    pub thread_safety_checks: bool,
    /// Worker lifetime before recycling; `None` is infinity.
    pub worker_ttl: Option<Duration>,
    /// Requests before recycling; `None` is infinity.
    pub worker_max_requests: Option<u64>,
    /// RSS threshold for recycling in MiB.
    pub memory_threshold_mb: Option<u64>,
    /// How often TTL and memory are checked (a TTL shorter than 4 intervals is checked more often).
    pub lifecycle_check_interval: Duration,
    /// Heartbeat settings.
    pub heartbeat: HeartbeatConfig,
    /// Time a worker gets to become ready.
    pub startup_timeout: Duration,
    /// Time a request may wait in the queue.
    pub queue_timeout: Duration,
    /// Bound of the queue.
    pub max_queue_size: usize,
    /// Time between SIGTERM and SIGKILL.
    pub graceful_shutdown_timeout: Duration,
    /// Default timeout of `execute`.
    pub execute_timeout: Duration,
    /// Default timeout of `execute_stream`.
    pub stream_timeout: Duration,
    /// The resilience tables (`circuit_breaker`, `retry`, `timeouts`), global keys overlaid
    /// with the pool's; interpreted and validated by `snakepit-resilience` when the pool starts.
    pub resilience: toml::Table,
    /// A human-friendly label (`pool_identifier`), reported with the pool's workers.
    pub pool_identifier: Option<String>,
    /// Where the host bridge listens (`grpc_port`/`grpc_host`; default the private socket).
    pub host_bridge: super::HostBridgeListen,
    /// How much of the workers' own output reaches the host (`grpc_log_level`, `log_python_output`).
    pub worker_output: super::WorkerOutput,
    /// Shutdown cleanup and the start-up sweep (`cleanup_*`, `rogue_cleanup`).
    pub cleanup: super::CleanupConfig,
    /// Thread-limit variables for the workers (`thread_limits`; "1" for process workers),
    /// applied under `adapter_env`.
    pub thread_limits: BTreeMap<String, String>,
    /// When arrays travel through the worker's shared-memory arena.
    pub zero_copy: super::ZeroCopySettings,
    /// Session store settings (TTL, sweep interval, bound, affinity).
    pub sessions: SessionSettings,
    /// Crash barrier settings (crash-loop limit, idempotent retry, device taint).
    pub crash_barrier: CrashBarrierSettings,
}

impl PoolConfig {
    /// Returns the embedded default pool (the showcase adapter), with `pool_size` workers.
    pub fn showcase(pool_size: usize) -> Self {
        let table = PoolTable {
            name: Some("default".into()),
            pool_size: Some(pool_size),
            ..PoolTable::default()
        };
        // The showcase table has only valid values, so this cannot fail; fall back to
        // validation's error path being unreachable by returning the table's normalization.
        normalize_table(&SnakepitConfig::default(), &table, "pools[default]")
            .unwrap_or_else(unreachable_config)
    }

    /// How many calls one worker is given at once: `pipeline_depth` for the process profile
    /// (which runs them one at a time), `threads_per_worker` for the thread profile.
    pub fn capacity_per_worker(&self) -> usize {
        match self.worker_profile {
            WorkerProfile::Process => self.pipeline_depth,
            WorkerProfile::Thread => self.threads_per_worker,
        }
    }

    /// `pipeline_depth`: 1 to 64, and above 1 only where the worker is known to run pipelined
    /// calls one at a time (our own server, process profile).
    fn validate_pipeline_depth(&self) -> Result<(), ConfigError> {
        let key = format!("pools[{}].pipeline_depth", self.name);
        if self.pipeline_depth == 0 || self.pipeline_depth > MAX_PIPELINE_DEPTH {
            return Err(ConfigError::invalid(
                key,
                self.pipeline_depth,
                format!("an integer from 1 to {MAX_PIPELINE_DEPTH}"),
            ));
        }
        if self.pipeline_depth == 1 {
            return Ok(());
        }
        let why = if self.worker_profile == WorkerProfile::Thread {
            Some("1 with worker_profile = \"thread\" (a thread worker already runs threads_per_worker calls at once)")
        } else if self.launch_contract == LaunchContract::Snakepit
            || self.server_script.is_some()
            || self.server_module != DEFAULT_SERVER_MODULE
        {
            Some("1 with a server other than snakepit_bridge.server (only ours is known to run pipelined calls one at a time)")
        } else {
            None
        };
        match why {
            Some(why) => Err(ConfigError::invalid(key, self.pipeline_depth, why)),
            None => Ok(()),
        }
    }

    /// Validates the values (sizes positive, limits respected); errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |k: &str| format!("pools[{}].{k}", self.name);
        if self.name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "pools[].name",
                "\"\"",
                "a non-empty pool name",
            ));
        }
        if self.pool_size == 0 || self.pool_size > MAX_WORKERS {
            return Err(ConfigError::invalid(
                key("pool_size"),
                self.pool_size,
                "an integer from 1 to 1000",
            ));
        }
        if self.startup_batch_size == 0 {
            return Err(ConfigError::invalid(
                key("startup_batch_size"),
                0,
                "a positive integer",
            ));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::invalid(
                key("max_message_bytes"),
                self.max_message_bytes,
                "at least 1024 bytes",
            ));
        }
        self.validate_pipeline_depth()?;
        if self.threads_per_worker == 0 {
            return Err(ConfigError::invalid(
                key("threads_per_worker"),
                0,
                "a positive integer",
            ));
        }
        for (k, d) in [
            ("pool_startup_timeout", self.startup_timeout),
            ("pool_queue_timeout", self.queue_timeout),
            ("execute_timeout_ms", self.execute_timeout),
            ("stream_timeout_ms", self.stream_timeout),
            ("lifecycle_check_interval_ms", self.lifecycle_check_interval),
        ] {
            if d.is_zero() || d > crate::MAX_CALL_TIMEOUT {
                return Err(ConfigError::invalid(
                    key(k),
                    d.as_millis(),
                    "a number of milliseconds from 1 to 2592000000 (30 days)",
                ));
            }
        }
        for (k, d) in [
            ("startup_batch_delay_ms", self.startup_batch_delay),
            (
                "graceful_shutdown_timeout_ms",
                self.graceful_shutdown_timeout,
            ),
            ("heartbeat.ping_interval_ms", self.heartbeat.ping_interval),
            ("heartbeat.timeout_ms", self.heartbeat.timeout),
            ("heartbeat.initial_delay_ms", self.heartbeat.initial_delay),
        ] {
            if d > crate::MAX_CALL_TIMEOUT {
                return Err(ConfigError::invalid(
                    key(k),
                    d.as_millis(),
                    "at most 2592000000 ms (30 days)",
                ));
            }
        }
        if self.heartbeat.ping_interval.is_zero() || self.heartbeat.timeout.is_zero() {
            return Err(ConfigError::invalid(
                key("heartbeat"),
                "0",
                "ping_interval_ms and timeout_ms must be positive",
            ));
        }
        let module_like = is_module_path;
        validate_preload(&key("preload"), &self.preload)?;
        if !module_like(&self.adapter_spec) || !self.adapter_spec.contains('.') {
            return Err(ConfigError::invalid(
                key("adapter_spec"),
                format!("{:?}", self.adapter_spec),
                "a Python class path like \"mypkg.adapters.MyAdapter\"",
            ));
        }
        if !module_like(&self.server_module) {
            return Err(ConfigError::invalid(
                key("server_module"),
                format!("{:?}", self.server_module),
                "a Python module path like \"snakepit_bridge.server\"",
            ));
        }
        super::launch::validate(self)
    }
}

#[cold]
fn unreachable_config(e: ConfigError) -> PoolConfig {
    // Documented invariant: the showcase defaults are valid (covered by a unit test).
    panic!("built-in showcase pool configuration is invalid: {e}")
}

pub(super) fn normalize(cfg: &SnakepitConfig) -> Result<Vec<PoolConfig>, ConfigError> {
    let mut out = Vec::new();
    if cfg.pools.is_empty() {
        // Legacy single-pool form: `pool_config` (or nothing) becomes the pool `default`.
        let mut table = cfg.pool_config.clone().unwrap_or_default();
        if let Some(name) = &table.name {
            if name != "default" {
                return Err(ConfigError::invalid(
                    "pool_config.name",
                    name,
                    "\"default\" (or use [[pools]] for named pools)",
                ));
            }
        }
        table.name = Some("default".into());
        out.push(normalize_table(cfg, &table, "pool_config")?);
    } else {
        if cfg.pool_config.is_some() {
            return Err(ConfigError::invalid(
                "pool_config",
                "a table",
                "either the legacy `pool_config` or `[[pools]]`, not both",
            ));
        }
        for (i, table) in cfg.pools.iter().enumerate() {
            let name = table.name.clone().ok_or_else(|| ConfigError::Missing {
                key: format!("pools[{i}].name"),
                hint: "every [[pools]] entry needs a unique `name` (use \"default\" for the main pool)".into(),
            })?;
            if out.iter().any(|p: &PoolConfig| p.name == name) {
                return Err(ConfigError::invalid(
                    format!("pools[{i}].name"),
                    format!("{name:?}"),
                    "a name no other pool uses",
                ));
            }
            out.push(normalize_table(cfg, table, &format!("pools[{name}]"))?);
        }
    }
    check_distinct_ports(&out)?;
    Ok(out)
}

/// Two pools cannot bind the same fixed host bridge port.
fn check_distinct_ports(pools: &[PoolConfig]) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
    for p in pools {
        if let super::HostBridgeListen::Tcp { port, .. } = p.host_bridge {
            if port == 0 {
                continue;
            }
            if let Some(other) = seen.insert(port, &p.name) {
                return Err(ConfigError::invalid(
                    format!("pools[{}].grpc_port", p.name),
                    port,
                    format!("a port pool '{other}' does not use: each pool runs its own host bridge, so give each its own grpc_port or use 0 for a free one"),
                ));
            }
        }
    }
    Ok(())
}

fn default_pool_size() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        * 2
}

fn normalize_table(
    cfg: &SnakepitConfig,
    t: &PoolTable,
    path: &str,
) -> Result<PoolConfig, ConfigError> {
    let key = |k: &str| format!("{path}.{k}");
    let name = t.name.clone().unwrap_or_else(|| "default".into());
    let mut adapter_args = t
        .adapter_args
        .clone()
        .or_else(|| cfg.adapter_args.clone())
        .unwrap_or_default();
    let from_args = adapter_args
        .iter()
        .position(|a| a == "--adapter")
        .map(|i| {
            adapter_args.get(i + 1).cloned().ok_or_else(|| {
                ConfigError::invalid(
                    key("adapter_args"),
                    format!("{adapter_args:?}"),
                    "`--adapter` followed by a class path",
                )
            })
        })
        .transpose()?;
    let adapter_spec = match (
        t.adapter_spec.clone().or_else(|| cfg.adapter_spec.clone()),
        from_args,
    ) {
        (Some(spec), Some(arg)) if spec != arg => {
            return Err(ConfigError::invalid(
                key("adapter_spec"),
                format!("{spec:?}"),
                format!("the same class as `--adapter {arg}` in adapter_args, or only one of them"),
            ))
        }
        (Some(spec), Some(_)) => spec,
        (Some(spec), None) => {
            adapter_args.splice(0..0, ["--adapter".to_owned(), spec.clone()]);
            spec
        }
        (None, Some(arg)) => arg,
        (None, None) => {
            adapter_args.splice(0..0, ["--adapter".to_owned(), DEFAULT_ADAPTER.to_owned()]);
            DEFAULT_ADAPTER.to_owned()
        }
    };
    let worker_ttl =
        match &t.worker_ttl {
            None => None,
            Some(WorkerLifetime::Keyword(k)) if k == "infinity" => None,
            Some(WorkerLifetime::Keyword(k)) => return Err(ConfigError::invalid(
                key("worker_ttl"),
                format!("{k:?}"),
                "\"infinity\", seconds, or { value = N, unit = \"seconds|minutes|hours|days\" }",
            )),
            Some(WorkerLifetime::Seconds(0)) | Some(WorkerLifetime::WithUnit { value: 0, .. }) => {
                return Err(ConfigError::invalid(
                    key("worker_ttl"),
                    0,
                    "a positive lifetime or \"infinity\"",
                ))
            }
            Some(WorkerLifetime::Seconds(s)) => Some(Duration::from_secs(*s)),
            Some(WorkerLifetime::WithUnit { value, unit }) => {
                let mult = match unit.as_str() {
                    "seconds" | "second" | "s" => 1,
                    "minutes" | "minute" | "min" => 60,
                    "hours" | "hour" | "h" => 3_600,
                    "days" | "day" | "d" => 86_400,
                    other => {
                        return Err(ConfigError::invalid(
                            key("worker_ttl.unit"),
                            format!("{other:?}"),
                            "seconds, minutes, hours or days",
                        ))
                    }
                };
                Some(Duration::from_secs(value.saturating_mul(mult)))
            }
        };
    let worker_max_requests = match &t.worker_max_requests {
        None => None,
        Some(WorkerMaxRequests::Keyword(k)) if k == "infinity" => None,
        Some(WorkerMaxRequests::Count(n)) if *n > 0 => Some(*n),
        Some(other) => {
            return Err(ConfigError::invalid(
                key("worker_max_requests"),
                format!("{other:?}"),
                "\"infinity\" or a positive integer",
            ))
        }
    };
    let adapter_env = match &t.adapter_env {
        None => BTreeMap::new(),
        Some(AdapterEnv::Table(m)) => m.clone(),
        Some(AdapterEnv::Pairs(p)) => p.iter().cloned().collect(),
    };
    let pool_size = t
        .pool_size
        .or(cfg.pool_size)
        .unwrap_or_else(default_pool_size);
    let max_workers = t.max_workers.unwrap_or(MAX_WORKERS);
    if max_workers == 0 || max_workers > MAX_WORKERS || pool_size > max_workers {
        return Err(ConfigError::invalid(
            key("max_workers"),
            max_workers,
            format!("from pool_size ({pool_size}) to 1000"),
        ));
    }
    let worker_profile = t.worker_profile.unwrap_or_default();
    let seed = super::seed_keys::resolve(cfg, t, path, worker_profile == WorkerProfile::Process)?;
    let ms = Duration::from_millis;
    let config = PoolConfig {
        name,
        worker_profile,
        pool_size,
        // Only our own server speaks `fast`; a custom server gets gRPC unless it opts in.
        transport: t.transport.unwrap_or(
            if t.launch_contract == Some(LaunchContract::Snakepit)
                || t.server_script.is_some()
                || t.server_module
                    .as_deref()
                    .is_some_and(|m| m != DEFAULT_SERVER_MODULE)
            {
                TransportKind::Grpc
            } else {
                TransportKind::Fast
            },
        ),
        max_message_bytes: t.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        pipeline_depth: t.pipeline_depth.unwrap_or(1),
        adapter_spec,
        adapter_args,
        adapter_env,
        python_executable: t
            .python_executable
            .clone()
            .or_else(|| cfg.python_executable.clone()),
        python_env: super::PythonEnvConfig::from_tables(
            cfg.python_runtime.as_ref(),
            cfg.python_packages.as_ref(),
        )?,
        server_module: t
            .server_module
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVER_MODULE.into()),
        server_script: t.server_script.clone(),
        launch_contract: t.launch_contract.unwrap_or_default(),
        // The original's server is started as it is, never forked from our zygote.
        start_mode: if t.launch_contract == Some(LaunchContract::Snakepit) {
            t.start_mode.unwrap_or(StartMode::Spawn)
        } else {
            t.start_mode.or(cfg.start_mode).unwrap_or_default()
        },
        preload: t.preload.clone().unwrap_or_default(),
        startup_batch_size: t.startup_batch_size.unwrap_or(DEFAULT_STARTUP_BATCH_SIZE),
        startup_batch_delay: ms(t
            .startup_batch_delay_ms
            .unwrap_or(DEFAULT_STARTUP_BATCH_DELAY_MS)),
        threads_per_worker: t.threads_per_worker.unwrap_or(DEFAULT_THREADS_PER_WORKER),
        thread_safety_checks: t.thread_safety_checks.unwrap_or(false),
        worker_ttl,
        worker_max_requests,
        memory_threshold_mb: t.memory_threshold_mb,
        lifecycle_check_interval: ms(t
            .lifecycle_check_interval_ms
            .unwrap_or(DEFAULT_LIFECYCLE_CHECK_INTERVAL_MS)),
        heartbeat: HeartbeatConfig::default()
            .merged(cfg.heartbeat.as_ref())
            .merged(t.heartbeat.as_ref()),
        startup_timeout: ms(t
            .pool_startup_timeout
            .or(cfg.pool_startup_timeout)
            .unwrap_or(DEFAULT_POOL_STARTUP_TIMEOUT_MS)),
        queue_timeout: ms(t
            .pool_queue_timeout
            .or(cfg.pool_queue_timeout)
            .unwrap_or(DEFAULT_POOL_QUEUE_TIMEOUT_MS)),
        max_queue_size: t
            .pool_max_queue_size
            .or(cfg.pool_max_queue_size)
            .unwrap_or(DEFAULT_POOL_MAX_QUEUE_SIZE),
        graceful_shutdown_timeout: ms(t
            .graceful_shutdown_timeout_ms
            .or(cfg.graceful_shutdown_timeout_ms)
            .unwrap_or(DEFAULT_GRACEFUL_SHUTDOWN_MS)),
        execute_timeout: ms(t.execute_timeout_ms.unwrap_or(DEFAULT_EXECUTE_TIMEOUT_MS)),
        stream_timeout: ms(t.stream_timeout_ms.unwrap_or(DEFAULT_STREAM_TIMEOUT_MS)),
        resilience: resilience_tables(cfg, t),
        pool_identifier: t.pool_identifier.clone(),
        host_bridge: seed.host_bridge,
        worker_output: seed.worker_output,
        cleanup: seed.cleanup,
        thread_limits: seed.thread_limits,
        zero_copy: super::ZeroCopySettings::from_tables(
            cfg.zero_copy.as_ref(),
            t.zero_copy.as_ref(),
            &key("zero_copy"),
        )?,
        sessions: cfg
            .session_store
            .clone()
            .unwrap_or_default()
            .merged(t.session_store.as_ref())
            .settings(&format!("{path}."))?,
        crash_barrier: cfg
            .crash_barrier
            .clone()
            .unwrap_or_default()
            .merged(t.crash_barrier.as_ref())
            .settings(&format!("{path}."))?,
    };
    config.validate()?;
    Ok(config)
}

/// Merges the global resilience tables with the pool's (the pool's keys win).
fn resilience_tables(cfg: &SnakepitConfig, t: &PoolTable) -> toml::Table {
    let mut out = toml::Table::new();
    for (name, global, local) in [
        ("circuit_breaker", &cfg.circuit_breaker, &t.circuit_breaker),
        ("retry", &cfg.retry, &t.retry),
        ("timeouts", &cfg.timeouts, &t.timeouts),
    ] {
        if global.is_none() && local.is_none() {
            continue;
        }
        let mut merged = global.clone().unwrap_or_default();
        merged.extend(local.clone().unwrap_or_default());
        out.insert(name.to_owned(), toml::Value::Table(merged));
    }
    out
}
