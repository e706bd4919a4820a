//! Shared support for the integration tests: real Python workers (`SNAKEPIT_PYTHON`, which
//! `cargo xtask ci` points at the project's `.venv`).

#![allow(dead_code, unreachable_pub, missing_docs, unused_macros)]

use std::time::Duration;

use snakepit_core::config::{PoolConfig, TransportKind};
use snakepit_pool::Pool;

include!("../../../snakepit-worker/tests/support/transports.rs");

/// A showcase pool of `size` workers, configured by `tweak`, ready to serve.
pub async fn ready_pool(size: usize, tweak: impl FnOnce(&mut PoolConfig)) -> Pool {
    ready_pool_on(TransportKind::default(), size, tweak).await
}

/// A showcase pool of `size` workers on `transport`, configured by `tweak`, ready to serve.
pub async fn ready_pool_on(
    transport: TransportKind,
    size: usize,
    tweak: impl FnOnce(&mut PoolConfig),
) -> Pool {
    let mut config = PoolConfig::showcase(size);
    config.transport = transport;
    config.heartbeat.enabled = false;
    // Generous: on a loaded machine a replacement worker can take longer than 5 s to start.
    config.queue_timeout = Duration::from_secs(60);
    config.startup_timeout = Duration::from_secs(60);
    tweak(&mut config);
    let pool = Pool::start(config).await.expect("pool starts");
    pool.await_ready(Duration::from_secs(90))
        .await
        .expect("workers become ready");
    pool
}

/// Pids of live (non-zombie) processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            let zombie = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(false);
            if !zombie {
                found.push(pid);
            }
        }
    }
    found
}

/// Waits (polling, bounded) until `cond` holds; returns whether it did.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// SIGKILLs the pool's first worker and waits (up to 60 s) until a replacement has taken its
/// place and the pool counted the restart; returns the killed pid.
pub async fn sigkill_one_and_await_replacement(pool: &Pool) -> u32 {
    let workers = pool.list_workers();
    let victim = workers[0].pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the worker");
    let replaced = eventually(Duration::from_secs(60), || {
        let ws = pool.list_workers();
        ws.len() == workers.len() && ws.iter().all(|w| w.pid != victim)
    })
    .await;
    assert!(replaced, "workers now: {:?}", pool.list_workers());
    assert!(pool.stats().worker_restarts >= 1);
    victim
}

/// A pool of the fault-test adapter (python/tests/fault_adapter.py), configured by `tweak`, ready.
pub async fn fault_pool(size: usize, tweak: impl FnOnce(&mut PoolConfig)) -> Pool {
    fault_pool_on(TransportKind::default(), size, tweak).await
}

/// A pool of `size` workers running `fault_adapter.FaultAdapter` on `transport`, ready to serve.
pub async fn fault_pool_on(
    transport: TransportKind,
    size: usize,
    tweak: impl FnOnce(&mut PoolConfig),
) -> Pool {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("python")
        .join("tests");
    ready_pool_on(transport, size, |c| {
        c.adapter_spec = "fault_adapter.FaultAdapter".into();
        c.adapter_args = vec!["--adapter".into(), c.adapter_spec.clone()];
        c.adapter_env
            .insert("PYTHONPATH".into(), tests.display().to_string());
        tweak(c);
    })
    .await
}
