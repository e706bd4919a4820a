//! Sessions with real workers: they stick, expire, are deleted (Python sees CleanupSession),
//! move visibly when their worker dies, respect max_sessions and the affinity mode.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use snakepit_core::config::SessionAffinity;
use snakepit_core::{CallOptions, ErrorKind, SessionId};
use snakepit_pool::{Pool, SessionEvent, SessionOptions};
use support::{eventually, fault_pool_on};

async fn call_in(
    pool: &Pool,
    session: &str,
    tool: &str,
    args: serde_json::Value,
) -> serde_json::Value {
    pool.execute(tool, args, CallOptions::default().with_session(session))
        .await
        .unwrap()
        .json
}

fn log_of(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("sessions.log")).unwrap_or_default()
}

fn with_log(dir: &tempfile::TempDir, c: &mut snakepit_core::config::PoolConfig) {
    c.adapter_env.insert(
        "SESSION_LOG".into(),
        dir.path().join("sessions.log").display().to_string(),
    );
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_sticks_to_its_worker(transport: TransportKind) {
    let pool = fault_pool_on(transport, 3, |_| {}).await;
    let first = call_in(&pool, "s1", "remember", json!({"key": "k", "value": "v"})).await;
    for _ in 0..10 {
        assert_eq!(call_in(&pool, "s1", "whoami", json!({})).await, first);
    }
    assert_eq!(
        call_in(&pool, "s1", "recall", json!({"key": "k"})).await,
        json!("v")
    );
    let s = pool.get_session(&SessionId::from("s1")).unwrap();
    assert_eq!(s.calls, 12);
    assert_eq!(s.moves, 0);
    assert!(s.worker.is_some());
    assert_eq!(pool.stats().sessions, 1);
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_and_their_worker_cleans_up(transport: TransportKind) {
    let dir = tempfile::tempdir().unwrap();
    let pool = fault_pool_on(transport, 1, |c| {
        with_log(&dir, c);
        c.sessions.default_ttl = Duration::from_millis(300);
        c.sessions.cleanup_interval = Duration::from_millis(50);
    })
    .await;
    let mut events = pool.session_events();
    call_in(&pool, "short", "whoami", json!({})).await;
    assert!(pool.session_worker(&SessionId::from("short")).is_some());
    assert!(
        eventually(Duration::from_secs(20), || log_of(&dir)
            .contains("cleanup short"))
        .await,
        "CleanupSession never reached Python"
    );
    assert!(pool.list_sessions().is_empty());
    assert_eq!(pool.session_worker(&SessionId::from("short")), None);
    let mut expired = false;
    while let Ok(e) = events.try_recv() {
        expired |= matches!(e, SessionEvent::Expired { ref id, worker: Some(_) } if id.as_str() == "short");
    }
    assert!(expired, "no Expired event");
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_session_sends_cleanup_session_to_its_worker(transport: TransportKind) {
    let dir = tempfile::tempdir().unwrap();
    let pool = fault_pool_on(transport, 2, |c| with_log(&dir, c)).await;
    let created = pool
        .create_session(
            "explicit",
            SessionOptions {
                metadata: [("user".to_owned(), "ada".to_owned())].into(),
                ..SessionOptions::default()
            },
        )
        .unwrap();
    assert_eq!(created.ttl, Duration::from_secs(3600));
    assert_eq!(created.worker, None);
    let dup = pool
        .create_session("explicit", SessionOptions::default())
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Validation);
    call_in(&pool, "explicit", "whoami", json!({})).await;
    let listed = pool.list_sessions();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].metadata["user"], "ada");
    let id = SessionId::from("explicit");
    assert!(pool.delete_session(&id).await.unwrap());
    assert!(
        log_of(&dir).contains("cleanup explicit"),
        "log: {}",
        log_of(&dir)
    );
    assert!(
        !pool.delete_session(&id).await.unwrap(),
        "delete is idempotent"
    );
    assert!(pool.get_session(&id).is_none());
    assert_eq!(pool.session_worker(&id), None);
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_moves_visibly_when_its_worker_is_killed(transport: TransportKind) {
    let pool = fault_pool_on(transport, 2, |_| {}).await;
    let mut events = pool.session_events();
    let pid = call_in(
        &pool,
        "mover",
        "remember",
        json!({"key": "k", "value": "v"}),
    )
    .await;
    let pid = pid.as_u64().unwrap() as u32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || pool
            .list_workers()
            .iter()
            .all(|w| w.pid != pid))
        .await,
        "the killed worker stayed in the pool"
    );
    let now = call_in(&pool, "mover", "whoami", json!({})).await;
    assert_ne!(now, json!(pid), "the session stayed on a dead worker");
    // State lived in the dead worker; the session's new worker does not have it.
    assert_eq!(
        call_in(&pool, "mover", "recall", json!({"key": "k"})).await,
        json!("")
    );
    let s = pool.get_session(&SessionId::from("mover")).unwrap();
    assert_eq!(s.moves, 1);
    let mut moved = false;
    while let Ok(e) = events.try_recv() {
        moved |= matches!(e, SessionEvent::Moved { ref id, .. } if id.as_str() == "mover");
    }
    assert!(moved, "no Moved event");
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_session_store_is_a_clear_error(transport: TransportKind) {
    let pool = fault_pool_on(transport, 1, |c| c.sessions.max_sessions = 2).await;
    call_in(&pool, "a", "whoami", json!({})).await;
    pool.create_session("b", SessionOptions::default()).unwrap();
    let err = pool
        .execute(
            "whoami",
            json!({}),
            CallOptions::default().with_session("c"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pool);
    assert!(err.to_string().contains("max_sessions"), "{err}");
    // Existing sessions still work; deleting one makes room.
    call_in(&pool, "a", "whoami", json!({})).await;
    pool.delete_session(&SessionId::from("b")).await.unwrap();
    call_in(&pool, "c", "whoami", json!({})).await;
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_sessions_wait_for_their_worker_and_prefer_sessions_go_elsewhere(transport: TransportKind) {
    let pool = std::sync::Arc::new(fault_pool_on(transport, 2, |_| {}).await);
    for (name, affinity) in [
        ("strict", SessionAffinity::Strict),
        ("prefer", SessionAffinity::Prefer),
    ] {
        pool.create_session(
            name,
            SessionOptions {
                affinity: Some(affinity),
                ..SessionOptions::default()
            },
        )
        .unwrap();
        let home = call_in(&pool, name, "whoami", json!({})).await;
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { call_in(&pool, name, "work", json!({"ms": 1500})).await })
        };
        // Wait until the session's worker is busy with the long call.
        assert!(eventually(Duration::from_secs(30), || pool.stats().busy == 1).await);
        let second = call_in(&pool, name, "whoami", json!({})).await;
        assert_eq!(busy.await.unwrap(), home);
        match affinity {
            SessionAffinity::Strict => assert_eq!(second, home, "strict session left its worker"),
            SessionAffinity::Prefer => {
                assert_ne!(second, home, "prefer session waited for its busy worker")
            }
        }
    }
    pool.shutdown().await;
}
}
