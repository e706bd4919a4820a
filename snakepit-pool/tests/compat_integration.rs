//! Adapters written for the original Snakepit, on our own server (`launch_contract = "native"`).
//!
//! The fixtures (`python/tests/original_style/registry_adapter.py`) serve their tools through
//! `execute_tool(tool_name, arguments, context)`, return generators from plain functions, raise
//! typed errors, keep per-session state and return values JSON cannot hold.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use snakepit_core::config::{PoolConfig, StartMode, TransportKind, WorkerProfile};
use snakepit_core::{CallOptions, ErrorKind, PythonErrorDetail, PythonErrorKind};
use snakepit_pool::Pool;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../python/tests/original_style")
}

/// Every behaviour here is checked on both transports.
const TRANSPORTS: [TransportKind; 2] = [TransportKind::Grpc, TransportKind::Fast];

/// Loading and serving an original-style adapter is checked in both start modes (forked from
/// the zygote, the default, and spawned).
const START_MODES: [StartMode; 2] = [StartMode::Zygote, StartMode::Spawn];

fn fixture_config(adapter: &str, transport: TransportKind, start_mode: StartMode) -> PoolConfig {
    let mut config = PoolConfig::showcase(1);
    config.transport = transport;
    config.start_mode = start_mode;
    config.adapter_spec = adapter.into();
    config.adapter_args = vec!["--adapter".into(), adapter.into()];
    config
        .adapter_env
        .insert("PYTHONPATH".into(), fixtures().display().to_string());
    config.heartbeat.enabled = false;
    config.startup_timeout = Duration::from_secs(60);
    config
}

async fn fixture_pool(adapter: &str, transport: TransportKind, start_mode: StartMode) -> Pool {
    let pool = Pool::start(fixture_config(adapter, transport, start_mode))
        .await
        .unwrap();
    pool.await_ready(Duration::from_secs(90)).await.unwrap();
    pool
}

async fn collect(pool: &Pool, tool: &str, args: Value) -> Vec<Value> {
    let mut chunks = pool
        .execute_stream(tool, args, CallOptions::default())
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        if let Some(v) = chunk.json {
            out.push(v);
        } else if !chunk.raw.is_empty() {
            out.push(Value::String(
                String::from_utf8_lossy(&chunk.raw).into_owned(),
            ));
        }
        if chunk.is_final {
            break;
        }
    }
    out
}

#[tokio::test]
async fn registry_adapter_tools_work_unary_and_streaming() {
    for start_mode in START_MODES {
        for transport in TRANSPORTS {
            registry_adapter_tools_work_unary_and_streaming_on(transport, start_mode).await;
        }
    }
}

async fn registry_adapter_tools_work_unary_and_streaming_on(
    transport: TransportKind,
    start_mode: StartMode,
) {
    let pool = fixture_pool("registry_adapter.RegistryAdapter", transport, start_mode).await;
    let call = |tool: &'static str, args: Value| {
        let pool = &pool;
        async move { pool.execute(tool, args, CallOptions::default()).await }
    };
    assert_eq!(
        call("ping", json!({})).await.unwrap().json,
        json!({"status": "ok", "message": "pong"})
    );
    assert_eq!(
        call("echo", json!({"a": [1, 2]})).await.unwrap().json,
        json!({"a": [1, 2]})
    );
    assert_eq!(
        call("add", json!({"a": 2, "b": 3})).await.unwrap().json,
        json!(5)
    );
    assert_eq!(
        call("decorated", json!({"x": 4})).await.unwrap().json,
        json!({"decorated": 4})
    );
    // A generator returned by a plain function streams its items; called unary, it is a list.
    assert_eq!(
        collect(&pool, "count_up", json!({"n": 3})).await,
        vec![json!({"i": 1}), json!({"i": 2}), json!({"i": 3})]
    );
    assert_eq!(
        call("count_up", json!({"n": 2})).await.unwrap().json,
        json!([{"i": 1}, {"i": 2}])
    );
    assert_eq!(
        collect(&pool, "spell", json!({"word": "ab"})).await,
        vec![json!("a"), json!("b")]
    );

    let err = call("reserve", json!({"qty": 2})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PythonException);
    let py = err.python_exception().unwrap();
    assert_eq!(
        (py.exception_type.as_str(), py.message.as_str()),
        ("InventoryError", "only 0 of 2 items left")
    );
    let err = call("no_such_tool", json!({})).await.unwrap_err();
    assert_eq!(
        err.python_exception().unwrap().message,
        "Unknown tool: no_such_tool"
    );

    let session = CallOptions::default().with_session("s-1");
    pool.execute("remember", json!({"key": "k", "value": 7}), session.clone())
        .await
        .unwrap();
    let got = pool
        .execute("recall", json!({"key": "k"}), session)
        .await
        .unwrap();
    assert_eq!(got.json, json!({"session_id": "s-1", "value": 7}));
    pool.shutdown().await;
}

#[tokio::test]
async fn plain_class_adapter_without_base_class_loads_and_serves() {
    for start_mode in START_MODES {
        for transport in TRANSPORTS {
            plain_class_adapter_without_base_class_loads_and_serves_on(transport, start_mode).await;
        }
    }
}

async fn plain_class_adapter_without_base_class_loads_and_serves_on(
    transport: TransportKind,
    start_mode: StartMode,
) {
    let pool = fixture_pool("registry_adapter.PlainAdapter", transport, start_mode).await;
    let pong = pool
        .execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(pong.json, json!({"status": "ok", "adapter": "plain"}));
    assert_eq!(
        collect(&pool, "countdown", json!({"n": 2})).await,
        vec![json!(2), json!(1)]
    );
    pool.shutdown().await;

    // An async execute_tool runs on the worker's main loop on either transport, and an async
    // generator it returns streams.
    let pool = fixture_pool("registry_adapter.AsyncPlainAdapter", transport, start_mode).await;
    let pong = pool
        .execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(
        pong.json,
        json!({"status": "ok", "adapter": "async", "main_thread": true}),
        "{transport:?} {start_mode:?}"
    );
    assert_eq!(
        collect(&pool, "countdown", json!({"n": 3})).await,
        vec![json!(3), json!(2), json!(1)]
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn recognised_failures_and_values_json_cannot_hold_arrive_typed() {
    for transport in TRANSPORTS {
        recognised_failures_and_values_json_cannot_hold_arrive_typed_on(transport).await;
    }
}

async fn recognised_failures_and_values_json_cannot_hold_arrive_typed_on(transport: TransportKind) {
    let pool = fixture_pool(
        "registry_adapter.RegistryAdapter",
        transport,
        StartMode::default(),
    )
    .await;
    let err = pool
        .execute("oom", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    let py = err.python_exception().unwrap();
    assert_eq!(py.kind(), Some(PythonErrorKind::OutOfMemory));
    match py.detail.as_ref().unwrap() {
        PythonErrorDetail::OutOfMemory {
            device,
            requested_bytes,
            suggestions,
            ..
        } => {
            assert_eq!(device, "cuda:0");
            assert_eq!(*requested_bytes, Some(2 * 1024 * 1024 * 1024));
            assert!(
                suggestions.iter().any(|s| s == "Reduce batch size"),
                "{suggestions:?}"
            );
        }
        other => panic!("not an out-of-memory detail: {other:?}"),
    }
    assert!(err.to_string().contains("try: Reduce batch size"), "{err}");
    let err = pool
        .execute("shapes", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    let detail = err.python_exception().unwrap().detail.clone().unwrap();
    assert!(
        matches!(&detail, PythonErrorDetail::ShapeMismatch { expected: Some(e), got: Some(g), dimension: Some(1), .. } if e == &[3, 224, 224] && g == &[3, 256, 256]),
        "{detail:?}"
    );
    let err = pool
        .execute("needs_package", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    let py = err.python_exception().unwrap();
    assert_eq!(py.exception_type, "ModuleNotFoundError");
    match py.detail.as_ref().unwrap() {
        PythonErrorDetail::MissingPackage {
            packages,
            suggestions,
        } => {
            assert_eq!(packages, &["snakepit_fixture_missing_package".to_string()]);
            assert!(suggestions[0].contains("-m pip install snakepit_fixture_missing_package"));
        }
        other => panic!("not a missing-package detail: {other:?}"),
    }
    let odd = pool
        .execute("odd_values", json!({}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(
        odd.json,
        json!({"nan": "NaN", "inf": "Infinity", "when": "2024-01-02T03:04:05", "tags": ["a", "b"]})
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn thread_safety_checks_reach_the_worker_and_refuse_undeclared_adapters() {
    // The showcase adapter does not declare __thread_safe__ = True.
    let mut config = PoolConfig::showcase(1);
    config.worker_profile = WorkerProfile::Thread;
    config.threads_per_worker = 2;
    config.thread_safety_checks = true;
    config.heartbeat.enabled = false;
    config.startup_timeout = Duration::from_secs(60);
    let pool = Pool::start(config.clone()).await.unwrap();
    let err = pool.await_ready(Duration::from_secs(90)).await.unwrap_err();
    assert!(
        err.to_string().contains("does not declare __thread_safe__"),
        "{err}"
    );
    pool.shutdown().await;
    // Without the checks the same adapter starts (with a warning on stderr).
    config.thread_safety_checks = false;
    let pool = Pool::start(config).await.unwrap();
    pool.await_ready(Duration::from_secs(90)).await.unwrap();
    pool.shutdown().await;
}
