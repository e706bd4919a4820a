//! `launch_contract`: how the host starts and talks to a pool's worker server.

use serde::Deserialize;

use super::{ConfigError, PoolConfig};

/// The protocol contract a pool's worker server speaks at start-up and on the host bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchContract {
    /// Ours: a Unix socket in the run's private directory, the run token on every call in
    /// both directions, `--address`/`--worker-id`/`--shutdown-grace-ms` (the default).
    #[default]
    Native,
    /// The original Snakepit worker server's contract, unchanged: `--adapter --port 0
    /// --elixir-address 127.0.0.1:<port> --snakepit-run-id <id>`, the port in the ready file,
    /// the worker and the host bridge on loopback TCP, and no token (the original sends none).
    Snakepit,
}

impl LaunchContract {
    /// The name as written in a config file.
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchContract::Native => "native",
            LaunchContract::Snakepit => "snakepit",
        }
    }
}

impl std::fmt::Display for LaunchContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rejects option combinations the `snakepit` contract cannot honour.
pub(super) fn validate(pool: &PoolConfig) -> Result<(), ConfigError> {
    if pool.launch_contract != LaunchContract::Snakepit {
        return Ok(());
    }
    let key = |k: &str| format!("pools[{}].{k}", pool.name);
    if pool.start_mode == super::StartMode::Zygote {
        return Err(ConfigError::invalid(
            key("start_mode"),
            "\"zygote\"",
            "\"spawn\" with launch_contract = \"snakepit\" (the original's server is started as it is)",
        ));
    }
    if pool.transport == super::TransportKind::Fast {
        return Err(ConfigError::invalid(
            key("transport"),
            "\"fast\"",
            "\"grpc\" with launch_contract = \"snakepit\" (the original's server speaks only gRPC; use launch_contract = \"native\" for the fast transport)",
        ));
    }
    if pool.worker_profile == super::WorkerProfile::Thread {
        return Err(ConfigError::invalid(
            key("worker_profile"),
            "\"thread\"",
            "\"process\" with launch_contract = \"snakepit\" (the original's process server takes one call at a time; use launch_contract = \"native\" for the thread profile)",
        ));
    }
    Ok(())
}
