//! A pool with heartbeats on: a worker its dependent heartbeat declares dead is replaced, and
//! the pool keeps serving.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use snakepit_core::config::HeartbeatConfig;
use snakepit_core::CallOptions;

fn fast(dependent: bool) -> HeartbeatConfig {
    HeartbeatConfig {
        enabled: true,
        ping_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
        max_missed_heartbeats: 2,
        initial_delay: Duration::ZERO,
        dependent,
    }
}

#[tokio::test]
async fn pool_replaces_a_worker_its_dependent_heartbeat_declared_dead() {
    let pool = support::ready_pool(1, |c| c.heartbeat = fast(true)).await;
    let frozen = pool.list_workers()[0].clone();
    kill(Pid::from_raw(frozen.pid as i32), Signal::SIGSTOP).unwrap();
    let replaced = support::eventually(Duration::from_secs(90), || {
        let workers = pool.list_workers();
        pool.stats().worker_restarts == 1 && workers.len() == 1 && workers[0].pid != frozen.pid
    })
    .await;
    assert!(
        replaced,
        "not replaced: {:?} {:?}",
        pool.stats(),
        pool.list_workers()
    );
    assert!(support::processes_mentioning(frozen.id.as_str())
        .iter()
        .all(|pid| *pid != frozen.pid));
    let out = pool
        .execute("add", json!({"a": 20, "b": 22}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(out.json, json!(42));
    pool.shutdown().await;
}
