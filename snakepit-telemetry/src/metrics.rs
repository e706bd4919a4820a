//! Prometheus metrics (feature `prometheus`): the seeds' metric set, fed by catalog events and
//! by gauges the host refreshes before each scrape.
//!
//! Memory stays bounded: labels come only from pool names (configured), tool names (at most
//! [`MAX_TOOL_LABELS`] pairs, the rest counted as `_other`), error kinds (a closed set),
//! catalog event names, and the live workers (their series are replaced at each refresh).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::bus::{AttachError, Telemetry};
use crate::catalog::events;
use crate::event::Event;

/// Most distinct (pool, tool) label pairs kept; calls of further tools count as `_other`.
pub const MAX_TOOL_LABELS: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    pool: String,
    tool: String,
    success: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    pool: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pool: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    pool: String,
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

fn call_histogram() -> Histogram {
    // 100 µs to about 100 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

/// A pool's gauges at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolGauges {
    /// Configured workers.
    pub size: usize,
    /// Live workers.
    pub workers: usize,
    /// Workers with free capacity.
    pub available: usize,
    /// Workers with calls in flight.
    pub busy: usize,
    /// Requests waiting in the queue.
    pub queue_depth: usize,
}

/// One live worker's gauges at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerGauges {
    /// Its pool.
    pub pool: String,
    /// Its id.
    pub worker: String,
    /// The Python process's resident memory, when known.
    pub rss_bytes: Option<u64>,
    /// Its circuit breaker's state (`closed`, `half_open`, `open`), when the pool has one.
    pub breaker: Option<&'static str>,
}

/// The seeds' metric set in a Prometheus registry.
pub struct PrometheusMetrics {
    registry: Registry,
    pool_size: Family<PoolLabels, Gauge>,
    pool_workers: Family<PoolLabels, Gauge>,
    available: Family<PoolLabels, Gauge>,
    busy: Family<PoolLabels, Gauge>,
    queue_depth: Family<PoolLabels, Gauge>,
    calls: Family<CallLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    spawns: Family<PoolLabels, Counter>,
    spawn_failures: Family<PoolLabels, Counter>,
    crashes: Family<PoolLabels, Counter>,
    recycles: Family<ReasonLabels, Counter>,
    retries: Counter,
    breaker_opened: Counter,
    breaker_state: Family<WorkerLabels, Gauge>,
    python_rss: Family<WorkerLabels, Gauge>,
    python_events: Family<EventLabels, Counter>,
    python_dropped: Family<PoolLabels, Counter>,
    tools: Mutex<HashSet<(String, String)>>,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl PrometheusMetrics {
    /// Returns an empty metric set (attach it to a bus with [`PrometheusMetrics::attach`]).
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("snakepit");
        let m = Self {
            pool_size: Family::default(),
            pool_workers: Family::default(),
            available: Family::default(),
            busy: Family::default(),
            queue_depth: Family::default(),
            calls: Family::new_with_constructor(call_histogram),
            errors: Family::default(),
            spawns: Family::default(),
            spawn_failures: Family::default(),
            crashes: Family::default(),
            recycles: Family::default(),
            retries: Counter::default(),
            breaker_opened: Counter::default(),
            breaker_state: Family::default(),
            python_rss: Family::default(),
            python_events: Family::default(),
            python_dropped: Family::default(),
            tools: Mutex::new(HashSet::new()),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "pool_size",
            "Configured workers of the pool",
            m.pool_size.clone(),
        );
        r.register(
            "pool_workers",
            "Live workers of the pool",
            m.pool_workers.clone(),
        );
        r.register(
            "pool_available_workers",
            "Workers with free capacity",
            m.available.clone(),
        );
        r.register(
            "pool_busy_workers",
            "Workers with calls in flight",
            m.busy.clone(),
        );
        r.register(
            "pool_queue_depth",
            "Requests waiting in the queue",
            m.queue_depth.clone(),
        );
        r.register(
            "call_duration_seconds",
            "Request duration by pool and tool",
            m.calls.clone(),
        );
        r.register("errors", "Failed requests by error kind", m.errors.clone());
        r.register("worker_spawns", "Workers started", m.spawns.clone());
        r.register(
            "worker_spawn_failures",
            "Worker starts that failed",
            m.spawn_failures.clone(),
        );
        r.register(
            "worker_crashes",
            "Workers that ended unexpectedly",
            m.crashes.clone(),
        );
        r.register(
            "worker_recycles",
            "Workers recycled by reason",
            m.recycles.clone(),
        );
        r.register("retries", "Retry attempts", m.retries.clone());
        r.register(
            "circuit_breaker_opened",
            "Times a circuit breaker opened",
            m.breaker_opened.clone(),
        );
        r.register(
            "circuit_breaker_state",
            "Breaker state per worker (0 closed, 1 half-open, 2 open)",
            m.breaker_state.clone(),
        );
        r.register(
            "python_rss_bytes",
            "Resident memory of each Python worker",
            m.python_rss.clone(),
        );
        r.register(
            "python_events",
            "Python telemetry events received by name",
            m.python_events.clone(),
        );
        r.register(
            "python_events_dropped",
            "Python telemetry events dropped by full worker queues",
            m.python_dropped.clone(),
        );
        Arc::new(Self { registry, ..m })
    }

    /// Attaches the metric handler to `bus` under `id`.
    pub fn attach(self: &Arc<Self>, bus: &Telemetry, id: &str) -> Result<(), AttachError> {
        let this = self.clone();
        bus.attach_many(
            id,
            &[
                events::REQUEST_EXECUTED.name,
                events::GRPC_CALL_EXCEPTION.name,
                events::POOL_QUEUE_TIMEOUT.name,
                events::POOL_SATURATED.name,
                events::POOL_WORKER_SPAWNED.name,
                events::POOL_WORKER_SPAWN_FAILED.name,
                events::WORKER_CRASH.name,
                events::WORKER_RECYCLED.name,
                events::RETRY_ATTEMPT.name,
                events::CIRCUIT_BREAKER_OPENED.name,
                "snakepit.python.*",
            ],
            move |e| this.record(e),
        )
    }

    /// Updates the metrics from one event.
    pub fn record(&self, e: &Event<'_>) {
        let pool = |key: &str| PoolLabels {
            pool: e.meta(key).unwrap_or("").to_owned(),
        };
        let idx = e.def.index;
        if idx == events::REQUEST_EXECUTED.index {
            let p = e.meta("pool").unwrap_or("");
            let labels = CallLabels {
                pool: p.to_owned(),
                tool: self.tool_label(p, e.meta("command").unwrap_or("")),
                success: e.meta("success").unwrap_or("false").to_owned(),
            };
            let secs = e
                .measurement("duration_us")
                .map_or(0.0, |d| d.as_f64() / 1e6);
            self.calls.get_or_create(&labels).observe(secs);
        } else if idx == events::GRPC_CALL_EXCEPTION.index {
            self.error(
                e.meta("pool_name"),
                e.meta("error_kind").unwrap_or("unknown"),
            );
        } else if idx == events::POOL_QUEUE_TIMEOUT.index {
            self.error(e.meta("pool_name"), "queue_timeout");
        } else if idx == events::POOL_SATURATED.index {
            self.error(e.meta("pool"), "saturated");
        } else if idx == events::POOL_WORKER_SPAWNED.index {
            self.spawns.get_or_create(&pool("pool_name")).inc();
        } else if idx == events::POOL_WORKER_SPAWN_FAILED.index {
            self.spawn_failures.get_or_create(&pool("pool_name")).inc();
        } else if idx == events::WORKER_CRASH.index {
            self.crashes.get_or_create(&pool("pool")).inc();
        } else if idx == events::WORKER_RECYCLED.index {
            let labels = ReasonLabels {
                pool: e.meta("pool_name").unwrap_or("").to_owned(),
                reason: e.meta("reason").unwrap_or("").to_owned(),
            };
            self.recycles.get_or_create(&labels).inc();
        } else if idx == events::RETRY_ATTEMPT.index {
            self.retries.inc();
        } else if idx == events::CIRCUIT_BREAKER_OPENED.index {
            self.breaker_opened.inc();
        } else if idx == events::PYTHON_TELEMETRY_DROPPED.index {
            let n = e
                .measurement("dropped")
                .map_or(0, |d| d.as_i64().max(0) as u64);
            self.python_dropped
                .get_or_create(&pool("pool_name"))
                .inc_by(n);
        } else if e.def.name.starts_with("snakepit.python.") {
            let labels = EventLabels {
                event: e.def.name.to_owned(),
            };
            self.python_events.get_or_create(&labels).inc();
        }
    }

    fn error(&self, pool: Option<&str>, kind: &str) {
        let labels = ErrorLabels {
            pool: pool.unwrap_or("").to_owned(),
            kind: kind.to_owned(),
        };
        self.errors.get_or_create(&labels).inc();
    }

    fn tool_label(&self, pool: &str, tool: &str) -> String {
        let Ok(mut tools) = self.tools.lock() else {
            return "_other".into();
        };
        let key = (pool.to_owned(), tool.to_owned());
        if tools.contains(&key) {
            return tool.to_owned();
        }
        if tools.len() < MAX_TOOL_LABELS {
            tools.insert(key);
            return tool.to_owned();
        }
        "_other".into()
    }

    /// Sets the pool and worker gauges (call before each scrape); workers not listed lose
    /// their series.
    pub fn refresh(&self, pools: &[(String, PoolGauges)], workers: &[WorkerGauges]) {
        let set = |f: &Family<PoolLabels, Gauge>, pool: &str, v: usize| {
            f.get_or_create(&PoolLabels {
                pool: pool.to_owned(),
            })
            .set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        for (name, g) in pools {
            set(&self.pool_size, name, g.size);
            set(&self.pool_workers, name, g.workers);
            set(&self.available, name, g.available);
            set(&self.busy, name, g.busy);
            set(&self.queue_depth, name, g.queue_depth);
        }
        self.python_rss.clear();
        self.breaker_state.clear();
        for w in workers {
            let labels = WorkerLabels {
                pool: w.pool.clone(),
                worker: w.worker.clone(),
            };
            if let Some(rss) = w.rss_bytes {
                self.python_rss
                    .get_or_create(&labels)
                    .set(i64::try_from(rss).unwrap_or(i64::MAX));
            }
            if let Some(state) = w.breaker {
                let v = match state {
                    "open" => 2,
                    "half_open" => 1,
                    _ => 0,
                };
                self.breaker_state.get_or_create(&labels).set(v);
            }
        }
    }

    /// Returns the metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests;
