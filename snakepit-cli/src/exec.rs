//! `snakepit exec`: one tool call through a pool started for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use snakepit_core::config::SnakepitConfig;
use snakepit_core::CallOptions;
use snakepit_pool::script::{run_as_script, ScriptError, ScriptOptions};
use snakepit_pool::Pool;

use crate::CliError;

/// Options of `snakepit exec`.
#[derive(Args)]
pub(crate) struct ExecArgs {
    /// The tool to run.
    tool: String,
    /// Keyword arguments as a JSON object: the JSON itself, `@FILE` to read it from a file,
    /// or `-` to read it from standard input.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Session id (calls of one session go to the same worker).
    #[arg(long)]
    session: Option<String>,
    /// Stream the tool's output, printing each chunk as one JSON line.
    #[arg(long)]
    stream: bool,
    /// Configuration file (default: the embedded configuration, the showcase adapter).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Which configured pool to use.
    #[arg(long, default_value = "default")]
    pool: String,
    /// Override the pool's size.
    #[arg(long)]
    pool_size: Option<usize>,
    /// Call timeout in milliseconds, 1 to 2592000000 (30 days) (default: the pool's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_MS))]
    timeout_ms: Option<u64>,
}

/// The longest `--timeout-ms` (the core's `MAX_CALL_TIMEOUT`, 30 days).
const MAX_TIMEOUT_MS: u64 = 2_592_000_000;

/// Runs the call; SIGINT/SIGTERM stop the workers gracefully (a second signal kills them) and
/// exit with 130/143 once the run directory is gone.
pub(crate) async fn run(a: ExecArgs) -> Result<(), CliError> {
    let args = crate::exec_args::parse_args(&a.args)?;
    let config = match &a.config {
        Some(path) => SnakepitConfig::from_file(path),
        None => Ok(SnakepitConfig::embedded_default()),
    }
    .map_err(|e| CliError::usage(e.to_string()))?;
    if !config.pooling_enabled() {
        return Err(CliError::usage(format!(
            "pooling is disabled (pooling_enabled = false in the configuration), so pool '{}' does not start; set pooling_enabled = true to run calls",
            a.pool
        )));
    }
    crate::init_logging(&config)?;
    let mut pool_config = config
        .pool_config(&a.pool)
        .map_err(|e| CliError::usage(e.to_string()))?;
    if let Some(n) = a.pool_size {
        pool_config.pool_size = n;
    }
    crate::python::adopt_project_venvs(std::slice::from_mut(&mut pool_config));
    pool_config
        .validate()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let options = ScriptOptions {
        timeout: pool_config.startup_timeout + Duration::from_secs(5),
        // In-flight calls get the workers' graceful stop, then their groups are killed.
        cleanup_timeout: pool_config.graceful_shutdown_timeout + Duration::from_secs(1),
        handle_signals: true,
    };
    match run_as_script(pool_config, options, move |pool| call(pool, a, args)).await {
        Ok(result) => result,
        Err(ScriptError::Pool(e)) => Err(CliError::from_core(&e)),
        Err(ScriptError::Interrupted { signal, forced }) => Err(CliError::signalled(
            signal.exit_code(),
            format!(
                "stopped by {}; {}",
                signal.name(),
                if forced {
                    "workers killed"
                } else {
                    "workers stopped gracefully"
                }
            ),
        )),
        Err(e @ ScriptError::Signals(_)) => Err(CliError::infra(e.to_string())),
    }
}

/// The call itself; runs inside [`run_as_script`], which waited for the pool and cleans up.
async fn call(pool: Arc<Pool>, a: ExecArgs, args: serde_json::Value) -> Result<(), CliError> {
    let mut opts = CallOptions::default();
    if let Some(s) = &a.session {
        opts = opts.with_session(s.as_str());
    }
    if let Some(ms) = a.timeout_ms {
        opts = opts.with_timeout(Duration::from_millis(ms));
    }
    if a.stream {
        let mut chunks = pool
            .execute_stream(&a.tool, args, opts)
            .await
            .map_err(|e| CliError::from_core(&e))?;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| CliError::from_core(&e))?;
            if chunk.is_final && chunk.raw.is_empty() {
                continue;
            }
            let line = match &chunk.json {
                Some(v) => v.to_string(),
                None => serde_json::Value::String(String::from_utf8_lossy(&chunk.raw).into_owned())
                    .to_string(),
            };
            println!("{line}");
        }
    } else {
        let payload = pool
            .execute(&a.tool, args, opts)
            .await
            .map_err(|e| CliError::from_core(&e))?;
        match payload.binary {
            Some(bytes) if payload.json.is_null() => {
                println!("{}", serde_json::json!({ "binary_bytes": bytes.len() }));
            }
            _ => println!(
                "{}",
                serde_json::to_string_pretty(&payload.json).unwrap_or_default()
            ),
        }
    }
    Ok(())
}
