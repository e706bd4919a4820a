//! A progress bar fed by a streaming tool, for as long as `SNAKEPIT_EXAMPLE_DURATION_MS` allows.
//!
//! `cargo run -p snakepit-pool --example stream_progress` (the seeds' `stream_progress_demo.exs`).

mod support;

use std::io::Write;

use futures::StreamExt;
use serde_json::json;
use snakepit_core::{CallOptions, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pool = support::ready(snakepit_core::config::PoolConfig::showcase(1)).await?;
    let steps = 10u64;
    let delay_ms = (support::duration(1_000).as_millis() as u64 / steps).max(1);
    let mut chunks = pool
        .execute_stream(
            "stream_progress",
            json!({"steps": steps, "delay_ms": delay_ms}),
            CallOptions::default(),
        )
        .await?;
    let mut done = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if chunk.json.is_some() && !chunk.is_final {
            done += 1;
            let bar = "#".repeat(done as usize) + &".".repeat(steps.saturating_sub(done) as usize);
            print!("\r[{bar}] {done}/{steps}");
            let _ = std::io::stdout().flush();
        }
    }
    println!();
    pool.shutdown().await;
    Ok(())
}
