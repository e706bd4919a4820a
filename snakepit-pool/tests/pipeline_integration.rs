//! `pipeline_depth`: calls pipelined to one process worker reach it together, run one at a
//! time in order of arrival (sync, async and streaming tools alike), and a pipelined call
//! dropped before it started never runs. Real Python workers, on both transports.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use snakepit_core::CallOptions;
use snakepit_pool::Pool;
use support::{eventually, fault_pool_on};

/// The (start, end) of one call as the worker saw it.
async fn span_of(pool: &Pool, tool: &str, ms: u64) -> (f64, f64) {
    if tool == "span_stream" {
        let mut chunks = pool
            .execute_stream(tool, json!({ "ms": ms }), CallOptions::default())
            .await
            .unwrap();
        let mut times = Vec::new();
        while let Some(chunk) = chunks.next().await {
            if let Some(Value::Number(n)) = chunk.unwrap().json {
                times.push(n.as_f64().unwrap());
            }
        }
        assert_eq!(times.len(), 2, "{times:?}");
        return (times[0], times[1]);
    }
    let r = pool
        .execute(tool, json!({ "ms": ms }), CallOptions::default())
        .await
        .unwrap();
    let pair = r.json.as_array().unwrap().clone();
    (pair[0].as_f64().unwrap(), pair[1].as_f64().unwrap())
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_reach_one_worker_together_and_run_one_at_a_time_in_order(transport: TransportKind) {
    let pool = Arc::new(fault_pool_on(transport, 1, |c| c.pipeline_depth = 4).await);
    let tools = ["span", "async_span", "span_stream", "span"];
    let mut calls = Vec::new();
    for tool in tools {
        let pool = pool.clone();
        calls.push(tokio::spawn(async move { span_of(&pool, tool, 400).await }));
        // Spaced so the order of arrival is the order here.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // All four are on the one worker at once: none waits in the host's queue.
    let together = eventually(Duration::from_secs(20), || {
        let w = pool.list_workers();
        w.len() == 1 && w[0].load == 4 && w[0].capacity == 4
    })
    .await;
    assert!(together, "the four calls never were on the worker at once: {:?}", pool.list_workers());
    assert_eq!(pool.stats().queued, 0);
    let mut spans = Vec::new();
    for call in calls {
        spans.push(call.await.unwrap());
    }
    for (i, pair) in spans.windows(2).enumerate() {
        let ((_, end), (start, _)) = (pair[0], pair[1]);
        assert!(
            start >= end,
            "{} (call {i}) ended at {end}, after {} (call {}) started at {start}: {spans:?}",
            tools[i],
            tools[i + 1],
            i + 1
        );
    }
}
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_call_dropped_before_it_started_never_runs(transport: TransportKind) {
    let pool = Arc::new(fault_pool_on(transport, 1, |c| c.pipeline_depth = 2).await);
    let first = {
        let pool = pool.clone();
        tokio::spawn(async move { span_of(&pool, "span", 1500).await })
    };
    let running = eventually(Duration::from_secs(20), || {
        pool.list_workers().first().is_some_and(|w| w.load == 1)
    })
    .await;
    assert!(running, "the first call never reached the worker");
    // Pipelined behind `first` (sent to the worker), then given up by its caller before the
    // worker reached it.
    let behind = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.execute("remember", json!({"key": "k", "value": "ran"}), CallOptions::default())
                .await
        })
    };
    let pipelined = eventually(Duration::from_secs(20), || {
        pool.list_workers().first().is_some_and(|w| w.load == 2)
    })
    .await;
    assert!(pipelined, "the second call never was sent to the worker");
    behind.abort();
    assert!(behind.await.unwrap_err().is_cancelled());
    first.await.unwrap();
    let recalled = pool
        .execute("recall", json!({"key": "k"}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(recalled.json, json!(""), "the dropped call ran");
}
}
