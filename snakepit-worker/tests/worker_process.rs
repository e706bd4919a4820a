//! Integration tests of one real worker process: readiness, token, stop, kill-on-drop.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use snakepit_core::config::PoolConfig;
use snakepit_core::{ErrorKind, ToolCall, WorkerId};
use snakepit_proto::pb;
use snakepit_worker::{python_env, RunContext, Worker, WorkerSpec};

async fn spec(id: &str) -> WorkerSpec {
    let mut pool = PoolConfig::showcase(1);
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
        exit.description, "exit status 0",
        "SIGTERM should end the worker cleanly"
    );
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

#[tokio::test]
async fn crash_during_a_call_is_reported_as_a_worker_crash() {
    let run = RunContext::new().unwrap();
    let worker = Worker::start(spec("w_crash").await, run).await.unwrap();
    let call = ToolCall::new("sleep", serde_json::json!({"ms": 5000})).unwrap();
    let client = worker.client();
    let pending = tokio::spawn(async move { client.execute(call).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.kill();
    let err = pending.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerCrash, "{err}");
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
