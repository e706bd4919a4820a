//! Pool statistics: the seeds' counters and gauges, and per-worker information.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use snakepit_core::WorkerId;

/// The counters a pool keeps (monotonic).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) queue_timeouts: AtomicU64,
    pub(crate) pool_saturated: AtomicU64,
    pub(crate) worker_restarts: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) crash_retries: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(
        &self,
        workers: usize,
        queued: usize,
        available: usize,
        busy: usize,
    ) -> PoolStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PoolStats {
            requests: get(&self.requests),
            queued,
            errors: get(&self.errors),
            queue_timeouts: get(&self.queue_timeouts),
            pool_saturated: get(&self.pool_saturated),
            worker_restarts: get(&self.worker_restarts),
            recycled: get(&self.recycled),
            workers,
            available,
            busy,
            sessions: 0,
            stopped_slots: 0,
            crash_retries: get(&self.crash_retries),
        }
    }
}

/// A snapshot of a pool's statistics (`get_stats` in the seeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    /// Requests received (calls and streams).
    pub requests: u64,
    /// Requests waiting in the queue now.
    pub queued: usize,
    /// Requests that ended in an error.
    pub errors: u64,
    /// Requests that timed out in the queue.
    pub queue_timeouts: u64,
    /// Requests rejected because the queue was full.
    pub pool_saturated: u64,
    /// Workers replaced after their process ended unexpectedly.
    pub worker_restarts: u64,
    /// Workers recycled (max requests, TTL or memory threshold).
    pub recycled: u64,
    /// Live workers.
    pub workers: usize,
    /// Workers with free capacity.
    pub available: usize,
    /// Workers with at least one call in flight.
    pub busy: usize,
    /// Sessions in the pool's session store.
    pub sessions: usize,
    /// Worker slots the crash barrier stopped restarting (the pool runs that many short).
    pub stopped_slots: usize,
    /// Calls retried on another worker after their worker died under them.
    pub crash_retries: u64,
}

/// One live worker, as `list_workers` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: WorkerId,
    /// Its OS pid (also its process group id).
    pub pid: u32,
    /// Calls in flight.
    pub load: usize,
    /// Calls it may serve at once.
    pub capacity: usize,
    /// Time since it started.
    #[serde(serialize_with = "as_millis")]
    pub uptime: Duration,
    /// Its circuit breaker's state (`closed`, `open`, `half_open`) when the pool has a breaker.
    pub circuit_state: Option<&'static str>,
    /// What it is doing.
    pub state: WorkerState,
    /// Successful requests it served (what `worker_max_requests` counts).
    pub requests: u64,
    /// Resident memory of its process in MiB, when it can be read.
    pub rss_mb: Option<u64>,
    /// The last error a call on it ended in.
    pub last_error: Option<String>,
    /// The pool's `pool_identifier`.
    pub pool_identifier: Option<String>,
}

/// A worker's state, as [`WorkerInfo`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Ready, no call in flight.
    Idle,
    /// At least one call in flight.
    Busy,
    /// Its circuit breaker is open: it gets no calls until the breaker half-opens.
    CircuitOpen,
    /// Being recycled or stopped: no new calls, in-flight ones finish.
    Retiring,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}
