//! An adapter that starts a thread at import makes forking unsafe: the worker is spawned and
//! the host warns (own test binary: it installs a global tracing subscriber to read the warning).

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snakepit_core::config::{PoolConfig, StartMode};
use snakepit_core::{ToolCall, WorkerId};
use snakepit_worker::{python_env, RunContext, Worker, WorkerSpec};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn adapter_starting_a_thread_at_import_falls_back_to_spawn_with_a_warning() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let modules = tempfile::tempdir().unwrap();
    std::fs::write(
        modules.path().join("zygote_threaded_adapter.py"),
        "import threading, time\n\
         threading.Thread(target=time.sleep, args=(3600,), name='model-loader', daemon=True).start()\n\
         from snakepit_bridge.adapters.showcase import ShowcaseAdapter as Adapter\n",
    )
    .unwrap();
    let mut pool = PoolConfig::showcase(1);
    pool.start_mode = StartMode::Zygote;
    pool.heartbeat.enabled = false;
    pool.startup_timeout = Duration::from_secs(120);
    pool.adapter_args = vec!["--adapter".into(), "zygote_threaded_adapter.Adapter".into()];
    pool.adapter_env.insert(
        "PYTHONPATH".into(),
        modules.path().to_string_lossy().into_owned(),
    );
    let python = python_env::ensure_python(None).await.unwrap();
    let run = RunContext::new().unwrap();
    for id in ["zf_1", "zf_2"] {
        let spec = WorkerSpec::new(WorkerId::new(id), pool.clone(), python.clone());
        let worker = Worker::start(spec, run.clone()).await.unwrap();
        assert_eq!(
            parent_of(worker.pid()),
            std::process::id(),
            "the worker should be spawned by the host"
        );
        let call = ToolCall::new("ping", serde_json::json!({})).unwrap();
        worker.execute(call).await.unwrap();
        worker.stop().await;
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("unsafe")).collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, then spawn silently:\n{logs}"
    );
    assert!(
        warnings[0].contains("falling back to start_mode = \"spawn\"")
            && warnings[0].contains("model-loader"),
        "{logs}"
    );
}
