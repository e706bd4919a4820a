//! OpenTelemetry with real workers: the host's call span has Python's call as its child, and
//! Python received the call's W3C trace context. The transports' runs take turns: both attach
//! handlers to the one global bus.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry_sdk::trace::InMemorySpanExporter;
use serde_json::json;
use snakepit_core::CallOptions;
use snakepit_telemetry::otel::OtelTracing;
use snakepit_telemetry::Telemetry;
use support::{eventually, ready_pool_on};

/// Held by each run: the handler ids and the exporter's spans are per host, not per pool.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One tracer for the test binary: the bus keeps the first trace-context source installed.
fn tracing_once() -> &'static (Arc<OtelTracing>, InMemorySpanExporter) {
    static TRACING: OnceLock<(Arc<OtelTracing>, InMemorySpanExporter)> = OnceLock::new();
    TRACING.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        (OtelTracing::with_exporter(exporter.clone()), exporter)
    })
}

on_both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_call_span_has_the_python_call_as_its_child(transport: TransportKind) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (otel, exporter) = tracing_once();
    exporter.reset();
    otel.attach(Telemetry::global(), "otel-test").unwrap();
    let traceparents: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = traceparents.clone();
    Telemetry::global()
        .attach("otel-test-python", "snakepit.python.call.stop", move |e| {
            if let Some(tp) = e.meta("traceparent") {
                sink.lock().unwrap().push(tp.to_owned());
            }
        })
        .unwrap();
    let pool = ready_pool_on(transport, 1, |c| c.name = "otel_pool".into()).await;
    let sum = pool
        .execute("add", json!({"a": 1, "b": 2}), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sum.json, json!(3));
    let finished = |name: &str| {
        exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|s| s.name == name)
    };
    assert!(
        eventually(Duration::from_secs(30), || finished(
            "snakepit.python.call add"
        )
        .is_some())
        .await,
        "spans: {:?}",
        exporter
            .get_finished_spans()
            .unwrap()
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    );
    let host = finished("snakepit.call add").unwrap();
    let python = finished("snakepit.python.call add").unwrap();
    assert_eq!(python.parent_span_id, host.span_context.span_id());
    assert_eq!(python.span_context.trace_id(), host.span_context.trace_id());
    let sent = format!(
        "00-{}-{}-01",
        host.span_context.trace_id(),
        host.span_context.span_id()
    );
    assert_eq!(traceparents.lock().unwrap().as_slice(), [sent]);
    Telemetry::global().detach("otel-test");
    Telemetry::global().detach("otel-test-python");
    pool.shutdown().await;
}
}
