//! Basic calls through a pool: ping, echo, add, a binary round trip, the pool's stats.
//!
//! `cargo run -p snakepit-pool --example grpc_basic` (the seeds' `grpc_basic.exs`).

mod support;

use serde_json::json;
use snakepit_core::{CallOptions, Error, ToolCall};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pool = support::ready(snakepit_core::config::PoolConfig::showcase(2)).await?;
    let opts = CallOptions::default;

    let pong = pool.execute("ping", json!({}), opts()).await?;
    println!("ping -> {}", pong.json);
    let echo = pool
        .execute("echo", json!({"hello": "world"}), opts())
        .await?;
    println!("echo -> {}", echo.json);
    let sum = pool.execute("add", json!({"a": 2, "b": 3}), opts()).await?;
    println!("add(2, 3) -> {}", sum.json);
    assert_eq!(sum.json, json!(5));

    let call =
        ToolCall::new("echo_bytes", json!({}))?.with_binary_arg("data", vec![0u8, 1, 2, 255]);
    let bytes = pool.execute_call(call).await?;
    println!("echo_bytes -> {:?}", bytes.binary.as_deref());

    println!("stats: {:?}", pool.stats());
    pool.shutdown().await;
    Ok(())
}
