//! The seeds' host-wide keys beyond pool sizing: the host bridge listener, worker output,
//! cleanup, thread limits, and the Elixir-only keys accepted with a translation or refused.
//!
//! docs/configuration.md lists every key with its status; the translations live here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::pool::PoolTable;
use super::{ConfigError, SnakepitConfig};

/// The seeds' only host-side adapter, the gRPC Python bridge this crate family implements.
pub const SEED_ADAPTER_MODULE: &str = "Snakepit.Adapters.GRPCPython";

/// The thread-limit variables and their `thread_limits` keys (process workers get "1").
const THREAD_LIMITS: &[(&str, &str)] = &[
    ("openblas", "OPENBLAS_NUM_THREADS"),
    ("mkl", "MKL_NUM_THREADS"),
    ("omp", "OMP_NUM_THREADS"),
    ("numexpr", "NUMEXPR_NUM_THREADS"),
    ("veclib", "VECLIB_MAXIMUM_THREADS"),
];

const DEFAULT_CLEANUP_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_CLEANUP_POLL_INTERVAL_MS: u64 = 50;
const DEFAULT_CLEANUP_RETRY_INTERVAL_MS: u64 = 200;
const DEFAULT_CLEANUP_MAX_RETRIES: u32 = 3;

/// `rogue_cleanup = { enabled = true }` as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RogueCleanupTable {
    /// Whether a starting pool kills workers left by hosts that died (default true).
    pub enabled: Option<bool>,
    /// Refused: the sweep identifies processes by registry entry, not by script name.
    pub scripts: Option<Vec<String>>,
    /// Refused: the run id is matched exactly, not by marker flag.
    pub markers: Option<Vec<String>>,
}

/// `thread_limits = { openblas = 1, omp = 1, mkl = 1, numexpr = 1, veclib = 1 }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadLimitsTable {
    /// `OPENBLAS_NUM_THREADS`.
    pub openblas: Option<u32>,
    /// `MKL_NUM_THREADS`.
    pub mkl: Option<u32>,
    /// `OMP_NUM_THREADS`.
    pub omp: Option<u32>,
    /// `NUMEXPR_NUM_THREADS`.
    pub numexpr: Option<u32>,
    /// `VECLIB_MAXIMUM_THREADS`.
    pub veclib: Option<u32>,
    /// Refused: the worker's gRPC server polls with `GRPC_POLL_STRATEGY=poll`.
    pub grpc_poll_threads: Option<u32>,
}

impl ThreadLimitsTable {
    fn get(&self, key: &str) -> Option<u32> {
        match key {
            "openblas" => self.openblas,
            "mkl" => self.mkl,
            "omp" => self.omp,
            "numexpr" => self.numexpr,
            "veclib" => self.veclib,
            _ => None,
        }
    }
}

/// Where the host bridge (Python-to-host tool calls) listens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostBridgeListen {
    /// `<run dir>/host.sock`, private to the run (the default).
    #[default]
    PrivateSocket,
    /// TCP at `host:port` (`grpc_host`/`grpc_port`); port 0 picks a free port.
    Tcp {
        /// The interface (`localhost` unless configured).
        host: String,
        /// The port.
        port: u16,
    },
}

/// How workers are cleaned up when a pool stops or `cleanup` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupConfig {
    /// Whether shutdown ends with a pass that kills any process of the run still alive
    /// (`cleanup_on_stop`, default true).
    pub on_stop: bool,
    /// Bound of that pass (`cleanup_on_stop_timeout_ms`, default 5 000).
    pub timeout: Duration,
    /// How often the pass checks whether processes are gone (`cleanup_poll_interval_ms`, 50).
    pub poll_interval: Duration,
    /// Pause between kill attempts (`cleanup_retry_interval_ms`, default 200).
    pub retry_interval: Duration,
    /// Kill attempts per process after the first (`cleanup_max_retries`, default 3).
    pub max_retries: u32,
    /// Whether a starting pool kills leftovers of dead hosts (`rogue_cleanup.enabled`, true).
    pub rogue_cleanup: bool,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            on_stop: true,
            timeout: Duration::from_millis(DEFAULT_CLEANUP_TIMEOUT_MS),
            poll_interval: Duration::from_millis(DEFAULT_CLEANUP_POLL_INTERVAL_MS),
            retry_interval: Duration::from_millis(DEFAULT_CLEANUP_RETRY_INTERVAL_MS),
            max_retries: DEFAULT_CLEANUP_MAX_RETRIES,
            rogue_cleanup: true,
        }
    }
}

/// How much of each worker's own output reaches the host (`grpc_log_level`, `log_python_output`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOutput {
    /// The value of `GRPC_VERBOSITY` in the worker (`grpc_log_level`, default `ERROR`).
    pub grpc_verbosity: &'static str,
    /// Whether Python's stdout and stderr are copied to the host's stderr, each line
    /// prefixed with the worker id (`log_python_output`, default false).
    pub log_python_output: bool,
}

impl Default for WorkerOutput {
    fn default() -> Self {
        Self {
            grpc_verbosity: "ERROR",
            log_python_output: false,
        }
    }
}

/// The settings of this module as a pool sees them, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct SeedSettings {
    pub(super) host_bridge: HostBridgeListen,
    pub(super) worker_output: WorkerOutput,
    pub(super) cleanup: CleanupConfig,
    pub(super) thread_limits: BTreeMap<String, String>,
}

/// Checks the keys that translate to nothing or to one value, and resolves the rest for `t`.
pub(super) fn resolve(
    cfg: &SnakepitConfig,
    t: &PoolTable,
    path: &str,
    process_profile: bool,
) -> Result<SeedSettings, ConfigError> {
    let key = |k: &str| format!("{path}.{k}");
    check_adapter_module("adapter_module", cfg.adapter_module.as_deref())?;
    check_adapter_module(&key("adapter_module"), t.adapter_module.as_deref())?;
    check_capacity_strategy("capacity_strategy", cfg.capacity_strategy.as_deref())?;
    check_capacity_strategy(&key("capacity_strategy"), t.capacity_strategy.as_deref())?;
    let host_bridge = match t.grpc_port.or(cfg.grpc_port) {
        None if cfg.grpc_host.is_some() => {
            return Err(ConfigError::Missing {
                key: "grpc_port".into(),
                hint: "grpc_host only applies to the TCP host bridge; set grpc_port too (0 picks a free port) or drop grpc_host to keep the private socket".into(),
            })
        }
        None => HostBridgeListen::PrivateSocket,
        Some(port) => HostBridgeListen::Tcp {
            host: cfg.grpc_host.clone().unwrap_or_else(|| "localhost".into()),
            port,
        },
    };
    let grpc_verbosity = match cfg.grpc_log_level.as_deref() {
        None => "ERROR",
        Some(level) => grpc_verbosity(level).ok_or_else(|| {
            ConfigError::invalid(
                "grpc_log_level",
                format!("{level:?}"),
                "debug, info, warning, error or none",
            )
        })?,
    };
    let rogue = cfg.rogue_cleanup.clone().unwrap_or_default();
    for (name, given) in [("scripts", &rogue.scripts), ("markers", &rogue.markers)] {
        if given.is_some() {
            return Err(ConfigError::invalid(
                format!("rogue_cleanup.{name}"),
                "a list",
                "nothing: the sweep only kills processes recorded in this host's registry whose pid, start time and run id all match, so no script name or marker is needed; keep `enabled` only",
            ));
        }
    }
    let defaults = CleanupConfig::default();
    let ms = Duration::from_millis;
    let cleanup = CleanupConfig {
        on_stop: cfg.cleanup_on_stop.unwrap_or(defaults.on_stop),
        timeout: cfg
            .cleanup_on_stop_timeout_ms
            .map(ms)
            .unwrap_or(defaults.timeout),
        poll_interval: cfg
            .cleanup_poll_interval_ms
            .map(ms)
            .unwrap_or(defaults.poll_interval),
        retry_interval: cfg
            .cleanup_retry_interval_ms
            .map(ms)
            .unwrap_or(defaults.retry_interval),
        max_retries: cfg.cleanup_max_retries.unwrap_or(defaults.max_retries),
        rogue_cleanup: rogue.enabled.unwrap_or(defaults.rogue_cleanup),
    };
    for (k, d) in [
        ("cleanup_on_stop_timeout_ms", cleanup.timeout),
        ("cleanup_poll_interval_ms", cleanup.poll_interval),
    ] {
        if d.is_zero() {
            return Err(ConfigError::invalid(
                k,
                0,
                "a positive number of milliseconds",
            ));
        }
    }
    let thread_limits = thread_limits(cfg, t, path, process_profile)?;
    Ok(SeedSettings {
        host_bridge,
        worker_output: WorkerOutput {
            grpc_verbosity,
            log_python_output: cfg.log_python_output.unwrap_or(false),
        },
        cleanup,
        thread_limits,
    })
}

fn check_adapter_module(key: &str, value: Option<&str>) -> Result<(), ConfigError> {
    match value {
        None => Ok(()),
        Some(v) if v == SEED_ADAPTER_MODULE || v == "GRPCPython" => Ok(()),
        Some(v) => Err(ConfigError::invalid(
            key,
            format!("{v:?}"),
            format!("\"{SEED_ADAPTER_MODULE}\", the only host-side adapter (workers always speak the gRPC bridge); name the Python class in adapter_spec instead"),
        )),
    }
}

fn check_capacity_strategy(key: &str, value: Option<&str>) -> Result<(), ConfigError> {
    match value {
        None | Some("pool") => Ok(()),
        Some(v) => Err(ConfigError::invalid(
            key,
            format!("{v:?}"),
            "\"pool\": each pool manages its own capacity; sharing capacity across pools (profile, hybrid) is not supported, so size each pool with pool_size and threads_per_worker",
        )),
    }
}

/// Maps a seed log level to the gRPC core's `GRPC_VERBOSITY` (it has no warning level).
fn grpc_verbosity(level: &str) -> Option<&'static str> {
    match level.trim().to_ascii_lowercase().as_str() {
        "debug" => Some("DEBUG"),
        "info" => Some("INFO"),
        "warning" | "warn" | "error" => Some("ERROR"),
        "none" | "off" => Some("NONE"),
        _ => None,
    }
}

/// The thread-limit environment: "1" for process workers (the seeds' defaults), then the
/// global `thread_limits`, then the pool's; `adapter_env` still wins over all of them.
fn thread_limits(
    cfg: &SnakepitConfig,
    t: &PoolTable,
    path: &str,
    process_profile: bool,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut env = BTreeMap::new();
    if process_profile {
        for (_, var) in THREAD_LIMITS {
            env.insert((*var).to_owned(), "1".to_owned());
        }
    }
    for (where_, table) in [
        ("thread_limits".to_owned(), cfg.thread_limits.as_ref()),
        (format!("{path}.thread_limits"), t.thread_limits.as_ref()),
    ] {
        let Some(table) = table else { continue };
        if table.grpc_poll_threads.is_some() {
            return Err(ConfigError::invalid(
                format!("{where_}.grpc_poll_threads"),
                "a number",
                "nothing: workers poll with GRPC_POLL_STRATEGY=poll; set other GRPC_* variables in adapter_env",
            ));
        }
        for (name, var) in THREAD_LIMITS {
            match table.get(name) {
                None => {}
                Some(0) => {
                    return Err(ConfigError::invalid(
                        format!("{where_}.{name}"),
                        0,
                        "a positive number of threads",
                    ))
                }
                Some(n) => {
                    env.insert((*var).to_owned(), n.to_string());
                }
            }
        }
    }
    Ok(env)
}
