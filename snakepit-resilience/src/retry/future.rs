//! The retry's response future: tower's, driven by [`RetryAttempts`](super::RetryAttempts).

/// The response future of [`Retry`](super::Retry) for requests of type `Req`.
pub type ResponseFuture<S, Req> =
    tower::retry::future::ResponseFuture<super::RetryAttempts, S, Req>;
