//! Fault tolerance for snakepit-rs as tower layers: circuit breaker, retry, timeouts, plus a
//! crash health monitor and executor helpers.
//!
//! # The per-worker stack
//!
//! The pool wraps each worker's service in one stack, outside in:
//!
//! ```text
//! overall deadline -> retry (idempotent only, budget) -> circuit breaker -> per-attempt timeout -> worker
//! ```
//!
//! * [`deadline::Deadline`]: one limit for the call and all its retries (the call's
//!   `options.timeout`, else `timeouts.call_timeout_ms`, 60 s); writes the time left into the
//!   request ([`DeadlineAware`]) so the Python side sees it; expiry is `Error::Timeout`.
//! * [`retry`]: tower's `Retry` driven by the seeds' [`RetryPolicy`]; only requests that say
//!   they are idempotent ([`RetryableRequest`]) are retried, only for retriable kinds, and
//!   every retry is drawn from a shared [`RetryBudget`].
//! * [`circuit_breaker`]: fails fast with `Error::CircuitOpen` after consecutive failures,
//!   as judged by a [`FailureClassifier`] (default: transport, timeout, worker crash).
//! * [`timeout::Timeout`]: limits each attempt; expiry is `Error::Timeout`, which the breaker
//!   counts and the retry may follow.
//!
//! Build it from configuration and wrap each worker:
//!
//! ```
//! use snakepit_core::{BoxError, Payload, ToolCall};
//! use snakepit_resilience::{ResilienceConfig, ResilienceStack};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BoxError> {
//! let config = ResilienceConfig::from_toml_str(
//!     "[circuit_breaker]\nfailure_threshold = 3\n[retry]\nmax_attempts = 2\n",
//! )?;
//! let stack = ResilienceStack::from_config(&config)?; // validated; errors name the key
//!
//! // Per worker: a fresh breaker, the pool-wide retry budget, events labelled with the id.
//! let worker = service_fn(|_call: ToolCall| async { Ok::<_, BoxError>(Payload::default()) });
//! let built = stack.build(Some("default_worker_1"), worker);
//! let breaker = built.circuit_breaker.expect("configured"); // state(), stats(), reset()
//! let reply = built.service.oneshot(ToolCall::new("ping", serde_json::Value::Null)?).await?;
//! assert_eq!(reply, Payload::default());
//! assert_eq!(breaker.stats().success_count, 1);
//! # Ok(()) }
//! ```
//!
//! A pool splits the stack: [`ResilienceStack::build_call`] (deadline, retry) goes above its
//! scheduler's checkout so a retry can land on another worker, and
//! [`ResilienceStack::build_worker`] (breaker, attempt timeout) wraps each worker.
//!
//! `ResilienceStack` is also a plain `tower::Layer` (`stack.layer(worker)`). The service's
//! error is a `BoxError`; classify it with `snakepit_core::Error::kind_of`. The inner service
//! must be `Clone` (wrap it in `tower::buffer::Buffer` if it is not), and so must requests.
//!
//! # Events
//!
//! Breaker and retry events (and the monitor's worker crashes) are `tracing` events with
//! stable targets ([`event::CIRCUIT_BREAKER_TARGET`], ...) and an `event` field (`opened`,
//! `closed`, `attempt`, `exhausted`, ...); an [`EventObserver`] with a hook also receives them
//! as [`ResilienceEvent`]s.

pub mod circuit_breaker;
pub mod config;
pub mod deadline;
pub mod event;
pub mod executor;
pub mod health;
mod request;
pub mod retry;
mod stack;
#[cfg(test)]
mod test_support;
pub mod timeout;

pub use circuit_breaker::{
    CallPermit, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerHandle, CircuitBreakerLayer,
    CircuitState, CircuitStats, FailureClassifier, FailureKinds,
};
pub use config::ResilienceConfig;
pub use deadline::{Deadline, DeadlineLayer};
pub use event::{EventKind, EventObserver, ResilienceEvent};
pub use executor::{
    execute, execute_async, execute_batch, execute_with_circuit_breaker, execute_with_protection,
    execute_with_retry, execute_with_timeout, TaskHandle,
};
pub use health::{HealthMonitor, HealthMonitorConfig, HealthStats, WorkerHealth};
pub use request::{DeadlineAware, RetryableRequest};
pub use retry::{RetriableErrors, RetryBudget, RetryLayer, RetryPolicy};
pub use stack::{
    AttemptStage, BoxErrors, BoxErrorsLayer, BreakerStage, CallStage, ResilienceService,
    ResilienceStack, RetryStage, WorkerStack, WorkerStage,
};
pub use timeout::{Timeout, TimeoutLayer};
