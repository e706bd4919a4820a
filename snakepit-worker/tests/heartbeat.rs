//! Heartbeats against real workers: pongs counted, a frozen (SIGSTOP) worker missing pings,
//! dependent mode killing it, independent mode counting and keeping it, the initial delay.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use snakepit_core::config::{HeartbeatConfig, PoolConfig};
use snakepit_core::{ToolCall, WorkerId};
use snakepit_worker::{python_env, HeartbeatStatus, RunContext, Worker, WorkerSpec};

/// Generous bound for anything that waits on the loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

async fn start(id: &str, heartbeat: HeartbeatConfig) -> (Worker, std::sync::Arc<RunContext>) {
    let mut pool = PoolConfig::showcase(1);
    pool.heartbeat = heartbeat;
    pool.startup_timeout = Duration::from_secs(60);
    let python = python_env::ensure_python(None).await.expect("python");
    let run = RunContext::new().unwrap();
    let worker = Worker::start(
        WorkerSpec::new(WorkerId::new(id), pool, python),
        run.clone(),
    )
    .await
    .unwrap();
    (worker, run)
}

/// Fast pings with a short timeout, so a frozen worker misses quickly.
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

async fn until(worker: &Worker, cond: impl Fn(&HeartbeatStatus) -> bool) -> HeartbeatStatus {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = worker.heartbeat_status().unwrap();
        if cond(&status) || tokio::time::Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(worker: &Worker, sig: Signal) {
    kill(Pid::from_raw(worker.pid() as i32), sig).unwrap();
}

#[tokio::test]
async fn an_answering_worker_has_its_pongs_counted_and_no_misses() {
    let cfg = HeartbeatConfig {
        timeout: Duration::from_secs(20),
        ..fast(true)
    };
    let (worker, _run) = start("hb_pongs", cfg).await;
    let status = until(&worker, |s| s.pongs >= 3).await;
    assert!(status.pongs >= 3, "{status:?}");
    assert_eq!(status.declared_dead, 0, "{status:?}");
    assert!(worker.exit_info().is_none());
    worker.stop().await;
}

#[tokio::test]
async fn dependent_heartbeat_kills_a_frozen_worker_after_max_misses() {
    let (worker, _run) = start("hb_dependent", fast(true)).await;
    until(&worker, |s| s.pongs >= 1).await;
    signal(&worker, Signal::SIGSTOP);
    let exit = tokio::time::timeout(PATIENCE, worker.exited())
        .await
        .expect("the heartbeat killed the frozen worker");
    assert_eq!(
        exit.kind,
        snakepit_worker::ExitKind::Signalled { signal: 9 },
        "{exit:?}"
    );
    assert_eq!(exit.host_signal, snakepit_worker::HostSignal::HeartbeatLost);
    let status = worker.heartbeat_status().unwrap();
    assert_eq!(status.declared_dead, 1, "{status:?}");
    assert!(status.missed_in_a_row >= 2, "{status:?}");
}

#[tokio::test]
async fn independent_heartbeat_counts_misses_and_keeps_the_worker() {
    let (worker, _run) = start("hb_independent", fast(false)).await;
    until(&worker, |s| s.pongs >= 1).await;
    signal(&worker, Signal::SIGSTOP);
    let frozen = until(&worker, |s| s.missed_in_a_row >= 4).await;
    assert!(frozen.missed_in_a_row >= 4, "{frozen:?}");
    assert!(frozen.missed_total >= 4, "{frozen:?}");
    // Declared dead once for the run of misses, and left running.
    assert_eq!(frozen.declared_dead, 1, "{frozen:?}");
    assert!(
        worker.exit_info().is_none(),
        "independent mode killed the worker"
    );
    signal(&worker, Signal::SIGCONT);
    let pongs_before = frozen.pongs;
    let thawed = until(&worker, |s| {
        s.missed_in_a_row == 0 && s.pongs > pongs_before
    })
    .await;
    assert_eq!(thawed.missed_in_a_row, 0, "{thawed:?}");
    assert!(thawed.missed_total >= frozen.missed_total, "{thawed:?}");
    let out = worker
        .execute(ToolCall::new("add", serde_json::json!({"a": 1, "b": 2})).unwrap())
        .await
        .unwrap();
    assert_eq!(out.json, serde_json::json!(3));
    worker.stop().await;
}

#[tokio::test]
async fn initial_delay_holds_back_the_first_ping_and_disabled_has_no_status() {
    let cfg = HeartbeatConfig {
        initial_delay: Duration::from_secs(600),
        ..fast(true)
    };
    let (delayed, _run) = start("hb_delayed", cfg).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(delayed.heartbeat_status().unwrap().pings, 0);
    delayed.stop().await;
    let off = HeartbeatConfig {
        enabled: false,
        ..fast(true)
    };
    let (quiet, _run) = start("hb_off", off).await;
    assert_eq!(quiet.heartbeat_status(), None);
    quiet.stop().await;
}
