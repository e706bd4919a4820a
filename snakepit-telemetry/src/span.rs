//! Span helpers: a start event now, a stop or exception event with the duration later.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::bus::Telemetry;
use crate::catalog::{events, EventDef};
use crate::event::Measurement;

/// The start/stop/exception triple of a span.
#[derive(Debug)]
pub struct SpanEvents {
    /// Emitted when the span starts, with `system_time`.
    pub start: &'static EventDef,
    /// Emitted when it ends well, with `duration`.
    pub stop: &'static EventDef,
    /// Emitted when it fails, with `duration`.
    pub exception: &'static EventDef,
}

/// A host call to a worker (`snakepit.grpc.call.*`).
pub static GRPC_CALL: SpanEvents = SpanEvents {
    start: &events::GRPC_CALL_START,
    stop: &events::GRPC_CALL_STOP,
    exception: &events::GRPC_CALL_EXCEPTION,
};

/// A Python call (`snakepit.python.call.*`).
pub static PYTHON_CALL: SpanEvents = SpanEvents {
    start: &events::PYTHON_CALL_START,
    stop: &events::PYTHON_CALL_STOP,
    exception: &events::PYTHON_CALL_EXCEPTION,
};

/// A started span: emit its end with [`SpanTimer::stop`] or [`SpanTimer::exception`].
#[derive(Debug)]
#[must_use = "a span emits its stop or exception event only when ended"]
pub struct SpanTimer {
    events: &'static SpanEvents,
    started: Instant,
}

impl SpanEvents {
    /// Emits the start event on `bus` and returns the timer of the span.
    pub fn start(&'static self, bus: &Telemetry, metadata: &[(&str, &str)]) -> SpanTimer {
        if bus.is_wanted(self.start) {
            bus.emit(self.start, &[("system_time", system_time())], metadata);
        }
        SpanTimer {
            events: self,
            started: Instant::now(),
        }
    }

    /// Runs `f` inside a span (the seeds' `span(event, meta, fn)`): `Ok` ends it with stop,
    /// `Err` with exception.
    pub fn span<T, E>(
        &'static self,
        bus: &Telemetry,
        metadata: &[(&str, &str)],
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let timer = self.start(bus, metadata);
        let out = f();
        match &out {
            Ok(_) => timer.stop(bus, metadata),
            Err(_) => timer.exception(bus, metadata),
        }
        out
    }
}

impl SpanTimer {
    /// Emits the stop event with the span's `duration`.
    pub fn stop(self, bus: &Telemetry, metadata: &[(&str, &str)]) {
        bus.emit(
            self.events.stop,
            &[("duration", self.started.elapsed().into())],
            metadata,
        );
    }

    /// Emits the exception event with the span's `duration`.
    pub fn exception(self, bus: &Telemetry, metadata: &[(&str, &str)]) {
        bus.emit(
            self.events.exception,
            &[("duration", self.started.elapsed().into())],
            metadata,
        );
    }

    /// Returns when the span started.
    pub fn started(&self) -> Instant {
        self.started
    }
}

/// Nanoseconds since the Unix epoch (the seeds' `system_time`).
pub fn system_time() -> Measurement {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(Measurement::from)
        .unwrap_or(Measurement::Int(0))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_span_emits_start_then_stop_or_exception_with_a_duration() {
        let bus = Telemetry::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        bus.attach("s", "snakepit.grpc.call.*", move |e| {
            sink.lock().unwrap().push(e.to_owned_event())
        })
        .unwrap();
        let ok: Result<u8, ()> = GRPC_CALL.span(&bus, &[("command", "add")], || Ok(1));
        assert_eq!(ok, Ok(1));
        let err: Result<u8, &str> = GRPC_CALL.span(&bus, &[("command", "add")], || Err("no"));
        assert!(err.is_err());
        let seen = seen.lock().unwrap();
        let names: Vec<_> = seen.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "snakepit.grpc.call.start",
                "snakepit.grpc.call.stop",
                "snakepit.grpc.call.start",
                "snakepit.grpc.call.exception"
            ]
        );
        assert!(seen[0].measurement("system_time").unwrap().as_i64() > 0);
        assert!(seen[1].measurement("duration").is_some());
        assert!(seen.iter().all(|e| e.meta("command") == Some("add")));
    }
}
