//! The innermost adapter of the stack: boxes the wrapped service's errors into `BoxError`.

use std::task::{Context, Poll};

use futures::future::ErrInto;
use futures::TryFutureExt;
use snakepit_core::BoxError;
use tower::{Layer, Service};

/// Boxes a service's errors, so every branch of the optional stack has the same error type.
#[derive(Debug, Clone)]
pub struct BoxErrors<S> {
    inner: S,
}

impl<S> BoxErrors<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
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

impl<S, Request> Service<Request> for BoxErrors<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ErrInto<S::Future, BoxError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.inner.call(request).err_into()
    }
}

/// Applies [`BoxErrors`] to services.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoxErrorsLayer;

impl<S> Layer<S> for BoxErrorsLayer {
    type Service = BoxErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BoxErrors::new(inner)
    }
}
