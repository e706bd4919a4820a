//! A million distinct one-shot sessions through a real pool with a small TTL: the store stays
//! bounded, memory stays flat against a baseline taken in the same run, and everything expires.
//! (Its own test binary, so the RSS it reads is this test's alone.)

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use snakepit_core::{CallOptions, ErrorKind, SessionId};
use snakepit_pool::SessionOptions;
use support::{eventually, fault_pool};

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_one_shot_sessions_keep_memory_flat() {
    const TOTAL: u32 = 1_000_000;
    const MAX: usize = 50_000;
    let pool = fault_pool(1, |c| {
        c.sessions.default_ttl = Duration::from_millis(200);
        c.sessions.cleanup_interval = Duration::from_millis(50);
        c.sessions.max_sessions = MAX;
    })
    .await;
    let started = Instant::now();
    let mut baseline = None;
    let mut peak_sessions = 0;
    let mut waits = 0u32;
    for i in 0..TOTAL {
        let id = format!("one-shot-{i}");
        if i % 10_000 == 0 {
            // Every 10 000th session is a real call through a worker (affinity and all).
            let r = pool
                .execute(
                    "whoami",
                    json!({}),
                    CallOptions::default().with_session(id.as_str()),
                )
                .await;
            match r {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Pool => {
                    waits += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("call {i} failed: {e}"),
            }
        } else {
            while let Err(e) = pool.create_session(id.as_str(), SessionOptions::default()) {
                assert!(e.to_string().contains("max_sessions"), "{e}");
                // The store is full until the sweeper frees expired sessions.
                waits += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        peak_sessions = peak_sessions.max(pool.stats().sessions);
        if i == 100_000 {
            baseline = Some(rss_mib());
        }
    }
    let end = rss_mib();
    let baseline = baseline.unwrap();
    eprintln!(
        "1M one-shot sessions in {:?}: RSS {baseline} MiB after 100k, {end} MiB after 1M; peak {peak_sessions} live sessions; {waits} waits for the sweeper",
        started.elapsed()
    );
    assert!(peak_sessions <= MAX, "the store went past max_sessions");
    assert!(
        end <= baseline + 64,
        "memory grew from {baseline} MiB to {end} MiB between 100k and 1M sessions"
    );
    assert!(
        eventually(Duration::from_secs(30), || pool.stats().sessions == 0).await,
        "sessions did not expire"
    );
    assert_eq!(
        pool.session_worker(&SessionId::from("one-shot-990000")),
        None
    );
    pool.shutdown().await;
}
