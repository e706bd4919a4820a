//! Fault-tolerance events: emitted as `tracing` events and handed to an optional observer hook.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use snakepit_core::ErrorKind;

/// The `tracing` target of circuit-breaker events.
pub const CIRCUIT_BREAKER_TARGET: &str = "snakepit::circuit_breaker";
/// The `tracing` target of retry events.
pub const RETRY_TARGET: &str = "snakepit::retry";
/// The `tracing` target of worker-crash events.
pub const WORKER_TARGET: &str = "snakepit::worker";

/// What happened, with the seeds' measurements and metadata.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// The breaker opened (`[:snakepit, :circuit_breaker, :opened]`).
    CircuitOpened {
        /// The consecutive failures that opened it.
        failure_count: u32,
    },
    /// The breaker's reset timeout passed and it admits probes again.
    CircuitHalfOpened,
    /// The breaker closed again (`[:snakepit, :circuit_breaker, :closed]`).
    CircuitClosed,
    /// A retry is about to be made (`[:snakepit, :retry, :attempt]`).
    RetryAttempt {
        /// The number of the attempt about to start (2 for the first retry).
        attempt: u32,
        /// The backoff waited before it.
        delay: Duration,
    },
    /// The last allowed attempt failed with a retriable error (`[:snakepit, :retry, :exhausted]`).
    RetryExhausted {
        /// The attempts made.
        attempts: u32,
        /// The last error's message.
        last_error: String,
        /// The last error's kind, when it is a snakepit error.
        last_error_kind: Option<ErrorKind>,
    },
    /// A retry was refused because the retry budget is spent.
    RetryBudgetExhausted {
        /// The attempts made.
        attempts: u32,
    },
    /// A worker crash was recorded (`[:snakepit, :worker, :crash]`).
    WorkerCrash {
        /// The worker that crashed.
        worker_id: String,
        /// Crashes of the pool inside the rolling window, this one included.
        crashes_in_window: usize,
    },
}

impl EventKind {
    /// Returns the event's stable name (the `event` field of the tracing event).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::CircuitOpened { .. } => "opened",
            EventKind::CircuitHalfOpened => "half_opened",
            EventKind::CircuitClosed => "closed",
            EventKind::RetryAttempt { .. } => "attempt",
            EventKind::RetryExhausted { .. } => "exhausted",
            EventKind::RetryBudgetExhausted { .. } => "budget_exhausted",
            EventKind::WorkerCrash { .. } => "crash",
        }
    }

    /// Returns the event's stable `tracing` target.
    pub fn target(&self) -> &'static str {
        match self {
            EventKind::CircuitOpened { .. }
            | EventKind::CircuitHalfOpened
            | EventKind::CircuitClosed => CIRCUIT_BREAKER_TARGET,
            EventKind::RetryAttempt { .. }
            | EventKind::RetryExhausted { .. }
            | EventKind::RetryBudgetExhausted { .. } => RETRY_TARGET,
            EventKind::WorkerCrash { .. } => WORKER_TARGET,
        }
    }
}

/// One fault-tolerance event and the scope (pool or worker) it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceEvent {
    /// The scope the emitting component was given (a worker id, a pool name), if any.
    pub scope: Option<Arc<str>>,
    /// What happened.
    pub kind: EventKind,
}

type Hook = Arc<dyn Fn(&ResilienceEvent) + Send + Sync>;

/// Emits events: always as `tracing` events, and to a user hook when one is set.
///
/// Clones share the hook. [`EventObserver::scoped`] gives a copy that labels its events
/// with a scope, which is how a per-worker stack tags its breaker's events.
#[derive(Clone, Default)]
pub struct EventObserver {
    scope: Option<Arc<str>>,
    hook: Option<Hook>,
}

impl EventObserver {
    /// Returns an observer that only emits `tracing` events.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns an observer that also calls `hook` with every event.
    ///
    /// The hook runs on the caller's task, outside any lock; keep it short.
    pub fn with_hook(hook: impl Fn(&ResilienceEvent) + Send + Sync + 'static) -> Self {
        Self {
            scope: None,
            hook: Some(Arc::new(hook)),
        }
    }

    /// Returns a copy that labels its events with `scope`.
    pub fn scoped(&self, scope: impl Into<Arc<str>>) -> Self {
        Self {
            scope: Some(scope.into()),
            hook: self.hook.clone(),
        }
    }

    /// Returns the scope events are labelled with.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Emits `kind` as a `tracing` event and hands it to the hook.
    pub fn emit(&self, kind: EventKind) {
        let scope = self.scope.as_deref().unwrap_or("");
        match &kind {
            EventKind::CircuitOpened { failure_count } => tracing::warn!(
                target: "snakepit::circuit_breaker", event = "opened", scope, failure_count = *failure_count,
                "circuit breaker opened"
            ),
            EventKind::CircuitHalfOpened => tracing::info!(
                target: "snakepit::circuit_breaker", event = "half_opened", scope,
                "circuit breaker half-open, admitting probes"
            ),
            EventKind::CircuitClosed => tracing::info!(
                target: "snakepit::circuit_breaker", event = "closed", scope,
                "circuit breaker closed"
            ),
            EventKind::RetryAttempt { attempt, delay } => tracing::debug!(
                target: "snakepit::retry", event = "attempt", scope, attempt = *attempt,
                delay_ms = delay.as_millis() as u64, "retrying call"
            ),
            EventKind::RetryExhausted {
                attempts,
                last_error,
                last_error_kind,
            } => tracing::warn!(
                target: "snakepit::retry", event = "exhausted", scope, attempts = *attempts,
                last_error = %last_error, last_error_kind = last_error_kind.map(|k| k.as_str()),
                "retries exhausted"
            ),
            EventKind::RetryBudgetExhausted { attempts } => tracing::warn!(
                target: "snakepit::retry", event = "budget_exhausted", scope, attempts = *attempts,
                "retry budget exhausted, not retrying"
            ),
            EventKind::WorkerCrash {
                worker_id,
                crashes_in_window,
            } => tracing::warn!(
                target: "snakepit::worker", event = "crash", scope, worker_id = %worker_id,
                crashes_in_window = *crashes_in_window, "worker crash recorded"
            ),
        }
        if let Some(hook) = &self.hook {
            hook(&ResilienceEvent {
                scope: self.scope.clone(),
                kind,
            });
        }
    }
}

impl fmt::Debug for EventObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventObserver")
            .field("scope", &self.scope)
            .field("hook", &self.hook.as_ref().map(|_| "Fn(&ResilienceEvent)"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_observer_labels_events_and_shares_the_hook() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let observer = EventObserver::with_hook(move |e: &ResilienceEvent| {
            sink.lock().unwrap().push(e.clone());
        });
        observer
            .scoped("pool_worker_1")
            .emit(EventKind::CircuitClosed);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].scope.as_deref(), Some("pool_worker_1"));
        assert_eq!(seen[0].kind.name(), "closed");
        assert_eq!(seen[0].kind.target(), CIRCUIT_BREAKER_TARGET);
    }
}
