//! The GPU profiler sampling a fake nvidia-smi.

mod support;

use std::time::Duration;

use snakepit_hardware::{Device, GpuProfiler, GpuProfilerConfig, HardwareError};
use support::{fixture, FakeTools};

fn disabled() -> GpuProfilerConfig {
    GpuProfilerConfig {
        enabled: false,
        ..GpuProfilerConfig::default()
    }
}

#[tokio::test]
async fn sample_now_reads_every_gpu_from_nvidia_smi() {
    let tools = FakeTools::new();
    let csv = fixture("nvidia_smi_profiler_query.csv");
    tools.add("nvidia-smi", &format!("cat '{}'", csv.display()));
    let profiler = GpuProfiler::start_nvidia(disabled(), tools.config()).unwrap();
    let mut subscriber = profiler.subscribe();
    let samples = profiler.sample_now().await.unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].power_w, Some(71.23));
    assert_eq!(subscriber.recv().await.unwrap().device, Device::Cuda(0));
    let stats = profiler.stats().await.unwrap();
    assert_eq!(stats.sample_count, 1);
    assert_eq!(stats.devices, [Device::Cuda(0), Device::Cuda(1)]);
    assert_eq!(stats.interval_ms, 5000);
    profiler.stop().await;
}

#[tokio::test]
async fn sample_now_without_nvidia_smi_is_no_gpu() {
    let tools = FakeTools::new();
    let profiler = GpuProfiler::start_nvidia(disabled(), tools.config()).unwrap();
    match profiler.sample_now().await {
        Err(HardwareError::NoGpu { reason }) => {
            assert!(reason.contains("not installed"), "{reason}")
        }
        other => panic!("expected NoGpu, got {other:?}"),
    }
}

#[tokio::test]
async fn sample_now_with_a_hanging_nvidia_smi_is_no_gpu_after_the_timeout() {
    let tools = FakeTools::new();
    tools.add("nvidia-smi", "exec sleep 30");
    let config = tools.config().with_timeout(Duration::from_millis(200));
    let profiler = GpuProfiler::start_nvidia(disabled(), config).unwrap();
    match profiler.sample_now().await {
        Err(HardwareError::NoGpu { reason }) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("expected NoGpu, got {other:?}"),
    }
}

#[tokio::test]
async fn stop_ends_the_task_and_closes_subscriptions() {
    let tools = FakeTools::new();
    let profiler = GpuProfiler::start_nvidia(disabled(), tools.config()).unwrap();
    let mut subscriber = profiler.subscribe();
    profiler.stop().await;
    assert!(matches!(
        subscriber.recv().await,
        Err(tokio::sync::broadcast::error::RecvError::Closed)
    ));
}
