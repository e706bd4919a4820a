//! The GPU profiler's readings reach `tracing` with the profiler's target.
//!
//! This is the only test of its binary on purpose: it installs a global subscriber, and tracing
//! caches each callsite's interest process-wide, so a test on another thread hitting the same
//! callsite with no subscriber could otherwise hide the event (a race seen with `set_default`).

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};

use snakepit_hardware::{GpuProfiler, GpuProfilerConfig, GPU_PROFILER_TARGET};
use support::{fixture, FakeTools};
use tracing_subscriber::layer::SubscriberExt;

/// Records the target and fields of every event.
#[derive(Clone, Default)]
struct EventLog(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EventLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = String::new();
        event.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                fields.push_str(&format!("{}={value:?} ", field.name()));
            },
        );
        let line = format!("{} {fields}", event.metadata().target());
        self.0.lock().unwrap().push(line);
    }
}

#[tokio::test]
async fn samples_are_emitted_as_tracing_events_with_the_profiler_target() {
    let log = EventLog::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(log.clone()))
        .unwrap();
    let tools = FakeTools::new();
    let csv = fixture("nvidia_smi_profiler_query.csv");
    tools.add("nvidia-smi", &format!("cat '{}'", csv.display()));
    let config = GpuProfilerConfig {
        enabled: false,
        ..GpuProfilerConfig::default()
    };
    let profiler = GpuProfiler::start_nvidia(config, tools.config()).unwrap();
    profiler.sample_now().await.unwrap();
    profiler.stop().await;

    let events = log.0.lock().unwrap().clone();
    let samples: Vec<&String> = events
        .iter()
        .filter(|e| {
            e.starts_with(&format!("{GPU_PROFILER_TARGET} ")) && e.contains("message=gpu sample")
        })
        .collect();
    assert_eq!(samples.len(), 2, "{events:?}");
    assert!(samples[0].contains("device=cuda:0"), "{}", samples[0]);
    assert!(samples[0].contains("power_w=71.23"), "{}", samples[0]);
    assert!(samples[1].contains("device=cuda:1"), "{}", samples[1]);
}
