//! Criterion bench: the full resilience stack around a no-op service vs the bare no-op service.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use snakepit_core::BoxError;
use snakepit_resilience::{
    CircuitBreakerConfig, CircuitBreakerLayer, DeadlineAware, ResilienceStack, RetryLayer,
    RetryPolicy, RetryableRequest,
};
use tower::{service_fn, Layer, Service, ServiceExt};

/// A minimal idempotent request, so retry clones it as it would a real call.
#[derive(Debug, Clone, Default)]
struct Probe {
    deadline: Option<Duration>,
}

impl RetryableRequest for Probe {
    fn is_idempotent(&self) -> bool {
        true
    }
}

impl DeadlineAware for Probe {
    fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    fn set_deadline(&mut self, remaining: Duration) {
        self.deadline = Some(remaining);
    }
}

async fn drive<S>(mut svc: S, iters: u64) -> Duration
where
    S: Service<Probe, Response = u64>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..iters {
        let ready = svc.ready().await.expect("no-op service is always ready");
        criterion::black_box(
            ready
                .call(Probe::default())
                .await
                .expect("no-op service never fails"),
        );
    }
    start.elapsed()
}

fn bench_stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let noop = service_fn(|_: Probe| async { Ok::<u64, BoxError>(1) });
    let stack = ResilienceStack::new()
        .with_deadline(Duration::from_secs(60))
        .with_retry(RetryLayer::new(RetryPolicy::default()))
        .with_circuit_breaker(CircuitBreakerLayer::new(CircuitBreakerConfig::default()))
        .with_attempt_timeout(Duration::from_secs(30));
    let wrapped = stack.layer(noop);

    let mut group = c.benchmark_group("resilience_stack");
    group.bench_function("bare_noop", |b| {
        b.to_async(&runtime).iter_custom(|iters| drive(noop, iters));
    });
    group.bench_function("full_stack_noop", |b| {
        b.to_async(&runtime)
            .iter_custom(|iters| drive(wrapped.clone(), iters));
    });
    group.finish();
}

criterion_group!(benches, bench_stack);
criterion_main!(benches);
