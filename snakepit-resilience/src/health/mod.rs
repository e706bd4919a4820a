//! The health monitor: worker crashes counted in a rolling window, and the pool's verdict.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::event::{EventKind, EventObserver};

/// Crash reasons kept per worker (the most recent ones).
const REASONS_KEPT: usize = 10;

/// The monitor's options, with the seeds' names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthMonitorConfig {
    /// The pool monitored (`pool`), used to label events and stats.
    pub pool: String,
    /// Crashes inside the window at which the pool turns unhealthy (`max_crashes`, default 10).
    pub max_crashes: usize,
    /// The rolling window (`crash_window_ms`, default 60 s).
    pub crash_window: Duration,
    /// How often workers with no crash left in the window are forgotten (`check_interval_ms`, default 30 s).
    pub check_interval: Duration,
}

impl HealthMonitorConfig {
    /// Returns the defaults for the pool named `pool`.
    pub fn new(pool: impl Into<String>) -> Self {
        Self {
            pool: pool.into(),
            max_crashes: 10,
            crash_window: Duration::from_millis(60_000),
            check_interval: Duration::from_millis(30_000),
        }
    }
}

/// The pool's health (the seeds' `stats/1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthStats {
    /// The pool monitored.
    pub pool: String,
    /// Crashes recorded since the monitor started.
    pub total_crashes: u64,
    /// Crashes inside the rolling window.
    pub crashes_in_window: usize,
    /// Whether `crashes_in_window` is below `max_crashes`.
    pub is_healthy: bool,
    /// Workers with at least one crash inside the window.
    pub workers_with_crashes: usize,
}

/// One worker's health (the seeds' `worker_health/2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerHealth {
    /// Whether the worker's crashes inside the window are below `max_crashes`.
    pub healthy: bool,
    /// The worker's crashes inside the window.
    pub crash_count: usize,
    /// When the worker last crashed (wall clock), if it has inside the window.
    pub last_crash_time: Option<SystemTime>,
    /// The most recent crash reasons, oldest first.
    pub crash_reasons: Vec<String>,
}

#[derive(Debug, Default)]
struct WorkerRecord {
    crashes: VecDeque<Instant>,
    last_crash_time: Option<SystemTime>,
    reasons: VecDeque<String>,
}

#[derive(Debug)]
struct State {
    workers: HashMap<String, WorkerRecord>,
    total_crashes: u64,
    last_sweep: Instant,
}

struct Inner {
    config: HealthMonitorConfig,
    state: Mutex<State>,
    observer: EventObserver,
}

/// Counts worker crashes in a rolling window; cheap to clone, clones share the counts.
#[derive(Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

impl HealthMonitor {
    /// Creates a monitor that emits only `tracing` events.
    pub fn new(config: HealthMonitorConfig) -> Self {
        Self::with_observer(config, EventObserver::new())
    }

    /// Creates a monitor that also hands its events to `observer`.
    pub fn with_observer(config: HealthMonitorConfig, observer: EventObserver) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    workers: HashMap::new(),
                    total_crashes: 0,
                    last_sweep: Instant::now(),
                }),
                observer,
            }),
        }
    }

    /// Returns the monitor's configuration.
    pub fn config(&self) -> &HealthMonitorConfig {
        &self.inner.config
    }

    /// Records a crash of `worker_id` and emits a `worker crash` event.
    pub fn record_crash(&self, worker_id: &str, reason: impl Into<String>) {
        let now = Instant::now();
        let crashes_in_window = {
            let mut state = self.lock(now);
            state.total_crashes += 1;
            let record = state.workers.entry(worker_id.to_owned()).or_default();
            record.crashes.push_back(now);
            record.last_crash_time = Some(SystemTime::now());
            if record.reasons.len() == REASONS_KEPT {
                record.reasons.pop_front();
            }
            record.reasons.push_back(reason.into());
            state.workers.values().map(|r| r.crashes.len()).sum()
        };
        self.inner.observer.emit(EventKind::WorkerCrash {
            worker_id: worker_id.to_owned(),
            crashes_in_window,
        });
    }

    /// Returns whether the pool's crashes inside the window are below `max_crashes`.
    pub fn healthy(&self) -> bool {
        self.stats().is_healthy
    }

    /// Returns the pool's health statistics.
    pub fn stats(&self) -> HealthStats {
        let state = self.lock(Instant::now());
        let crashes_in_window: usize = state.workers.values().map(|r| r.crashes.len()).sum();
        HealthStats {
            pool: self.inner.config.pool.clone(),
            total_crashes: state.total_crashes,
            crashes_in_window,
            is_healthy: crashes_in_window < self.inner.config.max_crashes,
            workers_with_crashes: state
                .workers
                .values()
                .filter(|r| !r.crashes.is_empty())
                .count(),
        }
    }

    /// Returns the health of `worker_id` (healthy with no crashes when it never crashed).
    pub fn worker_health(&self, worker_id: &str) -> WorkerHealth {
        let state = self.lock(Instant::now());
        match state.workers.get(worker_id) {
            Some(record) => WorkerHealth {
                healthy: record.crashes.len() < self.inner.config.max_crashes,
                crash_count: record.crashes.len(),
                last_crash_time: record.last_crash_time,
                crash_reasons: record.reasons.iter().cloned().collect(),
            },
            None => WorkerHealth {
                healthy: true,
                crash_count: 0,
                last_crash_time: None,
                crash_reasons: Vec::new(),
            },
        }
    }

    /// Locks the state with crashes older than the window dropped, and workers with none left
    /// forgotten once every `check_interval`.
    fn lock(&self, now: Instant) -> MutexGuard<'_, State> {
        // Counters only: a panic elsewhere cannot leave them half-updated.
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let window = self.inner.config.crash_window;
        for record in state.workers.values_mut() {
            while record
                .crashes
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= window)
            {
                record.crashes.pop_front();
            }
        }
        if now.saturating_duration_since(state.last_sweep) >= self.inner.config.check_interval {
            state.workers.retain(|_, record| !record.crashes.is_empty());
            state.last_sweep = now;
        }
        state
    }
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("config", &self.inner.config)
            .field("observer", &self.inner.observer)
            .finish()
    }
}
