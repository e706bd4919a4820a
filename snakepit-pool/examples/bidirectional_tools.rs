//! Cross-language tools: Rust registers a host tool, Python calls it while serving a call.
//!
//! `cargo run -p snakepit-pool --example bidirectional_tools` (the seeds'
//! `bidirectional_tools_demo.exs`).

mod support;

use serde_json::json;
use snakepit_core::{CallOptions, Error};
use snakepit_pool::Pool;
use snakepit_worker::host_bridge::{HostTool, HostTools};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let tools = HostTools::default();
    tools.register(
        HostTool::new(
            "word_score",
            "Score a word: its length plus its vowels.",
            |call| async move {
                let word = call
                    .args
                    .get("word")
                    .and_then(|w| w.as_str())
                    .ok_or("missing word")?;
                let vowels = word.chars().filter(|c| "aeiou".contains(*c)).count();
                Ok(json!(word.len() + vowels))
            },
        )
        .with_parameter("word", "string", true),
    );
    let pool =
        Pool::start_with_host_tools(support::config("BidirectionalAdapter", 1)?, tools).await?;
    pool.await_ready(std::time::Duration::from_secs(90)).await?;

    let exposed = pool
        .execute("host_tools", json!({}), CallOptions::default())
        .await?;
    println!("Python sees host tools: {}", exposed.json);
    let best = pool
        .execute(
            "best_word",
            json!({"words": ["snake", "pit", "adapter"]}),
            CallOptions::default(),
        )
        .await?;
    println!("best word by the host's score: {}", best.json);
    assert_eq!(best.json["best"], json!("adapter"));
    pool.shutdown().await;
    Ok(())
}
