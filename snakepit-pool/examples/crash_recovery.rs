//! Crash recovery: a worker that dies mid-call is replaced, transient errors are retried for
//! idempotent calls, and each worker's circuit breaker state is visible.
//!
//! `cargo run -p snakepit-pool --example crash_recovery` (the seeds' `crash_recovery.exs`).

mod support;

use std::time::Duration;

use serde_json::json;
use snakepit_core::{CallOptions, Error, ErrorKind};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut config = support::config("CrashyAdapter", 1)?;
    config.resilience = toml::from_str(
        "[retry]\nmax_attempts = 3\nbackoff_ms = [20, 40]\nretriable_errors = [\"python_error\"]\n[circuit_breaker]\nfailure_threshold = 5\nreset_timeout_ms = 30000\n",
    )
    .map_err(|e| Error::pool(format!("example resilience table: {e}")))?;
    // Calls made while the replacement starts wait in the queue: give it start-up time.
    config.queue_timeout = Duration::from_secs(60);
    let pool = support::ready(config).await?;
    let opts = CallOptions::default;

    let before = pool.execute("whoami", json!({}), opts()).await?.json;
    let crash = support::expect_failure(pool.execute("crash", json!({}), opts()).await, "crash")?;
    println!("crash -> {} ({})", crash.kind(), crash);
    assert_eq!(crash.kind(), ErrorKind::WorkerCrash);

    // The pool notices the exit and starts a replacement; this call queues until it is ready.
    let after = pool.execute("whoami", json!({}), opts()).await?.json;
    println!(
        "worker pid {before} replaced by {after}; restarts: {}",
        pool.stats().worker_restarts
    );
    assert_ne!(before, after);

    // A transient failure (ConnectionError twice) is retried because the call is idempotent.
    let flaky = pool
        .execute(
            "flaky",
            json!({"key": "x", "failures": 2}),
            opts().idempotent(),
        )
        .await?;
    println!("flaky succeeded after {} attempts", flaky.json["attempts"]);
    for w in pool.list_workers() {
        println!("{}: circuit {:?}", w.id, w.circuit_state);
    }
    pool.shutdown().await;
    Ok(())
}
