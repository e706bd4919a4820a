//! Streaming and concurrency: chunks arrive as Python yields them, and concurrent calls spread
//! over the pool's workers (excess calls wait in the queue).
//!
//! `cargo run -p snakepit-pool --example grpc_streaming` (the seeds' `grpc_streaming.exs`).

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;
use snakepit_core::{CallOptions, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pool = support::ready(snakepit_core::config::PoolConfig::showcase(2)).await?;

    let mut chunks = pool
        .execute_stream(
            "stream_progress",
            json!({"steps": 4, "delay_ms": 50}),
            CallOptions::default(),
        )
        .await?;
    let mut seen = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if let Some(data) = &chunk.json {
            println!("chunk {} (final: {}): {data}", chunk.id, chunk.is_final);
            seen += 1;
        }
    }
    assert!(seen >= 4, "expected the 4 progress chunks, got {seen}");

    // Eight concurrent calls on two workers: the queue hands each to whichever is free.
    let started = Instant::now();
    let calls = (0..8).map(|_| pool.execute("process_info", json!({}), CallOptions::default()));
    let pids: BTreeSet<String> = futures::future::try_join_all(calls)
        .await?
        .into_iter()
        .map(|p| p.json["pid"].to_string())
        .collect();
    println!(
        "8 concurrent calls served by {} workers in {:?}",
        pids.len(),
        started.elapsed()
    );
    println!("stats: {:?}", pool.stats());
    pool.shutdown().await;
    Ok(())
}
