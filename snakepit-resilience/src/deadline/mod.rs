//! An overall deadline as a tower middleware: one limit for a call and all its retries.
//!
//! It takes the limit from the request ([`DeadlineAware::requested_timeout`], a `ToolCall`'s
//! `options.timeout`) or its default, writes it into the request as the time left (so the
//! worker sees it), and fails with `snakepit_core::Error::Timeout` (operation
//! [`CALL_OPERATION`]) when it passes, dropping whatever attempt is in flight.

pub mod future;
mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use snakepit_core::BoxError;
use tower::Service;

pub use layer::DeadlineLayer;

use self::future::ResponseFuture;
use crate::request::{tighten_deadline, DeadlineAware};

/// The operation named in an overall-deadline timeout error.
pub const CALL_OPERATION: &str = "call";

/// Fails a call (with all its retries) that outlives its deadline with `Error::Timeout`.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    default_timeout: Duration,
}

impl<S> Deadline<S> {
    /// Wraps `inner`; calls that ask for no timeout get `default_timeout`.
    pub fn new(inner: S, default_timeout: Duration) -> Self {
        Self {
            inner,
            default_timeout,
        }
    }

    /// Returns the default limit.
    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
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

impl<S, Request> Service<Request> for Deadline<S>
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
        let limit = request.requested_timeout().unwrap_or(self.default_timeout);
        // A deadline already on the request (time spent queueing, say) is kept when tighter.
        let limit = tighten_deadline(&mut request, limit);
        ResponseFuture::new(self.inner.call(request), limit, CALL_OPERATION)
    }
}
