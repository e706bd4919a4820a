//! Session affinity and isolation: each session's calls go to the worker that served it
//! first, and each session's state stays its own.
//!
//! `cargo run -p snakepit-pool --example grpc_sessions` (the seeds' `grpc_sessions.exs`).

mod support;

use serde_json::json;
use snakepit_core::{CallOptions, Error, SessionId};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pool = support::ready(support::config("SessionCounterAdapter", 2)?).await?;
    for session in ["alice", "bob"] {
        let mut pids = Vec::new();
        for _ in 0..3 {
            let opts = CallOptions::default().with_session(session);
            let out = pool.execute("bump", json!({"by": 1}), opts).await?;
            println!(
                "{session}: count {} on pid {}",
                out.json["count"], out.json["pid"]
            );
            pids.push(out.json["pid"].clone());
        }
        // Affinity: every call of the session ran on one worker, which kept its counter.
        assert!(
            pids.windows(2).all(|w| w[0] == w[1]),
            "{session} moved: {pids:?}"
        );
        let worker = pool.session_worker(&SessionId::new(session));
        println!("{session} is bound to {worker:?}");
    }
    let last = pool
        .execute(
            "bump",
            json!({"by": 0}),
            CallOptions::default().with_session("alice"),
        )
        .await?;
    assert_eq!(
        last.json["count"],
        json!(3),
        "bob's calls must not change alice's count"
    );
    pool.shutdown().await;
    Ok(())
}
