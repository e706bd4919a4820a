//! The pool's catalog events: one small call per emission point in the pool's code.

use std::time::{Duration, Instant};

use snakepit_core::{Error, ToolCall, WorkerId};
use snakepit_telemetry::span::{self, SpanTimer, GRPC_CALL};
use snakepit_telemetry::{correlation, emit, events, Telemetry};

/// The telemetry of one request through the pool: `grpc.call.*` around the worker call and
/// `request.executed` at the end.
pub(crate) struct CallTelemetry {
    started: Instant,
    correlation_id: String,
    call: Option<(SpanTimer, WorkerId)>,
}

impl CallTelemetry {
    /// Gives `call` its correlation id (kept when the caller set one).
    pub(crate) fn begin(call: &mut ToolCall) -> Self {
        let correlation_id = correlation::ensure(call.options.correlation_id.as_deref());
        call.options.correlation_id = Some(correlation_id.clone());
        Self {
            started: Instant::now(),
            correlation_id,
            call: None,
        }
    }

    /// The call reached `worker`: emits `grpc.call.start` and adds the W3C trace context.
    pub(crate) fn sent(&mut self, pool: &str, worker: &WorkerId, call: &mut ToolCall) {
        let bus = Telemetry::global();
        let timer = GRPC_CALL.start(bus, &self.meta(pool, worker, &call.tool));
        if let Some(tp) = bus.traceparent(&self.correlation_id) {
            call.metadata.insert("traceparent".into(), tp);
        }
        self.call = Some((timer, worker.clone()));
    }

    /// Emits the end of the call and `request.executed`.
    /// `error` is the call's error, `None` when it succeeded.
    pub(crate) fn finish(self, pool: &str, tool: &str, error: Option<&Error>) {
        let bus = Telemetry::global();
        let Self {
            started,
            correlation_id,
            call,
        } = self;
        let (timer, worker) = match call {
            Some((timer, worker)) => (Some(timer), Some(worker)),
            None => (None, None),
        };
        let worker = worker.as_ref().map_or("", WorkerId::as_str);
        if let Some(timer) = timer {
            let mut meta = vec![
                ("pool_name", pool),
                ("worker_id", worker),
                ("command", tool),
                ("correlation_id", correlation_id.as_str()),
            ];
            match error {
                None => timer.stop(bus, &meta),
                Some(e) => {
                    meta.push(("error_kind", e.kind().as_str()));
                    timer.exception(bus, &meta);
                }
            }
        }
        let success = if error.is_none() { "true" } else { "false" };
        emit(
            &events::REQUEST_EXECUTED,
            &[("duration_us", started.elapsed().as_micros().into())],
            &[
                ("pool", pool),
                ("worker_id", worker),
                ("command", tool),
                ("success", success),
            ],
        );
    }

    fn meta<'a>(
        &'a self,
        pool: &'a str,
        worker: &'a WorkerId,
        tool: &'a str,
    ) -> [(&'a str, &'a str); 4] {
        [
            ("pool_name", pool),
            ("worker_id", worker.as_str()),
            ("command", tool),
            ("correlation_id", &self.correlation_id),
        ]
    }
}

/// A request waits in the queue.
pub(crate) fn queued(pool: &str, depth: usize) {
    emit(
        &events::POOL_QUEUE_ENQUEUED,
        &[("queue_depth", depth.into())],
        &[("pool_name", pool)],
    );
}

/// A queued request got a worker.
pub(crate) fn dequeued(pool: &str, waited: Duration) {
    emit(
        &events::POOL_QUEUE_DEQUEUED,
        &[("queue_time", waited.into())],
        &[("pool_name", pool)],
    );
}

/// A queued request timed out.
pub(crate) fn queue_timeout(pool: &str, waited: Duration) {
    emit(
        &events::POOL_QUEUE_TIMEOUT,
        &[("queue_time", waited.into())],
        &[("pool_name", pool)],
    );
}

/// A request was rejected because the queue was full.
pub(crate) fn saturated(
    pool: &str,
    queue_size: usize,
    max: usize,
    (available, busy): (usize, usize),
) {
    let bus = Telemetry::global();
    if !bus.is_wanted(&events::POOL_SATURATED) {
        return;
    }
    let (available, busy) = (available.to_string(), busy.to_string());
    bus.emit(
        &events::POOL_SATURATED,
        &[
            ("queue_size", queue_size.into()),
            ("max_queue_size", max.into()),
        ],
        &[
            ("pool", pool),
            ("available_workers", &available),
            ("busy_workers", &busy),
        ],
    );
}

/// A worker start begins.
pub(crate) fn spawn_started(pool: &str, worker: &WorkerId) {
    emit(
        &events::POOL_WORKER_SPAWN_STARTED,
        &[("system_time", span::system_time())],
        &[("pool_name", pool), ("worker_id", worker.as_str())],
    );
}

/// A worker is ready.
pub(crate) fn spawned(pool: &str, worker: &WorkerId, pid: u32, took: Duration) {
    let pid = pid.to_string();
    emit(
        &events::POOL_WORKER_SPAWNED,
        &[
            ("duration", took.into()),
            ("system_time", span::system_time()),
        ],
        &[
            ("node", "local"),
            ("pool_name", pool),
            ("worker_id", worker.as_str()),
            ("worker_pid", &pid),
        ],
    );
}

/// A worker failed to start.
pub(crate) fn spawn_failed(pool: &str, worker: &WorkerId, took: Duration, reason: &Error) {
    let bus = Telemetry::global();
    if !bus.is_wanted(&events::POOL_WORKER_SPAWN_FAILED) {
        return;
    }
    let reason = reason.to_string();
    bus.emit(
        &events::POOL_WORKER_SPAWN_FAILED,
        &[("duration", took.into())],
        &[
            ("pool_name", pool),
            ("worker_id", worker.as_str()),
            ("reason", &reason),
        ],
    );
}

/// A worker's process ended; `reason` is `shutdown`, `recycle:<why>` or the exit description.
pub(crate) fn terminated(pool: &str, worker: &WorkerId, lifetime: Duration, reason: &str) {
    emit(
        &events::POOL_WORKER_TERMINATED,
        &[("lifetime", lifetime.into())],
        &[
            ("pool_name", pool),
            ("worker_id", worker.as_str()),
            ("reason", reason),
        ],
    );
}

/// A worker ended without being asked to (the crash barrier then decides on a restart).
pub(crate) fn crashed(pool: &str, worker: &WorkerId, lifetime: Duration, exit: &str) {
    emit(
        &events::WORKER_CRASH,
        &[],
        &[
            ("pool", pool),
            ("worker_id", worker.as_str()),
            ("reason", exit),
        ],
    );
    terminated(pool, worker, lifetime, exit);
}

/// The crash barrier lets the slot of a dead worker start a replacement.
pub(crate) fn restarted(pool: &str, worker: &WorkerId, restarts: u64) {
    emit(
        &events::POOL_WORKER_RESTARTED,
        &[("restarts", restarts.into())],
        &[("pool_name", pool), ("worker_id", worker.as_str())],
    );
}

/// A worker is recycled.
pub(crate) fn recycled(
    pool: &str,
    worker: &WorkerId,
    uptime: Duration,
    served: u64,
    memory_mb: u64,
    reason: &str,
) {
    emit(
        &events::WORKER_RECYCLED,
        &[
            ("uptime", uptime.into()),
            ("request_count", served.into()),
            ("memory_mb", memory_mb.into()),
        ],
        &[
            ("pool_name", pool),
            ("worker_id", worker.as_str()),
            ("reason", reason),
        ],
    );
}

/// The first round of worker starts is over.
pub(crate) fn initialized(pool: &str, took: Duration, size: usize) {
    emit(
        &events::POOL_INITIALIZED,
        &[("duration", took.into()), ("size", size.into())],
        &[("pool_name", pool)],
    );
}
