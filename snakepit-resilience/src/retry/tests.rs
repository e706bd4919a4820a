//! Retry tests: backoff sequences, idempotency, retriable kinds, the budget, deadlines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use snakepit_core::{BoxError, Error, ErrorKind};
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::event::EventKind;
use crate::test_support::{python, recording_observer, transport, Seen, TestRequest};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// What the wrapped service saw: when each attempt started and the deadline it carried.
type Attempts = Arc<Mutex<Vec<(Instant, Option<Duration>)>>>;

/// Wraps a service failing with `error()` for the first `failures` calls, then answering "ok".
async fn run(
    layer: RetryLayer,
    request: TestRequest,
    failures: usize,
    error: fn() -> Error,
) -> (Result<&'static str, BoxError>, Attempts, Seen) {
    let (observer, seen) = recording_observer();
    let attempts: Attempts = Arc::default();
    let log = Arc::clone(&attempts);
    let inner = service_fn(move |req: TestRequest| {
        let mut log = log.lock().unwrap();
        log.push((Instant::now(), req.deadline));
        let fail = log.len() <= failures;
        async move {
            if fail {
                Err::<&'static str, BoxError>(Box::new(error()))
            } else {
                Ok("ok")
            }
        }
    });
    let svc = layer.with_observer(observer).layer(inner);
    let result = svc.oneshot(request).await;
    (result, attempts, seen)
}

fn gaps(attempts: &Attempts) -> Vec<Duration> {
    let attempts = attempts.lock().unwrap();
    attempts.windows(2).map(|w| w[1].0 - w[0].0).collect()
}

#[test]
fn backoff_follows_the_list_then_grows_by_the_multiplier() {
    let policy = RetryPolicy::default();
    let delays: Vec<_> = (1..=10).map(|n| policy.backoff_for_attempt(n)).collect();
    let expected: Vec<_> = [100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000]
        .map(ms)
        .to_vec();
    assert_eq!(delays, expected);
    let short = RetryPolicy {
        backoff_ms: vec![100, 500, 1000],
        ..RetryPolicy::default()
    };
    assert_eq!(short.backoff_for_attempt(4), ms(2000));
    assert_eq!(short.backoff_for_attempt(5), ms(4000));
}

#[test]
fn exponential_backoff_without_a_list_is_capped() {
    let policy = RetryPolicy {
        backoff_ms: Vec::new(),
        base_backoff_ms: 50,
        backoff_multiplier: 3.0,
        max_backoff_ms: 1000,
        ..RetryPolicy::default()
    };
    let delays: Vec<_> = (1..=5).map(|n| policy.backoff_for_attempt(n)).collect();
    assert_eq!(delays, [50, 150, 450, 1000, 1000].map(ms).to_vec());
    assert_eq!(policy.backoff_for_attempt(u32::MAX), ms(1000));
}

#[test]
fn jittered_backoff_stays_within_the_jitter_factor() {
    let policy = RetryPolicy {
        jitter: true,
        ..RetryPolicy::default()
    };
    let samples: Vec<_> = (0..500).map(|_| policy.backoff_for_attempt(1)).collect();
    assert!(
        samples.iter().all(|d| (ms(75)..=ms(125)).contains(d)),
        "{samples:?}"
    );
    assert!(samples.iter().any(|d| *d < ms(95)) && samples.iter().any(|d| *d > ms(105)));
    let capped = RetryPolicy {
        max_backoff_ms: 1000,
        jitter: true,
        jitter_factor: 0.5,
        ..RetryPolicy::default()
    };
    assert!((0..200).all(|_| (ms(500)..=ms(1500)).contains(&capped.backoff_for_attempt(9))));
}

#[test]
fn should_retry_counts_the_first_attempt() {
    let policy = RetryPolicy::default();
    assert!(policy.should_retry(1));
    assert!(policy.should_retry(2));
    assert!(!policy.should_retry(3));
}

#[test]
fn retriable_kinds_are_matched_by_type_along_the_source_chain() {
    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrapped(#[source] Error);

    let policy = RetryPolicy::default();
    assert!(policy.retry_for_error(&Error::timeout("call", ms(1))));
    assert!(policy.retry_for_error(&transport()));
    assert!(policy.retry_for_error(&Wrapped(transport())));
    assert!(!policy.retry_for_error(&python()));
    assert!(!policy.retry_for_error(&Error::validation("args", "bad")));
    assert!(!policy.retry_for_error(&Error::CircuitOpen {
        failures: 5,
        retry_after: ms(1)
    }));
    assert!(!policy.retry_for_error(&std::io::Error::other("foreign")));
    let all = RetryPolicy {
        retriable_errors: RetriableErrors::All,
        ..RetryPolicy::default()
    };
    assert!(all.retry_for_error(&std::io::Error::other("foreign")));
    assert_eq!(
        RetriableErrors::kind_from_name("unavailable"),
        Some(ErrorKind::Transport)
    );
    assert_eq!(
        RetriableErrors::kind_from_name("worker_crash"),
        Some(ErrorKind::WorkerCrash)
    );
    assert_eq!(RetriableErrors::kind_from_name("nope"), None);
}

#[tokio::test(start_paused = true)]
async fn retries_idempotent_calls_with_the_exact_backoff_sequence() {
    let layer = RetryLayer::new(RetryPolicy {
        max_attempts: 4,
        backoff_ms: vec![100, 200, 400],
        ..RetryPolicy::default()
    });
    let (result, attempts, seen) =
        run(layer, TestRequest::idempotent(), usize::MAX, transport).await;
    let err = result.unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::Transport));
    assert_eq!(gaps(&attempts), [100, 200, 400].map(ms).to_vec());
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[..3],
        [
            EventKind::RetryAttempt {
                attempt: 2,
                delay: ms(100)
            },
            EventKind::RetryAttempt {
                attempt: 3,
                delay: ms(200)
            },
            EventKind::RetryAttempt {
                attempt: 4,
                delay: ms(400)
            },
        ]
    );
    assert!(
        matches!(&seen[3], EventKind::RetryExhausted { attempts: 4, last_error_kind: Some(ErrorKind::Transport), last_error }
            if last_error.contains("connection reset")),
        "{:?}",
        seen[3]
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_retries_wait_within_bounds() {
    let layer = RetryLayer::new(RetryPolicy {
        max_attempts: 3,
        backoff_ms: vec![1000, 2000],
        jitter: true,
        ..RetryPolicy::default()
    });
    let (_, attempts, _) = run(layer, TestRequest::idempotent(), usize::MAX, transport).await;
    let gaps = gaps(&attempts);
    assert_eq!(gaps.len(), 2);
    assert!((ms(750)..=ms(1250)).contains(&gaps[0]), "{gaps:?}");
    assert!((ms(1500)..=ms(2500)).contains(&gaps[1]), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_returns_the_response() {
    let (result, attempts, seen) = run(
        RetryLayer::new(RetryPolicy::default()),
        TestRequest::idempotent(),
        2,
        transport,
    )
    .await;
    assert_eq!(result.unwrap(), "ok");
    assert_eq!(attempts.lock().unwrap().len(), 3);
    assert!(!seen
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, EventKind::RetryExhausted { .. })));
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_calls_are_never_retried() {
    let (result, attempts, seen) = run(
        RetryLayer::new(RetryPolicy::default()),
        TestRequest::default(),
        usize::MAX,
        transport,
    )
    .await;
    assert_eq!(
        Error::kind_of(&*result.unwrap_err()),
        Some(ErrorKind::Transport)
    );
    assert_eq!(attempts.lock().unwrap().len(), 1);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn non_retriable_errors_are_returned_at_once() {
    let (result, attempts, seen) = run(
        RetryLayer::new(RetryPolicy::default()),
        TestRequest::idempotent(),
        usize::MAX,
        python,
    )
    .await;
    assert_eq!(
        Error::kind_of(&*result.unwrap_err()),
        Some(ErrorKind::PythonException)
    );
    assert_eq!(attempts.lock().unwrap().len(), 1);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_budget_is_spent() {
    // A floor of one retry per second over one second, and no share of calls: one retry in all.
    let budget = RetryBudget::new(Duration::from_secs(1), 1, 0.0).unwrap();
    let (observer, seen) = recording_observer();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let inner = service_fn(move |_: TestRequest| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Err::<(), BoxError>(Box::new(transport())) }
    });
    let svc = RetryLayer::new(RetryPolicy::default())
        .with_budget(budget)
        .with_observer(observer)
        .layer(inner);
    svc.clone()
        .oneshot(TestRequest::idempotent())
        .await
        .unwrap_err();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    svc.oneshot(TestRequest::idempotent()).await.unwrap_err();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        [
            EventKind::RetryAttempt {
                attempt: 2,
                delay: ms(100)
            },
            EventKind::RetryBudgetExhausted { attempts: 2 },
            EventKind::RetryBudgetExhausted { attempts: 1 },
        ]
    );
}

#[test]
fn budget_options_out_of_range_name_their_key() {
    let err = RetryBudget::new(Duration::from_millis(500), 1, 0.2).unwrap_err();
    assert!(err.to_string().contains("retry.budget_ttl_ms"), "{err}");
    let err = RetryBudget::new(Duration::from_secs(10), 1, -1.0).unwrap_err();
    assert!(
        err.to_string().contains("retry.budget_retry_percent"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn each_retry_sees_the_time_left_of_the_deadline() {
    let request = TestRequest {
        idempotent: true,
        deadline: Some(ms(1000)),
        ..TestRequest::default()
    };
    let (result, attempts, _) = run(
        RetryLayer::new(RetryPolicy::default()),
        request,
        2,
        transport,
    )
    .await;
    assert_eq!(result.unwrap(), "ok");
    let deadlines: Vec<_> = attempts.lock().unwrap().iter().map(|a| a.1).collect();
    assert_eq!(
        deadlines,
        vec![Some(ms(1000)), Some(ms(900)), Some(ms(700))]
    );
}

#[tokio::test(start_paused = true)]
async fn no_retry_when_the_backoff_would_outlast_the_deadline() {
    let request = TestRequest {
        idempotent: true,
        deadline: Some(ms(250)),
        ..TestRequest::default()
    };
    let (result, attempts, seen) = run(
        RetryLayer::new(RetryPolicy::default()),
        request,
        usize::MAX,
        transport,
    )
    .await;
    assert!(result.is_err());
    // 100 ms fits in 250 ms; the next 200 ms would not.
    assert_eq!(attempts.lock().unwrap().len(), 2);
    assert!(matches!(
        seen.lock().unwrap().last(),
        Some(EventKind::RetryExhausted { attempts: 2, .. })
    ));
}
