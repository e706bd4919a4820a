//! Structured errors: Python exceptions arrive with type, message and traceback; bad input,
//! unknown tools and timeouts each have their own kind.
//!
//! `cargo run -p snakepit-pool --example structured_errors` (the seeds' `structured_errors.exs`).

mod support;

use std::time::Duration;

use serde_json::json;
use snakepit_core::{CallOptions, Error, ErrorKind};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pool = support::ready(support::config("ErrorsAdapter", 1)?).await?;
    let opts = CallOptions::default;

    let err = support::expect_failure(
        pool.execute("divide", json!({"a": 1, "b": 0}), opts())
            .await,
        "this call",
    )?;
    let py = err
        .python_exception()
        .ok_or_else(|| Error::pool("expected a Python exception"))?;
    println!(
        "kind {}: {} raised {:?}",
        err.kind(),
        py.exception_type,
        py.message
    );
    println!("traceback ends with: {:?}", py.traceback.lines().last());
    assert_eq!(py.exception_type, "ZeroDivisionError");

    let err = support::expect_failure(
        pool.execute("withdraw", json!({"amount": -5}), opts())
            .await,
        "this call",
    )?;
    println!("kind {}: {err}", err.kind());

    let err = support::expect_failure(
        pool.execute("no_such_tool", json!({}), opts()).await,
        "this call",
    )?;
    println!("kind {}: {err}", err.kind());
    assert_eq!(err.kind(), ErrorKind::Validation);

    let err = support::expect_failure(
        pool.execute("divide", json!({"a": 1}), opts()).await,
        "this call",
    )?;
    println!("kind {}: {err}", err.kind());

    let err = support::expect_failure(
        pool.execute(
            "slow",
            json!({"ms": 5000}),
            opts().with_timeout(Duration::from_millis(200)),
        )
        .await,
        "this call",
    )?;
    println!("kind {}: {err}", err.kind());
    assert_eq!(err.kind(), ErrorKind::Timeout);
    pool.shutdown().await;
    Ok(())
}
