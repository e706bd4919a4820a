//! Tests for the GPU profiler task (under paused time) and the sample parser.

use std::sync::atomic::{AtomicU64, Ordering};

use super::sampler::parse_samples;
use super::*;

/// A sampler that reports one GPU whose utilisation counts the calls, or no GPU at all.
struct CountingSampler {
    calls: Arc<AtomicU64>,
    has_gpu: bool,
}

impl GpuSampler for CountingSampler {
    fn sample(&self) -> SampleFuture<'_> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let has_gpu = self.has_gpu;
        Box::pin(async move {
            if !has_gpu {
                return Err(HardwareError::NoGpu {
                    reason: "fake sampler has no gpu".to_owned(),
                });
            }
            Ok(vec![GpuSample {
                device: Device::Cuda(0),
                name: "Fake GPU".to_owned(),
                memory_used_mb: Some(100),
                memory_total_mb: Some(1000),
                utilization_percent: u32::try_from(call).ok(),
                temperature_c: Some(40),
                power_w: Some(50.5),
                sampled_at_unix_ms: 0,
            }])
        })
    }
}

fn counting(has_gpu: bool) -> (CountingSampler, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let sampler = CountingSampler {
        calls: Arc::clone(&calls),
        has_gpu,
    };
    (sampler, calls)
}

fn config(enabled: bool) -> GpuProfilerConfig {
    GpuProfilerConfig {
        enabled,
        ..GpuProfilerConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn samples_immediately_then_every_interval() {
    let (sampler, calls) = counting(true);
    let profiler = GpuProfiler::start(config(true), sampler).unwrap();
    let mut samples = profiler.subscribe();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(DEFAULT_SAMPLE_INTERVAL * 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let first = samples.recv().await.unwrap();
    assert_eq!(first.device, Device::Cuda(0));
    assert_eq!(first.utilization_percent, Some(1));
    let stats = profiler.stats().await.unwrap();
    assert_eq!(stats.sample_count, 3);
    assert_eq!(stats.devices, [Device::Cuda(0)]);
    assert!(stats.last_sample_time.is_some());
    profiler.stop().await;
}

#[tokio::test(start_paused = true)]
async fn disabled_profiler_does_not_sample_until_enabled() {
    let (sampler, calls) = counting(true);
    let profiler = GpuProfiler::start(config(false), sampler).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    profiler.enable().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    profiler.disable().await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!profiler.stats().await.unwrap().enabled);
}

#[tokio::test(start_paused = true)]
async fn set_interval_changes_the_pace_and_rejects_zero() {
    let (sampler, calls) = counting(true);
    let profiler = GpuProfiler::start(config(true), sampler).unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    profiler.set_interval(Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(profiler.stats().await.unwrap().interval_ms, 1000);
    assert!(matches!(
        profiler.set_interval(Duration::ZERO).await,
        Err(HardwareError::InvalidInterval { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn zero_interval_is_rejected_at_start() {
    let (sampler, _) = counting(true);
    let config = GpuProfilerConfig {
        interval: Duration::ZERO,
        ..GpuProfilerConfig::default()
    };
    assert!(matches!(
        GpuProfiler::start(config, sampler),
        Err(HardwareError::InvalidInterval { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn sample_now_without_gpu_is_no_gpu_and_recorded_in_stats() {
    let (sampler, _) = counting(false);
    let profiler = GpuProfiler::start(config(false), sampler).unwrap();
    assert!(matches!(
        profiler.sample_now().await,
        Err(HardwareError::NoGpu { .. })
    ));
    let stats = profiler.stats().await.unwrap();
    assert_eq!(stats.sample_count, 0);
    assert!(stats
        .last_error
        .unwrap()
        .contains("fake sampler has no gpu"));
}

#[tokio::test(start_paused = true)]
async fn sample_now_publishes_to_subscribers() {
    let (sampler, _) = counting(true);
    let profiler = GpuProfiler::start(config(false), sampler).unwrap();
    let mut samples = profiler.subscribe();
    let taken = profiler.sample_now().await.unwrap();
    assert_eq!(samples.recv().await.unwrap(), taken[0]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_ends_the_task() {
    let (sampler, calls) = counting(true);
    let profiler = GpuProfiler::start(config(true), sampler).unwrap();
    let mut samples = profiler.subscribe();
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(profiler);
    tokio::time::sleep(DEFAULT_SAMPLE_INTERVAL * 3).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The sender inside the aborted task is gone, so the channel reports closed.
    assert!(samples.recv().await.is_ok());
    assert!(matches!(
        samples.recv().await,
        Err(broadcast::error::RecvError::Closed)
    ));
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let (sampler, _) = counting(true);
    assert!(matches!(
        GpuProfiler::start(config(true), sampler),
        Err(HardwareError::NoRuntime)
    ));
}

#[test]
fn sample_output_with_unknown_fields_parses() {
    let text = include_str!("../../tests/fixtures/nvidia_smi_profiler_query.csv");
    let samples = parse_samples(text, 42).unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].memory_used_mb, Some(1024));
    assert_eq!(samples[0].temperature_c, Some(34));
    assert_eq!(samples[0].power_w, Some(71.23));
    assert_eq!(samples[0].sampled_at_unix_ms, 42);
    assert_eq!(samples[1].device, Device::Cuda(1));
    assert_eq!(samples[1].power_w, None);
    assert_eq!(samples[1].utilization_percent, None);
}

#[test]
fn sample_output_with_bad_power_is_an_error() {
    let err = parse_samples("0, GPU, 1, 2, 3, 4, hot\n", 0).unwrap_err();
    assert!(err.reason.contains("power.draw 'hot'"), "{err}");
}
