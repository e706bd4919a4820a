//! Cost of emitting one catalog event: with no handler, and with one handler attached
//! (goal: at most 1 µs; the seeds claim under 10 µs per event).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use snakepit_telemetry::{events, Measurement, Telemetry};

fn emit_one(bus: &Telemetry) {
    bus.emit(
        &events::REQUEST_EXECUTED,
        &[("duration_us", Measurement::Int(black_box(120)))],
        &[
            ("pool", "default"),
            ("worker_id", "default_worker_1"),
            ("command", "add"),
            ("success", "true"),
        ],
    );
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("telemetry_emit");
    let idle = Telemetry::new();
    g.bench_function("no_handler", |b| b.iter(|| emit_one(&idle)));

    let bus = Telemetry::new();
    let seen = Arc::new(AtomicU64::new(0));
    let sink = seen.clone();
    bus.attach("bench", "snakepit.request.executed", move |e| {
        if let Some(d) = e.measurement("duration_us") {
            sink.fetch_add(d.as_i64() as u64, Ordering::Relaxed);
        }
    })
    .unwrap();
    g.bench_function("one_handler", |b| b.iter(|| emit_one(&bus)));
    g.finish();
    assert!(seen.load(Ordering::Relaxed) > 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
