//! Configuration: the seeds' options with their names and defaults, parsed from `snakepit.toml`.
//!
//! Two shapes are accepted, as in the seeds: the multi-pool form (`[[pools]]` tables, each
//! with a `name`) and the legacy single-pool form (pool options at the top level), which
//! becomes one pool named `default`. [`SnakepitConfig::pool_configs`] returns every pool
//! with each default filled in and validated.

mod crash_barrier;
mod error;
mod gpu_profiler;
mod launch;
mod pool;
mod python;
mod seed_keys;
#[cfg(test)]
mod seed_keys_tests;
mod sessions;
mod start_mode;
#[cfg(test)]
mod tests;
mod zero_copy;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crash_barrier::{CrashBarrierSettings, CrashBarrierTable, CrashRetry};
pub use error::ConfigError;
pub use gpu_profiler::{GpuProfilerSettings, GpuProfilerTable, DEFAULT_GPU_PROFILER_INTERVAL};
pub use launch::LaunchContract;
pub use pool::{
    HeartbeatConfig, PoolConfig, TransportKind, WorkerLifetime, WorkerMaxRequests, WorkerProfile,
    DEFAULT_ADAPTER, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SERVER_MODULE, MAX_PIPELINE_DEPTH,
};
pub use python::{
    requirement_name, PythonEnvConfig, PythonInstaller, PythonPackagesTable, PythonRuntime,
    PythonRuntimeTable,
};
pub use seed_keys::{
    CleanupConfig, HostBridgeListen, RogueCleanupTable, ThreadLimitsTable, WorkerOutput,
    SEED_ADAPTER_MODULE,
};
pub use sessions::{
    SessionAffinity, SessionSettings, SessionStoreTable, DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_CLEANUP_INTERVAL, DEFAULT_SESSION_TTL,
};
pub use start_mode::StartMode;
pub use zero_copy::{ZeroCopySettings, ZeroCopyTable, DEFAULT_ZERO_COPY_THRESHOLD};

/// The seeds' `log_categories`, in either of their two forms (the seeds disagree; both are accepted).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LogCategories {
    /// Only these categories log, at `log_level`.
    List(Vec<String>),
    /// Each named category logs at its own level; the others at `log_level`.
    Levels(std::collections::BTreeMap<String, String>),
}

/// The configuration used when no file is given: one pool running the bundled showcase adapter.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// Global options of a snakepit host (`config :snakepit` in the seeds).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnakepitConfig {
    /// Whether a [`PoolSet`](../../snakepit_pool/struct.PoolSet.html) or `snakepit exec` starts
    /// pools at all (`pooling_enabled`). Absent means `true`: the seeds default to `false`
    /// because their application starts pools at boot, while a Rust host starts them only when
    /// asked. `false` starts no pool and every call fails with a pool error naming the key.
    pub pooling_enabled: Option<bool>,
    /// The host-side adapter; only the seeds' `Snakepit.Adapters.GRPCPython` is accepted.
    pub adapter_module: Option<String>,
    /// `pool` only: each pool manages its own capacity (`profile`/`hybrid` are refused).
    pub capacity_strategy: Option<String>,
    /// Port of the host bridge's TCP listener; unset keeps the private Unix socket.
    pub grpc_port: Option<u16>,
    /// Interface of the host bridge's TCP listener (default `localhost`; needs `grpc_port`).
    pub grpc_host: Option<String>,
    /// `GRPC_VERBOSITY` of the workers' gRPC core: debug, info, warning, error, none (default error).
    pub grpc_log_level: Option<String>,
    /// Copy Python's stdout and stderr to the host's stderr (default false: hidden).
    pub log_python_output: Option<bool>,
    /// Accepted for the seeds' configs: a Rust library never installs a logger, either way.
    pub library_mode: Option<bool>,
    /// Kill whatever process of the run is still alive at the end of shutdown (default true).
    pub cleanup_on_stop: Option<bool>,
    /// Bound of that cleanup pass in ms (default 5 000).
    pub cleanup_on_stop_timeout_ms: Option<u64>,
    /// How often cleanup checks whether processes are gone, in ms (default 50).
    pub cleanup_poll_interval_ms: Option<u64>,
    /// Pause between kill attempts during cleanup, in ms (default 200).
    pub cleanup_retry_interval_ms: Option<u64>,
    /// Kill attempts per process after the first (default 3).
    pub cleanup_max_retries: Option<u32>,
    /// The start-up sweep of workers left by dead hosts (`rogue_cleanup = { enabled = true }`).
    pub rogue_cleanup: Option<RogueCleanupTable>,
    /// Thread-limit overrides for numerical libraries (process workers default to 1).
    pub thread_limits: Option<ThreadLimitsTable>,
    /// Default pool size for pools that do not set one (default: CPU threads × 2).
    pub pool_size: Option<usize>,
    /// Default adapter class (`module.Class`) for pools that do not set one.
    pub adapter_spec: Option<String>,
    /// Default adapter arguments for pools that do not set them.
    pub adapter_args: Option<Vec<String>>,
    /// Maximum time (ms) to wait for a worker to start (default 10 000).
    pub pool_startup_timeout: Option<u64>,
    /// Maximum time (ms) a request waits in the queue (default 5 000).
    pub pool_queue_timeout: Option<u64>,
    /// Maximum queued requests before new ones are rejected (default 1 000).
    pub pool_max_queue_size: Option<usize>,
    /// Time (ms) Python gets to exit after SIGTERM before SIGKILL (default 6 000).
    pub graceful_shutdown_timeout_ms: Option<u64>,
    /// Python interpreter; `SNAKEPIT_PYTHON` wins over it.
    pub python_executable: Option<PathBuf>,
    /// How the interpreter is found otherwise: `"system"`, `"venv"` (default) or `"managed"`.
    pub python_runtime: Option<PythonRuntimeTable>,
    /// Requirements every worker's interpreter must satisfy (a list, or the seeds' table).
    pub python_packages: Option<PythonPackagesTable>,
    /// Host log level: debug, info, warning, error, none (default error).
    pub log_level: Option<String>,
    /// Default `start_mode` for pools that do not set one (`zygote` on Linux, else `spawn`).
    pub start_mode: Option<StartMode>,
    /// Log categories: a list of categories to log, or a table of `category = "level"`.
    pub log_categories: Option<LogCategories>,
    /// Global heartbeat defaults, merged under each pool's own.
    pub heartbeat: Option<pool::HeartbeatOverrides>,
    /// Legacy single-pool options (`pool_config` in the seeds).
    pub pool_config: Option<pool::PoolTable>,
    /// Global circuit breaker defaults (`circuit_breaker = { enabled, failure_threshold, ... }`).
    pub circuit_breaker: Option<toml::Table>,
    /// Global retry defaults.
    pub retry: Option<toml::Table>,
    /// Global resilience timeouts.
    pub timeouts: Option<toml::Table>,
    /// Global session store defaults (`session_store = { default_ttl, cleanup_interval, ... }`).
    pub session_store: Option<SessionStoreTable>,
    /// Global crash barrier defaults (`crash_barrier = { enabled, max_restarts, ... }`).
    pub crash_barrier: Option<CrashBarrierTable>,
    /// GPU sampling by the host (`gpu_profiler = { enabled, interval_ms }`).
    pub gpu_profiler: Option<GpuProfilerTable>,
    /// Shared-memory transfer of large arrays (`zero_copy = { enabled, threshold_bytes }`).
    pub zero_copy: Option<ZeroCopyTable>,
    /// The pools (multi-pool form).
    #[serde(default)]
    pub pools: Vec<pool::PoolTable>,
}

impl SnakepitConfig {
    /// Parses a TOML document; errors name the key and what is allowed.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            source_name: "configuration".into(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            source_name: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Returns the embedded default configuration.
    pub fn embedded_default() -> Self {
        // The embedded file is covered by a test, so a parse failure here is a build defect.
        Self::from_toml_str(EMBEDDED_DEFAULT).unwrap_or_default()
    }

    /// Returns every pool with all defaults filled in, validated.
    ///
    /// The legacy single-pool form becomes one pool named `default`.
    pub fn pool_configs(&self) -> Result<Vec<PoolConfig>, ConfigError> {
        pool::normalize(self)
    }

    /// Returns whether pools start (`pooling_enabled`, absent means true; see the field).
    pub fn pooling_enabled(&self) -> bool {
        self.pooling_enabled.unwrap_or(true)
    }

    /// Returns the GPU profiler settings (the seeds' defaults when the table is absent).
    pub fn gpu_profiler_settings(&self) -> Result<GpuProfilerSettings, ConfigError> {
        self.gpu_profiler.clone().unwrap_or_default().settings()
    }

    /// Returns the normalized configuration of the pool named `name`.
    pub fn pool_config(&self, name: &str) -> Result<PoolConfig, ConfigError> {
        let pools = self.pool_configs()?;
        let names: Vec<String> = pools.iter().map(|p| p.name.clone()).collect();
        pools
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ConfigError::PoolNotFound {
                name: name.to_owned(),
                available: names,
            })
    }
}
