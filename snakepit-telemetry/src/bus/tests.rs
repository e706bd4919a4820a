use std::sync::{Arc, Mutex};

use super::*;
use crate::catalog::events;
use crate::event::OwnedEvent;

fn collector(bus: &Telemetry, id: &str, patterns: &[&str]) -> Arc<Mutex<Vec<OwnedEvent>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    bus.attach_many(id, patterns, move |e| {
        sink.lock().unwrap().push(e.to_owned_event())
    })
    .unwrap();
    seen
}

#[test]
fn handlers_get_the_events_they_attached_to_and_nothing_else() {
    let bus = Telemetry::new();
    let pool = collector(&bus, "pool", &["snakepit.pool.*"]);
    let one = collector(&bus, "one", &["snakepit.request.executed"]);
    bus.emit(
        &events::POOL_QUEUE_ENQUEUED,
        &[("queue_depth", 3u64.into())],
        &[("pool_name", "p")],
    );
    bus.emit(
        &events::REQUEST_EXECUTED,
        &[("duration_us", 12u64.into())],
        &[("success", "true")],
    );
    let pool = pool.lock().unwrap();
    assert_eq!(pool.len(), 1);
    assert_eq!(pool[0].name, "snakepit.pool.queue.enqueued");
    assert_eq!(
        pool[0].measurement("queue_depth"),
        Some(Measurement::Int(3))
    );
    assert_eq!(pool[0].meta("pool_name"), Some("p"));
    let one = one.lock().unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].meta("success"), Some("true"));
}

#[test]
fn detached_handlers_stop_receiving_and_ids_are_unique() {
    let bus = Telemetry::new();
    let seen = collector(&bus, "h", &["*"]);
    assert_eq!(
        bus.attach("h", "*", |_| {}),
        Err(AttachError::DuplicateId("h".into()))
    );
    assert!(bus.is_wanted(&events::WORKER_CRASH));
    assert!(bus.detach("h"));
    assert!(!bus.detach("h"));
    assert!(!bus.is_wanted(&events::WORKER_CRASH));
    bus.emit(&events::WORKER_CRASH, &[], &[]);
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn a_pattern_matching_nothing_is_refused() {
    let bus = Telemetry::new();
    let err = bus.attach("x", "snakepit.nope.*", |_| {}).unwrap_err();
    assert_eq!(err, AttachError::NoMatch("snakepit.nope.*".into()));
    assert!(err.to_string().contains("snakepit.pool.*"));
    assert!(bus.handler_ids().is_empty());
}

#[test]
fn a_panicking_handler_is_detached_and_the_others_still_run() {
    let bus = Telemetry::new();
    bus.attach("bad", "*", |_| panic!("boom")).unwrap();
    let good = collector(&bus, "good", &["*"]);
    bus.emit(&events::WORKER_CRASH, &[], &[]);
    bus.emit(&events::WORKER_CRASH, &[], &[]);
    assert_eq!(good.lock().unwrap().len(), 2);
    assert_eq!(bus.handler_ids(), vec!["good".to_owned()]);
}
