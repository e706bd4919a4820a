//! Real detection of the machine running the tests, checked against /proc/cpuinfo.

use std::collections::BTreeSet;

use snakepit_hardware::{CpuFeature, Device, DevicePreference};

/// Reads /proc/cpuinfo independently of the crate: model name, processor count, flags.
fn proc_cpuinfo() -> (Option<String>, u32, BTreeSet<String>) {
    let text = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo on Linux");
    let mut model = None;
    let mut processors = 0;
    let mut flags = BTreeSet::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => processors += 1,
            "model name" if model.is_none() => model = Some(value.trim().to_owned()),
            "flags" | "Features" => flags.extend(value.split_whitespace().map(str::to_owned)),
            _ => {}
        }
    }
    (model, processors, flags)
}

#[tokio::test]
async fn cpu_report_matches_proc_cpuinfo() {
    let report = snakepit_hardware::detect().await;
    let (model, processors, flags) = proc_cpuinfo();
    assert_eq!(
        report.cpu.model,
        model.unwrap_or_else(|| "unknown".to_owned())
    );
    assert_eq!(report.cpu.threads, processors);
    assert!(report.cpu.cores >= 1 && report.cpu.cores <= report.cpu.threads);
    for feature in CpuFeature::ALL {
        let flag_present = match feature {
            CpuFeature::Neon => flags.contains("asimd") || flags.contains("neon"),
            other => flags.contains(other.as_str()),
        };
        assert_eq!(report.cpu.has(feature), flag_present, "feature {feature}");
    }
    let caps = snakepit_hardware::capabilities().await;
    assert_eq!(caps.avx, flags.contains("avx"));
    assert_eq!(caps.avx2, flags.contains("avx2"));
    assert_eq!(caps.avx512, flags.contains("avx512f"));
}

#[tokio::test]
async fn memory_matches_proc_meminfo() {
    let report = snakepit_hardware::detect().await;
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(report.cpu.memory_total_mb, kib / 1024);
}

#[tokio::test]
async fn global_api_agrees_with_the_report() {
    let report = snakepit_hardware::detect().await;
    let auto = snakepit_hardware::select(DevicePreference::Auto)
        .await
        .unwrap();
    assert_eq!(auto, report.select(DevicePreference::Auto).unwrap());
    assert_eq!(auto.accelerator(), report.accelerator);
    assert_eq!(
        snakepit_hardware::select_with_fallback(&[DevicePreference::Cpu])
            .await
            .unwrap(),
        Device::Cpu
    );
    let identity = snakepit_hardware::identity().await;
    assert_eq!(identity, report.identity());
    let mut sorted = identity.cpu_features.clone();
    sorted.sort();
    assert_eq!(identity.cpu_features, sorted);
    let cpu = snakepit_hardware::device_info(Device::Cpu).await.unwrap();
    assert_eq!(cpu.name, report.cpu.model);
}

#[tokio::test]
async fn report_round_trips_through_json() {
    let report = snakepit_hardware::detect().await;
    let json = serde_json::to_string(&*report).unwrap();
    let back: snakepit_hardware::HardwareReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, *report);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(value["cpu"]["features"].is_array());
    assert!(value["platform"].as_str().unwrap().starts_with("linux-"));
}
