//! How the pool applies its crash barrier: worker slots, the verdict on each crash or failed
//! start, the events and stats that report it, and the error calls get when no slot is left.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use snakepit_core::{Error, ErrorKind, WorkerId};
use snakepit_worker::ExitInfo;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::crash_barrier::{classify, device_of, CrashKind, Verdict};
use crate::pool::Inner;
use crate::service::{CallMode, WorkerCall, WorkerReply, WorkerService};

/// What the crash barrier reports ([`Pool::crash_barrier_stats`](crate::Pool::crash_barrier_stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashBarrierStats {
    /// Worker slots that crashed more than `max_restarts` times within `window_seconds` and
    /// are no longer restarted (the pool runs with that many fewer workers).
    pub stopped_slots: usize,
    /// Crashes by kind: `exit`, `signal`, `oom_killed`, `heartbeat_lost`, `startup_failure`.
    pub crashes: BTreeMap<&'static str, u64>,
    /// GPU devices avoided after a crash on them (`cuda:0`), until `taint_ms` has passed.
    pub tainted_devices: Vec<String>,
}

impl Inner {
    /// Takes a slot for a worker about to start.
    pub(crate) fn take_slot(&self) -> usize {
        self.barrier.lock().map(|mut b| b.take_slot()).unwrap_or(0)
    }

    /// Records that worker `id` fills `slot`.
    pub(crate) fn assign_slot(&self, id: &WorkerId, slot: usize) {
        if let Ok(mut b) = self.barrier.lock() {
            b.assign(id, slot, device_of(&self.config.adapter_env));
        }
    }

    /// Frees the slot of a worker that left without crashing (recycled, stopped).
    pub(crate) fn release_slot(&self, id: &WorkerId) {
        if let Ok(mut b) = self.barrier.lock() {
            b.release(id);
        }
    }

    /// Gives back a slot whose start was abandoned because the pool is stopping.
    pub(crate) fn give_back_slot(&self, slot: usize) {
        if let Ok(mut b) = self.barrier.lock() {
            b.give_back(slot);
        }
    }

    /// A start in `slot` failed: counts it as a start-up crash and decides what follows.
    pub(crate) fn start_failed(&self, slot: usize, error: &Error) -> Verdict {
        self.crashed(slot, None, CrashKind::StartupFailure, &error.to_string())
    }

    /// Worker `id`'s process ended unasked: classifies the death and decides the slot's fate.
    /// An exit the host caused (a timed-out call's kill) frees the slot for an immediate restart.
    pub(crate) fn worker_exited(&self, id: &WorkerId, exit: &ExitInfo) -> Verdict {
        let (slot, oom) = match self.barrier.lock() {
            Ok(b) => (b.slot_of(id), b.oom_kill_rose(id)),
            Err(_) => (None, false),
        };
        match (classify(exit, oom), slot) {
            (Some(kind), Some(slot)) => self.crashed(slot, Some(id), kind, &exit.to_string()),
            _ => {
                self.release_slot(id);
                Verdict::Restart(Duration::ZERO)
            }
        }
    }

    fn crashed(
        &self,
        slot: usize,
        id: Option<&WorkerId>,
        kind: CrashKind,
        detail: &str,
    ) -> Verdict {
        let now = Instant::now();
        let Ok(mut b) = self.barrier.lock() else {
            return Verdict::Restart(Duration::ZERO);
        };
        let verdict = b.record_crash(slot, id, kind, now);
        let worker = id.map(|w| w.to_string()).unwrap_or_default();
        tracing::warn!(target: "snakepit::crash_barrier", event = "snakepit.crash_barrier.crash", pool = %self.config.name, worker = %worker, slot, kind = kind.as_str(), detail, "worker {kind}");
        for device in b.tainted_devices(now) {
            if id.is_some() {
                tracing::warn!(target: "snakepit::crash_barrier", event = "snakepit.crash_barrier.taint", pool = %self.config.name, device = %device, taint_ms = self.config.crash_barrier.taint.as_millis() as u64, "device tainted after a crash");
            }
        }
        match verdict {
            Verdict::Stop { crashes } => {
                tracing::error!(target: "snakepit::crash_barrier", event = "snakepit.crash_barrier.slot_stopped", pool = %self.config.name, slot, crashes, window_s = self.config.crash_barrier.window.as_secs(), max_restarts = self.config.crash_barrier.max_restarts, "worker slot crash-loops; it is no longer restarted");
                if let Ok(mut last) = self.last_crash.lock() {
                    *last = Some(format!("{kind}: {detail}"));
                }
                let all_stopped = b.stopped_slots().len() >= self.config.pool_size;
                drop(b);
                if all_stopped {
                    self.fail_queued_calls();
                }
            }
            Verdict::Restart(delay) => {
                tracing::info!(target: "snakepit::crash_barrier", event = "snakepit.crash_barrier.restart", pool = %self.config.name, slot, delay_ms = delay.as_millis() as u64, "restarting the worker slot");
            }
        }
        verdict
    }

    /// With every slot stopped and no worker left, queued calls can never be served: answer them.
    fn fail_queued_calls(&self) {
        if let Ok(mut s) = self.scheduler.lock() {
            if s.worker_count() == 0 {
                let n = s.clear_queue();
                if n > 0 {
                    tracing::warn!(target: "snakepit::crash_barrier", pool = %self.config.name, failed = n, "queued calls failed: no worker slot is left");
                }
            }
        }
    }

    /// The error for a call that needs a worker when every slot stopped after crash-looping.
    pub(crate) fn crash_loop_error(&self) -> Option<Error> {
        let stopped = self.barrier.lock().ok()?.stopped_slots().len();
        let no_workers = self.scheduler.lock().ok()?.worker_count() == 0;
        if stopped < self.config.pool_size || !no_workers {
            return None;
        }
        let cb = &self.config.crash_barrier;
        let last = self
            .last_crash
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default();
        Some(Error::pool(format!(
            "pool '{}' stopped restarting its workers: each of its {} slots crashed more than {} times within {} s (crash_barrier.max_restarts, window_seconds); last crash: {last}; fix the tool or raise crash_barrier.max_restarts",
            self.config.name, stopped, cb.max_restarts, cb.window.as_secs()
        )))
    }

    /// The crash barrier's part of the pool's stats.
    pub(crate) fn crash_barrier_stats(&self) -> CrashBarrierStats {
        let Ok(b) = self.barrier.lock() else {
            return CrashBarrierStats::default();
        };
        CrashBarrierStats {
            stopped_slots: b.stopped_slots().len(),
            crashes: b.crash_counts(),
            tainted_devices: b.tainted_devices(Instant::now()),
        }
    }

    /// Whether a call whose worker died under it may run again on another worker.
    pub(crate) fn crash_retry_allowed(&self, idempotent: bool, retries_so_far: u32) -> bool {
        self.barrier
            .lock()
            .map(|b| b.retry_allowed(idempotent, retries_so_far))
            .unwrap_or(false)
    }
}

/// Sends `req` through the pool's stack; when its worker died under it and the caller marked it
/// idempotent, the crash barrier sends it again (up to `max_retries`). The retry shares the
/// call's record of attempted workers, so the checkout hands it another worker.
///
/// A configured `retry` table owns retries instead (two retry layers would multiply attempts),
/// and streams are never retried.
pub(crate) async fn with_crash_retry(
    inner: &Arc<Inner>,
    call: WorkerService,
    mut req: WorkerCall,
) -> Result<WorkerReply, Error> {
    let eligible = req.mode == CallMode::Unary && !inner.config.resilience.contains_key("retry");
    let mut retries = 0;
    loop {
        let again = (eligible && inner.crash_retry_allowed(req.call.options.idempotent, retries))
            .then(|| req.clone());
        match (call.clone().oneshot(req).await, again) {
            (Err(e), Some(next)) if e.kind() == ErrorKind::WorkerCrash => {
                retries += 1;
                inner.counters.crash_retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "snakepit::crash_barrier", event = "snakepit.crash_barrier.retry", pool = %inner.config.name, tool = %next.call.tool, error = %e, "idempotent call retried on another worker after its worker crashed");
                req = next;
            }
            (result, _) => return result,
        }
    }
}
