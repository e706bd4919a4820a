//! Executor helpers: run futures with a timeout, retries, a breaker, or in bounded batches.
//!
//! These are the seeds' `Snakepit.Executor` functions for code that is not a tower service.
//! Failures come back as `snakepit_core::Error` (timeouts) or `BoxError` (the function's own
//! error, or `Error::CircuitOpen`), classifiable with `Error::kind_of`.

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use snakepit_core::{BoxError, Error};
use tokio::task::{JoinError, JoinHandle};

use crate::circuit_breaker::CircuitBreakerHandle;
use crate::event::{EventKind, EventObserver};
use crate::retry::RetryPolicy;

/// The operation named in the timeout error of [`execute_with_timeout`].
pub const TIMEOUT_OPERATION: &str = "execute_with_timeout";
/// The operation named in the timeout error of a batch item that did not finish in time.
pub const BATCH_OPERATION: &str = "execute_batch";
/// The seeds' default timeout of [`execute_batch`] (30 s).
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_millis(30_000);

/// Runs `future` as it is (the seeds' `execute/2`).
pub async fn execute<F: Future>(future: F) -> F::Output {
    future.await
}

/// Spawns `future` on the runtime and returns a handle to await it (the seeds' `execute_async/2`).
///
/// Dropping the handle aborts the task, so nothing outlives its owner.
pub fn execute_async<F>(future: F) -> TaskHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    TaskHandle {
        handle: tokio::spawn(future),
    }
}

/// A spawned task's handle: a future of its output that aborts the task when dropped.
#[derive(Debug)]
pub struct TaskHandle<T> {
    handle: JoinHandle<T>,
}

impl<T> TaskHandle<T> {
    /// Aborts the task.
    pub fn abort(&self) {
        self.handle.abort();
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle).poll(cx)
    }
}

impl<T> Drop for TaskHandle<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Runs `future`, failing with `Error::Timeout` if it takes longer than `timeout`.
pub async fn execute_with_timeout<F: Future>(
    future: F,
    timeout: Duration,
) -> Result<F::Output, Error> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| Error::timeout(TIMEOUT_OPERATION, timeout))
}

/// Calls `make` and awaits its future, again after a backoff while `policy` allows.
///
/// Unlike the retry layer this has no budget and no idempotency check: the caller hands over
/// a function it knows is safe to repeat. Retries emit `retry attempt`/`exhausted` events.
pub async fn execute_with_retry<M, Fut, T, E>(
    policy: &RetryPolicy,
    mut make: M,
) -> Result<T, BoxError>
where
    M: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    let observer = EventObserver::new();
    let mut attempt = 1;
    loop {
        let error: BoxError = match make().await {
            Ok(value) => return Ok(value),
            Err(error) => error.into(),
        };
        if !policy.retry_for_error(&*error) {
            return Err(error);
        }
        if !policy.should_retry(attempt) {
            observer.emit(EventKind::RetryExhausted {
                attempts: attempt,
                last_error: error.to_string(),
                last_error_kind: Error::kind_of(&*error),
            });
            return Err(error);
        }
        let delay = policy.backoff_for_attempt(attempt);
        attempt += 1;
        observer.emit(EventKind::RetryAttempt { attempt, delay });
        tokio::time::sleep(delay).await;
    }
}

/// Runs `future` through `breaker`: fails fast with `Error::CircuitOpen` while it is open.
pub async fn execute_with_circuit_breaker<F, T, E>(
    breaker: &CircuitBreakerHandle,
    future: F,
) -> Result<T, BoxError>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    breaker.call(future).await
}

/// Retries `make` under `policy`, each attempt going through `breaker` (defence in depth).
///
/// An open breaker ends the retries unless the policy lists `circuit_open` as retriable.
pub async fn execute_with_protection<M, Fut, T, E>(
    breaker: &CircuitBreakerHandle,
    policy: &RetryPolicy,
    mut make: M,
) -> Result<T, BoxError>
where
    M: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    execute_with_retry(policy, || {
        // `make` runs only once the breaker admits the attempt: building the future may
        // already have side effects.
        let admitted = breaker.try_acquire().map(|permit| (permit, make()));
        async move {
            let (permit, future) = admitted?;
            match future.await {
                Ok(value) => {
                    permit.record_success();
                    Ok(value)
                }
                Err(error) => {
                    let error: BoxError = error.into();
                    permit.record_error(&*error);
                    Err(error)
                }
            }
        }
    })
    .await
}

/// Runs `futures` concurrently, at most `max_concurrency` at a time (`None`: all at once),
/// and returns their outputs in input order.
///
/// `timeout` bounds the whole batch (the seeds' default is [`DEFAULT_BATCH_TIMEOUT`]): items
/// not finished by then are dropped and reported as `Error::Timeout`. A `max_concurrency` of
/// 0 is taken as 1.
pub async fn execute_batch<I, F>(
    futures: I,
    timeout: Duration,
    max_concurrency: Option<usize>,
) -> Vec<Result<F::Output, Error>>
where
    I: IntoIterator<Item = F>,
    F: Future,
{
    let futures: Vec<F> = futures.into_iter().collect();
    let limit = max_concurrency.unwrap_or(futures.len()).max(1);
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut running = futures::stream::iter(
        futures
            .into_iter()
            .enumerate()
            .map(|(index, future)| async move { (index, future.await) }),
    )
    .buffer_unordered(limit);
    let collect = async {
        while let Some((index, output)) = running.next().await {
            outputs[index] = Some(output);
        }
    };
    // Expiry drops the items still running; they are reported below.
    let _ = tokio::time::timeout(timeout, collect).await;
    drop(running);
    outputs
        .into_iter()
        .map(|output| output.ok_or_else(|| Error::timeout(BATCH_OPERATION, timeout)))
        .collect()
}
