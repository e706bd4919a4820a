#![allow(clippy::unwrap_used)]

use super::*;
use snakepit_core::ErrorKind;

fn store(ttl: Duration, max: usize) -> SessionStore {
    SessionStore::new(
        "p",
        SessionSettings {
            default_ttl: ttl,
            max_sessions: max,
            ..SessionSettings::default()
        },
    )
}

fn sid(s: &str) -> SessionId {
    SessionId::from(s)
}

#[tokio::test(start_paused = true)]
async fn use_refreshes_the_ttl_and_the_sweep_removes_idle_sessions() {
    let mut s = store(Duration::from_secs(10), 10);
    s.create(&sid("a"), SessionOptions::default(), Instant::now())
        .unwrap();
    s.begin_call(&sid("b"), Instant::now()).unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    s.begin_call(&sid("a"), Instant::now()).unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    let expired = s.sweep(Instant::now());
    assert_eq!(expired, vec![(sid("b"), None)]);
    assert_eq!(s.list().len(), 1);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(s.sweep(Instant::now()).len(), 1);
    assert_eq!(s.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn get_refreshes_and_per_session_ttl_wins() {
    let mut s = store(Duration::from_secs(10), 10);
    let opts = SessionOptions {
        ttl: Some(Duration::from_secs(100)),
        ..SessionOptions::default()
    };
    s.create(&sid("long"), opts, Instant::now()).unwrap();
    s.create(&sid("short"), SessionOptions::default(), Instant::now())
        .unwrap();
    tokio::time::advance(Duration::from_secs(8)).await;
    assert!(s.get(&sid("short"), Instant::now()).is_some());
    tokio::time::advance(Duration::from_secs(8)).await;
    assert!(s.sweep(Instant::now()).is_empty(), "get refreshed 'short'");
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(s.sweep(Instant::now()), vec![(sid("short"), None)]);
    assert_eq!(s.list()[0].ttl, Duration::from_secs(100));
}

#[tokio::test(start_paused = true)]
async fn the_bound_is_a_clear_error_and_deletion_is_idempotent() {
    let mut s = store(Duration::from_secs(10), 2);
    s.begin_call(&sid("a"), Instant::now()).unwrap();
    s.create(&sid("b"), SessionOptions::default(), Instant::now())
        .unwrap();
    let err = s.begin_call(&sid("c"), Instant::now()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Pool);
    assert!(err.to_string().contains("max_sessions"), "{err}");
    assert!(s
        .create(&sid("c"), SessionOptions::default(), Instant::now())
        .is_err());
    // A session that exists still takes calls when the store is full.
    s.begin_call(&sid("a"), Instant::now()).unwrap();
    let dup = s
        .create(&sid("a"), SessionOptions::default(), Instant::now())
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Validation);
    assert!(s.delete(&sid("a")).is_some());
    assert!(s.delete(&sid("a")).is_none());
    s.begin_call(&sid("c"), Instant::now()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_change_of_worker_is_a_visible_move() {
    let mut s = store(Duration::from_secs(10), 10);
    let mut events = s.subscribe();
    let (w1, w2) = (WorkerId::for_pool("p", 1), WorkerId::for_pool("p", 2));
    let route = s.begin_call(&sid("a"), Instant::now()).unwrap();
    assert_eq!(route.worker, None);
    assert_eq!(route.affinity, SessionAffinity::Strict);
    s.bind(&sid("a"), &w1);
    s.bind(&sid("a"), &w1);
    assert_eq!(
        s.begin_call(&sid("a"), Instant::now()).unwrap().worker,
        Some(w1.clone())
    );
    s.bind(&sid("a"), &w2);
    let session = s.get(&sid("a"), Instant::now()).unwrap();
    assert_eq!((session.moves, session.calls), (1, 2));
    assert_eq!(session.worker, Some(w2.clone()));
    assert_eq!(
        events.try_recv().unwrap(),
        SessionEvent::Created { id: sid("a") }
    );
    assert_eq!(
        events.try_recv().unwrap(),
        SessionEvent::Moved {
            id: sid("a"),
            from: w1,
            to: w2
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_million_one_shot_sessions_stay_bounded_with_a_small_ttl() {
    let mut s = store(Duration::from_millis(100), 1_000_000);
    let worker = WorkerId::for_pool("p", 1);
    let mut peak = 0;
    let mut peak_capacity = 0;
    for i in 0..1_000_000u32 {
        let id = SessionId::from(format!("one-shot-{i}"));
        s.begin_call(&id, Instant::now()).unwrap();
        s.bind(&id, &worker);
        if i % 1_000 == 999 {
            // 1 000 sessions per virtual millisecond, swept every 10 ms (the pool's sweeper).
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        if i % 10_000 == 9_999 {
            s.sweep(Instant::now());
        }
        peak = peak.max(s.len());
        peak_capacity = peak_capacity.max(s.capacity());
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    let last = s.sweep(Instant::now());
    assert!(!last.is_empty() && last.len() <= peak);
    assert_eq!(s.len(), 0);
    // TTL 100 ms at 1 000 per ms plus one sweep interval: ~110 000 live at most, never a million.
    assert!(peak <= 120_000, "peak of {peak} live sessions");
    assert!(
        peak_capacity <= 4 * 120_000,
        "peak capacity {peak_capacity}"
    );
    assert!(
        s.capacity() <= 64,
        "memory not given back: capacity {}",
        s.capacity()
    );
}
