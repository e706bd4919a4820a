//! The breaker's response future: records the call's result, or fails fast when rejected.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use snakepit_core::{BoxError, Error};

use super::handle::CallPermit;

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Called { #[pin] future: F, permit: Option<CallPermit> },
        Rejected { error: Option<Error> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn called(future: F, permit: CallPermit) -> Self {
        Self {
            kind: Kind::Called {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(crate) fn rejected(error: Error) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
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
        match self.project().kind.project() {
            KindProj::Called { future, permit } => match ready!(future.poll(cx)) {
                Ok(value) => {
                    if let Some(permit) = permit.take() {
                        permit.record_success();
                    }
                    Poll::Ready(Ok(value))
                }
                Err(error) => {
                    let error = error.into();
                    if let Some(permit) = permit.take() {
                        permit.record_error(&*error);
                    }
                    Poll::Ready(Err(error))
                }
            },
            KindProj::Rejected { error } => Poll::Ready(Err(match error.take() {
                Some(error) => Box::new(error),
                None => "circuit breaker response polled after completion".into(),
            })),
        }
    }
}
