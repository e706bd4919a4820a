//! The host-wide GPU profiler: started with a `PoolSet` when NVIDIA GPUs are found (here a fake
//! `nvidia-smi` answering in its documented CSV format), stopped with it.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use snakepit_core::config::SnakepitConfig;
use snakepit_hardware::{DetectorConfig, Device, Hardware};
use snakepit_pool::PoolSet;

/// A detector that finds only the tools in `dir`.
fn hardware_in(dir: &std::path::Path) -> Hardware {
    let mut config = DetectorConfig::default()
        .with_search_path(dir)
        .with_timeout(Duration::from_secs(5));
    config.cudnn_include_dirs = Vec::new();
    config.rocm_version_files = Vec::new();
    Hardware::new(config)
}

/// Writes an `nvidia-smi` with one H100: the detection query, the profiler query, the banner.
fn fake_nvidia_smi(dir: &std::path::Path) {
    let script = r#"#!/bin/sh
case "$*" in
  *temperature.gpu*) echo "0, NVIDIA H100 80GB HBM3, 1024, 81559, 17, 35, 71.50" ;;
  *--query-gpu*) echo "0, NVIDIA H100 80GB HBM3, 81559, 80535, 9.0, 0, 550.54.15" ;;
  *) echo "| NVIDIA-SMI 550.54.15     Driver Version: 550.54.15     CUDA Version: 12.4 |" ;;
esac
"#;
    let path = dir.join("nvidia-smi");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn config(extra: &str) -> SnakepitConfig {
    SnakepitConfig::from_toml_str(&format!(
        "{extra}\n[[pools]]\nname = \"default\"\npool_size = 1\n\
         adapter_spec = \"snakepit_bridge.adapters.showcase.ShowcaseAdapter\"\n\
         startup_batch_delay_ms = 0\n[pools.heartbeat]\nenabled = false\n"
    ))
    .unwrap()
}

#[tokio::test]
async fn profiler_samples_found_gpus_while_the_pools_run_and_stops_with_them() {
    let tools = tempfile::tempdir().unwrap();
    fake_nvidia_smi(tools.path());
    let set = PoolSet::start_with_hardware(
        &config("gpu_profiler = { interval_ms = 50 }"),
        &hardware_in(tools.path()),
    )
    .await
    .unwrap();
    let mut samples = set.gpu_samples().await.expect("profiler running");
    let sample = tokio::time::timeout(Duration::from_secs(10), samples.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sample.device, Device::Cuda(0));
    assert_eq!(sample.temperature_c, Some(35));
    let stats = set.gpu_profiler_stats().await.unwrap();
    assert!(stats.sample_count >= 1, "{stats:?}");
    assert_eq!(stats.interval_ms, 50);
    assert_eq!(stats.devices, [Device::Cuda(0)]);

    set.shutdown().await;
    assert!(set.gpu_profiler_stats().await.is_none());
    assert!(set.gpu_samples().await.is_none());
}

#[tokio::test]
async fn no_profiler_without_gpus_or_when_disabled() {
    let empty = tempfile::tempdir().unwrap();
    let set = PoolSet::start_with_hardware(&config(""), &hardware_in(empty.path()))
        .await
        .unwrap();
    assert!(set.gpu_profiler_stats().await.is_none());
    set.shutdown().await;

    let tools = tempfile::tempdir().unwrap();
    fake_nvidia_smi(tools.path());
    let set = PoolSet::start_with_hardware(
        &config("gpu_profiler = { enabled = false }"),
        &hardware_in(tools.path()),
    )
    .await
    .unwrap();
    assert!(set.gpu_profiler_stats().await.is_none());
    set.shutdown().await;
}

#[tokio::test]
async fn invalid_gpu_profiler_settings_stop_the_host_from_starting() {
    let err = PoolSet::start(&config("gpu_profiler = { interval_ms = 0 }"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("gpu_profiler.interval_ms"),
        "{err}"
    );
}
