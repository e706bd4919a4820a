//! The bounded cleanup pass against real processes: a frozen worker that cannot act on
//! SIGTERM is killed, a process that is not provably ours is left alone.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use snakepit_core::config::{CleanupConfig, PoolConfig};
use snakepit_core::WorkerId;
use snakepit_worker::cleanup::cleanup_run;
use snakepit_worker::registry::ProcessRegistry;
use snakepit_worker::{python_env, RunContext, Worker, WorkerSpec};

/// A private (0700) registry folder inside a temp dir.
fn registry_dir(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    tmp.path().join("registry")
}

async fn worker(id: &str, run: &std::sync::Arc<RunContext>) -> Worker {
    let mut pool = PoolConfig::showcase(1);
    pool.heartbeat.enabled = false;
    pool.startup_timeout = Duration::from_secs(60);
    let python = python_env::ensure_python(None).await.expect("python");
    Worker::start(
        WorkerSpec::new(WorkerId::new(id), pool, python),
        run.clone(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn cleanup_kills_a_worker_deaf_to_sigterm_and_clears_its_entry() {
    let run = RunContext::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = ProcessRegistry::create(&registry_dir(&dir), run.run_id()).unwrap();
    let w = worker("cleanup_frozen", &run).await;
    registry.register("cleanup_frozen", w.pid()).unwrap();
    // A stopped process cannot act on SIGTERM; only the SIGKILL phase ends it.
    kill(Pid::from_raw(w.pid() as i32), Signal::SIGSTOP).unwrap();
    let cfg = CleanupConfig::default();
    let outcome = cleanup_run(&registry, &cfg, Duration::from_secs(4)).await;
    assert_eq!(outcome.stopped, vec![w.pid()]);
    assert!(outcome.leftover.is_empty(), "{outcome:?}");
    assert!(registry.entries().is_empty());
    let exit = tokio::time::timeout(Duration::from_secs(30), w.exited())
        .await
        .unwrap();
    assert_eq!(
        exit.kind,
        snakepit_worker::ExitKind::Signalled { signal: 9 },
        "{exit:?}"
    );
}

#[tokio::test]
async fn cleanup_never_signals_a_process_it_cannot_prove_is_ours() {
    let run = RunContext::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = ProcessRegistry::create(&registry_dir(&dir), run.run_id()).unwrap();
    // A live process recorded under this run whose command line lacks the run id.
    let mut stranger = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    registry.register("stranger", stranger.id()).unwrap();
    let outcome = cleanup_run(&registry, &CleanupConfig::default(), Duration::from_secs(2)).await;
    assert!(
        outcome.stopped.is_empty() && outcome.leftover.is_empty(),
        "{outcome:?}"
    );
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    assert!(
        registry.entries().is_empty(),
        "its entry is dropped all the same"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}
