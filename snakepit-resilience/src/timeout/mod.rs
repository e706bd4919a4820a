//! A per-attempt timeout as a tower middleware, with a typed error and deadline propagation.
//!
//! Tower's own `Timeout` fails with its opaque `Elapsed`; this one fails with
//! `snakepit_core::Error::Timeout` (so the breaker and retry classify it by type) and tightens
//! the request's deadline ([`DeadlineAware`]) so the worker sees the attempt's limit.

pub mod error;
pub mod future;
mod layer;
#[cfg(test)]
mod tests;

use std::task::{Context, Poll};
use std::time::Duration;

use snakepit_core::BoxError;
use tower::Service;

pub use layer::TimeoutLayer;

use self::future::ResponseFuture;
use crate::request::{tighten_deadline, DeadlineAware};

/// The operation named in a per-attempt timeout error.
pub const ATTEMPT_OPERATION: &str = "call attempt";

/// Fails an attempt that takes longer than `timeout` with `Error::Timeout`.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Timeout<S> {
    /// Wraps `inner`, limiting each call to `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout }
    }

    /// Returns the limit.
    pub fn timeout(&self) -> Duration {
        self.timeout
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

impl<S, Request> Service<Request> for Timeout<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    Request: DeadlineAware,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The worker sees the tighter of the attempt limit and the time left overall; the
        // overall deadline layer reports its own expiry.
        tighten_deadline(&mut request, self.timeout);
        ResponseFuture::new(self.inner.call(request), self.timeout, ATTEMPT_OPERATION)
    }
}
