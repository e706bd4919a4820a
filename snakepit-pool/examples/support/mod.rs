//! Shared start-up of the pool examples: a pool of one example adapter, ready to serve.
//!
//! The adapters live in `examples/python/snakepit_examples`, put on the workers' `PYTHONPATH`
//! here. `SNAKEPIT_EXAMPLE_DURATION_MS` bounds the examples that loop (the seeds' runner knob).

#![allow(dead_code)]

use std::time::Duration;

use snakepit_core::config::PoolConfig;
use snakepit_core::Error;
use snakepit_pool::Pool;

/// The folder holding the examples' Python package.
pub(crate) fn python_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python").to_owned()
}

/// A pool configuration of `size` workers running `adapter` (a class of `snakepit_examples`,
/// or a full class path), heartbeats as the seeds default them.
pub(crate) fn config(adapter: &str, size: usize) -> Result<PoolConfig, Error> {
    let spec = if adapter.contains('.') {
        adapter.to_owned()
    } else {
        format!("snakepit_examples.{adapter}")
    };
    let text = format!(
        "[[pools]]\nname = \"default\"\npool_size = {size}\nadapter_spec = {spec:?}\nstartup_batch_delay_ms = 0\nadapter_env = {{ PYTHONPATH = {:?} }}\n",
        python_dir()
    );
    let mut config =
        snakepit_core::config::SnakepitConfig::from_toml_str(&text)?.pool_config("default")?;
    // The examples also run on loaded CI machines: give workers time to start.
    config.startup_timeout = Duration::from_secs(60);
    Ok(config)
}

/// Starts `config` and waits until every worker is ready.
pub(crate) async fn ready(config: PoolConfig) -> Result<Pool, Error> {
    let pool = Pool::start(config).await?;
    pool.await_ready(Duration::from_secs(90)).await?;
    Ok(pool)
}

/// How long looping examples run (`SNAKEPIT_EXAMPLE_DURATION_MS`, default `default_ms`).
pub(crate) fn duration(default_ms: u64) -> Duration {
    let ms = std::env::var("SNAKEPIT_EXAMPLE_DURATION_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_ms);
    Duration::from_millis(ms)
}

/// The error of a call that must fail, or an error saying that it unexpectedly succeeded.
pub(crate) fn expect_failure<T: std::fmt::Debug>(
    result: Result<T, Error>,
    what: &str,
) -> Result<Error, Error> {
    match result {
        Err(e) => Ok(e),
        Ok(v) => Err(Error::pool(format!(
            "{what} should have failed but returned {v:?}"
        ))),
    }
}
