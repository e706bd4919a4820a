//! `snakepit doctor`: checks the Python side of each configured pool, with a fix for each problem.
//!
//! Each pool is checked with its own interpreter (resolved as the pool would, and the reason
//! printed), and its adapter is started for real, one worker, so an `initialize()` that raises
//! or hangs shows here rather than at the first call.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use snakepit_core::config::{PoolConfig, SnakepitConfig};
use snakepit_core::WorkerId;
use snakepit_worker::python_env::{self, PythonSource};
use snakepit_worker::{RunContext, Worker, WorkerSpec};
use tokio::process::Command;

use crate::CliError;

/// Options of `snakepit doctor`.
#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// Configuration file (default: the embedded configuration).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warning,
    Error,
}

struct Check {
    name: String,
    status: Status,
    message: String,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            message: message.into(),
        }
    }
}

async fn run_python(python: &Path, args: &[&str]) -> Result<(bool, String), String> {
    let out = Command::new(python)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(60), out).await {
        Err(_) => Err("timed out after 60 s".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(o)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            Ok((o.status.success(), text.trim().to_owned()))
        }
    }
}

/// Checks the interpreter of one pool; returns it when the pool's adapter can be tried.
async fn check_python(pool: &PoolConfig, checks: &mut Vec<Check>) -> Option<PathBuf> {
    let name = format!("pool '{}' python", pool.name);
    let choice = crate::python::resolve(pool);
    let mut why = choice.reason.clone();
    for s in &choice.skipped {
        why.push_str(&format!("; skipped {s}"));
    }
    if let PythonSource::Owned(dir) = &choice.source {
        if !choice.python.is_file() {
            checks.push(Check::new(
                name,
                Status::Warning,
                format!(
                    "{} is not built yet: {why} (`snakepit setup` builds it; `exec` does on first use)",
                    dir.display()
                ),
            ));
            return None;
        }
    }
    let python = choice.python.clone();
    match run_python(&python, &["--version"]).await {
        Ok((true, v)) => checks.push(Check::new(
            name,
            Status::Ok,
            format!("{} ({v}), picked because: {why}", python.display()),
        )),
        Ok((false, e)) | Err(e) => {
            checks.push(Check::new(
                name,
                Status::Error,
                format!(
                    "{} does not run: {} (picked because: {why}; install Python 3.9+, or set SNAKEPIT_PYTHON)",
                    python.display(),
                    if e.is_empty() { "it exited without output" } else { &e }
                ),
            ));
            return None;
        }
    }
    let imports = run_python(
        &python,
        &["-c", "import grpc, google.protobuf, snakepit_bridge"],
    )
    .await;
    let bridge = format!("pool '{}' snakepit_bridge", pool.name);
    match imports {
        Ok((true, _)) => checks.push(Check::new(
            bridge,
            Status::Ok,
            "grpc, protobuf and snakepit_bridge import",
        )),
        Ok((false, e)) | Err(e) => {
            checks.push(Check::new(
                bridge,
                Status::Error,
                format!(
                    "imports fail: {e} (run `snakepit setup`, or install snakepit-bridge into {})",
                    python.display()
                ),
            ));
            return None;
        }
    }
    let missing = python_env::missing_packages(
        &python,
        &pool.python_env.packages,
        pool.python_env.install_timeout,
    )
    .await;
    if !pool.python_env.packages.is_empty() {
        checks.push(match missing {
            Ok(m) if m.is_empty() => Check::new(
                format!("pool '{}' python_packages", pool.name),
                Status::Ok,
                pool.python_env.packages.join(", "),
            ),
            Ok(m) => Check::new(
                format!("pool '{}' python_packages", pool.name),
                Status::Error,
                format!(
                    "missing {} (`snakepit setup`, or `{} -m pip install {}`)",
                    m.join(", "),
                    python.display(),
                    m.join(" ")
                ),
            ),
            Err(e) => Check::new(
                format!("pool '{}' python_packages", pool.name),
                Status::Error,
                e.to_string(),
            ),
        });
    }
    Some(python)
}

/// Starts one worker of the pool for real: the adapter imports, is constructed and initialized.
async fn check_adapter(pool: &PoolConfig, python: PathBuf, checks: &mut Vec<Check>) {
    let name = format!("pool '{}' adapter", pool.name);
    let run = match RunContext::new() {
        Ok(run) => run,
        Err(e) => {
            checks.push(Check::new(name, Status::Error, e.to_string()));
            return;
        }
    };
    let mut config = pool.clone();
    config.heartbeat.enabled = false;
    let spec = WorkerSpec::new(WorkerId::for_pool(&pool.name, 0), config, python);
    match Worker::start(spec, run).await {
        Ok(worker) => {
            worker.stop().await;
            checks.push(Check::new(
                name,
                Status::Ok,
                format!("{} started and initialize() completed", pool.adapter_spec),
            ));
        }
        Err(e) => checks.push(Check::new(
            name,
            Status::Error,
            format!("{} did not start: {e}", pool.adapter_spec),
        )),
    }
}

pub(crate) async fn run(args: DoctorArgs) -> Result<(), CliError> {
    let config = match &args.config {
        Some(path) => SnakepitConfig::from_file(path),
        None => Ok(SnakepitConfig::embedded_default()),
    }
    .map_err(|e| CliError::usage(e.to_string()))?;
    let pools = config
        .pool_configs()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let mut checks = Vec::new();
    for pool in &pools {
        if let Some(python) = check_python(pool, &mut checks).await {
            check_adapter(pool, python, &mut checks).await;
        }
        checks.push(transport_check(pool));
    }

    let mut failed = false;
    for c in &checks {
        let tag = match c.status {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => {
                failed = true;
                "error"
            }
        };
        println!("[{tag:>7}] {}: {}", c.name, c.message);
    }
    if failed {
        return Err(CliError::infra("doctor found problems (see above)"));
    }
    Ok(())
}

/// Which transport carries the pool's tool calls (and what `fast` needs).
fn transport_check(pool: &snakepit_core::config::PoolConfig) -> Check {
    use snakepit_core::config::{TransportKind, DEFAULT_SERVER_MODULE};
    let custom_server = pool.server_script.is_some() || pool.server_module != DEFAULT_SERVER_MODULE;
    let (status, message) = match pool.transport {
        TransportKind::Fast if custom_server => (
            Status::Warning,
            "fast, with a custom server: it must open SNAKEPIT_FAST_ADDRESS like \
             snakepit_bridge.server does (set transport = \"grpc\" otherwise)"
                .to_owned(),
        ),
        TransportKind::Fast => (
            Status::Ok,
            format!(
                "fast (framed protobuf on a private Unix socket, max_message_bytes {}); heartbeat on gRPC",
                pool.max_message_bytes
            ),
        ),
        TransportKind::Grpc => (Status::Ok, "grpc (snakepit.bridge.BridgeService)".to_owned()),
    };
    Check {
        name: format!("pool '{}' transport", pool.name),
        status,
        message,
    }
}
