//! Python telemetry on the host, against real workers: events arrive with the worker id, drops
//! are counted, and sampling, filters and the toggle change at runtime without a restart.
//!
//! Its own test binary: the Python telemetry setting is host-wide, so the transports' runs of
//! the test take turns.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use snakepit_core::CallOptions;
use snakepit_pool::Pool;
use snakepit_telemetry::{OwnedEvent, Telemetry};
use support::{eventually, ready_pool_on};

/// Held by each run of the test: they change the host-wide Python telemetry settings.
static HOST_WIDE_SETTINGS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn accepted(pool: &Pool, n: u64) -> u64 {
    let r = pool
        .execute("emit_events", json!({"n": n}), CallOptions::default())
        .await
        .unwrap();
    r.json["accepted"].as_u64().unwrap()
}

/// Calls until the worker accepts `want(accepted)` (a control message is applied a moment
/// after the host sends it).
async fn until_accepting(pool: &Pool, n: u64, want: impl Fn(u64) -> bool) -> u64 {
    let mut last = 0;
    for _ in 0..200 {
        last = accepted(pool, n).await;
        if want(last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker kept accepting {last} of {n}");
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_events_arrive_sampled_filtered_and_with_drops_counted(transport: TransportKind) {
    let _turn = HOST_WIDE_SETTINGS.lock().await;
    let seen: Arc<Mutex<Vec<OwnedEvent>>> = Arc::default();
    let sink = seen.clone();
    let bus = Telemetry::global();
    bus.python().reset();
    let name = format!("py_tel_{transport:?}").to_lowercase();
    let mine = name.clone();
    bus.attach_many(
        "py-tel",
        &[
            "snakepit.python.custom",
            "snakepit.python.telemetry.dropped",
        ],
        move |e| {
            if e.meta("pool_name") == Some(mine.as_str()) {
                sink.lock().unwrap().push(e.to_owned_event());
            }
        },
    )
    .unwrap();
    // Started after the handler: Python records events only while someone listens.
    let pool = ready_pool_on(transport, 1, |c| c.name = name.clone()).await;
    let worker = pool.list_workers()[0].clone();
    let count = |name: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == name)
            .count() as u64
    };
    let dropped = || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == "snakepit.python.telemetry.dropped")
            .map(|e| e.measurement("dropped").unwrap().as_i64() as u64)
            .sum::<u64>()
    };

    // A burst larger than the queue: what was accepted arrives, the rest is counted as dropped.
    let burst = 10_000;
    let took = accepted(&pool, burst).await;
    // The queue holds 1 024 events, the call's own `python.call.start` among them.
    assert!(took >= 1000 && took < burst, "accepted {took}");
    assert!(
        eventually(Duration::from_secs(60), || count("snakepit.python.custom")
            == took
            // The call's own `python.call.stop` may be dropped too.
            && (burst - took..=burst - took + 1).contains(&dropped()))
        .await,
        "received {} events and {} drops of {burst} (accepted {took}); sources: {:?}",
        count("snakepit.python.custom"),
        dropped(),
        seen.lock()
            .unwrap()
            .iter()
            .map(|e| (e.meta("worker_id").map(str::to_owned), e.meta("event").map(str::to_owned)))
            .collect::<std::collections::BTreeSet<_>>()
    );
    {
        let events = seen.lock().unwrap();
        let e = events
            .iter()
            .find(|e| e.name == "snakepit.python.custom")
            .unwrap();
        assert_eq!(e.meta("worker_id"), Some(worker.id.as_str()));
        assert_eq!(e.meta("event"), Some("showcase.burst"));
        assert!(e.meta("correlation_id").is_some_and(|c| c.len() == 32));
    }

    // Deny, then allow again.
    bus.python().set_filter(&[], &["showcase.*"]);
    until_accepting(&pool, 10, |a| a == 0).await;
    bus.python().set_filter(&[], &[]);
    until_accepting(&pool, 10, |a| a == 10).await;

    // Sample: none, then about half.
    bus.python().set_sampling(0.0, &["showcase.*"]).unwrap();
    until_accepting(&pool, 10, |a| a == 0).await;
    bus.python().set_sampling(0.5, &["showcase.*"]).unwrap();
    let half = until_accepting(&pool, 1000, |a| a > 0).await;
    assert!(
        (350..=650).contains(&half),
        "kept {half} of 1000 at rate 0.5"
    );

    // Off and on.
    bus.python().reset();
    bus.python().toggle(false);
    until_accepting(&pool, 10, |a| a == 0).await;
    bus.python().toggle(true);
    until_accepting(&pool, 10, |a| a == 10).await;

    assert_eq!(
        pool.list_workers()[0].pid,
        worker.pid,
        "the worker was not restarted"
    );
    bus.detach("py-tel");
    pool.shutdown().await;
}
}
