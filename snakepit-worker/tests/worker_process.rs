//! Integration tests of one real worker process: readiness, token, stop, kill-on-drop.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt;
use snakepit_core::config::{PoolConfig, TransportKind};
use snakepit_core::{ErrorKind, ToolCall, WorkerId};
use snakepit_proto::pb;
use snakepit_worker::{python_env, RunContext, Worker, WorkerSpec};

#[macro_use]
mod support;

async fn spec(id: &str) -> WorkerSpec {
    spec_on(id, TransportKind::default()).await
}

async fn spec_on(id: &str, transport: TransportKind) -> WorkerSpec {
    let mut pool = PoolConfig::showcase(1);
    pool.transport = transport;
    pool.heartbeat.enabled = false;
    pool.startup_timeout = Duration::from_secs(60);
    let python = python_env::ensure_python(None).await.expect("python");
    WorkerSpec::new(WorkerId::new(id), pool, python)
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn call_without_the_run_token_is_rejected() {
    let run = RunContext::new().unwrap();
    let worker = Worker::start(spec("w_token").await, run.clone())
        .await
        .unwrap();
    let socket = run.dir().join("w_token.sock");
    let channel = snakepit_worker::unix_channel(socket).await.unwrap();
    let mut raw = pb::BridgeServiceClient::new(channel);
    let status = raw
        .ping(pb::PingRequest {
            message: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut req = tonic::Request::new(pb::ExecuteToolRequest {
        tool_name: "ping".into(),
        ..Default::default()
    });
    req.metadata_mut().insert(
        snakepit_proto::TOKEN_METADATA_KEY,
        "not-the-token".parse().unwrap(),
    );
    assert_eq!(
        raw.execute_tool(req).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    // The worker's own client carries the token.
    worker.client().ping().await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn run_directory_and_socket_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let run = RunContext::new().unwrap();
    let worker = Worker::start(spec("w_private").await, run.clone())
        .await
        .unwrap();
    let mode = std::fs::metadata(run.dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert!(run.dir().join("w_private.sock").exists());
    worker.stop().await;
}

#[tokio::test]
async fn stop_ends_the_process_and_drop_kills_it() {
    let run = RunContext::new().unwrap();
    let worker = Worker::start(spec("w_stop").await, run.clone())
        .await
        .unwrap();
    let pid = worker.pid();
    assert!(alive(pid));
    let exit = worker.stop().await;
    assert_eq!(
        exit.kind,
        snakepit_worker::ExitKind::Exited { code: 0 },
        "SIGTERM should end the worker cleanly"
    );
    assert_eq!(exit.to_string(), "exit status 0");
    assert_eq!(exit.host_signal, snakepit_worker::HostSignal::Stop);
    assert!(!alive(pid));

    let worker = Worker::start(spec("w_drop").await, run.clone())
        .await
        .unwrap();
    let pid = worker.pid();
    drop(worker);
    let mut gone = false;
    for _ in 0..200 {
        if !alive(pid) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "dropped worker {pid} still alive");
}

/// A worker of the test adapter `lifecycle_adapter.<class>` (python/tests), writing `marker`.
async fn test_adapter_spec(
    id: &str,
    transport: TransportKind,
    class: &str,
    marker: &std::path::Path,
) -> WorkerSpec {
    let mut s = spec_on(id, transport).await;
    let adapter = format!("lifecycle_adapter.{class}");
    s.pool.adapter_spec = adapter.clone();
    s.pool.adapter_args = vec!["--adapter".into(), adapter];
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/../python/tests");
    s.pool.adapter_env.insert("PYTHONPATH".into(), tests.into());
    s.pool
        .adapter_env
        .insert("MARKER_FILE".into(), marker.display().to_string());
    s
}

on_both_transports! {
#[tokio::test]
async fn the_worker_reports_its_transport(transport: TransportKind) {
    let worker = Worker::start(spec_on("w_kind", transport).await, RunContext::new().unwrap())
        .await
        .unwrap();
    assert_eq!(worker.transport(), transport);
    assert_eq!(worker.client().transport(), transport);
    let out = worker
        .execute(ToolCall::new("add", serde_json::json!({"a": 2, "b": 3})).unwrap())
        .await
        .unwrap();
    assert_eq!(out.json, serde_json::json!(5));
    worker.stop().await;
}
}

on_both_transports! {
#[tokio::test]
async fn dropping_a_stream_midway_closes_the_python_generator(transport: TransportKind) {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("closed");
    let spec = test_adapter_spec("w_drop_stream", transport, "GeneratorCloseAdapter", &marker).await;
    let worker = Worker::start(spec, RunContext::new().unwrap()).await.unwrap();
    let call = ToolCall::new("endless", serde_json::json!({"delay_ms": 20})).unwrap();
    let mut stream = worker.execute_stream(call).await.unwrap();
    for i in 1..=3 {
        let chunk = stream.next().await.unwrap().unwrap();
        assert_eq!(chunk.json, Some(serde_json::json!({"i": i})));
    }
    assert!(!marker.exists());
    drop(stream);
    let mut closed = false;
    for _ in 0..500 {
        if marker.exists() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the generator was not closed after the stream was dropped");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "closed");
    // The worker serves the next call.
    let call = ToolCall::new("wait_for_cancel", serde_json::json!({"timeout_ms": 0})).unwrap();
    let out = worker.execute(call).await.unwrap();
    assert_eq!(out.json, serde_json::json!("not cancelled"));
    worker.stop().await;
}
}

on_both_transports! {
#[tokio::test]
async fn a_dropped_call_sets_the_tools_cancelled_flag(transport: TransportKind) {
    // The thread profile runs sync tools on a worker thread, so the flag is visible mid-call.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("cancelled");
    let mut spec = test_adapter_spec("w_cancel", transport, "GeneratorCloseAdapter", &marker).await;
    spec.pool.worker_profile = snakepit_core::config::WorkerProfile::Thread;
    spec.pool.threads_per_worker = 2;
    let worker = Worker::start(spec, RunContext::new().unwrap()).await.unwrap();
    let call = ToolCall::new("wait_for_cancel", serde_json::json!({})).unwrap();
    let pending = worker.execute(call);
    assert!(tokio::time::timeout(Duration::from_millis(500), pending).await.is_err());
    let mut cancelled = false;
    for _ in 0..500 {
        if marker.exists() {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cancelled, "the tool never saw its context's cancelled flag");
    worker.stop().await;
}
}

on_both_transports! {
#[tokio::test]
async fn a_sixteen_mib_message_goes_both_ways(transport: TransportKind) {
    let worker = Worker::start(spec_on("w_16mib", transport).await, RunContext::new().unwrap())
        .await
        .unwrap();
    let data = bytes::Bytes::from(vec![7u8; 16 << 20]);
    let call = ToolCall::new("echo_bytes", serde_json::json!({}))
        .unwrap()
        .with_binary_arg("data", data.clone());
    let out = worker.execute(call).await.unwrap();
    assert_eq!(out.binary.as_deref(), Some(&data[..]));
    worker.stop().await;
}
}

#[tokio::test]
async fn fast_messages_above_max_message_bytes_are_refused_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("unused");
    let mut spec =
        test_adapter_spec("w_max", TransportKind::Fast, "LifecycleAdapter", &marker).await;
    spec.pool.max_message_bytes = 1 << 20;
    let worker = Worker::start(spec, RunContext::new().unwrap())
        .await
        .unwrap();
    // The host refuses to send a request above the maximum.
    let call = ToolCall::new(
        "big",
        serde_json::json!({"n": 1, "pad": "y".repeat(2 << 20)}),
    )
    .unwrap();
    let err = worker.execute(call).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(err.to_string().contains("max_message_bytes"), "{err}");
    // The worker refuses to send a response above it, and says so.
    let call = ToolCall::new("big", serde_json::json!({"n": 2 << 20})).unwrap();
    let err = worker.execute(call).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(
        err.to_string().contains("response of call 'big'")
            && err.to_string().contains("max_message_bytes"),
        "{err}"
    );
    // Both kept the connection: the next call is served.
    let out = worker
        .execute(ToolCall::new("big", serde_json::json!({"n": 3})).unwrap())
        .await
        .unwrap();
    assert_eq!(out.json, serde_json::json!("xxx"));
    worker.stop().await;
}

on_both_transports! {
#[tokio::test]
async fn crash_during_a_call_is_reported_as_a_worker_crash(transport: TransportKind) {
    let run = RunContext::new().unwrap();
    let worker = Worker::start(spec_on("w_crash", transport).await, run).await.unwrap();
    let call = ToolCall::new("sleep", serde_json::json!({"ms": 5000})).unwrap();
    let client = worker.client();
    let pending = tokio::spawn(async move { client.execute(call).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.kill();
    let err = pending.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerCrash, "{err}");
}
}

#[tokio::test]
async fn start_up_failure_reports_the_workers_stderr() {
    let mut s = spec("w_bad").await;
    s.pool.adapter_args = vec!["--adapter".into(), "missing_pkg.Adapter".into()];
    let err = Worker::start(s, RunContext::new().unwrap())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("missing_pkg") && text.contains("ModuleNotFoundError"),
        "{text}"
    );
}
