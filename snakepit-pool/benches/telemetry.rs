//! Telemetry overhead against same-run baselines, with real Python workers:
//! a tool emitting 10 000 events in a burst with Python telemetry on vs off (goal: at most
//! 1.2x), and no-op call latency with the full telemetry path on (Prometheus handler, Python
//! events streamed) vs off (no handler, Python telemetry off) (goal: at most 3 % overhead).
//!
//! `harness = false`, built with the `bench` profile; `cargo xtask bench` runs it, or
//! `cargo bench -p snakepit-pool --bench telemetry -- --suite`.
//! Modes alternate round by round so that the machine's load hits both alike; each figure is
//! the median of the rounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use snakepit_core::config::PoolConfig;
use snakepit_core::CallOptions;
use snakepit_pool::Pool;
use snakepit_telemetry::Telemetry;

const BURST: u64 = 10_000;
const ROUNDS: usize = 9;
const CALLS_PER_ROUND: usize = 300;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Turns the whole telemetry path on or off.
fn telemetry(on: bool, handler_seen: &Arc<AtomicU64>) {
    let bus = Telemetry::global();
    bus.python().toggle(on);
    bus.detach("bench");
    if on {
        let seen = handler_seen.clone();
        let attached = bus.attach_many(
            "bench",
            &[
                "snakepit.request.executed",
                "snakepit.grpc.call.*",
                "snakepit.python.*",
            ],
            move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            },
        );
        if let Err(e) = attached {
            eprintln!("telemetry bench: {e}");
        }
    }
}

async fn run() -> Result<(), snakepit_core::Error> {
    let mut config = PoolConfig::showcase(1);
    config.heartbeat.enabled = false;
    let pool = Pool::start(config).await?;
    pool.await_ready(Duration::from_secs(120)).await?;
    let seen = Arc::new(AtomicU64::new(0));
    // Python applies a control message a moment after the host sends it.
    let settle = || tokio::time::sleep(Duration::from_millis(200));

    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS * 2 {
        let enabled = round % 2 == 0;
        telemetry(enabled, &seen);
        settle().await;
        let started = Instant::now();
        let r = pool
            .execute("emit_events", json!({"n": BURST}), CallOptions::default())
            .await?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if enabled {
            on.push(ms);
            let accepted = r.json["accepted"].as_u64().unwrap_or(0);
            assert!(accepted > 0, "telemetry on but no event accepted");
        } else {
            off.push(ms);
        }
    }
    let (on_ms, off_ms) = (median(on), median(off));
    println!(
        "burst of {BURST} Python events: on {on_ms:.2} ms, off {off_ms:.2} ms, ratio {:.3} (goal <= 1.2)",
        on_ms / off_ms
    );

    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS * 2 {
        let enabled = round % 2 == 0;
        telemetry(enabled, &seen);
        settle().await;
        let started = Instant::now();
        for _ in 0..CALLS_PER_ROUND {
            pool.execute("noop", json!({}), CallOptions::default())
                .await?;
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / CALLS_PER_ROUND as f64;
        if enabled {
            on.push(us)
        } else {
            off.push(us)
        }
    }
    let (on_us, off_us) = (median(on), median(off));
    println!(
        "no-op call: telemetry on {on_us:.1} us, off {off_us:.1} us, overhead {:+.2} % (goal <= 3 %); host handler saw {} events",
        (on_us / off_us - 1.0) * 100.0,
        seen.load(Ordering::Relaxed)
    );
    telemetry(true, &seen);
    Telemetry::global().detach("bench");
    pool.shutdown().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    if !std::env::args().any(|a| a == "--suite") {
        eprintln!("telemetry bench: skipped (run it with `cargo xtask bench` or `-- --suite`)");
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("telemetry bench: cannot start tokio: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telemetry bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
