//! Health monitor tests: the rolling window under paused time, verdicts, events.

use std::time::Duration;

use tokio::time::advance;

use super::*;
use crate::event::EventKind;
use crate::test_support::recording_observer;

fn monitor(max_crashes: usize) -> (HealthMonitor, crate::test_support::Seen) {
    let (observer, seen) = recording_observer();
    let config = HealthMonitorConfig {
        max_crashes,
        ..HealthMonitorConfig::new("default")
    };
    (HealthMonitor::with_observer(config, observer), seen)
}

#[test]
fn defaults_follow_the_seeds() {
    let config = HealthMonitorConfig::new("p");
    assert_eq!(config.max_crashes, 10);
    assert_eq!(config.crash_window, Duration::from_millis(60_000));
    assert_eq!(config.check_interval, Duration::from_millis(30_000));
}

#[tokio::test(start_paused = true)]
async fn turns_unhealthy_at_max_crashes_in_the_window() {
    let (monitor, _) = monitor(3);
    monitor.record_crash("w1", "segfault");
    monitor.record_crash("w2", "oom");
    assert!(monitor.healthy());
    monitor.record_crash("w1", "segfault");
    assert!(!monitor.healthy());
    let stats = monitor.stats();
    assert_eq!(stats.pool, "default");
    assert_eq!(
        (
            stats.total_crashes,
            stats.crashes_in_window,
            stats.workers_with_crashes
        ),
        (3, 3, 2)
    );
    assert!(!stats.is_healthy);
}

#[tokio::test(start_paused = true)]
async fn crashes_leave_the_window_after_crash_window() {
    let (monitor, _) = monitor(2);
    monitor.record_crash("w1", "a");
    advance(Duration::from_secs(30)).await;
    monitor.record_crash("w1", "b");
    assert!(!monitor.healthy());
    advance(Duration::from_secs(30)).await;
    // The first crash is now 60 s old and out of the window; the second is 30 s old.
    assert!(monitor.healthy());
    assert_eq!(monitor.stats().crashes_in_window, 1);
    assert_eq!(monitor.stats().total_crashes, 2);
    advance(Duration::from_secs(30)).await;
    assert_eq!(monitor.stats().crashes_in_window, 0);
    assert_eq!(monitor.stats().workers_with_crashes, 0);
}

#[tokio::test(start_paused = true)]
async fn worker_health_reports_count_time_and_reasons() {
    let (monitor, _) = monitor(2);
    let unknown = monitor.worker_health("nobody");
    assert!(unknown.healthy && unknown.crash_count == 0 && unknown.last_crash_time.is_none());
    monitor.record_crash("w1", "segfault");
    monitor.record_crash("w1", "oom");
    let health = monitor.worker_health("w1");
    assert!(!health.healthy);
    assert_eq!(health.crash_count, 2);
    assert!(health.last_crash_time.is_some());
    assert_eq!(
        health.crash_reasons,
        vec!["segfault".to_owned(), "oom".to_owned()]
    );
    assert!(monitor.worker_health("w2").healthy);
}

#[tokio::test(start_paused = true)]
async fn crash_reasons_keep_only_the_most_recent() {
    let (monitor, _) = monitor(100);
    for n in 0..15 {
        monitor.record_crash("w1", format!("crash {n}"));
    }
    let reasons = monitor.worker_health("w1").crash_reasons;
    assert_eq!(reasons.len(), 10);
    assert_eq!(reasons.first().map(String::as_str), Some("crash 5"));
}

#[tokio::test(start_paused = true)]
async fn each_crash_emits_a_worker_crash_event() {
    let (monitor, seen) = monitor(10);
    monitor.record_crash("w1", "segfault");
    monitor.record_crash("w2", "segfault");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            EventKind::WorkerCrash {
                worker_id: "w1".into(),
                crashes_in_window: 1
            },
            EventKind::WorkerCrash {
                worker_id: "w2".into(),
                crashes_in_window: 2
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_counts() {
    let (monitor, _) = monitor(10);
    monitor.clone().record_crash("w1", "x");
    assert_eq!(monitor.stats().total_crashes, 1);
}
