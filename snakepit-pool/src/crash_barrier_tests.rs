#![allow(clippy::unwrap_used)]

use super::*;

fn exited(code: i32, host_signal: HostSignal) -> ExitInfo {
    ExitInfo {
        kind: ExitKind::Exited { code },
        host_signal,
    }
}

fn signalled(signal: i32, host_signal: HostSignal) -> ExitInfo {
    ExitInfo {
        kind: ExitKind::Signalled { signal },
        host_signal,
    }
}

fn barrier(max_restarts: u32, window: Duration) -> CrashBarrier {
    CrashBarrier::new(CrashBarrierSettings {
        max_restarts,
        window,
        ..CrashBarrierSettings::default()
    })
}

#[test]
fn deaths_are_classified_and_host_initiated_exits_are_not_crashes() {
    let none = HostSignal::None;
    assert_eq!(classify(&exited(3, none), false), Some(CrashKind::Exit(3)));
    assert_eq!(
        classify(&signalled(11, none), false),
        Some(CrashKind::Signal(11))
    );
    assert_eq!(
        classify(&signalled(9, none), false),
        Some(CrashKind::Signal(9))
    );
    assert_eq!(
        classify(&signalled(9, none), true),
        Some(CrashKind::OomKilled)
    );
    assert_eq!(
        classify(&signalled(9, HostSignal::HeartbeatLost), false),
        Some(CrashKind::HeartbeatLost)
    );
    assert_eq!(classify(&exited(0, HostSignal::Stop), false), None);
    assert_eq!(classify(&signalled(9, HostSignal::Kill), false), None);
    // An end nobody saw (a zygote gone before it could report) still counts as a crash.
    let unseen = ExitInfo::new(ExitKind::unknown(
        "exited (status unknown: its zygote was gone)",
    ));
    assert_eq!(classify(&unseen, true), Some(CrashKind::Exit(-1)));
    let stopped = ExitInfo {
        host_signal: HostSignal::Stop,
        ..unseen
    };
    assert_eq!(classify(&stopped, false), None);
}

#[tokio::test(start_paused = true)]
async fn a_slot_stops_after_more_than_max_restarts_in_the_window() {
    let mut b = barrier(3, Duration::from_secs(60));
    let kind = CrashKind::Exit(1);
    let mut backoffs = Vec::new();
    for _ in 0..3 {
        match b.record_crash(0, None, kind, Instant::now()) {
            Verdict::Restart(d) => backoffs.push(d),
            v => panic!("stopped too early: {v:?}"),
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    // The first crash restarts at once, like the seeds' supervisor; then 100 ms, doubling.
    assert_eq!(
        backoffs,
        [
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_millis(200)
        ]
    );
    assert_eq!(
        b.record_crash(0, None, kind, Instant::now()),
        Verdict::Stop { crashes: 4 }
    );
    assert_eq!(b.stopped_slots(), vec![0]);
    // Another slot is unaffected.
    assert!(matches!(
        b.record_crash(1, None, kind, Instant::now()),
        Verdict::Restart(_)
    ));
    assert_eq!(b.crash_counts().get("exit"), Some(&5));
}

#[tokio::test(start_paused = true)]
async fn crashes_older_than_the_window_do_not_count() {
    let mut b = barrier(2, Duration::from_secs(10));
    for _ in 0..10 {
        assert!(matches!(
            b.record_crash(0, None, CrashKind::Signal(11), Instant::now()),
            Verdict::Restart(_)
        ));
        tokio::time::advance(Duration::from_secs(6)).await;
    }
    assert!(b.stopped_slots().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_crash_taints_the_workers_device_for_taint_ms() {
    let mut b = barrier(5, Duration::from_secs(60));
    let id = WorkerId::for_pool("p", 1);
    b.assign(&id, 0, Some("cuda:0".into()));
    assert_eq!(b.slot_of(&id), Some(0));
    let verdict = b.record_crash(0, Some(&id), CrashKind::Exit(1), Instant::now());
    // The restart waits for the taint (5 s), longer than the first backoff.
    assert_eq!(verdict, Verdict::Restart(Duration::from_millis(5000)));
    assert_eq!(
        b.tainted_devices(Instant::now()),
        vec!["cuda:0".to_string()]
    );
    tokio::time::advance(Duration::from_millis(5001)).await;
    assert!(b.tainted_devices(Instant::now()).is_empty());
}

#[test]
fn only_idempotent_calls_are_retried_and_only_max_retries_times() {
    let b = barrier(5, Duration::from_secs(60));
    assert!(b.retry_allowed(true, 0));
    assert!(!b.retry_allowed(true, 1));
    assert!(!b.retry_allowed(false, 0));
    let never = CrashBarrier::new(CrashBarrierSettings {
        retry: CrashRetry::Never,
        ..CrashBarrierSettings::default()
    });
    assert!(!never.retry_allowed(true, 0));
}

#[test]
fn the_device_comes_from_the_visible_devices_variable() {
    let env = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    assert_eq!(
        device_of(&env("CUDA_VISIBLE_DEVICES", "1,2")),
        Some("cuda:1".into())
    );
    assert_eq!(
        device_of(&env("HIP_VISIBLE_DEVICES", "0")),
        Some("rocm:0".into())
    );
    assert_eq!(device_of(&env("CUDA_VISIBLE_DEVICES", "-1")), None);
    assert_eq!(device_of(&BTreeMap::new()), None);
}

#[tokio::test(start_paused = true)]
async fn slots_are_reused_and_a_stopped_slot_is_never_handed_out() {
    let mut b = barrier(0, Duration::from_secs(60));
    let (a, c) = (b.take_slot(), b.take_slot());
    assert_eq!((a, c), (0, 1));
    let id = WorkerId::for_pool("p", 7);
    b.assign(&id, c, None);
    b.release(&id);
    assert_eq!(b.take_slot(), 1, "a released slot is taken again");
    assert_eq!(
        b.record_crash(0, None, CrashKind::Exit(1), Instant::now()),
        Verdict::Stop { crashes: 1 }
    );
    b.give_back(0);
    assert_eq!(b.take_slot(), 2, "the stopped slot 0 stays out");
}
