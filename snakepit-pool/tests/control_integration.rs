//! Pool and worker control with real workers: worker info, lookup by pid, restart, stop and
//! recycle by id, bounded cleanup, registry entries of ended workers, shutdown with a queue.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use snakepit_core::{CallOptions, ErrorKind, WorkerId};
use snakepit_pool::WorkerState;

/// The worker ids the run's registry file lists.
fn registry_workers(pool: &snakepit_pool::Pool) -> Vec<String> {
    let path =
        snakepit_worker::registry::default_registry_dir().join(format!("{}.json", pool.run_id()));
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["workers"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn worker_info_reports_pid_state_uptime_requests_rss_and_last_error() {
    let pool = support::ready_pool(1, |c| c.pool_identifier = Some("general".into())).await;
    let id = pool.list_workers()[0].id.clone();
    pool.execute("add", json!({"a": 1, "b": 2}), CallOptions::default())
        .await
        .unwrap();
    let err = pool
        .execute("fail", json!({"message": "boom"}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PythonException);
    let info = pool.worker_info(&id).unwrap();
    assert!(info.pid > 0);
    assert_eq!(info.state, WorkerState::Idle);
    assert_eq!(info.requests, 1, "only successes count: {info:?}");
    assert!(info.rss_mb.is_some_and(|mb| mb > 0), "{info:?}");
    assert!(
        info.last_error
            .as_deref()
            .is_some_and(|e| e.contains("boom")),
        "{info:?}"
    );
    assert_eq!(info.pool_identifier.as_deref(), Some("general"));
    assert_eq!(pool.worker_by_pid(info.pid), Some(id.clone()));
    assert_eq!(pool.worker_by_pid(u32::MAX - 1), None);
    let unknown = pool.worker_info(&WorkerId::new("nope")).unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::Validation);
    assert!(unknown.to_string().contains(id.as_str()), "{unknown}");
    pool.shutdown().await;
}

#[tokio::test]
async fn restart_worker_replaces_one_worker_by_id() {
    let pool = support::ready_pool(2, |_| {}).await;
    let old = pool.list_workers()[0].clone();
    let fresh = pool.restart_worker(&old.id).await.unwrap();
    assert_ne!(fresh, old.id);
    let workers = pool.list_workers();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| w.id != old.id && w.pid != old.pid));
    assert!(
        support::eventually(Duration::from_secs(30), || {
            !support::processes_mentioning(old.id.as_str()).contains(&old.pid)
        })
        .await
    );
    assert_eq!(
        pool.stats().worker_restarts,
        0,
        "a requested restart is not a crash"
    );
    assert!(!registry_workers(&pool).contains(&old.id.to_string()));
    pool.shutdown().await;
}

#[tokio::test]
async fn stop_worker_leaves_the_pool_one_short_and_recycle_replaces_first() {
    let pool = support::ready_pool(2, |_| {}).await;
    let [a, b] = [
        pool.list_workers()[0].clone(),
        pool.list_workers()[1].clone(),
    ];
    pool.stop_worker(&a.id).await.unwrap();
    assert_eq!(pool.list_workers().len(), 1);
    assert_eq!(pool.stats().worker_restarts, 0);
    let again = pool.stop_worker(&a.id).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Validation);
    pool.recycle_worker(&b.id).unwrap();
    let replaced = support::eventually(Duration::from_secs(90), || {
        let w = pool.list_workers();
        w.len() == 1 && w[0].id != b.id
    })
    .await;
    assert!(replaced, "{:?}", pool.list_workers());
    assert_eq!(pool.stats().recycled, 1);
    pool.execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap();
    pool.shutdown().await;
}

#[tokio::test]
async fn a_crashed_workers_registry_entry_is_removed() {
    let pool = support::ready_pool(1, |_| {}).await;
    let w = pool.list_workers()[0].clone();
    assert!(registry_workers(&pool).contains(&w.id.to_string()));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let gone = support::eventually(Duration::from_secs(60), || {
        !registry_workers(&pool).contains(&w.id.to_string())
    })
    .await;
    assert!(gone, "{:?}", registry_workers(&pool));
    pool.shutdown().await;
}

#[tokio::test]
async fn shutdown_answers_queued_callers_at_once_with_a_pool_error() {
    let pool = std::sync::Arc::new(
        support::ready_pool(1, |c| c.queue_timeout = Duration::from_secs(600)).await,
    );
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.execute("sleep", json!({"ms": 2000}), CallOptions::default())
                .await
        })
    };
    assert!(support::eventually(Duration::from_secs(30), || pool.stats().busy == 1).await);
    let queued = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.execute("ping", json!({}), CallOptions::default())
                .await
        })
    };
    assert!(support::eventually(Duration::from_secs(30), || pool.stats().queued == 1).await);
    let shutdown = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.shutdown().await })
    };
    // Long before the 600 s queue timeout: the queued call is answered by the shutdown.
    let err = tokio::time::timeout(Duration::from_secs(60), queued)
        .await
        .expect("the queued caller was answered")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pool);
    assert!(err.to_string().contains("shut down"), "{err}");
    shutdown.await.unwrap();
    let _ = busy.await.unwrap();
}

#[tokio::test]
async fn cleanup_kills_every_worker_within_the_bound_and_reports_none_left() {
    let pool = support::ready_pool(2, |_| {}).await;
    let pids: Vec<u32> = pool.list_workers().iter().map(|w| w.pid).collect();
    // One of them is frozen, so only SIGKILL can end it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0] as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let outcome = pool.cleanup(Duration::from_secs(10)).await;
    assert!(outcome.leftover.is_empty(), "{outcome:?}");
    let alive: Vec<u32> = support::processes_mentioning(pool.run_id().as_str());
    assert!(pids.iter().all(|p| !alive.contains(p)), "{alive:?}");
    let err = pool
        .execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pool);
}
