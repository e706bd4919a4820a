//! Integration tests of the zygote start mode with real Python: forking many workers, surviving
//! the zygote's death, and the import-failure error.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use snakepit_core::config::{PoolConfig, StartMode};
use snakepit_core::{ToolCall, WorkerId};
use snakepit_worker::{python_env, RunContext, Worker, WorkerSpec};

async fn zygote_spec(id: &str) -> WorkerSpec {
    let mut pool = PoolConfig::showcase(1);
    pool.start_mode = StartMode::Zygote;
    pool.heartbeat.enabled = false;
    pool.startup_timeout = Duration::from_secs(120);
    let python = python_env::ensure_python(None).await.expect("python");
    WorkerSpec::new(WorkerId::new(id), pool, python)
}

/// The parent pid of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn serves_ping(worker: &Worker) {
    let call = ToolCall::new("ping", serde_json::json!({})).unwrap();
    worker.execute(call).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_workers_from_one_zygote_serve_ping_with_distinct_pids() {
    let run = RunContext::new().unwrap();
    let mut workers = Vec::new();
    // Batches keep a loaded machine from timing out the handshakes; all come from one zygote.
    for batch in 0..4 {
        let starts = (0..25).map(|i| {
            let run = run.clone();
            async move {
                let spec = zygote_spec(&format!("z_{batch}_{i}")).await;
                Worker::start(spec, run).await.unwrap()
            }
        });
        workers.extend(futures::future::join_all(starts).await);
    }
    let mut pids: Vec<u32> = workers.iter().map(Worker::pid).collect();
    let zygote = parent_of(pids[0]);
    assert_ne!(
        zygote,
        std::process::id(),
        "workers should be forked, not spawned"
    );
    for pid in &pids {
        assert_eq!(parent_of(*pid), zygote, "worker {pid} has another parent");
    }
    futures::future::join_all(workers.iter().map(serves_ping)).await;
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 100);
    futures::future::join_all(workers.iter().map(Worker::stop)).await;
}

#[tokio::test]
async fn killing_the_zygote_leaves_its_workers_serving_and_the_next_start_works() {
    let run = RunContext::new().unwrap();
    let first = Worker::start(zygote_spec("zk_1").await, run.clone())
        .await
        .unwrap();
    let zygote = parent_of(first.pid());
    assert_ne!(zygote, std::process::id());
    kill(Pid::from_raw(zygote as i32), Signal::SIGKILL).unwrap();
    // The orphan is re-parented away from the dead zygote and keeps serving.
    let mut reparented = false;
    for _ in 0..500 {
        if parent_of(first.pid()) != zygote {
            reparented = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        reparented,
        "worker {} still lists the dead zygote",
        first.pid()
    );
    serves_ping(&first).await;
    assert!(first.exit_info().is_none());

    let second = Worker::start(zygote_spec("zk_2").await, run.clone())
        .await
        .unwrap();
    serves_ping(&second).await;
    let new_zygote = parent_of(second.pid());
    assert_ne!(new_zygote, zygote, "a new zygote should have forked it");
    assert_ne!(new_zygote, std::process::id());

    // The orphan's exit is still seen (by polling /proc, as nobody reports it now).
    first.kill();
    let exit = tokio::time::timeout(Duration::from_secs(30), first.exited())
        .await
        .unwrap();
    assert!(
        matches!(exit.kind, snakepit_worker::ExitKind::Unknown { .. }),
        "{exit:?}"
    );
    assert_eq!(
        exit.to_string(),
        "exited (status unknown: its zygote was gone)"
    );
    assert_eq!(exit.host_signal, snakepit_worker::HostSignal::Kill);

    // A live zygote reports its child's end with a typed signal, not only in words.
    second.kill();
    let exit = tokio::time::timeout(Duration::from_secs(30), second.exited())
        .await
        .unwrap();
    assert_eq!(
        exit.kind,
        snakepit_worker::ExitKind::Signalled { signal: 9 },
        "{exit:?}"
    );
    assert_eq!(exit.to_string(), "killed by signal 9 (SIGKILL)");
}

fn write_module(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(format!("{name}.py")), body).unwrap();
}

#[tokio::test]
async fn adapter_whose_import_raises_fails_start_with_that_error() {
    let modules = tempfile::tempdir().unwrap();
    write_module(
        modules.path(),
        "zygote_broken_adapter",
        "raise RuntimeError('the model file is missing')\n",
    );
    let mut spec = zygote_spec("z_broken").await;
    spec.pool.adapter_args = vec!["--adapter".into(), "zygote_broken_adapter.Adapter".into()];
    spec.pool.adapter_env.insert(
        "PYTHONPATH".into(),
        modules.path().to_string_lossy().into_owned(),
    );
    let err = Worker::start(spec, RunContext::new().unwrap())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("zygote"), "{text}");
    assert!(
        text.contains("'zygote_broken_adapter.Adapter' could not be imported")
            && text.contains("RuntimeError: the model file is missing"),
        "{text}"
    );
}

#[tokio::test]
async fn preload_module_that_cannot_be_imported_fails_start_naming_it() {
    let mut spec = zygote_spec("z_preload").await;
    spec.pool.preload = vec!["no_such_preload_module".into()];
    let err = Worker::start(spec, RunContext::new().unwrap())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("preload module 'no_such_preload_module' could not be imported"),
        "{text}"
    );
}
