//! A `tracing` layer that turns other crates' `tracing` events into catalog events by name.
//!
//! Crates that do not depend on this one (the resilience layers, the hardware profiler) emit
//! `tracing` events on a `snakepit::<area>` target with an `event` field; an event whose
//! `snakepit.<area>.<event>` is in the catalog is emitted on the bus, numeric fields as
//! measurements and the others as metadata (`scope` also as `pool`).

use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};

use crate::bus::Telemetry;
use crate::catalog::{self, EventDef};
use crate::event::{Event, Measurement};

/// Maps `snakepit::*` tracing events with an `event` field onto the bus.
#[derive(Debug, Clone, Copy)]
pub struct CatalogLayer {
    bus: &'static Telemetry,
}

impl CatalogLayer {
    /// Returns a layer that emits on `bus`.
    pub fn new(bus: &'static Telemetry) -> Self {
        Self { bus }
    }
}

/// Returns the catalog entry a `tracing` event of `target` with `event` field maps to: the
/// event's name within the target's area (`opened` on `snakepit::circuit_breaker`), or its
/// full name when it lies in that area (`snakepit.session.moved` on `snakepit::session`).
pub fn map_tracing_event(target: &str, event: &str) -> Option<&'static EventDef> {
    let area = target.strip_prefix("snakepit::")?;
    if let Some(inner) = event
        .strip_prefix("snakepit.")
        .and_then(|rest| rest.strip_prefix(area))
        .and_then(|rest| rest.strip_prefix('.'))
    {
        return catalog::lookup(&format!("{area}.{inner}"));
    }
    catalog::lookup(&format!("{area}.{event}"))
}

#[derive(Default)]
struct Fields {
    event: Option<String>,
    measurements: Vec<(&'static str, Measurement)>,
    metadata: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.measurements
            .push((field.name(), Measurement::Int(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.measurements.push((field.name(), value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.measurements
            .push((field.name(), Measurement::Float(value)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "event" => self.event = Some(value.to_owned()),
            "message" => {}
            name => self.metadata.push((name, value.to_owned())),
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {}
            name => self.metadata.push((name, format!("{value:?}"))),
        }
    }
}

impl<S: Subscriber> Layer<S> for CatalogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if !target.starts_with("snakepit::") || event.metadata().fields().field("event").is_none() {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(def) = fields
            .event
            .as_deref()
            .and_then(|e| map_tracing_event(target, e))
        else {
            return;
        };
        if !self.bus.is_wanted(def) {
            return;
        }
        let mut metadata: Vec<(&str, &str)> = fields
            .metadata
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        if let Some((_, scope)) = fields.metadata.iter().find(|(k, _)| *k == "scope") {
            if !metadata.iter().any(|(k, _)| *k == "pool") {
                metadata.push(("pool", scope));
            }
        }
        self.bus.dispatch(&Event {
            def,
            measurements: &fields.measurements,
            metadata: &metadata,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, OnceLock};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn resilience_style_events_map_by_target_and_name() {
        assert_eq!(
            map_tracing_event("snakepit::circuit_breaker", "opened").map(|d| d.name),
            Some("snakepit.circuit_breaker.opened")
        );
        assert!(map_tracing_event("snakepit::retry", "nope").is_none());
        assert!(map_tracing_event("other", "opened").is_none());

        static BUS: OnceLock<Telemetry> = OnceLock::new();
        let bus = BUS.get_or_init(Telemetry::new);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        bus.attach("cb", "snakepit.circuit_breaker.*", move |e| {
            sink.lock().unwrap().push(e.to_owned_event())
        })
        .unwrap();
        let subscriber = tracing_subscriber::registry().with(CatalogLayer::new(bus));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "snakepit::circuit_breaker", event = "opened", scope = "p_w1", failure_count = 5u32, "opened");
            tracing::warn!(target: "snakepit::circuit_breaker", "no event field");
        });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].measurement("failure_count"),
            Some(Measurement::Int(5))
        );
        assert_eq!(seen[0].meta("pool"), Some("p_w1"));
    }

    #[test]
    fn full_names_map_within_their_area_only() {
        assert_eq!(
            map_tracing_event("snakepit::session", "snakepit.session.moved").map(|d| d.name),
            Some("snakepit.session.moved")
        );
        assert_eq!(
            map_tracing_event(
                "snakepit::crash_barrier",
                "snakepit.crash_barrier.slot_stopped"
            )
            .map(|d| d.index),
            Some(crate::events::CRASH_BARRIER_SLOT_STOPPED.index)
        );
        assert!(map_tracing_event("snakepit::session", "snakepit.pool.saturated").is_none());
        assert!(map_tracing_event("snakepit::session", "snakepit.sessionx.moved").is_none());
    }
}
