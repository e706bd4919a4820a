//! `launch_contract = "snakepit"`: a stand-in for the original worker server as a pool worker.
//!
//! The stand-in (`python/tests/original_style/grpc_server.py`) takes only the original's flags,
//! pings the host before binding, writes its port to the ready file, initializes the session
//! on the host before every call and fails loudly when the host deviates from the contract.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use snakepit_core::config::{LaunchContract, PoolConfig, StartMode, TransportKind};
use snakepit_core::{CallOptions, ErrorKind, SessionId};
use snakepit_pool::Pool;
use support::sigkill_one_and_await_replacement;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../python/tests/original_style")
}

/// `size` workers of the original-style stand-in server (its script, its registry adapter).
fn stand_in_config(size: usize) -> PoolConfig {
    let mut config = PoolConfig::showcase(size);
    config.transport = TransportKind::Grpc;
    config.start_mode = StartMode::Spawn;
    config.server_script = Some(fixtures().join("grpc_server.py"));
    config.adapter_spec = "registry_adapter.RegistryAdapter".into();
    config.adapter_args = vec!["--adapter".into(), config.adapter_spec.clone()];
    config
        .adapter_env
        .insert("PYTHONPATH".into(), fixtures().display().to_string());
    config.startup_timeout = Duration::from_secs(60);
    config
}

async fn stand_in_pool(size: usize) -> Pool {
    let mut config = stand_in_config(size);
    config.launch_contract = LaunchContract::Snakepit;
    // The worker heartbeats the host (dependent): a host that stopped answering would make
    // the stand-in SIGTERM itself, and the next calls would fail.
    config.heartbeat.ping_interval = Duration::from_millis(200);
    let pool = Pool::start(config).await.expect("pool starts");
    pool.await_ready(Duration::from_secs(90))
        .await
        .expect("stand-in workers become ready");
    pool
}

#[tokio::test]
async fn original_style_server_serves_ping_echo_stream_errors_and_sessions() {
    let pool = stand_in_pool(1).await;
    let pong = pool
        .execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(pong.json, json!({"status": "ok", "message": "pong"}));

    // The original returns numbers as floats; the host accepts them.
    let echoed = pool
        .execute(
            "echo",
            json!({"n": 5, "s": "x", "l": [1, 2]}),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(echoed.json, json!({"n": 5, "s": "x", "l": [1, 2]}));
    let sum = pool
        .execute("add", json!({"a": 2, "b": 3}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sum.json.as_f64(), Some(5.0));

    let mut chunks = pool
        .execute_stream("count_up", json!({"n": 3}), CallOptions::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        if chunk.is_final {
            assert!(chunk.raw.is_empty());
            break;
        }
        seen.push((chunk.id.clone(), chunk.json.clone().unwrap()));
    }
    assert_eq!(
        seen,
        vec![
            ("count_up-1".to_string(), json!({"i": 1})),
            ("count_up-2".to_string(), json!({"i": 2})),
            ("count_up-3".to_string(), json!({"i": 3})),
        ]
    );

    let err = pool
        .execute("reserve", json!({"qty": 4}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PythonException, "{err}");
    let py = err.python_exception().unwrap();
    assert_eq!(py.exception_type, "InventoryError");
    assert_eq!(py.message, "only 0 of 4 items left");

    let session = CallOptions::default().with_session("cart-7");
    let stored = pool
        .execute(
            "remember",
            json!({"key": "item", "value": "apple"}),
            session.clone(),
        )
        .await
        .unwrap();
    assert_eq!(stored.json["session_id"], json!("cart-7"));
    let recalled = pool
        .execute("recall", json!({"key": "item"}), session)
        .await
        .unwrap();
    assert_eq!(
        recalled.json,
        json!({"session_id": "cart-7", "value": "apple"})
    );
    let other = pool
        .execute(
            "recall",
            json!({"key": "item"}),
            CallOptions::default().with_session("cart-8"),
        )
        .await
        .unwrap();
    assert_eq!(other.json["value"], json!(null));
    // The original's server initialized "cart-7" on the host; deleting it drops it there
    // (that server serves no CleanupSession of its own).
    assert!(pool
        .delete_session(&SessionId::from("cart-7"))
        .await
        .unwrap());
    assert!(!pool
        .delete_session(&SessionId::from("cart-7"))
        .await
        .unwrap());

    // The worker has heartbeated the host for a while now and is still the same process.
    let pid = pool.list_workers()[0].pid;
    tokio::time::sleep(Duration::from_millis(800)).await;
    pool.execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(pool.list_workers()[0].pid, pid);
    pool.shutdown().await;
}

#[tokio::test]
async fn sigkilled_original_style_worker_is_replaced() {
    let pool = stand_in_pool(2).await;
    sigkill_one_and_await_replacement(&pool).await;
    for _ in 0..4 {
        pool.execute("ping", json!({}), CallOptions::default())
            .await
            .unwrap();
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn stand_in_rejects_a_host_that_launches_it_with_the_native_contract() {
    let mut config = stand_in_config(1);
    config.heartbeat.enabled = false;
    let pool = Pool::start(config).await.unwrap();
    let err = pool.await_ready(Duration::from_secs(90)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("grpc_server.py: error"), "{text}");
    pool.shutdown().await;
}
