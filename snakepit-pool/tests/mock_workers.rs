//! The pool's call path with a mock worker factory: the scheduler routes around open breakers,
//! retries go back through it, user layers see unary and streaming calls, and the pool is a
//! `tower::Service`.

#![allow(clippy::unwrap_used)]

mod mock;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mock::MockWorkers;
use serde_json::json;
use snakepit_core::{CallOptions, Error, ErrorKind, Payload, ToolCall};
use snakepit_pool::{CallMode, WorkerCall};
use tower::util::MapRequestLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

fn transport_failure() -> Error {
    Error::transport("connection reset by the mock", Some(14), None)
}

/// A layer counting the calls (by mode) it sees.
fn counting_layer(
    unary: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
) -> MapRequestLayer<impl Fn(WorkerCall) -> WorkerCall + Clone + Send + Sync + 'static> {
    MapRequestLayer::new(move |req: WorkerCall| {
        match req.mode {
            CallMode::Unary => unary.fetch_add(1, Ordering::SeqCst),
            CallMode::Stream => streams.fetch_add(1, Ordering::SeqCst),
        };
        req
    })
}

#[tokio::test]
async fn the_scheduler_routes_around_an_open_breaker() {
    // The first call ever fails with a transport error, which opens its worker's breaker.
    let workers = MockWorkers::new(|_, _, made| {
        if made == 0 {
            Err(transport_failure())
        } else {
            Ok(Payload::json(json!("ok")))
        }
    });
    let pool = workers
        .pool(
            2,
            |c| {
                c.resilience =
                    table("[circuit_breaker]\nfailure_threshold = 1\nreset_timeout_ms = 600000\n")
            },
            |b| b,
        )
        .await;
    let err = pool
        .execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    let broken = workers.served_by()[0].clone();
    let open: Vec<_> = pool
        .list_workers()
        .into_iter()
        .filter(|w| w.circuit_state == Some("open"))
        .map(|w| w.id)
        .collect();
    assert_eq!(open, vec![broken.clone()]);
    // Every later call goes to the healthy worker instead of failing fast on the open one.
    for _ in 0..10 {
        pool.execute("ping", json!({}), CallOptions::default())
            .await
            .unwrap();
    }
    let served = workers.served_by();
    assert_eq!(
        served.iter().filter(|w| **w == broken).count(),
        1,
        "{served:?}"
    );
    assert_eq!(served.len(), 11);
    pool.shutdown().await;
}

#[tokio::test]
async fn an_idempotent_retry_lands_on_another_worker() {
    let workers = MockWorkers::new(|_, call, made| {
        if made == 0 || call.tool == "always_fails" {
            Err(transport_failure())
        } else {
            Ok(Payload::json(json!("ok")))
        }
    });
    let pool = workers
        .pool(
            3,
            |c| c.resilience = table("[retry]\nmax_attempts = 2\nbackoff_ms = [1]\n"),
            |b| b,
        )
        .await;
    let ok = pool
        .execute("ping", json!({}), CallOptions::default().idempotent())
        .await
        .unwrap();
    assert_eq!(ok.json, json!("ok"));
    let served = workers.served_by();
    assert_eq!(served.len(), 2, "{served:?}");
    assert_ne!(
        served[0], served[1],
        "the retry went back to the worker that failed"
    );

    // A call not marked idempotent is never repeated.
    let err = pool
        .execute("always_fails", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(workers.served_by().len(), 3);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_user_layer_counts_every_call_and_a_stream_goes_through_it() {
    let workers = MockWorkers::echo();
    let unary = Arc::new(AtomicUsize::new(0));
    let streams = Arc::new(AtomicUsize::new(0));
    let layer = counting_layer(unary.clone(), streams.clone());
    let pool = workers.pool(2, |_| {}, |b| b.layer(layer)).await;
    for i in 0..10 {
        let echoed = pool
            .execute("echo", json!({ "i": i }), CallOptions::default())
            .await
            .unwrap();
        assert_eq!(echoed.json, json!({ "i": i }));
    }
    assert_eq!(unary.load(Ordering::SeqCst), 10);
    assert_eq!(streams.load(Ordering::SeqCst), 0);

    let chunks: Vec<_> = pool
        .execute_stream("count", json!({}), CallOptions::default())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(chunks.len(), 3);
    assert!(chunks.last().unwrap().as_ref().unwrap().is_final);
    assert_eq!(streams.load(Ordering::SeqCst), 1);
    assert_eq!(unary.load(Ordering::SeqCst), 10);
    // The stream's worker was released when its final chunk arrived.
    assert_eq!(pool.stats().busy, 0);
    pool.shutdown().await;
}

#[tokio::test]
async fn the_pool_is_a_tower_service_under_user_middleware() {
    let workers = MockWorkers::echo();
    let pool = workers.pool(2, |_| {}, |b| b).await;
    let mut service = ServiceBuilder::new()
        .concurrency_limit(4)
        .load_shed()
        .service(pool);
    let call = ToolCall::new("echo", json!({"x": 1})).unwrap();
    let reply = service.ready().await.unwrap().call(call).await.unwrap();
    assert_eq!(reply.json, json!({"x": 1}));
}

#[tokio::test]
async fn a_call_past_its_deadline_fails_with_a_timeout_naming_the_worker() {
    let workers = MockWorkers::echo();
    let pool = workers.pool(1, |_| {}, |b| b).await;
    let err = pool
        .execute(
            "hang",
            json!({}),
            CallOptions::default().with_timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let hung = workers.served_by()[0].clone();
    assert!(err.to_string().contains(hung.as_str()), "{err}");
    // The worker whose call overran is replaced (process profile): the pool is whole again.
    let replaced = async {
        loop {
            let ids: Vec<_> = pool.list_workers().into_iter().map(|w| w.id).collect();
            if ids.len() == 1 && !ids.contains(&hung) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), replaced)
        .await
        .expect("the hung worker is replaced");
    pool.shutdown().await;
}
