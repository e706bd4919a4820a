//! Script mode with real workers: the pool is cleaned up on success, on error and on panic.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use snakepit_core::config::PoolConfig;
use snakepit_core::{CallOptions, ErrorKind};
use snakepit_pool::script::{run_as_script, ScriptError, ScriptOptions};
use support::eventually;

fn options() -> ScriptOptions {
    ScriptOptions {
        timeout: Duration::from_secs(90),
        handle_signals: false,
        ..ScriptOptions::default()
    }
}

fn config(size: usize) -> PoolConfig {
    let mut c = PoolConfig::showcase(size);
    c.heartbeat.enabled = false;
    c.startup_timeout = Duration::from_secs(60);
    c
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_returns_the_value_and_stops_the_workers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let sum = run_as_script(config(2), options(), move |pool| async move {
        record
            .lock()
            .unwrap()
            .extend(pool.list_workers().iter().map(|w| w.pid));
        pool.execute(
            "add",
            serde_json::json!({"a": 1, "b": 2}),
            CallOptions::default(),
        )
        .await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(sum.json, serde_json::json!(3));
    let pids = seen.lock().unwrap().clone();
    assert_eq!(pids.len(), 2);
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "workers outlived the script"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_script_still_stops_the_workers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let outcome = tokio::spawn(run_as_script(
        config(1),
        options(),
        move |pool| async move {
            record
                .lock()
                .unwrap()
                .extend(pool.list_workers().iter().map(|w| w.pid));
            panic!("the script failed");
        },
    ))
    .await;
    let err = outcome.unwrap_err();
    assert!(err.is_panic(), "the panic is resumed after cleanup");
    let pids = seen.lock().unwrap().clone();
    assert_eq!(pids.len(), 1);
    assert!(
        eventually(Duration::from_secs(10), || pids.iter().all(|p| !alive(*p))).await,
        "the worker outlived the panicking script"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_cannot_start_is_a_typed_error() {
    let mut c = config(1);
    c.adapter_spec = "no_such_module.Adapter".into();
    c.adapter_args = vec!["--adapter".into(), c.adapter_spec.clone()];
    let opts = ScriptOptions {
        timeout: Duration::from_secs(60),
        ..options()
    };
    let err = run_as_script(c, opts, |_pool| async { 1 })
        .await
        .unwrap_err();
    match err {
        ScriptError::Pool(e) => {
            assert_eq!(e.kind(), ErrorKind::Pool, "{e}");
            assert!(e.to_string().contains("no_such_module"), "{e}");
        }
        other => panic!("expected a pool error, got {other:?}"),
    }
}
