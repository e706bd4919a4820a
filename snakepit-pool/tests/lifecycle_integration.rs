//! Recycling with real workers: by request count, by TTL and by Python RSS.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use snakepit_core::CallOptions;
use support::{eventually, ready_pool};

async fn pid_of(pool: &snakepit_pool::Pool) -> u64 {
    let info = pool
        .execute("process_info", json!({}), CallOptions::default())
        .await
        .unwrap();
    info.json["pid"].as_u64().unwrap()
}

#[tokio::test]
async fn worker_is_recycled_after_max_requests_without_failing_a_call() {
    let pool = ready_pool(1, |c| c.worker_max_requests = Some(3)).await;
    let mut pids = Vec::new();
    for _ in 0..7 {
        pids.push(pid_of(&pool).await);
    }
    assert!(pids[0..3].iter().all(|p| *p == pids[0]), "{pids:?}");
    assert!(pids[3..6].iter().all(|p| *p == pids[3]), "{pids:?}");
    assert_ne!(pids[0], pids[3]);
    assert_ne!(pids[3], pids[6]);
    let stats = pool.stats();
    assert_eq!(stats.recycled, 2);
    assert_eq!(stats.errors, 0);
    assert_eq!(stats.worker_restarts, 0, "a recycle is not a crash");
    pool.shutdown().await;
}

#[tokio::test]
async fn worker_past_its_ttl_is_replaced() {
    let pool = ready_pool(1, |c| c.worker_ttl = Some(Duration::from_millis(500))).await;
    let first = pid_of(&pool).await;
    let replaced = eventually(Duration::from_secs(30), || {
        let ws = pool.list_workers();
        ws.len() == 1 && u64::from(ws[0].pid) != first
    })
    .await;
    assert!(replaced, "still {:?}", pool.list_workers());
    assert_ne!(pid_of(&pool).await, first);
    assert!(pool.stats().recycled >= 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn worker_over_its_memory_threshold_is_recycled() {
    // Every Python interpreter uses more than 1 MiB, so the first check recycles.
    let pool = ready_pool(1, |c| {
        c.memory_threshold_mb = Some(1);
        c.lifecycle_check_interval = Duration::from_millis(200);
    })
    .await;
    let first = pool.list_workers()[0].pid;
    let recycled = eventually(Duration::from_secs(90), || pool.stats().recycled >= 1).await;
    assert!(recycled);
    let replaced = eventually(Duration::from_secs(30), || {
        pool.list_workers().iter().any(|w| w.pid != first)
    })
    .await;
    assert!(replaced);
    pool.shutdown().await;
}
