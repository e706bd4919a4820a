//! Integration tests of the pool against real Python worker processes.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::json;
use snakepit_core::config::{StartMode, TransportKind};
use snakepit_core::{CallOptions, ErrorKind};
use support::{
    eventually, processes_mentioning, ready_pool, ready_pool_on, sigkill_one_and_await_replacement,
};

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_answer_a_thousand_concurrent_echoes_each_to_its_caller(transport: TransportKind) {
    // A generous queue bound: on a loaded machine 1000 queued calls can take longer than 5 s.
    let pool = Arc::new(ready_pool_on(transport, 4, |c| c.queue_timeout = Duration::from_secs(120)).await);
    let calls = (0..1000).map(|i| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let r = pool
                .execute(
                    "echo",
                    json!({"id": i, "text": format!("msg-{i}")}),
                    CallOptions::default(),
                )
                .await;
            (i, r)
        })
    });
    let results = futures::future::join_all(calls).await;
    let mut seen = HashSet::new();
    for r in results {
        let (i, payload) = r.expect("task");
        let payload = payload.unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        assert_eq!(payload.json, json!({"id": i, "text": format!("msg-{i}")}));
        seen.insert(i);
    }
    assert_eq!(seen.len(), 1000);
    let stats = pool.stats();
    assert_eq!(stats.requests, 1000);
    assert_eq!(stats.errors, 0);
    assert_eq!(stats.workers, 4);
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_chunks_arrive_in_order_each_before_the_next_is_produced(transport: TransportKind) {
    let pool = ready_pool_on(transport, 1, |_| {}).await;
    let mut stream = pool
        .execute_stream(
            "stream_progress",
            json!({"steps": 5, "delay_ms": 150}),
            CallOptions::default(),
        )
        .await
        .unwrap();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        if let Some(v) = chunk.json.clone() {
            arrivals.push((v, now_ns, chunk.id.clone()));
        }
        if chunk.is_final {
            break;
        }
    }
    let steps: Vec<i64> = arrivals
        .iter()
        .map(|(v, _, _)| v["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5]);
    for pair in arrivals.windows(2) {
        let arrived = pair[0].1;
        let next_produced = pair[1].0["produced_at_ns"].as_i64().unwrap() as i128;
        let gap_ms = (next_produced - arrived) as f64 / 1e6;
        assert!(
            gap_ms > 0.0,
            "chunk {} arrived {gap_ms:.1} ms after the next was produced",
            pair[0].2
        );
    }
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test]
async fn python_exception_arrives_typed_with_message_and_traceback(transport: TransportKind) {
    let pool = ready_pool_on(transport, 1, |_| {}).await;
    let err = pool
        .execute("fail", json!({"message": "kaboom"}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PythonException);
    let py = err.python_exception().unwrap();
    assert_eq!(py.exception_type, "ValueError");
    assert_eq!(py.message, "kaboom");
    assert!(
        py.traceback.contains("Traceback") || py.traceback.contains("File "),
        "{}",
        py.traceback
    );
    assert_eq!(py.tool.as_deref(), Some("fail"));
    // The worker is still fine.
    assert_eq!(
        pool.execute("add", json!({"a": 2, "b": 3}), CallOptions::default())
            .await
            .unwrap()
            .json,
        json!(5)
    );
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test]
async fn unknown_tool_and_wrong_arguments_are_validation_errors_naming_the_problem(transport: TransportKind) {
    let pool = ready_pool_on(transport, 1, |_| {}).await;
    let err = pool
        .execute("no_such_tool", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    let text = err.to_string();
    assert!(
        text.contains("no_such_tool") && text.contains("echo"),
        "{text}"
    );

    let err = pool
        .execute("add", json!({"a": 1, "c": 2}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    let text = err.to_string();
    assert!(text.contains('c') && text.contains("add"), "{text}");

    let err = pool
        .execute("add", json!([1, 2]), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test]
async fn call_past_its_timeout_fails_and_the_pool_serves_again(transport: TransportKind) {
    let pool = ready_pool_on(transport, 1, |_| {}).await;
    let opts = CallOptions::default().with_timeout(Duration::from_millis(300));
    let err = pool
        .execute("sleep", json!({"ms": 5000}), opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let ok = pool
        .execute(
            "ping",
            json!({}),
            CallOptions::default().with_timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(ok.json["message"], json!("pong"));
    pool.shutdown().await;
}
}

on_both_transports! {
#[tokio::test]
async fn sigkilled_worker_is_replaced_and_pool_returns_to_full_size(transport: TransportKind) {
    sigkilled_worker_is_replaced_in(transport, StartMode::Zygote).await;
}
}

on_both_transports! {
#[tokio::test]
async fn sigkilled_spawned_worker_is_replaced_and_pool_returns_to_full_size(transport: TransportKind) {
    sigkilled_worker_is_replaced_in(transport, StartMode::Spawn).await;
}
}

/// The parent pid of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn sigkilled_worker_is_replaced_in(transport: TransportKind, mode: StartMode) {
    let pool = ready_pool_on(transport, 2, |c| c.start_mode = mode).await;
    sigkill_one_and_await_replacement(&pool).await;
    // The replacement came the pool's way: forked by its zygote, or spawned by the host.
    for w in pool.list_workers() {
        let by_host = parent_of(w.pid) == std::process::id();
        assert_eq!(
            by_host,
            mode == StartMode::Spawn,
            "worker {} ({mode:?})",
            w.pid
        );
    }
    for _ in 0..4 {
        pool.execute("ping", json!({}), CallOptions::default())
            .await
            .unwrap();
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_no_process_of_the_run() {
    shutdown_leaves_no_process_in(StartMode::Zygote).await;
}

#[tokio::test]
async fn shutdown_of_spawned_workers_leaves_no_process_of_the_run() {
    shutdown_leaves_no_process_in(StartMode::Spawn).await;
}

async fn shutdown_leaves_no_process_in(mode: StartMode) {
    let pool = ready_pool(3, |c| c.start_mode = mode).await;
    let run_id = pool.run_id().to_string();
    // Three workers, plus the pool's zygote when they are forked from one.
    let expected = 3 + usize::from(mode == StartMode::Zygote);
    assert_eq!(processes_mentioning(&run_id).len(), expected);
    pool.shutdown().await;
    let left = processes_mentioning(&run_id);
    assert!(
        left.is_empty(),
        "processes of run {run_id} still alive: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saturated_and_queue_timeout_are_each_answered_exactly_once() {
    let pool = Arc::new(
        ready_pool(2, |c| {
            c.max_queue_size = 3;
            c.queue_timeout = Duration::from_millis(800);
        })
        .await,
    );
    let mut handles = Vec::new();
    for _ in 0..6 {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            pool.execute("sleep", json!({"ms": 2500}), CallOptions::default())
                .await
        }));
        // Give each call time to be scheduled, so the order is deterministic.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let mut ok = 0;
    let mut saturated = 0;
    let mut queue_timeouts = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) if e.kind() == ErrorKind::Saturated => saturated += 1,
            Err(e) if e.kind() == ErrorKind::QueueTimeout => queue_timeouts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, saturated, queue_timeouts), (2, 1, 3));
    let stats = pool.stats();
    assert_eq!(stats.pool_saturated, 1);
    assert_eq!(stats.queue_timeouts, 3);
    assert_eq!(stats.queued, 0);
    pool.shutdown().await;
}

on_both_transports! {
#[tokio::test]
async fn session_calls_stick_to_the_worker_that_served_them_first(transport: TransportKind) {
    let pool = ready_pool_on(transport, 3, |_| {}).await;
    let opts = CallOptions::default().with_session("user-42");
    let first = pool
        .execute("process_info", json!({}), opts.clone())
        .await
        .unwrap();
    for _ in 0..5 {
        let again = pool
            .execute("process_info", json!({}), opts.clone())
            .await
            .unwrap();
        assert_eq!(again.json["pid"], first.json["pid"]);
    }
    assert!(pool.session_worker(&"user-42".into()).is_some());
    pool.shutdown().await;
}
}

#[tokio::test]
async fn adapter_that_cannot_be_imported_fails_start_up_with_its_stderr() {
    let mut config = snakepit_core::config::PoolConfig::showcase(1);
    config.adapter_spec = "no_such_module.Adapter".into();
    config.adapter_args = vec!["--adapter".into(), "no_such_module.Adapter".into()];
    let pool = snakepit_pool::Pool::start(config).await.unwrap();
    let err = pool.await_ready(Duration::from_secs(60)).await.unwrap_err();
    assert!(err.to_string().contains("no_such_module"), "{err}");
    pool.shutdown().await;
}

#[tokio::test]
async fn workers_are_recorded_in_the_process_registry_with_their_start_time() {
    let pool = ready_pool(2, |_| {}).await;
    let path =
        snakepit_worker::registry::default_registry_dir().join(format!("{}.json", pool.run_id()));
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut recorded: Vec<u64> = run["workers"]
        .as_object()
        .unwrap()
        .values()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    let mut live: Vec<u64> = pool
        .list_workers()
        .iter()
        .map(|w| u64::from(w.pid))
        .collect();
    recorded.sort_unstable();
    live.sort_unstable();
    assert_eq!(recorded, live);
    for w in run["workers"].as_object().unwrap().values() {
        let pid = w["pid"].as_u64().unwrap() as u32;
        assert_eq!(
            snakepit_worker::registry::process_start_time(pid),
            w["start_time"].as_u64()
        );
    }
    pool.shutdown().await;
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(after["workers"].as_object().unwrap().is_empty());
    drop(pool);
    assert!(!path.exists(), "the run file outlived its pool");
}

on_both_transports! {
#[tokio::test]
async fn pool_set_routes_calls_to_named_pools_with_their_own_profiles(transport: TransportKind) {
    let config = snakepit_core::config::SnakepitConfig::from_toml_str(&format!(
        r#"
        [[pools]]
        name = "default"
        pool_size = 1
        transport = "{transport}"
        [pools.heartbeat]
        enabled = false
        [[pools]]
        name = "threads"
        worker_profile = "thread"
        threads_per_worker = 3
        pool_size = 1
        transport = "{transport}"
        [pools.heartbeat]
        enabled = false
        "#
    ))
    .unwrap();
    let set = Arc::new(snakepit_pool::PoolSet::start(&config).await.unwrap());
    set.await_ready(Duration::from_secs(90)).await.unwrap();
    assert_eq!(set.names().collect::<Vec<_>>(), vec!["default", "threads"]);
    let a = set
        .execute("default", "process_info", json!({}), CallOptions::default())
        .await
        .unwrap();
    let b = set
        .execute("threads", "process_info", json!({}), CallOptions::default())
        .await
        .unwrap();
    assert_ne!(a.json["pid"], b.json["pid"]);
    let err = set
        .execute("nope", "ping", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("default, threads"), "{err}");

    // The thread profile serves three calls on one worker at once.
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let set = set.clone();
            tokio::spawn(async move {
                set.execute(
                    "threads",
                    "sleep",
                    json!({"ms": 1500}),
                    CallOptions::default(),
                )
                .await
            })
        })
        .collect();
    let threads = set.pool("threads").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || threads
            .list_workers()
            .first()
            .map(|w| w.load)
            == Some(3))
        .await
    );
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(set.stats()["threads"].requests, 4);
    set.shutdown().await;
}
}

#[cfg(feature = "host-bridge")]
on_both_transports! {
#[tokio::test]
async fn python_tools_call_host_tools_and_get_their_results(transport: TransportKind) {
    use snakepit_worker::host_bridge::{HostTool, HostTools};
    let tools = HostTools::default();
    tools.register(
        HostTool::new("multiply", "Multiply a by b.", |call| async move {
            let a = call
                .args
                .get("a")
                .and_then(serde_json::Value::as_i64)
                .ok_or("missing a")?;
            let b = call
                .args
                .get("b")
                .and_then(serde_json::Value::as_i64)
                .ok_or("missing b")?;
            Ok(json!(a * b))
        })
        .with_parameter("a", "integer", true)
        .with_parameter("b", "integer", true),
    );
    let mut config = snakepit_core::config::PoolConfig::showcase(1);
    config.heartbeat.enabled = false;
    config.transport = transport;
    // Generous, as in `ready_pool`: on a loaded machine a zygote can take longer than 10 s.
    config.startup_timeout = Duration::from_secs(60);
    let pool = snakepit_pool::Pool::start_with_host_tools(config, tools)
        .await
        .unwrap();
    pool.await_ready(Duration::from_secs(60)).await.unwrap();
    let out = pool
        .execute(
            "call_host",
            json!({"tool": "multiply", "args": {"a": 6, "b": 7}}),
            CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.json, json!(42));
    let err = pool
        .execute(
            "call_host",
            json!({"tool": "multiply", "args": {"a": 6}}),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    let py = err.python_exception().unwrap();
    assert_eq!(py.exception_type, "HostToolError");
    assert!(py.message.contains("missing b"), "{}", py.message);
    let err = pool
        .execute(
            "call_host",
            json!({"tool": "nope", "args": {}}),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown host tool 'nope'"),
        "{err}"
    );
    // The worker announced its own tools to the host at start-up.
    let announced = pool.host_tools().worker_tools();
    assert!(announced.contains_key("echo"), "{announced:?}");
    pool.shutdown().await;
}
}
