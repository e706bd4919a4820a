//! Stack tests: the design's order, config wiring, scoped events, deadlines seen by the worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use snakepit_core::{BoxError, CallOptions, Error, ErrorKind, Payload, ToolCall};
use tokio::time::sleep;
use tower::{service_fn, Layer, Service, ServiceExt};

use super::*;
use crate::circuit_breaker::{CircuitBreakerConfig, CircuitState};
use crate::event::ResilienceEvent;
use crate::retry::RetryPolicy;
use crate::test_support::{transport, TestRequest};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn full_stack() -> ResilienceStack {
    ResilienceStack::new()
        .with_deadline(ms(10_000))
        .with_retry(RetryLayer::new(RetryPolicy::default()))
        .with_circuit_breaker(CircuitBreakerLayer::new(CircuitBreakerConfig {
            failure_threshold: 2,
            ..CircuitBreakerConfig::default()
        }))
        .with_attempt_timeout(ms(100))
}

/// A worker that takes `delay` per call and counts its calls.
fn counting(
    delay: Duration,
) -> (
    impl Service<TestRequest, Response = (), Error = Error> + Clone,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |_: TestRequest| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            sleep(delay).await;
            Ok::<_, Error>(())
        }
    });
    (svc, calls)
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeouts_feed_the_breaker_which_stops_the_retries() {
    let (worker, calls) = counting(ms(1000));
    let built = full_stack().build(Some("w1"), worker);
    let err = built
        .service
        .oneshot(TestRequest::idempotent())
        .await
        .unwrap_err();
    // Two attempts time out and open the breaker; the third attempt is refused by it,
    // and an open circuit is not retriable: the caller learns the breaker is open.
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::CircuitOpen), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(built.circuit_breaker.unwrap().state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn overall_deadline_bounds_all_attempts() {
    let stack = ResilienceStack::new()
        .with_deadline(ms(250))
        .with_retry(RetryLayer::new(RetryPolicy {
            max_attempts: 10,
            backoff_ms: vec![10],
            backoff_multiplier: 1.0,
            ..RetryPolicy::default()
        }))
        .with_attempt_timeout(ms(100));
    let (worker, calls) = counting(ms(1000));
    let started = tokio::time::Instant::now();
    let err = stack
        .layer(worker)
        .oneshot(TestRequest::idempotent())
        .await
        .unwrap_err();
    // Attempts at 0 and 110 ms time out at 100 ms each; the third, at 220 ms, is cut short
    // by the overall deadline at 250 ms.
    let err = Error::from_box(err);
    assert!(
        matches!(&err, Error::Timeout { operation, timeout } if operation == "call" && *timeout == ms(250)),
        "{err}"
    );
    assert_eq!(started.elapsed(), ms(250));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn the_worker_sees_the_time_left_on_a_tool_call() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let worker = service_fn(move |call: ToolCall| {
        log.lock().unwrap().push(call.deadline);
        async { Err::<Payload, BoxError>(Box::new(transport())) }
    });
    let stack = ResilienceStack::new()
        .with_deadline(ms(60_000))
        .with_retry(RetryLayer::new(RetryPolicy::default()))
        .with_attempt_timeout(ms(5_000));
    let call = ToolCall::new("echo", json!({}))
        .unwrap()
        .with_options(CallOptions::default().idempotent().with_timeout(ms(1_000)));
    stack.layer(worker).oneshot(call).await.unwrap_err();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Some(ms(1_000)), Some(ms(900)), Some(ms(700))]
    );
}

#[tokio::test(start_paused = true)]
async fn from_config_builds_the_configured_stages() {
    let config = ResilienceConfig::from_toml_str(
        "[circuit_breaker]\nfailure_threshold = 1\n[retry]\nmax_attempts = 2\n[timeouts]\nattempt_timeout_ms = 50\n",
    )
    .unwrap();
    let stack = ResilienceStack::from_config(&config).unwrap();
    let (worker, calls) = counting(ms(100));
    let built = stack.build(None, worker);
    let breaker = built.circuit_breaker.clone().unwrap();
    let err = built
        .service
        .oneshot(TestRequest::idempotent())
        .await
        .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::CircuitOpen));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(breaker.stats().failure_threshold, 1);
}

#[tokio::test(start_paused = true)]
async fn from_config_rejects_invalid_values() {
    let config = ResilienceConfig::from_toml_str("[retry]\nmax_attempts = 0\n").unwrap();
    let err = ResilienceStack::from_config(&config).unwrap_err();
    assert!(err.to_string().contains("retry.max_attempts"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn empty_stack_passes_calls_and_errors_through() {
    let (worker, calls) = counting(ms(5));
    let built = ResilienceStack::new().build(None, worker);
    assert!(built.circuit_breaker.is_none());
    built.service.oneshot(TestRequest::default()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let failing = service_fn(|_: TestRequest| async { Err::<(), _>(transport()) });
    let err = ResilienceStack::new()
        .layer(failing)
        .oneshot(TestRequest::default())
        .await
        .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::Transport));
}

#[tokio::test(start_paused = true)]
async fn each_built_service_gets_its_own_breaker_and_scoped_events() {
    let events = Arc::new(Mutex::new(Vec::<ResilienceEvent>::new()));
    let sink = Arc::clone(&events);
    let stack = ResilienceStack::new()
        .with_circuit_breaker(CircuitBreakerLayer::new(CircuitBreakerConfig {
            failure_threshold: 1,
            ..CircuitBreakerConfig::default()
        }))
        .with_observer(EventObserver::with_hook(move |e| {
            sink.lock().unwrap().push(e.clone())
        }));
    let failing = service_fn(|_: TestRequest| async { Err::<(), _>(transport()) });
    let first = stack.build(Some("pool_worker_1"), failing);
    let (healthy, _) = counting(ms(1));
    let second = stack.build(Some("pool_worker_2"), healthy);
    first
        .service
        .oneshot(TestRequest::default())
        .await
        .unwrap_err();
    second
        .service
        .oneshot(TestRequest::default())
        .await
        .unwrap();
    assert_eq!(first.circuit_breaker.unwrap().state(), CircuitState::Open);
    assert_eq!(
        second.circuit_breaker.unwrap().state(),
        CircuitState::Closed
    );
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].scope.as_deref(), Some("pool_worker_1"));
    assert_eq!(events[0].kind.name(), "opened");
}
