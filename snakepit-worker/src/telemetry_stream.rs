//! The host end of a worker's `StreamTelemetry`: controls go to Python, events come back and
//! are re-emitted on the global bus as `snakepit.python.*` events with the pool and worker ids.

use std::time::Duration;

use futures::StreamExt;
use snakepit_core::WorkerId;
use snakepit_proto::pb::{self, telemetry_control::Control, telemetry_value, BridgeServiceClient};
use snakepit_proto::TOKEN_METADATA_KEY;
use snakepit_telemetry::control::PythonTelemetrySettings;
use snakepit_telemetry::python::{classify, PythonEvent, PythonValue};
use snakepit_telemetry::Telemetry;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// Longest pause between attempts to reopen a broken stream.
const MAX_REOPEN_BACKOFF: Duration = Duration::from_secs(5);

/// Starts consuming the telemetry stream of `worker`; the task ends when the worker closes
/// the stream (it is shutting down) and is aborted by the [`crate::Worker`] that owns it.
pub(crate) fn start(
    channel: Channel,
    token: &str,
    pool: String,
    worker: WorkerId,
) -> Option<JoinHandle<()>> {
    let token = MetadataValue::try_from(token).ok()?;
    Some(tokio::spawn(async move {
        let bus = Telemetry::global();
        let mut backoff = Duration::from_millis(100);
        loop {
            match follow(&channel, &token, &pool, &worker, bus).await {
                Ok(()) => {
                    tracing::debug!(target: "snakepit::telemetry", worker = %worker, "telemetry stream closed by the worker");
                    return;
                }
                Err(status) => {
                    tracing::debug!(target: "snakepit::telemetry", worker = %worker, error = %status.message(), "telemetry stream broke; reopening");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_REOPEN_BACKOFF);
        }
    }))
}

async fn follow(
    channel: &Channel,
    token: &MetadataValue<tonic::metadata::Ascii>,
    pool: &str,
    worker: &WorkerId,
    bus: &'static Telemetry,
) -> Result<(), tonic::Status> {
    let settings = bus.python().subscribe();
    let controls = futures::stream::unfold((settings, true), |(mut rx, first)| async move {
        if !first {
            rx.changed().await.ok()?;
        }
        let current = rx.borrow_and_update().effective();
        Some((
            futures::stream::iter(control_messages(&current)),
            (rx, false),
        ))
    })
    .flatten();
    let mut req = tonic::Request::new(controls);
    req.metadata_mut().insert(TOKEN_METADATA_KEY, token.clone());
    let mut events = BridgeServiceClient::new(channel.clone())
        .stream_telemetry(req)
        .await?
        .into_inner();
    while let Some(event) = events.next().await {
        let event = event?;
        if bus.is_wanted(classify(&event.event_parts)) {
            bus.emit_python(&python_event(event), pool, worker.as_str());
        }
    }
    Ok(())
}

/// The three control messages that set Python's telemetry to `s`.
pub(crate) fn control_messages(s: &PythonTelemetrySettings) -> [pb::TelemetryControl; 3] {
    let wrap = |control| pb::TelemetryControl {
        control: Some(control),
    };
    [
        wrap(Control::Filter(pb::TelemetryEventFilter {
            allow: s.allow.clone(),
            deny: s.deny.clone(),
        })),
        wrap(Control::Sampling(pb::TelemetrySamplingUpdate {
            sampling_rate: s.sampling_rate,
            event_patterns: s.sampling_patterns.clone(),
        })),
        wrap(Control::Toggle(pb::TelemetryToggle { enabled: s.enabled })),
    ]
}

/// The host form of an event from the wire.
pub(crate) fn python_event(e: pb::TelemetryEvent) -> PythonEvent {
    let measurements = e
        .measurements
        .into_iter()
        .filter_map(|(k, v)| {
            let v = match v.value? {
                telemetry_value::Value::IntValue(i) => PythonValue::Int(i),
                telemetry_value::Value::FloatValue(f) => PythonValue::Float(f),
                telemetry_value::Value::StringValue(s) => PythonValue::Str(s),
            };
            Some((k, v))
        })
        .collect();
    PythonEvent {
        parts: e.event_parts,
        measurements,
        metadata: e.metadata.into_iter().collect(),
        timestamp_ns: e.timestamp_ns,
        correlation_id: e.correlation_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_filter_sampling_and_toggle_messages() {
        let s = PythonTelemetrySettings {
            enabled: false,
            sampling_rate: 0.5,
            sampling_patterns: vec!["python.*".into()],
            allow: vec![],
            deny: vec!["noisy.*".into()],
        };
        let [filter, sampling, toggle] = control_messages(&s);
        assert!(matches!(filter.control, Some(Control::Filter(f)) if f.deny == ["noisy.*"]));
        assert!(
            matches!(sampling.control, Some(Control::Sampling(u)) if u.sampling_rate == 0.5 && u.event_patterns == ["python.*"])
        );
        assert!(matches!(toggle.control, Some(Control::Toggle(t)) if !t.enabled));
    }

    #[test]
    fn wire_events_keep_values_and_ids() {
        let mut e = pb::TelemetryEvent {
            event_parts: vec!["python".into(), "call".into(), "stop".into()],
            timestamp_ns: 5,
            correlation_id: "c".into(),
            ..Default::default()
        };
        e.measurements.insert(
            "duration".into(),
            pb::TelemetryValue {
                value: Some(telemetry_value::Value::IntValue(9)),
            },
        );
        let p = python_event(e);
        assert_eq!(p.parts, ["python", "call", "stop"]);
        assert_eq!(
            p.measurements,
            vec![("duration".into(), PythonValue::Int(9))]
        );
        assert_eq!(p.correlation_id, "c");
    }
}
