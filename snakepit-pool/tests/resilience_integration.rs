//! The resilience stack configured on a pool, against real workers.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use snakepit_core::{CallOptions, ErrorKind};
use support::ready_pool;

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

#[tokio::test]
async fn breaker_opens_after_consecutive_timeouts_and_fails_fast() {
    let pool = ready_pool(1, |c| {
        c.resilience = table(
            "[circuit_breaker]\nfailure_threshold = 2\nreset_timeout_ms = 60000\n[timeouts]\nattempt_timeout_ms = 150\n",
        );
    })
    .await;
    for _ in 0..2 {
        let err = pool
            .execute("sleep", json!({"ms": 400}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    }
    assert_eq!(pool.list_workers()[0].circuit_state, Some("open"));
    let err = pool
        .execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    // A Python exception is the tool's fault, not the worker's: it never opens a breaker.
    pool.shutdown().await;
}

#[tokio::test]
async fn tool_exceptions_do_not_open_the_breaker() {
    let pool = ready_pool(1, |c| {
        c.resilience = table("[circuit_breaker]\nfailure_threshold = 1\n")
    })
    .await;
    for _ in 0..3 {
        let err = pool
            .execute("fail", json!({}), CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PythonException);
    }
    assert_eq!(pool.list_workers()[0].circuit_state, Some("closed"));
    pool.execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap();
    pool.shutdown().await;
}

#[tokio::test]
async fn idempotent_calls_are_retried_and_others_are_not() {
    let pool = ready_pool(1, |c| {
        c.resilience = table("[retry]\nmax_attempts = 3\nbackoff_ms = [10, 20]\nretriable_errors = [\"python_error\"]\n");
    })
    .await;
    let ok = pool
        .execute(
            "flaky",
            json!({"key": "a", "failures": 2}),
            CallOptions::default().idempotent(),
        )
        .await
        .unwrap();
    assert_eq!(ok.json["attempts"], json!(3));
    let err = pool
        .execute(
            "flaky",
            json!({"key": "b", "failures": 1}),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.python_exception().unwrap().exception_type,
        "ConnectionError"
    );
    let err = pool
        .execute(
            "flaky",
            json!({"key": "c", "failures": 5}),
            CallOptions::default()
                .idempotent()
                .with_timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap_err();
    assert!(
        err.python_exception()
            .unwrap()
            .message
            .contains("flaky failure 3 of 5"),
        "{err}"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn invalid_resilience_options_stop_the_pool_from_starting() {
    let mut config = snakepit_core::config::PoolConfig::showcase(1);
    config.resilience = table("[retry]\nmax_attempts = 0\n");
    let err = snakepit_pool::Pool::start(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("max_attempts"), "{err}");
}
