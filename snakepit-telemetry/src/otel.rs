//! OpenTelemetry (feature `otel`): a span per execute/stream call, W3C trace context sent to
//! Python, and Python's call spans as children of the host's.
//!
//! The handler follows the bus: `snakepit.grpc.call.start` opens the host span of a call
//! (keyed by its correlation id, which is how the pool asks for the call's `traceparent`
//! before sending it), `stop`/`exception` end it. Python's `snakepit.python.call.stop` and
//! `exception` events carry the `traceparent` Python received and the call's duration; each
//! becomes a finished child span. Nothing is exported unless an exporter is given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span, SpanExporter};

use crate::bus::{AttachError, Telemetry};
use crate::catalog::events;
use crate::event::Event;

/// Most host spans kept open at once; beyond it the oldest calls lose their span.
const MAX_OPEN_SPANS: usize = 10_000;

/// An OTLP exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter for '{endpoint}': {message} (check opentelemetry endpoint or SNAKEPIT_OTEL_ENDPOINT)")]
pub struct OtelError {
    endpoint: String,
    message: String,
}

/// The host's OpenTelemetry tracing: a tracer provider and the open call spans.
pub struct OtelTracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    open: Mutex<HashMap<String, Span>>,
}

impl std::fmt::Debug for OtelTracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelTracing").finish_non_exhaustive()
    }
}

impl OtelTracing {
    /// Exports each span as it ends to `exporter` (tests use the SDK's in-memory exporter).
    pub fn with_exporter(exporter: impl SpanExporter + 'static) -> Arc<Self> {
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        Self::from_provider(provider)
    }

    /// Exports spans in batches over OTLP/gRPC to `endpoint` (`http://collector:4317`).
    ///
    /// Must be called inside a Tokio runtime.
    pub fn otlp(endpoint: &str) -> Result<Arc<Self>, OtelError> {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| OtelError {
                endpoint: endpoint.to_owned(),
                message: e.to_string(),
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        Ok(Self::from_provider(provider))
    }

    fn from_provider(provider: SdkTracerProvider) -> Arc<Self> {
        let tracer = provider.tracer("snakepit");
        Arc::new(Self {
            provider,
            tracer,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Attaches the span handler to `bus` under `id` and gives the bus the calls' trace context.
    pub fn attach(self: &Arc<Self>, bus: &Telemetry, id: &str) -> Result<(), AttachError> {
        let this = self.clone();
        bus.attach_many(
            id,
            &["snakepit.grpc.call.*", "snakepit.python.call.*"],
            move |e| this.record(e),
        )?;
        let this = self.clone();
        bus.set_trace_context(Arc::new(move |corr| this.traceparent(corr)));
        Ok(())
    }

    /// Returns the W3C `traceparent` of the open host span of call `correlation_id`.
    pub fn traceparent(&self, correlation_id: &str) -> Option<String> {
        let open = self.open.lock().ok()?;
        let cx = open.get(correlation_id)?.span_context().clone();
        Some(format_traceparent(&cx))
    }

    fn record(&self, e: &Event<'_>) {
        let idx = e.def.index;
        let Some(corr) = e.meta("correlation_id") else {
            return;
        };
        if idx == events::GRPC_CALL_START.index {
            let command = e.meta("command").unwrap_or("").to_owned();
            let span = self
                .tracer
                .span_builder(format!("snakepit.call {command}"))
                .with_kind(SpanKind::Client)
                .with_attributes(attributes(e))
                .start(&self.tracer);
            if let Ok(mut open) = self.open.lock() {
                if open.len() >= MAX_OPEN_SPANS {
                    open.clear();
                }
                open.insert(corr.to_owned(), span);
            }
        } else if idx == events::GRPC_CALL_STOP.index || idx == events::GRPC_CALL_EXCEPTION.index {
            let span = self.open.lock().ok().and_then(|mut o| o.remove(corr));
            if let Some(mut span) = span {
                if idx == events::GRPC_CALL_EXCEPTION.index {
                    let kind = e.meta("error_kind").unwrap_or("error").to_owned();
                    span.set_status(Status::error(kind));
                }
                span.end();
            }
        } else if idx == events::PYTHON_CALL_STOP.index
            || idx == events::PYTHON_CALL_EXCEPTION.index
        {
            self.python_span(e, corr);
        }
    }

    /// Records Python's call as a finished child of the host span it was sent with.
    fn python_span(&self, e: &Event<'_>, corr: &str) {
        let parent = match e.meta("traceparent").and_then(parse_traceparent) {
            Some(cx) => Context::new().with_remote_span_context(cx),
            None => {
                let Some(cx) = self
                    .open
                    .lock()
                    .ok()
                    .and_then(|o| o.get(corr).map(|s| s.span_context().clone()))
                else {
                    return;
                };
                Context::new().with_remote_span_context(cx)
            }
        };
        let duration = e.measurement("duration").map_or(Duration::ZERO, |d| {
            Duration::from_nanos(d.as_i64().max(0) as u64)
        });
        let end = SystemTime::now();
        let mut span = self
            .tracer
            .span_builder(format!(
                "snakepit.python.call {}",
                e.meta("command").unwrap_or("")
            ))
            .with_kind(SpanKind::Server)
            .with_start_time(end.checked_sub(duration).unwrap_or(end))
            .with_attributes(attributes(e))
            .start_with_context(&self.tracer, &parent);
        if e.def.index == events::PYTHON_CALL_EXCEPTION.index {
            let kind = e.meta("error_type").unwrap_or("exception").to_owned();
            span.set_status(Status::error(kind));
        }
        span.end_with_timestamp(end);
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(&self) {
        if let Ok(mut open) = self.open.lock() {
            for (_, mut span) in open.drain() {
                span.end();
            }
        }
        let _ = self.provider.shutdown();
    }
}

fn attributes(e: &Event<'_>) -> Vec<KeyValue> {
    e.metadata
        .iter()
        .filter(|(k, _)| *k != "traceparent")
        .map(|(k, v)| KeyValue::new(format!("snakepit.{k}"), (*v).to_owned()))
        .collect()
}

/// Formats a span context as a W3C `traceparent` header value.
pub fn format_traceparent(cx: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

/// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`) into a remote span context.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?);
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    use super::*;

    #[test]
    fn traceparents_round_trip_and_garbage_is_refused() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = parse_traceparent(tp).unwrap();
        assert_eq!(format_traceparent(&cx), tp);
        assert!(parse_traceparent("00-zz-b7ad6b7169203331-01").is_none());
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none()
        );
    }

    #[test]
    fn a_python_call_becomes_a_child_of_the_host_call() {
        let exporter = InMemorySpanExporter::default();
        let otel = OtelTracing::with_exporter(exporter.clone());
        let bus = Telemetry::new();
        otel.attach(&bus, "otel").unwrap();
        let meta = [
            ("command", "add"),
            ("correlation_id", "c1"),
            ("worker_id", "w"),
        ];
        bus.emit(&events::GRPC_CALL_START, &[], &meta);
        let tp = bus.traceparent("c1").unwrap();
        let py_meta = [
            ("command", "add"),
            ("correlation_id", "c1"),
            ("traceparent", tp.as_str()),
        ];
        bus.emit(
            &events::PYTHON_CALL_STOP,
            &[("duration", 1000u64.into())],
            &py_meta,
        );
        bus.emit(&events::GRPC_CALL_STOP, &[], &meta);
        assert!(bus.traceparent("c1").is_none());
        let spans = exporter.get_finished_spans().unwrap();
        let host = spans
            .iter()
            .find(|s| s.name == "snakepit.call add")
            .unwrap();
        let py = spans
            .iter()
            .find(|s| s.name == "snakepit.python.call add")
            .unwrap();
        assert_eq!(py.parent_span_id, host.span_context.span_id());
        assert_eq!(py.span_context.trace_id(), host.span_context.trace_id());
    }
}
