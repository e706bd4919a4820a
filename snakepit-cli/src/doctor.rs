//! `snakepit doctor`: checks the Python side of each configured pool, with a fix for each problem.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use snakepit_core::config::SnakepitConfig;
use snakepit_worker::python_env;
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

async fn run_python(
    python: &std::path::Path,
    args: &[&str],
    env: &std::collections::BTreeMap<String, String>,
) -> Result<(bool, String), String> {
    let out = Command::new(python)
        .args(args)
        .envs(env)
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

    let python = python_env::find_python(config.python_executable.as_deref());
    let version = run_python(&python, &["--version"], &Default::default()).await;
    let python_ok = matches!(version, Ok((true, _)));
    checks.push(Check {
        name: "python".into(),
        status: if python_ok { Status::Ok } else { Status::Error },
        message: match version {
            Ok((true, v)) => format!("{} ({v})", python.display()),
            Ok((false, e)) | Err(e) => format!(
                "{} does not run: {e} (install Python 3.9+, or set SNAKEPIT_PYTHON)",
                python.display()
            ),
        },
    });
    if python_ok {
        let imports = run_python(
            &python,
            &["-c", "import grpc, google.protobuf, snakepit_bridge"],
            &Default::default(),
        )
        .await;
        checks.push(Check {
            name: "snakepit_bridge".into(),
            status: if matches!(imports, Ok((true, _))) {
                Status::Ok
            } else {
                Status::Error
            },
            message: match imports {
                Ok((true, _)) => "grpc, protobuf and snakepit_bridge import".into(),
                Ok((false, e)) | Err(e) => {
                    format!("imports fail: {e} (run `snakepit setup` or `cargo xtask bootstrap`)")
                }
            },
        });
        for pool in &pools {
            let mut cmd: Vec<String> = vec!["-m".into(), pool.server_module.clone()];
            if let Some(script) = &pool.server_script {
                cmd = vec![script.display().to_string()];
            }
            cmd.extend([
                "--adapter".into(),
                pool.adapter_spec.clone(),
                "--health-check".into(),
            ]);
            let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let health = run_python(&python, &argv, &pool.adapter_env).await;
            checks.push(Check {
                name: format!("pool '{}' adapter", pool.name),
                status: if matches!(health, Ok((true, _))) {
                    Status::Ok
                } else {
                    Status::Error
                },
                message: match health {
                    Ok((true, _)) => format!("{} imports", pool.adapter_spec),
                    Ok((false, e)) | Err(e) => e,
                },
            });
            checks.push(transport_check(pool));
        }
    }
    let venv = python_env::default_venv_dir().filter(|v| v.join("bin/python").is_file());
    checks.push(Check {
        name: ".venv".into(),
        status: if venv.is_some() {
            Status::Ok
        } else {
            Status::Warning
        },
        message: match venv {
            Some(v) => v.display().to_string(),
            None => "no project .venv yet (`snakepit setup` creates it; `exec` does on first use)"
                .into(),
        },
    });

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
