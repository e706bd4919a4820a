//! Executor tests: batches (order, concurrency bound, timeout), timeout, retry, protection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use snakepit_core::{BoxError, Error, ErrorKind};
use tokio::time::{sleep, Instant};

use super::*;
use crate::circuit_breaker::{CircuitBreakerConfig, CircuitState};
use crate::test_support::{python, transport};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Tracks how many items run at once and the most that ever did.
#[derive(Default)]
struct HighWater {
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl HighWater {
    async fn run<T>(&self, delay: Duration, value: T) -> T {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        sleep(delay).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        value
    }
}

#[tokio::test(start_paused = true)]
async fn batch_keeps_input_order_whatever_finishes_first() {
    let delays = [50u64, 10, 40, 20, 30];
    let results = execute_batch(
        delays.iter().enumerate().map(|(i, d)| async move {
            sleep(ms(*d)).await;
            i
        }),
        DEFAULT_BATCH_TIMEOUT,
        None,
    )
    .await;
    let values: Vec<usize> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn batch_never_exceeds_max_concurrency() {
    let gauge = Arc::new(HighWater::default());
    let started = Instant::now();
    let results = execute_batch(
        (0..10u64).map(|i| {
            let gauge = Arc::clone(&gauge);
            async move { gauge.run(ms(10 + i % 3), i).await }
        }),
        DEFAULT_BATCH_TIMEOUT,
        Some(3),
    )
    .await;
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 3);
    assert_eq!(
        results.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    // Ten items of 10–12 ms, three at a time: at least four rounds.
    assert!(started.elapsed() >= ms(40), "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn batch_without_a_limit_runs_everything_at_once() {
    let gauge = Arc::new(HighWater::default());
    let results = execute_batch(
        (0..8).map(|i| {
            let gauge = Arc::clone(&gauge);
            async move { gauge.run(ms(10), i).await }
        }),
        DEFAULT_BATCH_TIMEOUT,
        None,
    )
    .await;
    assert_eq!(results.len(), 8);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 8);
}

#[tokio::test(start_paused = true)]
async fn batch_timeout_reports_unfinished_items_as_timeouts() {
    let results = execute_batch(
        [10u64, 500, 20, 900].map(|d| async move {
            sleep(ms(d)).await;
            d
        }),
        ms(100),
        Some(2),
    )
    .await;
    assert_eq!(results[0].as_ref().unwrap(), &10);
    assert_eq!(results[2].as_ref().unwrap(), &20);
    for index in [1, 3] {
        let err = results[index].as_ref().unwrap_err();
        assert!(
            matches!(err, Error::Timeout { operation, timeout } if operation == BATCH_OPERATION && *timeout == ms(100)),
            "{err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn zero_max_concurrency_runs_one_at_a_time() {
    let gauge = Arc::new(HighWater::default());
    let results = execute_batch(
        (0..3).map(|i| {
            let gauge = Arc::clone(&gauge);
            async move { gauge.run(ms(1), i).await }
        }),
        DEFAULT_BATCH_TIMEOUT,
        Some(0),
    )
    .await;
    assert_eq!(results.len(), 3);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn execute_with_timeout_fails_with_a_typed_timeout() {
    assert_eq!(execute_with_timeout(async { 7 }, ms(10)).await.unwrap(), 7);
    let err = execute_with_timeout(sleep(ms(50)), ms(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains(TIMEOUT_OPERATION), "{err}");
}

#[tokio::test(start_paused = true)]
async fn execute_with_retry_waits_the_policy_backoff() {
    let calls = AtomicUsize::new(0);
    let started = Instant::now();
    let result = execute_with_retry(&RetryPolicy::executor_default(), || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                Err(transport())
            } else {
                Ok(n)
            }
        }
    })
    .await;
    assert_eq!(result.unwrap(), 2);
    assert_eq!(started.elapsed(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn execute_with_retry_gives_up_on_non_retriable_errors_and_after_max_attempts() {
    let calls = AtomicUsize::new(0);
    let err = execute_with_retry(&RetryPolicy::default(), || {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(python()) }
    })
    .await
    .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::PythonException));
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1);
    let err = execute_with_retry(&RetryPolicy::default(), || {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(transport()) }
    })
    .await
    .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::Transport));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn execute_with_protection_stops_retrying_once_the_breaker_opens() {
    let breaker = CircuitBreakerHandle::new(CircuitBreakerConfig {
        failure_threshold: 2,
        ..CircuitBreakerConfig::default()
    });
    let policy = RetryPolicy {
        max_attempts: 5,
        ..RetryPolicy::default()
    };
    let calls = AtomicUsize::new(0);
    let err = execute_with_protection(&breaker, &policy, || {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(transport()) }
    })
    .await
    .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::CircuitOpen));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(breaker.state(), CircuitState::Open);
    let err = execute_with_circuit_breaker(&breaker, async { Ok::<_, BoxError>(()) })
        .await
        .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::CircuitOpen));
}

#[tokio::test(start_paused = true)]
async fn execute_async_runs_the_future_and_aborts_when_dropped() {
    assert_eq!(execute_async(async { 5 }).await.unwrap(), 5);
    assert_eq!(execute(async { 6 }).await, 6);
    let finished = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&finished);
    let handle = execute_async(async move {
        sleep(ms(100)).await;
        flag.store(1, Ordering::SeqCst);
    });
    drop(handle);
    sleep(ms(200)).await;
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}
