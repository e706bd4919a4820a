//! The crash barrier with real workers: classification, crash loops stop, idempotent calls
//! are retried on another worker (others never), devices are tainted, and a pool under random
//! SIGKILLs answers every call and ends at full size.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use snakepit_core::{CallOptions, ErrorKind};
use support::{eventually, fault_pool, fault_pool_on};

fn sigkill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_tool_stops_restarts_after_max_restarts() {
    let pool = fault_pool(1, |c| {
        c.crash_barrier.max_restarts = 2;
        c.crash_barrier.window = Duration::from_secs(120);
    })
    .await;
    let mut crash_errors = 0;
    for _ in 0..3 {
        let err = pool
            .execute("crash", json!({"code": 7}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WorkerCrash, "{err}");
        crash_errors += 1;
    }
    assert!(
        eventually(Duration::from_secs(30), || pool.stats().stopped_slots == 1).await,
        "the slot kept restarting: {:?}",
        pool.stats()
    );
    let err = pool
        .execute("whoami", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pool);
    assert!(err.to_string().contains("stopped restarting"), "{err}");
    assert!(err.to_string().contains("max_restarts"), "{err}");
    let stats = pool.crash_barrier_stats();
    assert_eq!(stats.stopped_slots, 1);
    assert_eq!(stats.crashes.get("exit"), Some(&crash_errors));
    assert_eq!(pool.stats().workers, 0);
    assert_eq!(
        pool.stats().worker_restarts,
        2,
        "two restarts, then the barrier"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaths_are_classified_by_exit_code_and_signal() {
    let pool = fault_pool(1, |_| {}).await;
    for tool in ["crash", "segfault"] {
        let err = pool
            .execute(tool, json!({}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WorkerCrash, "{tool}: {err}");
        assert!(eventually(Duration::from_secs(60), || pool.stats().workers == 1).await);
    }
    let pid = pool.list_workers()[0].pid;
    sigkill(pid);
    assert!(
        eventually(Duration::from_secs(60), || {
            pool.crash_barrier_stats().crashes.get("signal") == Some(&2)
        })
        .await,
        "{:?}",
        pool.crash_barrier_stats()
    );
    assert_eq!(pool.crash_barrier_stats().crashes.get("exit"), Some(&1));
    pool.shutdown().await;
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_calls_are_retried_and_on_another_worker(transport: TransportKind) {
    let dir = tempfile::tempdir().unwrap();
    let pool = fault_pool_on(transport, 2, |_| {}).await;
    let marker = |name: &str| dir.path().join(name).display().to_string();
    let err = pool
        .execute(
            "crash_once",
            json!({"marker": marker("a")}),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::WorkerCrash,
        "a non-idempotent call was retried"
    );
    assert_eq!(pool.stats().crash_retries, 0);
    assert!(eventually(Duration::from_secs(60), || pool.stats().workers == 2).await);
    let before: Vec<u32> = pool.list_workers().iter().map(|w| w.pid).collect();
    let pid = pool
        .execute(
            "crash_once",
            json!({"marker": marker("b")}),
            CallOptions::default().idempotent(),
        )
        .await
        .unwrap()
        .json;
    let pid = pid.as_u64().unwrap() as u32;
    assert_eq!(pool.stats().crash_retries, 1);
    assert!(
        before.contains(&pid),
        "the retry ran on the surviving worker"
    );
    let crashed: Vec<&u32> = before.iter().filter(|p| **p != pid).collect();
    assert_eq!(crashed.len(), 1);
    pool.shutdown().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_taints_the_workers_device_for_taint_ms() {
    let taint = Duration::from_millis(2500);
    let pool = fault_pool(1, |c| {
        c.adapter_env
            .insert("CUDA_VISIBLE_DEVICES".into(), "0".into());
        c.crash_barrier.taint = taint;
    })
    .await;
    let crashed_at = Instant::now();
    pool.execute("crash", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert!(
        eventually(Duration::from_secs(10), || {
            pool.crash_barrier_stats().tainted_devices == vec!["cuda:0".to_string()]
        })
        .await,
        "{:?}",
        pool.crash_barrier_stats()
    );
    assert!(eventually(Duration::from_secs(60), || pool.stats().workers == 1).await);
    // The replacement on the tainted device started only once the taint had passed.
    assert!(
        crashed_at.elapsed() >= taint,
        "replacement ready after {:?}, taint {taint:?}",
        crashed_at.elapsed()
    );
    assert!(pool.crash_barrier_stats().tainted_devices.is_empty());
    pool.shutdown().await;
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_calls_under_random_sigkills_all_end_and_idempotent_ones_succeed(transport: TransportKind) {
    let pool = Arc::new(
        fault_pool_on(transport, 4, |c| {
            // Random kills are not a crash loop: a short window keeps the backoff short.
            c.crash_barrier.max_restarts = 10_000;
            c.crash_barrier.window = Duration::from_secs(1);
            // Every worker is busy, so a retry can land on the killer's next victim: allow a few.
            c.crash_barrier.max_retries = 3;
            c.queue_timeout = Duration::from_secs(30);
        })
        .await,
    );
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut kills = 0u32;
            let mut n = 0usize;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let workers = pool.list_workers();
                if !workers.is_empty() {
                    n = n.wrapping_mul(7).wrapping_add(3);
                    sigkill(workers[n % workers.len()].pid);
                    kills += 1;
                }
            }
            kills
        })
    };
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..250 {
                    let idempotent = (t + i) % 2 == 0;
                    let opts = match idempotent {
                        true => CallOptions::default().idempotent(),
                        false => CallOptions::default(),
                    };
                    let r = pool.execute("work", json!({"ms": 2}), opts).await;
                    outcomes.push((idempotent, r.map(|_| ()).map_err(|e| e.kind())));
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = killer.await.unwrap();
    assert_eq!(outcomes.len(), 2000, "every call ended");
    let failed_idempotent: Vec<_> = outcomes.iter().filter(|(i, r)| *i && r.is_err()).collect();
    let failed_other: Vec<_> = outcomes.iter().filter(|(i, r)| !*i && r.is_err()).collect();
    eprintln!(
        "{kills} SIGKILLs; failed: {} idempotent, {} other; {} crash retries",
        failed_idempotent.len(),
        failed_other.len(),
        pool.stats().crash_retries
    );
    assert!(kills > 0, "the killer never struck");
    assert!(
        failed_idempotent.is_empty(),
        "idempotent calls failed: {failed_idempotent:?}"
    );
    for (_, r) in &failed_other {
        // A non-idempotent call whose worker died is a typed crash (or transport) error.
        assert!(
            matches!(r, Err(ErrorKind::WorkerCrash | ErrorKind::Transport)),
            "{r:?}"
        );
    }
    assert!(
        eventually(Duration::from_secs(60), || pool.stats().workers == 4).await,
        "the pool did not get back to full size: {:?}",
        pool.stats()
    );
    pool.shutdown().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_ready_waits_for_the_replacement_of_a_worker_that_died() {
    let pool = fault_pool(1, |_| {}).await;
    let err = pool
        .execute("crash", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerCrash, "{err}");
    // No worker is ready now, and none failed to start: the replacement is awaited, not
    // reported as "no worker could start".
    pool.await_ready(Duration::from_secs(60))
        .await
        .expect("the replacement becomes ready");
    assert_eq!(pool.stats().workers, 1);
    let out = pool
        .execute("whoami", json!({}), CallOptions::default())
        .await
        .unwrap();
    assert!(out.json.is_number(), "{}", out.json);
    pool.shutdown().await;
}
