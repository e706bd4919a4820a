//! Unit tests of the scheduler state machine.

use super::*;

fn wid(n: usize) -> WorkerId {
    WorkerId::for_pool("p", n)
}

fn ready<W>(a: Acquire<W>) -> Grant<W> {
    match a {
        Acquire::Ready(g) => g,
        _ => panic!("expected a worker at once"),
    }
}

#[test]
fn picks_least_loaded_and_queues_when_full() {
    let mut s = Scheduler::new(2);
    s.add_worker(wid(1), 1, 1);
    s.add_worker(wid(2), 2, 1);
    let a = ready(s.acquire(None));
    let b = ready(s.acquire(None));
    assert_ne!(a.0, b.0);
    assert!(matches!(s.acquire(None), Acquire::Queued(..)));
    assert!(matches!(s.acquire(None), Acquire::Queued(..)));
    assert!(matches!(s.acquire(None), Acquire::Saturated));
    assert_eq!(s.queued(), 2);
    assert_eq!(s.availability(), (0, 2));
}

#[test]
fn release_hands_worker_to_first_waiter_in_fifo_order() {
    let mut s = Scheduler::new(10);
    s.add_worker(wid(1), 1, 1);
    let g = ready(s.acquire(None));
    let Acquire::Queued(_, mut first) = s.acquire(None) else {
        panic!()
    };
    let Acquire::Queued(_, mut second) = s.acquire(None) else {
        panic!()
    };
    s.release(&g.0);
    assert_eq!(first.try_recv().unwrap().0, wid(1));
    assert!(second.try_recv().is_err());
    s.release(&wid(1));
    assert_eq!(second.try_recv().unwrap().0, wid(1));
}

#[test]
fn session_sticks_to_its_worker_and_waits_for_it() {
    let mut s = Scheduler::new(10);
    s.add_worker(wid(1), 1, 1);
    s.add_worker(wid(2), 2, 1);
    let sess = SessionId::new("s");
    let first = ready(s.acquire(Some(&sess)));
    s.release(&first.0);
    let again = ready(s.acquire(Some(&sess)));
    assert_eq!(again.0, first.0);
    // Its worker is busy: the session waits for it even though the other worker is free.
    let Acquire::Queued(_, mut rx) = s.acquire(Some(&sess)) else {
        panic!("expected to queue")
    };
    let other = ready(s.acquire(None));
    assert_ne!(other.0, first.0);
    s.release(&again.0);
    assert_eq!(rx.try_recv().unwrap().0, first.0);
}

#[test]
fn dead_worker_releases_its_sessions_and_waiters() {
    let mut s = Scheduler::new(10);
    s.add_worker(wid(1), 1, 1);
    s.add_worker(wid(2), 2, 1);
    let sess = SessionId::new("s");
    let g = ready(s.acquire(Some(&sess)));
    let busy_other = ready(s.acquire(None));
    let Acquire::Queued(_, mut rx) = s.acquire(Some(&sess)) else {
        panic!()
    };
    assert_eq!(s.remove_worker(&g.0), Some(g.1));
    assert!(s.session_worker(&sess).is_none());
    s.release(&busy_other.0);
    assert_eq!(rx.try_recv().unwrap().0, busy_other.0);
    assert_eq!(s.session_worker(&sess), Some(&busy_other.0));
}

#[test]
fn cancelled_or_abandoned_waiters_never_consume_capacity() {
    let mut s = Scheduler::new(10);
    s.add_worker(wid(1), 1, 1);
    let g = ready(s.acquire(None));
    let Acquire::Queued(t1, _rx1) = s.acquire(None) else {
        panic!()
    };
    let Acquire::Queued(_, rx2) = s.acquire(None) else {
        panic!()
    };
    assert!(s.cancel(t1));
    assert!(!s.cancel(t1));
    drop(rx2);
    s.release(&g.0);
    assert_eq!(s.queued(), 0);
    assert_eq!(s.availability(), (1, 0));
}

#[test]
fn thread_capacity_allows_concurrent_grants() {
    let mut s = Scheduler::new(0);
    s.add_worker(wid(1), 1, 3);
    for _ in 0..3 {
        ready(s.acquire(None));
    }
    assert!(matches!(s.acquire(None), Acquire::Saturated));
}

#[test]
fn new_worker_serves_waiting_requests() {
    let mut s: Scheduler<u8> = Scheduler::new(10);
    let Acquire::Queued(_, mut rx) = s.acquire(None) else {
        panic!()
    };
    s.add_worker(wid(9), 9, 1);
    assert_eq!(rx.try_recv().unwrap(), (wid(9), 9));
}
