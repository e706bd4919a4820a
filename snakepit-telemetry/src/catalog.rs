//! The event catalog: every event the host emits, with its measurement and metadata keys.
//!
//! Names follow the seeds' `[:snakepit, ...]` lists written with dots
//! (`snakepit.pool.worker.spawned`). Durations are nanoseconds of a monotonic clock
//! (the seeds' "native" unit), `system_time` is nanoseconds since the Unix epoch. Where the
//! seeds give no exact name (sessions, heartbeat, cleanup, hardware) the names are ours and
//! listed in the crate README.

/// One catalog entry: a name and the keys its emitters fill in.
#[derive(Debug, PartialEq, Eq)]
pub struct EventDef {
    /// Position in [`CATALOG`] (handlers keep one flag per entry).
    pub index: usize,
    /// The dotted name, `snakepit.<area>....`.
    pub name: &'static str,
    /// Measurement keys (numbers).
    pub measurements: &'static [&'static str],
    /// Metadata keys (strings).
    pub metadata: &'static [&'static str],
}

impl EventDef {
    /// Returns the name split at dots (the seeds' list form; `event_parts` on the wire).
    pub fn parts(&self) -> impl Iterator<Item = &'static str> {
        self.name.split('.')
    }
}

macro_rules! catalog {
    ($( $(#[$doc:meta])* $idx:literal $konst:ident = $name:literal, [$($m:literal),*], [$($k:literal),*]; )*) => {
        /// The catalog's entries as constants, one per event.
        pub mod events {
            use super::EventDef;
            $(
                $(#[$doc])*
                pub static $konst: EventDef = EventDef {
                    index: $idx,
                    name: $name,
                    measurements: &[$($m),*],
                    metadata: &[$($k),*],
                };
            )*
        }
        /// Every event of the catalog, in index order.
        pub static CATALOG: &[&EventDef] = &[$(&events::$konst),*];
    };
}

catalog! {
    /// A pool's workers were all started (or failed) for the first time.
    0 POOL_INITIALIZED = "snakepit.pool.initialized", ["duration", "size"], ["pool_name"];
    /// A snapshot of a pool's gauges.
    1 POOL_STATUS = "snakepit.pool.status", ["queue_depth", "available_workers", "busy_workers"], ["pool_name"];
    /// A request waits in the queue (all workers busy).
    2 POOL_QUEUE_ENQUEUED = "snakepit.pool.queue.enqueued", ["queue_depth"], ["pool_name"];
    /// A queued request got a worker.
    3 POOL_QUEUE_DEQUEUED = "snakepit.pool.queue.dequeued", ["queue_time"], ["pool_name"];
    /// A queued request waited `pool_queue_timeout` and was answered with a timeout.
    4 POOL_QUEUE_TIMEOUT = "snakepit.pool.queue.timeout", ["queue_time"], ["pool_name"];
    /// A request was rejected because the queue was full.
    5 POOL_SATURATED = "snakepit.pool.saturated", ["queue_size", "max_queue_size"], ["pool", "available_workers", "busy_workers"];
    /// A worker start was initiated.
    6 POOL_WORKER_SPAWN_STARTED = "snakepit.pool.worker.spawn_started", ["system_time"], ["pool_name", "worker_id"];
    /// A worker is ready to serve.
    7 POOL_WORKER_SPAWNED = "snakepit.pool.worker.spawned", ["duration", "system_time"], ["node", "pool_name", "worker_id", "worker_pid"];
    /// A worker failed to start.
    8 POOL_WORKER_SPAWN_FAILED = "snakepit.pool.worker.spawn_failed", ["duration"], ["pool_name", "worker_id", "reason"];
    /// A worker's process ended (crash, recycle or shutdown).
    9 POOL_WORKER_TERMINATED = "snakepit.pool.worker.terminated", ["lifetime"], ["pool_name", "worker_id", "reason"];
    /// A replacement was started for a worker that ended unexpectedly.
    10 POOL_WORKER_RESTARTED = "snakepit.pool.worker.restarted", ["restarts"], ["pool_name", "worker_id"];
    /// One request finished (`[:snakepit, :request, :executed]`).
    11 REQUEST_EXECUTED = "snakepit.request.executed", ["duration_us"], ["pool", "worker_id", "command", "success"];
    /// A call to a worker started.
    12 GRPC_CALL_START = "snakepit.grpc.call.start", ["system_time"], ["pool_name", "worker_id", "command", "correlation_id"];
    /// A call to a worker returned a result.
    13 GRPC_CALL_STOP = "snakepit.grpc.call.stop", ["duration"], ["pool_name", "worker_id", "command", "correlation_id"];
    /// A call to a worker failed.
    14 GRPC_CALL_EXCEPTION = "snakepit.grpc.call.exception", ["duration"], ["pool_name", "worker_id", "command", "correlation_id", "error_kind"];
    /// A streaming call opened.
    15 GRPC_STREAM_OPENED = "snakepit.grpc.stream.opened", ["system_time"], ["pool_name", "worker_id", "command", "correlation_id"];
    /// A streaming call delivered a chunk.
    16 GRPC_STREAM_MESSAGE = "snakepit.grpc.stream.message", ["bytes"], ["pool_name", "worker_id", "command"];
    /// A streaming call ended.
    17 GRPC_STREAM_CLOSED = "snakepit.grpc.stream.closed", ["duration", "chunks"], ["pool_name", "worker_id", "command", "reason"];
    /// The host connected to a worker.
    18 GRPC_CONNECTION_ESTABLISHED = "snakepit.grpc.connection.established", ["duration"], ["worker_id"];
    /// The connection to a worker broke.
    19 GRPC_CONNECTION_LOST = "snakepit.grpc.connection.lost", [], ["worker_id", "reason"];
    /// The connection to a worker came back.
    20 GRPC_CONNECTION_RECONNECTED = "snakepit.grpc.connection.reconnected", [], ["worker_id"];
    /// Python started a call.
    21 PYTHON_CALL_START = "snakepit.python.call.start", ["system_time"], ["pool_name", "worker_id", "command", "correlation_id"];
    /// Python finished a call.
    22 PYTHON_CALL_STOP = "snakepit.python.call.stop", ["duration"], ["pool_name", "worker_id", "command", "correlation_id"];
    /// A Python call raised.
    23 PYTHON_CALL_EXCEPTION = "snakepit.python.call.exception", ["duration"], ["pool_name", "worker_id", "command", "correlation_id", "error_type"];
    /// A Python tool started.
    24 PYTHON_TOOL_EXECUTION_START = "snakepit.python.tool.execution.start", ["system_time"], ["pool_name", "worker_id", "tool", "correlation_id"];
    /// A Python tool finished.
    25 PYTHON_TOOL_EXECUTION_STOP = "snakepit.python.tool.execution.stop", ["duration"], ["pool_name", "worker_id", "tool", "correlation_id"];
    /// A Python tool raised.
    26 PYTHON_TOOL_EXECUTION_EXCEPTION = "snakepit.python.tool.execution.exception", ["duration"], ["pool_name", "worker_id", "tool", "correlation_id", "error_type"];
    /// Python reported its memory use.
    27 PYTHON_MEMORY_SAMPLED = "snakepit.python.memory.sampled", ["rss_bytes"], ["pool_name", "worker_id"];
    /// Python reported its CPU use.
    28 PYTHON_CPU_SAMPLED = "snakepit.python.cpu.sampled", ["cpu_percent"], ["pool_name", "worker_id"];
    /// A Python event whose name is not in the catalog (its name travels in `event`).
    29 PYTHON_CUSTOM = "snakepit.python.custom", [], ["pool_name", "worker_id", "event", "correlation_id"];
    /// Python dropped events because its queue was full (`dropped` is the worker's running total).
    30 PYTHON_TELEMETRY_DROPPED = "snakepit.python.telemetry.dropped", ["dropped"], ["pool_name", "worker_id"];
    /// A worker was recycled (TTL, max requests, memory).
    31 WORKER_RECYCLED = "snakepit.worker.recycled", ["uptime", "request_count", "memory_mb"], ["pool_name", "worker_id", "reason"];
    /// A worker failed a health check.
    32 WORKER_HEALTH_CHECK_FAILED = "snakepit.worker.health_check_failed", [], ["pool_name", "worker_id", "reason"];
    /// A worker's process ended unexpectedly.
    33 WORKER_CRASH = "snakepit.worker.crash", [], ["pool", "worker_id", "reason"];
    /// A circuit breaker opened.
    34 CIRCUIT_BREAKER_OPENED = "snakepit.circuit_breaker.opened", ["failure_count"], ["pool"];
    /// A circuit breaker admits probes again.
    35 CIRCUIT_BREAKER_HALF_OPENED = "snakepit.circuit_breaker.half_opened", [], ["pool"];
    /// A circuit breaker closed.
    36 CIRCUIT_BREAKER_CLOSED = "snakepit.circuit_breaker.closed", [], ["pool"];
    /// A call is retried.
    37 RETRY_ATTEMPT = "snakepit.retry.attempt", ["attempt", "delay_ms"], ["pool"];
    /// Retries of a call are exhausted.
    38 RETRY_EXHAUSTED = "snakepit.retry.exhausted", ["attempts"], ["pool", "last_error"];
    /// A retry was refused because the retry budget is spent.
    39 RETRY_BUDGET_EXHAUSTED = "snakepit.retry.budget_exhausted", ["attempts"], ["pool"];
    /// A session was created.
    40 SESSION_CREATED = "snakepit.session.created", [], ["pool_name", "session_id"];
    /// A session was removed (deleted or expired).
    41 SESSION_DELETED = "snakepit.session.deleted", ["lifetime"], ["pool_name", "session_id", "reason"];
    /// Hardware was detected.
    42 HARDWARE_DETECTED = "snakepit.hardware.detected", ["duration", "gpus"], ["platform"];
    /// The GPU profiler took a sample.
    43 GPU_PROFILER_SAMPLE = "snakepit.gpu_profiler.sample", ["memory_used_mb", "utilization", "temperature", "power"], ["device"];
    /// Leftover worker processes of dead hosts were killed.
    44 CLEANUP_ORPHANS_KILLED = "snakepit.cleanup.orphans_killed", ["count"], ["runs"];
    /// A heartbeat ping was answered.
    45 HEARTBEAT_PONG = "snakepit.heartbeat.pong", ["rtt"], ["worker_id"];
    /// A heartbeat ping went unanswered.
    46 HEARTBEAT_MISSED = "snakepit.heartbeat.missed", ["missed"], ["worker_id", "reason"];
    /// A dependent worker missed too many heartbeats and was killed.
    47 HEARTBEAT_UNRESPONSIVE = "snakepit.heartbeat.unresponsive", ["missed"], ["worker_id"];
    /// A session's worker died and the session moved to another one.
    48 SESSION_MOVED = "snakepit.session.moved", [], ["pool", "session", "from", "to"];
    /// A session outlived its TTL and was swept.
    49 SESSION_EXPIRED = "snakepit.session.expired", [], ["pool", "session"];
    /// The crash barrier counted a worker's death (`kind`: crash, oom, ...).
    50 CRASH_BARRIER_CRASH = "snakepit.crash_barrier.crash", ["slot"], ["pool", "worker", "kind", "detail"];
    /// The crash barrier restarts a worker slot after `delay_ms`.
    51 CRASH_BARRIER_RESTART = "snakepit.crash_barrier.restart", ["slot", "delay_ms"], ["pool"];
    /// An idempotent call whose worker crashed is retried on another worker.
    52 CRASH_BARRIER_RETRY = "snakepit.crash_barrier.retry", [], ["pool", "tool", "error"];
    /// A worker slot crash-looped past `max_restarts` in the window and was stopped.
    53 CRASH_BARRIER_SLOT_STOPPED = "snakepit.crash_barrier.slot_stopped", ["slot", "crashes", "window_s", "max_restarts"], ["pool"];
    /// A device was tainted after a crash on it.
    54 CRASH_BARRIER_TAINT = "snakepit.crash_barrier.taint", ["taint_ms"], ["pool", "device"];
}

/// Returns the catalog entry named `name` (dotted, with or without the `snakepit.` prefix).
pub fn lookup(name: &str) -> Option<&'static EventDef> {
    let full = name.strip_prefix("snakepit.").unwrap_or(name);
    CATALOG
        .iter()
        .copied()
        .find(|d| d.name.strip_prefix("snakepit.") == Some(full))
}

/// Returns the catalog entry whose parts are `parts` (the seeds' `Naming.from_parts`).
pub fn from_parts<S: AsRef<str>>(parts: &[S]) -> Option<&'static EventDef> {
    let mut rest = parts;
    if rest.first().map(AsRef::as_ref) == Some("snakepit") {
        rest = &rest[1..];
    }
    CATALOG.iter().copied().find(|d| {
        let mut own = d.parts().skip(1);
        rest.iter().all(|p| own.next() == Some(p.as_ref())) && own.next().is_none()
    })
}

/// Returns the catalog entries whose names match `pattern`: an exact name, or a prefix
/// followed by `*` (`snakepit.pool.*`), or `*` for all.
pub fn matching(pattern: &str) -> impl Iterator<Item = &'static EventDef> + '_ {
    CATALOG
        .iter()
        .copied()
        .filter(move |d| glob_match(pattern, d.name))
}

/// Matches `name` against a glob where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let mut pieces = pattern.split('*');
    let Some(first) = pieces.next() else {
        return name.is_empty();
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_positions_and_names_are_unique() {
        for (i, d) in CATALOG.iter().enumerate() {
            assert_eq!(d.index, i, "{} has index {}", d.name, d.index);
            assert!(d.name.starts_with("snakepit."), "{}", d.name);
        }
        let mut names: Vec<_> = CATALOG.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
    }

    #[test]
    fn names_resolve_from_parts_and_dotted_forms() {
        let d = from_parts(&["python", "call", "stop"]).map(|d| d.name);
        assert_eq!(d, Some("snakepit.python.call.stop"));
        assert_eq!(
            from_parts(&["snakepit", "pool", "worker", "spawned"]).map(|d| d.index),
            Some(events::POOL_WORKER_SPAWNED.index)
        );
        assert!(from_parts(&["python", "call"]).is_none());
        assert!(from_parts(&["python", "call", "stop", "more"]).is_none());
        assert_eq!(lookup("pool.status").map(|d| d.index), Some(1));
        assert!(lookup("pool.nope").is_none());
    }

    #[test]
    fn globs_match_prefixes_and_inner_stars() {
        assert!(glob_match(
            "snakepit.pool.*",
            "snakepit.pool.worker.spawned"
        ));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("python.*.stop", "python.call.stop"));
        assert!(!glob_match("python.*.stop", "python.call.start"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert_eq!(matching("snakepit.retry.*").count(), 3);
    }
}
