//! `snakepit exec`: one tool call through a pool started for it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use snakepit_core::config::SnakepitConfig;
use snakepit_core::CallOptions;
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

pub(crate) async fn run(a: ExecArgs) -> Result<(), CliError> {
    let args = crate::exec_args::parse_args(&a.args)?;
    let config = match &a.config {
        Some(path) => SnakepitConfig::from_file(path),
        None => Ok(SnakepitConfig::embedded_default()),
    }
    .map_err(|e| CliError::usage(e.to_string()))?;
    let mut pool_config = config
        .pool_config(&a.pool)
        .map_err(|e| CliError::usage(e.to_string()))?;
    if let Some(n) = a.pool_size {
        pool_config.pool_size = n;
    }
    pool_config
        .validate()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let ready_timeout = pool_config.startup_timeout + Duration::from_secs(5);

    let pool = Pool::start(pool_config)
        .await
        .map_err(|e| CliError::from_core(&e))?;
    let result = call(&pool, &a, args, ready_timeout).await;
    pool.shutdown().await;
    result
}

async fn call(
    pool: &Pool,
    a: &ExecArgs,
    args: serde_json::Value,
    ready_timeout: Duration,
) -> Result<(), CliError> {
    pool.await_ready(ready_timeout)
        .await
        .map_err(|e| CliError::from_core(&e))?;
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
