//! Wraps an arbitrary tower service (not a worker) with the resilience layers and shows them at work.
//!
//! The service is a flaky "price lookup" that fails with a transport error on every third
//! call and hangs on one request. Run with `cargo run -p snakepit-resilience --example wrap_any_service`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use snakepit_core::{BoxError, Error};
use snakepit_resilience::{
    CircuitBreakerConfig, CircuitBreakerLayer, DeadlineAware, EventObserver, ResilienceStack,
    RetryLayer, RetryPolicy, RetryableRequest,
};
use tower::{service_fn, ServiceExt};

/// The request of our own service: an item to price.
#[derive(Debug, Clone)]
struct PriceRequest {
    item: &'static str,
    deadline: Option<Duration>,
}

impl RetryableRequest for PriceRequest {
    fn is_idempotent(&self) -> bool {
        // A lookup has no side effects: safe to repeat.
        true
    }
}

impl DeadlineAware for PriceRequest {
    fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    fn set_deadline(&mut self, remaining: Duration) {
        self.deadline = Some(remaining);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let flaky = service_fn(move |req: PriceRequest| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if req.item == "hangs" {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if n.is_multiple_of(3) {
                return Err(Error::transport(
                    format!("connection reset on call {n}"),
                    None,
                    None,
                ));
            }
            Ok(format!(
                "{} costs {}.00 (time left {:?})",
                req.item,
                n * 10,
                req.deadline
            ))
        }
    });

    let observer = EventObserver::with_hook(|event| {
        println!(
            "  event: {} {} {:?}",
            event.kind.target(),
            event.kind.name(),
            event.kind
        );
    });
    let stack = ResilienceStack::new()
        .with_deadline(Duration::from_millis(500))
        .with_retry(RetryLayer::new(RetryPolicy {
            backoff_ms: vec![20, 40],
            ..RetryPolicy::default()
        }))
        .with_circuit_breaker(CircuitBreakerLayer::new(CircuitBreakerConfig {
            failure_threshold: 2,
            reset_timeout: Duration::from_millis(200),
            half_open_max_calls: 1,
        }))
        .with_attempt_timeout(Duration::from_millis(100))
        .with_observer(observer);
    let built = stack.build(Some("price-service"), flaky);
    let breaker = built
        .circuit_breaker
        .clone()
        .ok_or("the stack has a breaker")?;

    for item in ["apple", "pear", "plum", "hangs", "fig", "kiwi"] {
        let request = PriceRequest {
            item,
            deadline: None,
        };
        match built.service.clone().oneshot(request).await {
            Ok(price) => println!("{item}: {price}"),
            Err(err) => println!(
                "{item}: failed ({}): {err}",
                Error::kind_of(&*err).map_or("foreign", |k| k.as_str())
            ),
        }
        println!("  breaker: {:?}", breaker.state());
    }

    tokio::time::sleep(Duration::from_millis(250)).await;
    let reply = built
        .service
        .clone()
        .oneshot(PriceRequest {
            item: "melon",
            deadline: None,
        })
        .await;
    println!("after the reset timeout: {reply:?}");
    println!("breaker stats: {:?}", breaker.stats());
    println!("service calls made: {}", calls.load(Ordering::SeqCst));
    Ok(())
}
