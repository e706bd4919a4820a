//! Folding Python events into the host's: names checked against the catalog, the host's
//! pool and worker ids attached.
//!
//! Python may emit any name; only names of the `snakepit.python.*` area of the catalog keep
//! their identity. Anything else becomes `snakepit.python.custom` with its name in the `event`
//! metadata, so untrusted names never become new event kinds or metric labels.

use crate::bus::Telemetry;
use crate::catalog::{self, events, EventDef};
use crate::event::{Event, Measurement};

/// A value Python sent (`TelemetryValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum PythonValue {
    /// An integer measurement.
    Int(i64),
    /// A float measurement.
    Float(f64),
    /// A string (kept as metadata).
    Str(String),
}

/// One event as it arrived from a worker's `StreamTelemetry`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PythonEvent {
    /// The name's parts (`["python", "call", "stop"]`).
    pub parts: Vec<String>,
    /// Measurements by key.
    pub measurements: Vec<(String, PythonValue)>,
    /// Metadata by key.
    pub metadata: Vec<(String, String)>,
    /// When Python recorded it (ns since the Unix epoch).
    pub timestamp_ns: i64,
    /// The call it belongs to, when any.
    pub correlation_id: String,
}

/// Keys the host sets itself; Python's values for them are ignored.
const HOST_KEYS: &[&str] = &["pool_name", "worker_id", "correlation_id", "event"];

/// Returns the catalog entry a Python event name maps to (`snakepit.python.custom` when none).
pub fn classify<S: AsRef<str>>(parts: &[S]) -> &'static EventDef {
    let python_area = |d: &&'static EventDef| d.name.starts_with("snakepit.python.");
    if let Some(def) = catalog::from_parts(parts).filter(python_area) {
        return def;
    }
    // Python code often leaves out the `python.` prefix (`tool.execution.stop`).
    let mut prefixed: Vec<&str> = Vec::with_capacity(parts.len() + 1);
    prefixed.push("python");
    prefixed.extend(parts.iter().map(AsRef::as_ref));
    catalog::from_parts(&prefixed)
        .filter(python_area)
        .filter(|d| d.index != events::PYTHON_CUSTOM.index)
        .unwrap_or(&events::PYTHON_CUSTOM)
}

impl Telemetry {
    /// Re-emits an event of worker `worker_id` of pool `pool_name` as a `snakepit.python.*` event.
    pub fn emit_python(&self, event: &PythonEvent, pool_name: &str, worker_id: &str) {
        let def = classify(&event.parts);
        if !self.is_wanted(def) {
            return;
        }
        let joined;
        let mut metadata: Vec<(&str, &str)> = Vec::with_capacity(event.metadata.len() + 6);
        metadata.push(("pool_name", pool_name));
        metadata.push(("worker_id", worker_id));
        if !event.correlation_id.is_empty() {
            metadata.push(("correlation_id", &event.correlation_id));
        }
        if def.index == events::PYTHON_CUSTOM.index {
            joined = event.parts.join(".");
            metadata.push(("event", &joined));
        }
        let mut measurements: Vec<(&str, Measurement)> =
            Vec::with_capacity(event.measurements.len() + 1);
        for (k, v) in &event.measurements {
            match v {
                PythonValue::Int(i) => measurements.push((k, Measurement::Int(*i))),
                PythonValue::Float(f) => measurements.push((k, Measurement::Float(*f))),
                PythonValue::Str(s) => metadata.push((k, s)),
            }
        }
        measurements.push(("timestamp_ns", Measurement::Int(event.timestamp_ns)));
        for (k, v) in &event.metadata {
            if !HOST_KEYS.contains(&k.as_str()) {
                metadata.push((k, v));
            }
        }
        self.dispatch(&Event {
            def,
            measurements: &measurements,
            metadata: &metadata,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn python_names_map_into_the_python_area_or_to_custom() {
        assert_eq!(
            classify(&["python", "call", "stop"]).name,
            "snakepit.python.call.stop"
        );
        assert_eq!(
            classify(&["tool", "execution", "start"]).name,
            "snakepit.python.tool.execution.start"
        );
        assert_eq!(
            classify(&["pool", "saturated"]).name,
            "snakepit.python.custom"
        );
        assert_eq!(classify(&["custom"]).name, "snakepit.python.custom");
        assert_eq!(
            classify(&["model", "inference"]).name,
            "snakepit.python.custom"
        );
    }

    #[test]
    fn folded_events_carry_the_hosts_ids_not_pythons() {
        let bus = Telemetry::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        bus.attach("p", "snakepit.python.*", move |e| {
            sink.lock().unwrap().push(e.to_owned_event())
        })
        .unwrap();
        let event = PythonEvent {
            parts: vec!["model".into(), "inference".into()],
            measurements: vec![
                ("latency_ms".into(), PythonValue::Int(45)),
                ("ratio".into(), PythonValue::Float(0.5)),
                ("label".into(), PythonValue::Str("x".into())),
            ],
            metadata: vec![
                ("worker_id".into(), "forged".into()),
                ("model".into(), "m".into()),
            ],
            timestamp_ns: 7,
            correlation_id: "c1".into(),
        };
        bus.emit_python(&event, "pool_a", "pool_a_worker_1");
        let seen = seen.lock().unwrap();
        let e = &seen[0];
        assert_eq!(e.name, "snakepit.python.custom");
        assert_eq!(e.meta("event"), Some("model.inference"));
        assert_eq!(e.meta("worker_id"), Some("pool_a_worker_1"));
        assert_eq!(e.meta("pool_name"), Some("pool_a"));
        assert_eq!(e.meta("correlation_id"), Some("c1"));
        assert_eq!(e.meta("label"), Some("x"));
        assert_eq!(e.meta("model"), Some("m"));
        assert_eq!(e.measurement("latency_ms"), Some(Measurement::Int(45)));
        assert_eq!(e.measurement("ratio"), Some(Measurement::Float(0.5)));
    }
}
