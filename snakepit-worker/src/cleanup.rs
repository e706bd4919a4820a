//! Bounded cleanup of a run's worker processes: SIGTERM, poll, SIGKILL with retries, and the
//! pids that would not die (the seeds' `cleanup/0`, which returns `{timeout, pids}`).
//!
//! Only processes proven to be this run's are signalled: the registry entry's pid must still
//! have the recorded start time and a command line that carries the run id.

use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use snakepit_core::config::CleanupConfig;

use crate::registry::{process_start_time, ProcessRegistry, RegistryEntry};

/// What a cleanup pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupOutcome {
    /// Pids of this run's processes that were alive and are gone now.
    pub stopped: Vec<u32>,
    /// Pids still alive when the bound ran out (empty when everything ended).
    pub leftover: Vec<u32>,
}

fn alive(entry: &RegistryEntry) -> bool {
    process_start_time(entry.pid) == Some(entry.start_time)
}

fn signal(entry: &RegistryEntry, sig: Signal) {
    // Each worker leads its own process group; the pid covers a child that left it.
    let _ = killpg(Pid::from_raw(entry.pid as i32), sig);
    let _ = kill(Pid::from_raw(entry.pid as i32), sig);
}

/// Stops every live process recorded for this run within `timeout`: SIGTERM first, SIGKILL
/// for survivors after half the bound, repeated `max_retries` times `retry_interval` apart.
/// Entries of ended processes are removed from the registry; the outcome lists the rest.
pub async fn cleanup_run(
    registry: &ProcessRegistry,
    cfg: &CleanupConfig,
    timeout: Duration,
) -> CleanupOutcome {
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut live: Vec<RegistryEntry> = Vec::new();
    for entry in registry.entries() {
        if alive(&entry) && registry.owns(&entry) {
            live.push(entry);
        } else {
            let _ = registry.unregister(&entry.worker_id);
        }
    }
    let targets: Vec<u32> = live.iter().map(|e| e.pid).collect();
    for entry in &live {
        signal(entry, Signal::SIGTERM);
    }
    let term_until = start + timeout / 2;
    let poll = cfg.poll_interval.max(Duration::from_millis(1));
    wait_until(term_until, poll, &mut live).await;
    let mut attempts = 0;
    while !live.is_empty() && attempts <= cfg.max_retries {
        for entry in &live {
            // Re-checked by `alive` just before: the pid still is the recorded process.
            signal(entry, Signal::SIGKILL);
        }
        attempts += 1;
        let until = (tokio::time::Instant::now() + cfg.retry_interval).min(deadline);
        wait_until(until, poll, &mut live).await;
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    live.retain(alive);
    let leftover: Vec<u32> = live.iter().map(|e| e.pid).collect();
    let stopped: Vec<u32> = targets
        .iter()
        .copied()
        .filter(|p| !leftover.contains(p))
        .collect();
    for entry in registry.entries() {
        if !leftover.contains(&entry.pid) {
            let _ = registry.unregister(&entry.worker_id);
        }
    }
    if !leftover.is_empty() {
        tracing::error!(target: "snakepit::pool", leftover = ?leftover, timeout_ms = timeout.as_millis() as u64, "cleanup: processes still alive after the bound");
    }
    CleanupOutcome { stopped, leftover }
}

/// Polls every `poll` until every process in `live` has ended or `until` passes.
async fn wait_until(until: tokio::time::Instant, poll: Duration, live: &mut Vec<RegistryEntry>) {
    loop {
        live.retain(alive);
        if live.is_empty() || tokio::time::Instant::now() >= until {
            return;
        }
        tokio::time::sleep(poll).await;
    }
}
