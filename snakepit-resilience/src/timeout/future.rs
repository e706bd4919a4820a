//! The response future shared by the timeout and deadline layers: the call raced with a sleep.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use snakepit_core::BoxError;
use tokio::time::{sleep, Sleep};

use super::error::elapsed;

pin_project! {
    /// The response future of [`Timeout`](super::Timeout) and [`Deadline`](crate::deadline::Deadline).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        response: F,
        #[pin]
        sleep: Sleep,
        limit: Duration,
        operation: &'static str,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(response: F, limit: Duration, operation: &'static str) -> Self {
        Self {
            response,
            sleep: sleep(limit),
            limit,
            operation,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The response first: an answer that is ready wins over a timer that just fired.
        if let Poll::Ready(result) = this.response.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Box::new(elapsed(this.operation, *this.limit)))),
            Poll::Pending => Poll::Pending,
        }
    }
}
