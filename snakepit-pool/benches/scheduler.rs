//! Criterion micro-benches of the scheduler's state machine: checkout/return with and without
//! sessions, and a queued hand-over. Run by `cargo bench -p snakepit-pool --bench scheduler`.
//!
//! The scheduler is `pub(crate)` and pure logic (no I/O), so its source file is compiled into
//! this bench directly rather than widening the crate's public API.

// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use snakepit_core::{SessionId, WorkerId};

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../src/scheduler.rs"]
mod scheduler;

use scheduler::{Acquire, Scheduler};

/// A scheduler with `workers` workers of capacity 1 and a large queue.
fn scheduler_with(workers: usize) -> Scheduler<u32> {
    let mut s = Scheduler::new(100_000);
    for i in 0..workers {
        s.add_worker(WorkerId::new(format!("w{i}")), i as u32, 1);
    }
    s
}

fn checkout_return(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler/checkout_return");
    for workers in [2usize, 16, 100] {
        let mut s = scheduler_with(workers);
        group.bench_function(format!("no_session/{workers}_workers"), |b| {
            b.iter(|| match s.acquire(None) {
                Acquire::Ready((id, handle)) => {
                    black_box(handle);
                    s.release(&id);
                }
                _ => unreachable!("a free worker is always available here"),
            })
        });
        let mut s = scheduler_with(workers);
        let sessions: Vec<SessionId> = (0..64).map(|i| SessionId::new(format!("s{i}"))).collect();
        let mut next = 0usize;
        group.bench_function(format!("session/{workers}_workers"), |b| {
            b.iter(|| {
                let session = &sessions[next % sessions.len()];
                next = next.wrapping_add(1);
                match s.acquire(Some(session)) {
                    Acquire::Ready((id, handle)) => {
                        black_box(handle);
                        s.release(&id);
                    }
                    _ => unreachable!("the session's worker is always free here"),
                }
            })
        });
    }
    group.finish();
}

fn queueing(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler/queueing");
    for depth in [1usize, 64] {
        group.bench_function(format!("enqueue_{depth}_then_drain"), |b| {
            b.iter_batched(
                || scheduler_with(1),
                |mut s| {
                    let busy = match s.acquire(None) {
                        Acquire::Ready((id, _)) => id,
                        _ => unreachable!("the only worker starts free"),
                    };
                    let mut waiters = Vec::with_capacity(depth);
                    for _ in 0..depth {
                        match s.acquire(None) {
                            Acquire::Queued(_, rx) => waiters.push(rx),
                            _ => unreachable!("the only worker is busy"),
                        }
                    }
                    // Each release hands the worker to the head of the queue.
                    s.release(&busy);
                    for mut rx in waiters {
                        match rx.try_recv() {
                            Ok((id, handle)) => {
                                black_box(handle);
                                s.release(&id);
                            }
                            Err(_) => unreachable!("every waiter is granted in FIFO order"),
                        }
                    }
                    s
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, checkout_return, queueing);
criterion_main!(benches);
