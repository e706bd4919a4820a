//! `Worker::execute` is bounded even when the call sets no timeout (the seeds' 30 s default).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use snakepit_core::config::PoolConfig;
use snakepit_core::{CallOptions, ErrorKind, ToolCall, WorkerId};
use snakepit_worker::{python_env, RunContext, Worker, WorkerSpec, DEFAULT_WORKER_EXECUTE_TIMEOUT};

async fn worker(id: &str) -> (Worker, std::sync::Arc<RunContext>) {
    let mut pool = PoolConfig::showcase(1);
    pool.heartbeat.enabled = false;
    pool.startup_timeout = Duration::from_secs(60);
    let python = python_env::ensure_python(None).await.expect("python");
    let run = RunContext::new().unwrap();
    let w = Worker::start(
        WorkerSpec::new(WorkerId::new(id), pool, python),
        run.clone(),
    )
    .await
    .unwrap();
    (w, run)
}

#[tokio::test]
async fn a_call_without_a_timeout_ends_after_the_default() {
    let (w, _run) = worker("default_timeout").await;
    // Paused time jumps to the next timer while the real worker sleeps: the 30 s default.
    tokio::time::pause();
    let call = ToolCall::new("sleep", serde_json::json!({"ms": 3_600_000})).unwrap();
    let err = w.execute(call).await.unwrap_err();
    tokio::time::resume();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(DEFAULT_WORKER_EXECUTE_TIMEOUT, Duration::from_secs(30));
    assert!(err.to_string().contains("30000 ms"), "{err}");
    w.kill();
}

#[tokio::test]
async fn the_calls_own_timeout_wins_over_the_default() {
    let (w, _run) = worker("own_timeout").await;
    let call = ToolCall::new("sleep", serde_json::json!({"ms": 60_000}))
        .unwrap()
        .with_options(CallOptions::default().with_timeout(Duration::from_millis(300)));
    let err = w.execute(call).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("300 ms"), "{err}");
    w.kill();
}
