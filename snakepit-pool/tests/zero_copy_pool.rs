//! Arrays through a pool: unary and streaming calls carry array arguments by shared memory.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use futures::StreamExt;
use serde_json::json;
use snakepit_core::{ArrayData, ToolCall};

on_both_transports! {
#[tokio::test]
async fn pool_calls_and_streams_carry_arrays_through_shared_memory(transport: TransportKind) {
    let pool = support::ready_pool_on(transport, 2, |c| c.zero_copy.threshold_bytes = 1024).await;
    let x = ArrayData::from_vec((0..100_000).map(|i| i as f64).collect(), vec![100_000]).unwrap();
    for _ in 0..4 {
        let call = ToolCall::new("array_echo", json!({}))
            .unwrap()
            .with_array("x", x.clone());
        let out = pool.execute_call(call).await.unwrap();
        assert_eq!(out.array().unwrap(), &x);
    }
    let call = ToolCall::new("array_chunk_sums", json!({"parts": 4}))
        .unwrap()
        .with_array("x", x.clone());
    let chunks: Vec<_> = pool
        .execute_call_stream(call)
        .await
        .unwrap()
        .collect()
        .await;
    let sums: Vec<f64> = chunks
        .iter()
        .filter_map(|c| c.as_ref().unwrap().json.as_ref()?.get("sum")?.as_f64())
        .collect();
    assert_eq!(sums.len(), 4, "{chunks:?}");
    assert_eq!(
        sums.iter().sum::<f64>(),
        (0..100_000).map(|i| i as f64).sum::<f64>()
    );
    pool.shutdown().await;
}
}
