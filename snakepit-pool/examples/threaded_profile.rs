//! The thread profile: one Python process serves several calls at once on its threads.
//!
//! `cargo run -p snakepit-pool --example threaded_profile` (the seeds' `threaded_profile_demo.exs`).

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::json;
use snakepit_core::config::WorkerProfile;
use snakepit_core::{CallOptions, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut config = support::config("ThreadedAdapter", 1)?;
    config.worker_profile = WorkerProfile::Thread;
    config.threads_per_worker = 4;
    let pool = support::ready(config).await?;

    let started = Instant::now();
    let calls = (0..4).map(|_| pool.execute("work", json!({"ms": 300}), CallOptions::default()));
    let results = futures::future::try_join_all(calls).await?;
    let pids: BTreeSet<String> = results.iter().map(|r| r.json["pid"].to_string()).collect();
    let threads: BTreeSet<String> = results
        .iter()
        .map(|r| r.json["thread"].to_string())
        .collect();
    println!(
        "4 calls of 300 ms took {:?} on {} process(es) and {} threads",
        started.elapsed(),
        pids.len(),
        threads.len()
    );
    assert_eq!(pids.len(), 1, "one process serves every call");
    println!(
        "capacity per worker: {}",
        pool.config().capacity_per_worker()
    );
    pool.shutdown().await;
    Ok(())
}
