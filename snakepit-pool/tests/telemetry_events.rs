//! The catalog events a pool emits, asserted exactly, against real Python workers.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use snakepit_core::config::{PoolConfig, StartMode, TransportKind};
use snakepit_core::{CallOptions, ErrorKind};
use snakepit_pool::Pool;
use snakepit_telemetry::{Measurement, OwnedEvent, Telemetry};
use support::{eventually, ready_pool, ready_pool_on};

/// Collects the events of pool `pool` matching `patterns` until dropped.
struct Collector {
    id: String,
    seen: Arc<Mutex<Vec<OwnedEvent>>>,
}

impl Collector {
    fn attach(pool: &str, patterns: &[&str]) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let pool_name = pool.to_owned();
        let id = format!("test-{pool}");
        Telemetry::global()
            .attach_many(&id, patterns, move |e| {
                let mine = e.meta("pool_name").or(e.meta("pool")) == Some(pool_name.as_str());
                if mine {
                    sink.lock().unwrap().push(e.to_owned_event());
                }
            })
            .unwrap();
        Self { id, seen }
    }

    fn events(&self) -> Vec<OwnedEvent> {
        self.seen.lock().unwrap().clone()
    }

    fn names(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.name).collect()
    }

    fn named(&self, name: &str) -> Vec<OwnedEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.name == name)
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        Telemetry::global().detach(&self.id);
    }
}

fn keys<T>(m: &std::collections::BTreeMap<String, T>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

fn named_pool(name: &str) -> impl FnOnce(&mut PoolConfig) + '_ {
    move |c| c.name = name.to_owned()
}

on_both_transports! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_successful_call_emits_call_request_and_python_events(transport: TransportKind) {
        successful_call_events(transport, StartMode::Zygote).await;
    }
}

on_both_transports! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spawned_workers_call_emits_the_same_events(transport: TransportKind) {
        successful_call_events(transport, StartMode::Spawn).await;
    }
}

/// A pool name of its own per test, so that concurrent tests do not see each other's events.
fn pool_name(what: &str, transport: TransportKind, mode: StartMode) -> String {
    format!("{what}_{transport:?}_{mode:?}").to_lowercase()
}

async fn successful_call_events(transport: TransportKind, mode: StartMode) {
    let name = pool_name("tel_ok", transport, mode);
    // Attached before the pool starts: Python records events only while someone listens.
    let c = Collector::attach(
        &name,
        &[
            "snakepit.grpc.call.*",
            "snakepit.request.executed",
            "snakepit.python.call.*",
        ],
    );
    let pool = ready_pool_on(transport, 1, |c| {
        c.name = name.clone();
        c.start_mode = mode;
    })
    .await;
    let worker = pool.list_workers()[0].id.to_string();
    let sum = pool
        .execute("add", json!({"a": 2, "b": 3}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sum.json, json!(5));
    assert!(
        eventually(Duration::from_secs(30), || c
            .named("snakepit.python.call.stop")
            .len()
            == 1)
        .await,
        "python events: {:?}",
        c.names()
    );
    let host: Vec<_> = c
        .events()
        .into_iter()
        .filter(|e| !e.name.contains("python"))
        .collect();
    let names: Vec<_> = host.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "snakepit.grpc.call.start",
            "snakepit.grpc.call.stop",
            "snakepit.request.executed"
        ]
    );
    let (start, stop, done) = (&host[0], &host[1], &host[2]);
    assert_eq!(
        keys(&start.metadata),
        ["command", "correlation_id", "pool_name", "worker_id"]
    );
    assert_eq!(keys(&start.measurements), ["system_time"]);
    assert_eq!(start.meta("command"), Some("add"));
    assert_eq!(start.meta("worker_id"), Some(worker.as_str()));
    let corr = start.meta("correlation_id").unwrap().to_owned();
    assert_eq!(corr.len(), 32);
    assert_eq!(stop.metadata, start.metadata);
    assert!(matches!(stop.measurement("duration"), Some(Measurement::Int(d)) if d > 0));
    assert_eq!(keys(&done.measurements), ["duration_us"]);
    assert_eq!(done.meta("pool"), Some(name.as_str()));
    assert_eq!(done.meta("worker_id"), Some(worker.as_str()));
    assert_eq!(done.meta("command"), Some("add"));
    assert_eq!(done.meta("success"), Some("true"));
    let py = c.named("snakepit.python.call.stop");
    assert_eq!(py[0].meta("worker_id"), Some(worker.as_str()));
    assert_eq!(py[0].meta("pool_name"), Some(name.as_str()));
    assert_eq!(py[0].meta("command"), Some("add"));
    assert_eq!(py[0].meta("correlation_id"), Some(corr.as_str()));
    assert!(py[0].measurement("duration").unwrap().as_i64() > 0);
    assert_eq!(c.named("snakepit.python.call.start").len(), 1);
    drop(c);
    pool.shutdown().await;
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_emits_exceptions_with_the_error_kind_and_type(transport: TransportKind) {
    let name = pool_name("tel_fail", transport, StartMode::default());
    // Attached before the pool starts: Python records events only while someone listens.
    let c = Collector::attach(
        &name,
        &[
            "snakepit.grpc.call.*",
            "snakepit.request.executed",
            "snakepit.python.call.*",
        ],
    );
    let pool = ready_pool_on(transport, 1, |c| c.name = name.clone()).await;
    let err = pool
        .execute("fail", json!({"message": "bad"}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PythonException);
    assert!(
        eventually(Duration::from_secs(30), || c
            .named("snakepit.python.call.exception")
            .len()
            == 1)
        .await,
        "events: {:?}",
        c.names()
    );
    let host: Vec<_> = c
        .events()
        .into_iter()
        .filter(|e| !e.name.contains("python"))
        .collect();
    let names: Vec<_> = host.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "snakepit.grpc.call.start",
            "snakepit.grpc.call.exception",
            "snakepit.request.executed"
        ]
    );
    assert_eq!(host[1].meta("error_kind"), Some("python_exception"));
    assert_eq!(host[1].meta("command"), Some("fail"));
    assert!(host[1].measurement("duration").is_some());
    assert_eq!(host[2].meta("success"), Some("false"));
    let py = &c.named("snakepit.python.call.exception")[0];
    assert_eq!(py.meta("error_type"), Some("ValueError"));
    assert_eq!(py.meta("correlation_id"), host[0].meta("correlation_id"));
    drop(c);
    pool.shutdown().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_timeout_emits_enqueued_timeout_and_a_failed_request() {
    let pool = Arc::new(
        ready_pool(1, |c| {
            c.name = "tel_queue".into();
            c.queue_timeout = Duration::from_millis(300);
        })
        .await,
    );
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.execute("sleep", json!({"ms": 3000}), CallOptions::default())
                .await
        })
    };
    assert!(eventually(Duration::from_secs(30), || pool.stats().busy == 1).await);
    let c = Collector::attach(
        "tel_queue",
        &["snakepit.pool.queue.*", "snakepit.request.executed"],
    );
    let err = pool
        .execute("ping", json!({}), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueueTimeout);
    let events = c.events();
    let names: Vec<_> = events.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "snakepit.pool.queue.enqueued",
            "snakepit.pool.queue.timeout",
            "snakepit.request.executed"
        ]
    );
    assert_eq!(
        events[0].measurement("queue_depth"),
        Some(Measurement::Int(1))
    );
    let waited = events[1].measurement("queue_time").unwrap().as_i64();
    assert!(waited >= 300_000_000, "waited {waited} ns");
    assert_eq!(events[2].meta("success"), Some("false"));
    assert_eq!(events[2].meta("worker_id"), Some(""));
    assert_eq!(events[2].meta("command"), Some("ping"));
    drop(c);
    busy.await.unwrap().unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_start_emits_spawn_started_spawned_and_initialized() {
    let c = Collector::attach(
        "tel_start",
        &["snakepit.pool.worker.*", "snakepit.pool.initialized"],
    );
    let pool = ready_pool(1, named_pool("tel_start")).await;
    let w = pool.list_workers()[0].clone();
    assert!(
        eventually(Duration::from_secs(30), || c.names().len() == 3).await,
        "events: {:?}",
        c.names()
    );
    let events = c.events();
    let names: Vec<_> = events.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "snakepit.pool.worker.spawn_started",
            "snakepit.pool.worker.spawned",
            "snakepit.pool.initialized"
        ]
    );
    assert_eq!(events[0].meta("worker_id"), Some(w.id.as_str()));
    assert_eq!(keys(&events[1].measurements), ["duration", "system_time"]);
    assert_eq!(
        keys(&events[1].metadata),
        ["node", "pool_name", "worker_id", "worker_pid"]
    );
    assert_eq!(
        events[1].meta("worker_pid"),
        Some(w.pid.to_string().as_str())
    );
    assert_eq!(events[1].meta("worker_id"), Some(w.id.as_str()));
    assert!(events[1].measurement("duration").unwrap().as_i64() > 0);
    assert_eq!(events[2].measurement("size"), Some(Measurement::Int(1)));
    drop(c);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_emits_crash_terminated_restarted_then_the_replacements_spawn() {
    let pool = ready_pool(1, named_pool("tel_crash")).await;
    let victim = pool.list_workers()[0].clone();
    let c = Collector::attach(
        "tel_crash",
        &["snakepit.pool.worker.*", "snakepit.worker.crash"],
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || c
            .named("snakepit.pool.worker.spawned")
            .len()
            == 1)
        .await,
        "events: {:?}",
        c.names()
    );
    let events = c.events();
    let names: Vec<_> = events.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            "snakepit.worker.crash",
            "snakepit.pool.worker.terminated",
            "snakepit.pool.worker.restarted",
            "snakepit.pool.worker.spawn_started",
            "snakepit.pool.worker.spawned"
        ]
    );
    for e in &events[..3] {
        assert_eq!(e.meta("worker_id"), Some(victim.id.as_str()), "{e:?}");
    }
    assert!(
        events[0].meta("reason").unwrap().contains("signal 9"),
        "{:?}",
        events[0]
    );
    assert!(events[1].measurement("lifetime").unwrap().as_i64() > 0);
    assert_eq!(events[2].measurement("restarts"), Some(Measurement::Int(1)));
    let new_id = events[4].meta("worker_id").unwrap();
    assert_ne!(new_id, victim.id.as_str());
    assert_eq!(events[3].meta("worker_id"), Some(new_id));
    drop(c);
    pool.shutdown().await;
}

#[tokio::test]
async fn pool_start_with_a_bad_config_emits_nothing_and_fails_typed() {
    let c = Collector::attach("tel_bad", &["snakepit.pool.*"]);
    let mut config = PoolConfig::showcase(1);
    config.name = "tel_bad".into();
    config.pool_size = 0;
    let err = Pool::start(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(c.events().is_empty());
}
