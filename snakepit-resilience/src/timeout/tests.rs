//! Timeout and deadline tests: typed errors, deadline propagation, under paused time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use snakepit_core::{BoxError, Error, ErrorKind};
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::deadline::{DeadlineLayer, CALL_OPERATION};
use crate::test_support::TestRequest;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The deadlines the service saw, one per call.
type Deadlines = Arc<Mutex<Vec<Option<Duration>>>>;

/// A service that takes `delay` to answer and records the deadline each request carried.
fn slow(
    delay: Duration,
) -> (
    impl tower::Service<TestRequest, Response = &'static str, Error = BoxError> + Clone,
    Deadlines,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let svc = service_fn(move |req: TestRequest| {
        log.lock().unwrap().push(req.deadline);
        async move {
            tokio::time::sleep(delay).await;
            Ok::<_, BoxError>("ok")
        }
    });
    (svc, seen)
}

fn timeout_of(err: BoxError) -> (String, Duration) {
    match Error::from_box(err) {
        Error::Timeout { operation, timeout } => (operation, timeout),
        other => panic!("expected a timeout, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn attempt_over_its_limit_fails_with_a_typed_timeout() {
    let (inner, _) = slow(ms(200));
    let err = TimeoutLayer::new(ms(100))
        .layer(inner)
        .oneshot(TestRequest::default())
        .await
        .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::Timeout));
    assert_eq!(timeout_of(err), (ATTEMPT_OPERATION.to_owned(), ms(100)));
}

#[tokio::test(start_paused = true)]
async fn attempt_within_its_limit_answers() {
    let (inner, seen) = slow(ms(50));
    let reply = TimeoutLayer::new(ms(100))
        .layer(inner)
        .oneshot(TestRequest::default())
        .await
        .unwrap();
    assert_eq!(reply, "ok");
    assert_eq!(*seen.lock().unwrap(), vec![Some(ms(100))]);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_keeps_a_tighter_deadline_already_on_the_request() {
    let (inner, seen) = slow(ms(10));
    let request = TestRequest {
        deadline: Some(ms(40)),
        ..TestRequest::default()
    };
    TimeoutLayer::new(ms(100))
        .layer(inner)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![Some(ms(40))]);
}

#[tokio::test(start_paused = true)]
async fn deadline_uses_the_requested_timeout_and_tells_the_service() {
    let (inner, seen) = slow(ms(300));
    let request = TestRequest {
        timeout: Some(ms(250)),
        ..TestRequest::default()
    };
    let err = DeadlineLayer::new(ms(1000))
        .layer(inner)
        .oneshot(request)
        .await
        .unwrap_err();
    assert_eq!(timeout_of(err), (CALL_OPERATION.to_owned(), ms(250)));
    assert_eq!(*seen.lock().unwrap(), vec![Some(ms(250))]);
}

#[tokio::test(start_paused = true)]
async fn deadline_falls_back_to_its_default() {
    let (inner, seen) = slow(ms(300));
    let svc = DeadlineLayer::new(ms(500)).layer(inner);
    assert_eq!(
        svc.clone().oneshot(TestRequest::default()).await.unwrap(),
        "ok"
    );
    assert_eq!(*seen.lock().unwrap(), vec![Some(ms(500))]);
    let (inner, _) = slow(ms(600));
    let err = DeadlineLayer::new(ms(500))
        .layer(inner)
        .oneshot(TestRequest::default())
        .await
        .unwrap_err();
    assert_eq!(timeout_of(err), (CALL_OPERATION.to_owned(), ms(500)));
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_boxed() {
    let failing =
        service_fn(|_: TestRequest| async { Err::<(), _>(Error::validation("args", "bad")) });
    let err = TimeoutLayer::new(ms(100))
        .layer(failing)
        .oneshot(TestRequest::default())
        .await
        .unwrap_err();
    assert_eq!(Error::kind_of(&*err), Some(ErrorKind::Validation));
}
