//! Circuit-breaker tests: every transition under paused time, probes, classifiers, sharing.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use snakepit_core::{BoxError, Error, ErrorKind};
use tokio::time::{advance, Instant};
use tower::{service_fn, Service, ServiceExt};
use tower_test::mock;

use super::machine::{CircuitMachine, Outcome};
use super::*;
use crate::event::EventKind;
use crate::test_support::{python, recording_observer, transport};

type Mock = mock::Mock<(), &'static str>;
type Handle = mock::Handle<(), &'static str>;

fn config(threshold: u32, probes: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        failure_threshold: threshold,
        reset_timeout: Duration::from_secs(30),
        half_open_max_calls: probes,
    }
}

fn breaker(
    threshold: u32,
    probes: u32,
) -> (
    CircuitBreaker<Mock>,
    Handle,
    Arc<std::sync::Mutex<Vec<EventKind>>>,
) {
    let (observer, seen) = recording_observer();
    let handle = CircuitBreakerHandle::with_parts(
        config(threshold, probes),
        Arc::new(FailureKinds::default()),
        observer,
    );
    let (mock, mock_handle) = mock::pair();
    (CircuitBreaker::new(mock, handle), mock_handle, seen)
}

/// Makes one call that the mock answers with `answer`, and returns the result.
async fn call_answered(
    svc: &mut CircuitBreaker<Mock>,
    mock: &mut Handle,
    answer: Result<&'static str, Error>,
) -> Result<&'static str, BoxError> {
    let fut = svc.ready().await.unwrap().call(());
    let (_, respond) = mock.next_request().await.unwrap();
    match answer {
        Ok(v) => respond.send_response(v),
        Err(e) => respond.send_error(e),
    }
    fut.await
}

async fn fail_times(svc: &mut CircuitBreaker<Mock>, mock: &mut Handle, n: u32) {
    for _ in 0..n {
        let err = call_answered(svc, mock, Err(transport()))
            .await
            .unwrap_err();
        assert_eq!(Error::kind_of(&*err), Some(ErrorKind::Transport));
    }
}

/// Asserts the next call fails fast with `CircuitOpen` without reaching the mock.
async fn assert_rejected(svc: &mut CircuitBreaker<Mock>, mock: &mut Handle) -> Duration {
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::CircuitOpen), "{err}");
    assert!(
        mock.next_request().now_or_never().is_none(),
        "a rejected call reached the service"
    );
    super::error::retry_after(&*err).unwrap()
}

#[tokio::test(start_paused = true)]
async fn opens_after_consecutive_failures() {
    let (mut svc, mut mock, seen) = breaker(5, 1);
    fail_times(&mut svc, &mut mock, 4).await;
    assert_eq!(svc.handle().state(), CircuitState::Closed);
    fail_times(&mut svc, &mut mock, 1).await;
    assert_eq!(svc.handle().state(), CircuitState::Open);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[EventKind::CircuitOpened { failure_count: 5 }]
    );
    let stats = svc.handle().stats();
    assert_eq!((stats.failure_count, stats.failure_threshold), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn open_breaker_fails_fast_with_typed_error_and_retry_after() {
    let (mut svc, mut mock, _) = breaker(2, 1);
    fail_times(&mut svc, &mut mock, 2).await;
    assert_eq!(
        assert_rejected(&mut svc, &mut mock).await,
        Duration::from_secs(30)
    );
    advance(Duration::from_secs(10)).await;
    assert_eq!(
        assert_rejected(&mut svc, &mut mock).await,
        Duration::from_secs(20)
    );
    assert_eq!(svc.handle().stats().rejected_count, 2);
    let err = Error::from_box(svc.ready().await.unwrap().call(()).await.unwrap_err());
    assert!(
        matches!(err, Error::CircuitOpen { failures: 2, .. }),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn success_resets_the_consecutive_failure_count() {
    let (mut svc, mut mock, _) = breaker(3, 1);
    fail_times(&mut svc, &mut mock, 2).await;
    assert_eq!(
        call_answered(&mut svc, &mut mock, Ok("ok")).await.unwrap(),
        "ok"
    );
    fail_times(&mut svc, &mut mock, 2).await;
    assert_eq!(svc.handle().state(), CircuitState::Closed);
    assert_eq!(svc.handle().stats().failure_count, 2);
    assert_eq!(svc.handle().stats().success_count, 1);
}

#[tokio::test(start_paused = true)]
async fn half_opens_after_the_reset_timeout() {
    let (mut svc, mut mock, seen) = breaker(1, 1);
    fail_times(&mut svc, &mut mock, 1).await;
    advance(Duration::from_millis(29_999)).await;
    assert_eq!(svc.handle().state(), CircuitState::Open);
    advance(Duration::from_millis(1)).await;
    assert_eq!(svc.handle().state(), CircuitState::HalfOpen);
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&EventKind::CircuitHalfOpened)
    );
}

#[tokio::test(start_paused = true)]
async fn probe_success_closes_the_breaker() {
    let (mut svc, mut mock, seen) = breaker(1, 1);
    fail_times(&mut svc, &mut mock, 1).await;
    advance(Duration::from_secs(30)).await;
    assert_eq!(
        call_answered(&mut svc, &mut mock, Ok("ok")).await.unwrap(),
        "ok"
    );
    assert_eq!(svc.handle().state(), CircuitState::Closed);
    assert_eq!(svc.handle().stats().failure_count, 0);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[
            EventKind::CircuitOpened { failure_count: 1 },
            EventKind::CircuitHalfOpened,
            EventKind::CircuitClosed
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn probe_failure_reopens_for_another_reset_timeout() {
    let (mut svc, mut mock, seen) = breaker(1, 1);
    fail_times(&mut svc, &mut mock, 1).await;
    advance(Duration::from_secs(30)).await;
    fail_times(&mut svc, &mut mock, 1).await;
    assert_eq!(svc.handle().state(), CircuitState::Open);
    assert_eq!(
        assert_rejected(&mut svc, &mut mock).await,
        Duration::from_secs(30)
    );
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&EventKind::CircuitOpened { failure_count: 2 })
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_half_open_max_calls_probes() {
    let (mut svc, mut mock, _) = breaker(1, 2);
    fail_times(&mut svc, &mut mock, 1).await;
    advance(Duration::from_secs(30)).await;
    let first = svc.ready().await.unwrap().call(());
    let second = svc.ready().await.unwrap().call(());
    assert_eq!(svc.handle().stats().half_open_calls, 2);
    assert!(!svc.handle().allow_call());
    // Every probe slot is taken: the third caller is told to come back at once.
    assert_eq!(
        super::error::retry_after(&*svc.ready().await.unwrap().call(()).await.unwrap_err()),
        Some(Duration::ZERO)
    );
    let (_, r1) = mock.next_request().await.unwrap();
    let (_, r2) = mock.next_request().await.unwrap();
    r1.send_response("ok");
    assert_eq!(first.await.unwrap(), "ok");
    assert_eq!(svc.handle().state(), CircuitState::Closed);
    // The other probe's late failure belongs to the finished half-open phase.
    r2.send_error(transport());
    assert!(second.await.is_err());
    assert_eq!(svc.handle().state(), CircuitState::Closed);
    assert_eq!(svc.handle().stats().failure_count, 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_frees_its_slot() {
    let (mut svc, mut mock, _) = breaker(1, 1);
    fail_times(&mut svc, &mut mock, 1).await;
    advance(Duration::from_secs(30)).await;
    let probe = svc.ready().await.unwrap().call(());
    assert!(!svc.handle().allow_call());
    let (_, _unanswered) = mock.next_request().await.unwrap();
    drop(probe);
    assert!(svc.handle().allow_call());
    assert_eq!(svc.handle().state(), CircuitState::HalfOpen);
    assert_eq!(
        call_answered(&mut svc, &mut mock, Ok("ok")).await.unwrap(),
        "ok"
    );
    assert_eq!(svc.handle().state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn late_success_from_before_opening_does_not_close_the_breaker() {
    let (mut svc, mut mock, _) = breaker(1, 1);
    let slow = svc.ready().await.unwrap().call(());
    let (_, slow_respond) = mock.next_request().await.unwrap();
    fail_times(&mut svc, &mut mock, 1).await;
    advance(Duration::from_secs(30)).await;
    assert_eq!(svc.handle().state(), CircuitState::HalfOpen);
    slow_respond.send_response("late");
    assert_eq!(slow.await.unwrap(), "late");
    assert_eq!(svc.handle().state(), CircuitState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn reset_closes_and_clears_counters() {
    let (mut svc, mut mock, seen) = breaker(2, 1);
    fail_times(&mut svc, &mut mock, 2).await;
    svc.handle().reset();
    let stats = svc.handle().stats();
    assert_eq!(
        (stats.state, stats.failure_count, stats.rejected_count),
        (CircuitState::Closed, 0, 0)
    );
    assert_eq!(seen.lock().unwrap().last(), Some(&EventKind::CircuitClosed));
    assert_eq!(
        call_answered(&mut svc, &mut mock, Ok("ok")).await.unwrap(),
        "ok"
    );
}

#[tokio::test(start_paused = true)]
async fn python_exceptions_and_validation_errors_do_not_count() {
    let (mut svc, mut mock, _) = breaker(1, 1);
    call_answered(&mut svc, &mut mock, Err(python()))
        .await
        .unwrap_err();
    call_answered(
        &mut svc,
        &mut mock,
        Err(Error::validation("arguments", "bad")),
    )
    .await
    .unwrap_err();
    assert_eq!(svc.handle().state(), CircuitState::Closed);
    call_answered(
        &mut svc,
        &mut mock,
        Err(Error::timeout("call", Duration::from_secs(1))),
    )
    .await
    .unwrap_err();
    assert_eq!(svc.handle().state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn worker_crashes_count_as_failures() {
    let (mut svc, mut mock, _) = breaker(1, 1);
    let crash = Error::WorkerCrash {
        worker: "w1".into(),
        message: "signal 9".into(),
    };
    call_answered(&mut svc, &mut mock, Err(crash))
        .await
        .unwrap_err();
    assert_eq!(svc.handle().state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn custom_classifier_decides_what_counts() {
    let layer = CircuitBreakerLayer::new(config(1, 1)).with_classifier(
        |e: &(dyn std::error::Error + 'static)| {
            Error::kind_of(e) == Some(ErrorKind::PythonException)
        },
    );
    let (mock, mut mock_handle) = mock::pair::<(), &'static str>();
    let mut svc = tower::Layer::layer(&layer, mock);
    let fut = svc.ready().await.unwrap().call(());
    mock_handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_error(transport());
    fut.await.unwrap_err();
    assert_eq!(svc.handle().state(), CircuitState::Closed);
    let fut = svc.ready().await.unwrap().call(());
    mock_handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_error(python());
    fut.await.unwrap_err();
    assert_eq!(svc.handle().state(), CircuitState::Open);
}

#[test]
fn foreign_errors_count_unless_told_otherwise() {
    let foreign = std::io::Error::other("boom");
    assert!(FailureKinds::default().is_failure(&foreign));
    assert!(!FailureKinds::default()
        .count_foreign(false)
        .is_failure(&foreign));
    assert!(!FailureKinds::default().is_failure(&Error::pool("x")));
}

#[tokio::test(start_paused = true)]
async fn clones_and_concurrent_callers_see_one_breaker() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let failing = service_fn(move |_: ()| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Err::<(), _>(transport()) }
    });
    let svc = CircuitBreakerLayer::new(config(5, 1));
    let svc = tower::Layer::layer(&svc, failing);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(()).await.unwrap_err() })
        })
        .collect();
    let mut kinds = Vec::new();
    for task in tasks {
        kinds.push(Error::kind_of(&*task.await.unwrap()));
    }
    // Exactly the threshold reached the service; everyone after saw the shared open state.
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 5);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == Some(ErrorKind::Transport))
            .count(),
        5
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == Some(ErrorKind::CircuitOpen))
            .count(),
        15
    );
    assert_eq!(svc.clone().handle().state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn shared_layer_gives_every_service_the_same_breaker() {
    let handle = CircuitBreakerHandle::new(config(1, 1));
    let layer = CircuitBreakerLayer::shared(handle.clone());
    let failing = service_fn(|_: ()| async { Err::<(), _>(transport()) });
    let ok = service_fn(|_: ()| async { Ok::<_, Error>(()) });
    tower::Layer::layer(&layer, failing)
        .oneshot(())
        .await
        .unwrap_err();
    let err = tower::Layer::layer(&layer, ok)
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::CircuitOpen));
    assert_eq!(handle.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn manual_records_drive_the_same_machine() {
    let handle = CircuitBreakerHandle::new(config(2, 1));
    handle.record_failure();
    handle.record_failure();
    assert_eq!(handle.state(), CircuitState::Open);
    assert!(!handle.allow_call());
    advance(Duration::from_secs(30)).await;
    assert!(handle.allow_call());
    handle.record_success();
    assert_eq!(handle.state(), CircuitState::Closed);
    let err = handle
        .call(async { Err::<(), _>(transport()) })
        .await
        .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::Transport));
    assert_eq!(handle.stats().failure_count, 1);
}

#[test]
fn machine_transitions_follow_the_instants_it_is_given() {
    let start = Instant::now();
    let mut machine = CircuitMachine::new(config(1, 1));
    let (ticket, _) = machine.try_acquire(start);
    let ticket = ticket.unwrap();
    assert!(machine.record(ticket, Outcome::Failure, start).is_some());
    assert_eq!(machine.state(), CircuitState::Open);
    let (rejection, _) = machine.try_acquire(start + Duration::from_secs(29));
    assert_eq!(rejection.unwrap_err().retry_after, Duration::from_secs(1));
    let (probe, transition) = machine.try_acquire(start + Duration::from_secs(30));
    assert!(transition.is_some());
    assert_eq!(machine.state(), CircuitState::HalfOpen);
    assert!(machine
        .record(
            probe.unwrap(),
            Outcome::Success,
            start + Duration::from_secs(31)
        )
        .is_some());
    assert_eq!(machine.state(), CircuitState::Closed);
}
