//! Worker lifecycle: pool members with their counters, and recycling by request count, TTL or
//! Python RSS, with the replacement started before the old worker drains.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use snakepit_core::{Error, WorkerId};
use snakepit_resilience::{CircuitBreakerHandle, CircuitState, ResilienceStack};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::builder::UserLayer;
use crate::factory::WorkerHandle;
use crate::pool::Inner;
use crate::service::{HandleService, WorkerService};

/// Shortest interval between lifecycle checks.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Why a worker is recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecycleReason {
    /// It served `worker_max_requests` successful requests.
    MaxRequests,
    /// It lived longer than `worker_ttl`.
    Ttl,
    /// Its Python process's RSS exceeded `memory_threshold_mb`.
    Memory,
    /// [`crate::Pool::recycle_worker`] asked for it.
    Requested,
}

impl RecycleReason {
    fn as_str(self) -> &'static str {
        match self {
            RecycleReason::MaxRequests => "max_requests",
            RecycleReason::Ttl => "ttl",
            RecycleReason::Memory => "memory",
            RecycleReason::Requested => "requested",
        }
    }
}

/// A worker as a member of a pool: its handle, its service, and what the pool tracks about it.
pub(crate) struct PoolWorker {
    handle: Arc<dyn WorkerHandle>,
    /// The worker's service: user layers, breaker, attempt timeout, then the worker.
    pub(crate) service: WorkerService,
    /// The worker's circuit breaker, when the stack has one.
    pub(crate) breaker: Option<CircuitBreakerHandle>,
    /// Successful requests served (the seeds count only successes toward `worker_max_requests`).
    pub(crate) served: AtomicU64,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Set once the worker is being recycled: its exit is expected, not a crash.
    pub(crate) retiring: AtomicBool,
    /// The last error a call on this worker ended in (`worker_info`).
    last_error: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for PoolWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolWorker")
            .field("handle", &self.handle)
            .field("breaker", &self.breaker.as_ref().map(|b| b.state()))
            .finish_non_exhaustive()
    }
}

impl Deref for PoolWorker {
    type Target = dyn WorkerHandle;

    fn deref(&self) -> &Self::Target {
        &*self.handle
    }
}

impl PoolWorker {
    /// Builds the worker's service once: `layers` (outermost first) around the stack's
    /// breaker and attempt timeout around the handle.
    pub(crate) fn new(
        handle: Arc<dyn WorkerHandle>,
        stack: &ResilienceStack,
        layers: &[UserLayer],
    ) -> Self {
        let built = stack.build_worker(
            Some(handle.id().as_str()),
            HandleService {
                handle: handle.clone(),
            },
        );
        let mut service = WorkerService::new(built.service.map_err(Error::from_box));
        for layer in layers.iter().rev() {
            service = layer(service);
        }
        Self {
            handle,
            service,
            breaker: built.circuit_breaker,
            served: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            retiring: AtomicBool::new(false),
            last_error: std::sync::Mutex::new(None),
        }
    }

    /// Returns whether the worker should be offered calls: false while its breaker is open
    /// (a half-open breaker is ready: it admits the probe).
    pub(crate) fn is_ready(&self) -> bool {
        self.breaker
            .as_ref()
            .is_none_or(|b| b.state() != CircuitState::Open)
    }

    /// Remembers `e` as the worker's last error.
    pub(crate) fn record_error(&self, e: &Error) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e.to_string());
        }
    }

    /// Returns the last error a call on this worker ended in.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    pub(crate) fn call_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn call_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until no call is in flight.
    async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Reads the resident set size of a process in MiB from `/proc/<pid>/status`.
pub(crate) fn rss_mb(pid: u32) -> Option<u64> {
    rss_bytes(pid).map(|b| b / (1024 * 1024))
}

/// The resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Inner {
    /// Takes a worker out of rotation, starts its replacement at once, then stops the old one
    /// when its in-flight calls are done (bounded by `graceful_shutdown_timeout_ms`).
    pub(crate) fn recycle(
        self: &Arc<Self>,
        id: &WorkerId,
        worker: &Arc<PoolWorker>,
        reason: RecycleReason,
    ) {
        if worker.retiring.swap(true, Ordering::SeqCst) || self.is_shutting_down() {
            return;
        }
        let served = worker.served.load(Ordering::Relaxed);
        let memory_mb = worker.pid().and_then(rss_mb);
        tracing::info!(
            target: "snakepit::pool",
            event = "worker_recycled",
            pool = %self.config.name,
            worker = %id,
            reason = reason.as_str(),
            uptime_ms = worker.uptime().as_millis() as u64,
            request_count = served,
            memory_mb = memory_mb.unwrap_or(0),
            memory_threshold_mb = self.config.memory_threshold_mb.unwrap_or(0),
            "recycling worker"
        );
        crate::telemetry::recycled(
            &self.config.name,
            id,
            worker.uptime(),
            served,
            memory_mb.unwrap_or(0),
            reason.as_str(),
        );
        self.counters.recycled.fetch_add(1, Ordering::Relaxed);
        self.evict(id);
        let replacement = tokio::spawn(self.clone().start_with_retry());
        self.track(replacement);
        let worker = worker.clone();
        let grace = self.config.graceful_shutdown_timeout;
        let retire = tokio::spawn(async move {
            let _ = tokio::time::timeout(grace, worker.drained()).await;
            worker.stop().await;
        });
        self.track(retire);
    }

    /// Periodically recycles workers past their TTL or memory threshold.
    pub(crate) async fn lifecycle_checks(self: Arc<Self>) {
        let ttl = self.config.worker_ttl;
        let threshold = self.config.memory_threshold_mb;
        if ttl.is_none() && threshold.is_none() {
            return;
        }
        // `lifecycle_check_interval_ms` (60 s, as the seeds' lifecycle manager), tighter for short TTLs.
        let configured = self.config.lifecycle_check_interval;
        let interval = ttl
            .map_or(configured, |t| (t / 4).min(configured))
            .max(MIN_CHECK_INTERVAL);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.is_shutting_down() {
            tick.tick().await;
            for (id, worker) in self.members() {
                if ttl.is_some_and(|ttl| worker.uptime() >= ttl) {
                    self.recycle(&id, &worker, RecycleReason::Ttl);
                } else if let (Some(limit), Some(rss)) = (threshold, worker.pid().and_then(rss_mb))
                {
                    if rss > limit {
                        self.recycle(&id, &worker, RecycleReason::Memory);
                    }
                }
            }
        }
    }

    /// Counts a successful request; recycles the worker when it reached `worker_max_requests`.
    pub(crate) fn request_succeeded(self: &Arc<Self>, id: &WorkerId, worker: &Arc<PoolWorker>) {
        let served = worker.served.fetch_add(1, Ordering::Relaxed) + 1;
        if self
            .config
            .worker_max_requests
            .is_some_and(|max| served >= max)
        {
            self.recycle(id, worker, RecycleReason::MaxRequests);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_of_this_process_is_read_from_proc() {
        let mb = rss_mb(std::process::id()).unwrap();
        assert!(mb > 0);
        assert_eq!(rss_mb(u32::MAX - 1), None);
    }
}
