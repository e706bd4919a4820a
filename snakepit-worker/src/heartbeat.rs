//! The heartbeat of one worker: pings on an interval, counts misses, and in dependent mode
//! kills a worker that stopped answering.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use nix::sys::signal::Signal;
use snakepit_core::config::HeartbeatConfig;

use crate::client::WorkerClient;
use crate::process::{HostSignal, WorkerProcess};

/// What a worker's heartbeat has seen so far (the seeds keep these counters for debugging,
/// most usefully in independent mode, where misses do not end the worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartbeatStatus {
    /// Pings sent.
    pub pings: u64,
    /// Pings answered in time.
    pub pongs: u64,
    /// Misses since the last answer (back to 0 on a pong).
    pub missed_in_a_row: u32,
    /// Misses since the worker started.
    pub missed_total: u64,
    /// Times `max_missed_heartbeats` was reached (in dependent mode at most once: the worker
    /// is then killed).
    pub declared_dead: u64,
}

/// The live counters behind [`HeartbeatStatus`], shared by the heartbeat task and the worker.
#[derive(Debug, Default)]
pub(crate) struct HeartbeatCounters {
    pings: AtomicU64,
    pongs: AtomicU64,
    missed_in_a_row: AtomicU32,
    missed_total: AtomicU64,
    declared_dead: AtomicU64,
}

impl HeartbeatCounters {
    pub(crate) fn status(&self) -> HeartbeatStatus {
        HeartbeatStatus {
            pings: self.pings.load(Ordering::Relaxed),
            pongs: self.pongs.load(Ordering::Relaxed),
            missed_in_a_row: self.missed_in_a_row.load(Ordering::Relaxed),
            missed_total: self.missed_total.load(Ordering::Relaxed),
            declared_dead: self.declared_dead.load(Ordering::Relaxed),
        }
    }
}

/// Pings the worker every interval; after `max_missed_heartbeats` misses in a row a
/// dependent worker's process group is killed, an independent one is only reported.
pub(crate) async fn run(
    client: WorkerClient,
    process: Arc<WorkerProcess>,
    cfg: HeartbeatConfig,
    counters: Arc<HeartbeatCounters>,
) {
    tokio::time::sleep(cfg.initial_delay).await;
    let mut tick = tokio::time::interval(cfg.ping_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if process.exit_info().is_some() {
            return;
        }
        counters.pings.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(cfg.timeout, client.ping()).await {
            Ok(Ok(_)) => {
                counters.pongs.fetch_add(1, Ordering::Relaxed);
                counters.missed_in_a_row.store(0, Ordering::Relaxed);
            }
            outcome => {
                let missed = counters.missed_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                counters.missed_total.fetch_add(1, Ordering::Relaxed);
                let reason = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no pong within {} ms", cfg.timeout.as_millis()),
                };
                tracing::warn!(target: "snakepit::heartbeat", worker = %client.worker_id(), missed, reason = %reason, "heartbeat missed");
                // `==`: in independent mode a run of misses is declared dead once, not per miss.
                if missed == cfg.max_missed_heartbeats.max(1) {
                    counters.declared_dead.fetch_add(1, Ordering::Relaxed);
                    if cfg.dependent {
                        tracing::error!(target: "snakepit::heartbeat", worker = %client.worker_id(), missed, "worker unresponsive; killing it");
                        process.signal_for(HostSignal::HeartbeatLost, Signal::SIGKILL);
                        return;
                    }
                    // Independent mode: report once per run of misses and keep counting.
                    tracing::warn!(target: "snakepit::heartbeat", worker = %client.worker_id(), missed, "worker unresponsive; heartbeat is independent, so it keeps running");
                }
            }
        }
    }
}
