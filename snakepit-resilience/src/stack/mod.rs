//! The per-worker stack: overall deadline → retry → circuit breaker → per-attempt timeout.

mod box_errors;
#[cfg(test)]
mod tests;

use std::time::Duration;

use snakepit_core::config::ConfigError;
use tower::util::Either;
use tower::{Layer, ServiceBuilder};

pub use box_errors::{BoxErrors, BoxErrorsLayer};

use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer};
use crate::config::ResilienceConfig;
use crate::deadline::{Deadline, DeadlineLayer};
use crate::event::EventObserver;
use crate::retry::{Retry, RetryLayer};
use crate::timeout::{Timeout, TimeoutLayer};

/// The per-attempt stage: [`Timeout`] when configured, around the boxed-error inner service.
pub type AttemptStage<S> = Either<Timeout<BoxErrors<S>>, BoxErrors<S>>;
/// The breaker stage: [`CircuitBreaker`] when configured.
pub type BreakerStage<S> = Either<CircuitBreaker<AttemptStage<S>>, AttemptStage<S>>;
/// The retry stage: [`Retry`] when configured.
pub type RetryStage<S> = Either<Retry<BreakerStage<S>>, BreakerStage<S>>;
/// The whole stack around `S`: [`Deadline`] when configured, outermost.
pub type ResilienceService<S> = Either<Deadline<RetryStage<S>>, RetryStage<S>>;
/// The call-level half of a split stack: [`Deadline`] then [`Retry`] (each when configured)
/// around a service that picks a worker per attempt.
pub type CallStage<S> = Either<
    Deadline<Either<Retry<BoxErrors<S>>, BoxErrors<S>>>,
    Either<Retry<BoxErrors<S>>, BoxErrors<S>>,
>;

/// Builds the resilience stack around a service, in the design's order (outside in):
/// overall deadline → retry (idempotent calls only, with a budget) → circuit breaker →
/// per-attempt timeout → the service.
///
/// Each stage is optional (`ServiceBuilder::option_layer`); a disabled stage costs a match.
/// The result's error is always `BoxError`; requests must implement
/// [`RetryableRequest`](crate::RetryableRequest), [`DeadlineAware`](crate::DeadlineAware) and
/// `Clone` (a `ToolCall` does), and the service must be `Clone`.
///
/// Every [`layer`](Layer::layer) / [`build`](Self::build) call makes a fresh breaker (one per
/// worker) while all services share one retry budget (a failing pool cannot multiply its
/// load). See the crate docs for an example.
#[derive(Debug, Clone)]
pub struct ResilienceStack {
    deadline: Option<DeadlineLayer>,
    retry: Option<RetryLayer>,
    circuit_breaker: Option<CircuitBreakerLayer>,
    attempt_timeout: Option<TimeoutLayer>,
    observer: EventObserver,
}

/// One service built by [`ResilienceStack::build`], with its breaker for state and stats.
#[derive(Debug, Clone)]
pub struct WorkerStack<S> {
    /// The wrapped service.
    pub service: ResilienceService<S>,
    /// The service's breaker, when the stack has one.
    pub circuit_breaker: Option<CircuitBreakerHandle>,
}

impl Default for ResilienceStack {
    fn default() -> Self {
        Self::new()
    }
}

impl ResilienceStack {
    /// Returns an empty stack: every stage off.
    pub fn new() -> Self {
        Self {
            deadline: None,
            retry: None,
            circuit_breaker: None,
            attempt_timeout: None,
            observer: EventObserver::new(),
        }
    }

    /// Builds the stack a [`ResilienceConfig`] describes, after validating it.
    ///
    /// The overall deadline is always on (60 s unless `timeouts.call_timeout_ms` says
    /// otherwise); retry, breaker and per-attempt timeout are on when their tables are.
    pub fn from_config(config: &ResilienceConfig) -> Result<Self, ConfigError> {
        let mut stack = Self::new().with_deadline(config.call_timeout()?);
        if let Some((policy, budget)) = config.retry_config()? {
            stack = stack.with_retry(RetryLayer::new(policy).with_budget(budget));
        }
        if let Some(breaker) = config.circuit_breaker_config()? {
            stack = stack.with_circuit_breaker(CircuitBreakerLayer::new(breaker));
        }
        if let Some(timeout) = config.attempt_timeout()? {
            stack = stack.with_attempt_timeout(timeout);
        }
        Ok(stack)
    }

    /// Sets the overall deadline of calls that ask for no timeout of their own.
    pub fn with_deadline(mut self, default_timeout: Duration) -> Self {
        self.deadline = Some(DeadlineLayer::new(default_timeout));
        self
    }

    /// Sets the retry stage.
    pub fn with_retry(mut self, retry: RetryLayer) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets the breaker stage; unless the layer is [`shared`](CircuitBreakerLayer::shared),
    /// each built service gets its own breaker.
    pub fn with_circuit_breaker(mut self, breaker: CircuitBreakerLayer) -> Self {
        self.circuit_breaker = Some(breaker);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(TimeoutLayer::new(timeout));
        self
    }

    /// Sets the observer retry and breaker events go to (replacing the layers' own).
    pub fn with_observer(mut self, observer: EventObserver) -> Self {
        self.observer = observer;
        self
    }

    /// Wraps `inner`, labelling its events with `scope` (the worker id, say) when given, and
    /// returns the service with its breaker handle.
    pub fn build<S>(&self, scope: Option<&str>, inner: S) -> WorkerStack<S> {
        let observer = match scope {
            Some(scope) => self.observer.scoped(scope),
            None => self.observer.clone(),
        };
        let breaker = self
            .circuit_breaker
            .as_ref()
            .map(|layer| layer.clone().with_observer(observer.clone()).make_handle());
        let service = ServiceBuilder::new()
            .option_layer(self.deadline)
            .option_layer(self.retry.as_ref().map(|retry| retry.observed_by(observer)))
            .option_layer(breaker.clone().map(CircuitBreakerLayer::shared))
            .option_layer(self.attempt_timeout)
            .layer(BoxErrorsLayer)
            .service(inner);
        WorkerStack {
            service,
            circuit_breaker: breaker,
        }
    }
}

impl ResilienceStack {
    /// Returns the overall deadline's default limit, when the stack has a deadline.
    pub fn deadline_default(&self) -> Option<Duration> {
        self.deadline.map(|d| d.default_timeout())
    }

    /// Builds the call-level half of the stack (overall deadline, then retry) around `inner`.
    ///
    /// A pool puts this above its checkout, so every retry goes back through the scheduler and
    /// can land on another worker; [`build_worker`](Self::build_worker) wraps each worker.
    /// Retry events are labelled with `scope` when given.
    pub fn build_call<S>(&self, scope: Option<&str>, inner: S) -> CallStage<S> {
        let observer = match scope {
            Some(scope) => self.observer.scoped(scope),
            None => self.observer.clone(),
        };
        ServiceBuilder::new()
            .option_layer(self.deadline)
            .option_layer(self.retry.as_ref().map(|retry| retry.observed_by(observer)))
            .layer(BoxErrorsLayer)
            .service(inner)
    }

    /// Builds the worker-level half of the stack (circuit breaker, then per-attempt timeout)
    /// around one worker's service, with a fresh breaker whose events carry `scope`.
    pub fn build_worker<S>(&self, scope: Option<&str>, inner: S) -> WorkerStage<S> {
        let observer = match scope {
            Some(scope) => self.observer.scoped(scope),
            None => self.observer.clone(),
        };
        let breaker = self
            .circuit_breaker
            .as_ref()
            .map(|layer| layer.clone().with_observer(observer).make_handle());
        let service = ServiceBuilder::new()
            .option_layer(breaker.clone().map(CircuitBreakerLayer::shared))
            .option_layer(self.attempt_timeout)
            .layer(BoxErrorsLayer)
            .service(inner);
        WorkerStage {
            service,
            circuit_breaker: breaker,
        }
    }
}

/// One worker's service built by [`ResilienceStack::build_worker`], with its breaker.
#[derive(Debug, Clone)]
pub struct WorkerStage<S> {
    /// The wrapped service: breaker, then per-attempt timeout, then `S`.
    pub service: BreakerStage<S>,
    /// The service's breaker, when the stack has one.
    pub circuit_breaker: Option<CircuitBreakerHandle>,
}

impl<S> Layer<S> for ResilienceStack {
    type Service = ResilienceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.build(None, inner).service
    }
}
