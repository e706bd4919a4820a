//! The original Snakepit worker server's launch contract (`launch_contract = "snakepit"`).
//!
//! The command line is exactly the original's: `--adapter`, `--port 0`, `--elixir-address
//! 127.0.0.1:<port>`, `--snakepit-run-id` and the heartbeat flags, nothing of ours (its
//! argparse rejects unknown flags). The worker writes its bound port to the ready file, listens
//! on TCP (loopback, since the host only dials 127.0.0.1) and sends no token, so none is given.

use std::path::Path;

use snakepit_core::config::HeartbeatConfig;
use tokio::process::Command;

use crate::run::RunContext;
use crate::worker::{heartbeat_json, WorkerSpec, RUN_ID_ENV_VAR, TOKEN_ENV_VAR};

/// Builds the original-style command line and environment of `spec`'s worker.
pub(crate) fn command(spec: &WorkerSpec, run: &RunContext, ready_file: &Path) -> Command {
    let pool = &spec.pool;
    let mut cmd = Command::new(&spec.python);
    match &pool.server_script {
        Some(script) => cmd.arg(script),
        None => cmd.arg("-m").arg(&pool.server_module),
    };
    cmd.args(&pool.adapter_args)
        .args(["--port", "0"])
        .arg("--snakepit-run-id")
        .arg(run.run_id().as_str());
    if let Some(host) = &spec.host_address {
        cmd.arg("--elixir-address").arg(host);
        cmd.env("SNAKEPIT_GRPC_ADDRESS", host);
    }
    cmd.args(heartbeat_flags(&pool.heartbeat));
    // Thread limits ("1" for process workers) and GRPC_VERBOSITY sit under adapter_env, as
    // for our own server; no zero-copy announcement (the original cannot read handles).
    cmd.envs(&pool.thread_limits)
        .env("GRPC_VERBOSITY", pool.worker_output.grpc_verbosity)
        .env_remove(TOKEN_ENV_VAR)
        .env("GRPC_POLL_STRATEGY", "poll")
        .env("PYTHONUNBUFFERED", "1")
        .env("SNAKEPIT_OTEL_CONSOLE", "false")
        .env("SNAKEPIT_READY_FILE", ready_file)
        .env(RUN_ID_ENV_VAR, run.run_id().as_str())
        // The host already made the worker a process group leader; setsid would fail there.
        .env("SNAKEPIT_PROCESS_GROUP", "0")
        .env("SNAKEPIT_PARENT_PID", std::process::id().to_string())
        .env("SNAKEPIT_HEARTBEAT_CONFIG", heartbeat_json(&pool.heartbeat))
        .envs(&pool.adapter_env);
    cmd
}

/// The original server's heartbeat flags for the pool's settings.
fn heartbeat_flags(h: &HeartbeatConfig) -> Vec<String> {
    let mut flags = Vec::new();
    if h.enabled {
        flags.push("--heartbeat-enabled".to_owned());
    }
    for (flag, value) in [
        ("--heartbeat-interval-ms", h.ping_interval.as_millis()),
        ("--heartbeat-timeout-ms", h.timeout.as_millis()),
        (
            "--heartbeat-max-missed",
            u128::from(h.max_missed_heartbeats),
        ),
        ("--heartbeat-initial-delay-ms", h.initial_delay.as_millis()),
    ] {
        flags.push(flag.to_owned());
        flags.push(value.to_string());
    }
    flags.push(
        if h.dependent {
            "--heartbeat-dependent"
        } else {
            "--heartbeat-independent"
        }
        .to_owned(),
    );
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use snakepit_core::config::{LaunchContract, PoolConfig};
    use snakepit_core::WorkerId;

    #[test]
    fn command_line_is_the_originals_and_carries_no_token() {
        let run = RunContext::new().unwrap();
        let mut pool = PoolConfig::showcase(1);
        pool.launch_contract = LaunchContract::Snakepit;
        pool.transport = snakepit_core::config::TransportKind::Grpc;
        pool.heartbeat.enabled = false;
        pool.heartbeat.dependent = false;
        let mut spec = WorkerSpec::new(WorkerId::for_pool("p", 1), pool, "python3".into());
        spec.host_address = Some("127.0.0.1:4000".into());
        let cmd = spec.command(&run, Path::new("/unused.sock"), Path::new("/tmp/r.ready"));
        let std = cmd.as_std();
        let args: Vec<String> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let expected: Vec<String> = [
            "-m",
            "snakepit_bridge.server",
            "--adapter",
            snakepit_core::config::DEFAULT_ADAPTER,
            "--port",
            "0",
            "--snakepit-run-id",
            run.run_id().as_str(),
            "--elixir-address",
            "127.0.0.1:4000",
            "--heartbeat-interval-ms",
            "2000",
            "--heartbeat-timeout-ms",
            "10000",
            "--heartbeat-max-missed",
            "3",
            "--heartbeat-initial-delay-ms",
            "0",
            "--heartbeat-independent",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(args, expected);
        let envs: Vec<(String, Option<String>)> = std
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(envs.contains(&(TOKEN_ENV_VAR.to_string(), None)));
        assert!(envs.contains(&(
            "SNAKEPIT_READY_FILE".to_string(),
            Some("/tmp/r.ready".to_string())
        )));
        assert!(envs.contains(&(
            "SNAKEPIT_OTEL_CONSOLE".to_string(),
            Some("false".to_string())
        )));
    }
}
