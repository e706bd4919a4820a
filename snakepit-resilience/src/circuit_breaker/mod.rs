//! A circuit breaker as a tower middleware: fail fast while the service behind it is failing.
//!
//! closed → open after `failure_threshold` consecutive failures → half-open after
//! `reset_timeout` admitting `half_open_max_calls` probes → closed on a probe's success, open
//! again on its failure. While open, calls end at once in `snakepit_core::Error::CircuitOpen`
//! without reaching the service. Which errors are failures is up to a [`FailureClassifier`].

mod classifier;
pub mod error;
pub mod future;
mod handle;
mod layer;
mod machine;
#[cfg(test)]
mod tests;

use std::fmt;
use std::task::{Context, Poll};

use snakepit_core::BoxError;
use tower::Service;

pub use classifier::{FailureClassifier, FailureKinds};
pub use handle::{CallPermit, CircuitBreakerHandle};
pub use layer::CircuitBreakerLayer;
pub use machine::{CircuitBreakerConfig, CircuitState, CircuitStats};

use self::future::ResponseFuture;

/// Wraps a service with a circuit breaker.
///
/// The admission decision is taken in `poll_ready`: an open breaker reports ready at once
/// (without polling the inner service) and the following `call` fails fast. Clones share the
/// breaker but not an admission already taken.
pub struct CircuitBreaker<S> {
    inner: S,
    handle: CircuitBreakerHandle,
    admission: Option<Result<CallPermit, snakepit_core::Error>>,
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner` with the breaker `handle` (share the handle to share the breaker).
    pub fn new(inner: S, handle: CircuitBreakerHandle) -> Self {
        Self {
            inner,
            handle,
            admission: None,
        }
    }

    /// Returns the breaker's handle.
    pub fn handle(&self) -> &CircuitBreakerHandle {
        &self.handle
    }

    /// Returns a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for CircuitBreaker<S> {
    fn clone(&self) -> Self {
        // An admission belongs to the `poll_ready` that took it, not to the copy.
        Self::new(self.inner.clone(), self.handle.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("handle", &self.handle)
            .field("admission", &self.admission)
            .finish()
    }
}

impl<S, Request> Service<Request> for CircuitBreaker<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let admission = self
            .admission
            .get_or_insert_with(|| self.handle.try_acquire());
        if admission.is_err() {
            // Rejected: `call` fails fast, the inner service is not needed.
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                // Dropping the permit frees its slot; readiness errors are not call results.
                self.admission = None;
                Poll::Ready(Err(e.into()))
            }
            other => other.map_err(Into::into),
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Without a prior `poll_ready` admission is decided here rather than panicking.
        let admission = self
            .admission
            .take()
            .unwrap_or_else(|| self.handle.try_acquire());
        match admission {
            Ok(permit) => ResponseFuture::called(self.inner.call(request), permit),
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}
