//! Tests for device selection, fallback and the device string form.

use super::*;
use crate::report::{CpuInfo, CudaDevice, CudaInfo, MpsInfo, RocmDevice, RocmInfo};

fn cpu() -> CpuInfo {
    CpuInfo {
        cores: 4,
        threads: 8,
        model: "Test CPU".to_owned(),
        features: vec![],
        memory_total_mb: 16384,
    }
}

fn cuda(ids: &[u32]) -> Option<CudaInfo> {
    Some(CudaInfo {
        version: Some("12.2".to_owned()),
        driver_version: "535.104.05".to_owned(),
        cudnn_version: None,
        devices: ids
            .iter()
            .map(|&id| CudaDevice {
                id,
                name: format!("GPU {id}"),
                memory_total_mb: Some(8192),
                memory_free_mb: Some(4096),
                compute_capability: Some("8.6".to_owned()),
                utilization_percent: None,
            })
            .collect(),
    })
}

fn rocm(ids: &[u32]) -> Option<RocmInfo> {
    Some(RocmInfo {
        version: Some("6.0.2".to_owned()),
        devices: ids
            .iter()
            .map(|&id| RocmDevice {
                id,
                name: format!("MI {id}"),
                memory_total_mb: Some(65520),
                memory_free_mb: None,
            })
            .collect(),
    })
}

fn mps(available: bool) -> Option<MpsInfo> {
    Some(MpsInfo {
        available,
        device_name: "Apple M2".to_owned(),
        memory_total_mb: 16384,
    })
}

fn cpu_only() -> HardwareReport {
    HardwareReport::new("linux-x86_64", cpu(), None, None, None, vec![])
}

fn with_cuda(ids: &[u32]) -> HardwareReport {
    HardwareReport::new("linux-x86_64", cpu(), cuda(ids), None, None, vec![])
}

fn with_rocm(ids: &[u32]) -> HardwareReport {
    HardwareReport::new("linux-x86_64", cpu(), None, rocm(ids), None, vec![])
}

fn with_mps(available: bool) -> HardwareReport {
    HardwareReport::new("macos-aarch64", cpu(), None, None, mps(available), vec![])
}

fn assert_not_available(report: &HardwareReport, preference: DevicePreference) {
    match report.select(preference) {
        Err(HardwareError::DeviceNotAvailable { requested, .. }) => {
            assert_eq!(requested, preference)
        }
        other => panic!("{preference}: expected DeviceNotAvailable, got {other:?}"),
    }
}

#[test]
fn auto_picks_cuda_over_mps_over_rocm_over_cpu() {
    let everything = HardwareReport::new("x", cpu(), cuda(&[2, 3]), rocm(&[0]), mps(true), vec![]);
    assert_eq!(everything.accelerator, Accelerator::Cuda);
    assert_eq!(
        everything.select(DevicePreference::Auto).unwrap(),
        Device::Cuda(2)
    );
    let no_cuda = HardwareReport::new("x", cpu(), None, rocm(&[1]), mps(true), vec![]);
    assert_eq!(no_cuda.select(DevicePreference::Auto).unwrap(), Device::Mps);
    assert_eq!(
        with_rocm(&[1]).select(DevicePreference::Auto).unwrap(),
        Device::Rocm(1)
    );
    assert_eq!(
        cpu_only().select(DevicePreference::Auto).unwrap(),
        Device::Cpu
    );
}

#[test]
fn cpu_is_always_selectable() {
    for report in [cpu_only(), with_cuda(&[0]), with_rocm(&[0]), with_mps(true)] {
        assert_eq!(report.select(DevicePreference::Cpu).unwrap(), Device::Cpu);
    }
}

#[test]
fn cuda_preferences_select_existing_gpus_only() {
    let report = with_cuda(&[0, 1]);
    assert_eq!(
        report.select(DevicePreference::Cuda).unwrap(),
        Device::Cuda(0)
    );
    assert_eq!(
        report.select(DevicePreference::CudaId(1)).unwrap(),
        Device::Cuda(1)
    );
    assert_not_available(&report, DevicePreference::CudaId(2));
    assert_not_available(&cpu_only(), DevicePreference::Cuda);
    assert_not_available(&cpu_only(), DevicePreference::CudaId(0));
    assert_not_available(&with_rocm(&[0]), DevicePreference::Cuda);
}

#[test]
fn rocm_preferences_select_existing_gpus_only() {
    let report = with_rocm(&[0, 1]);
    assert_eq!(
        report.select(DevicePreference::Rocm).unwrap(),
        Device::Rocm(0)
    );
    assert_eq!(
        report.select(DevicePreference::RocmId(1)).unwrap(),
        Device::Rocm(1)
    );
    assert_not_available(&report, DevicePreference::RocmId(5));
    assert_not_available(&cpu_only(), DevicePreference::Rocm);
    assert_not_available(&with_cuda(&[0]), DevicePreference::RocmId(0));
}

#[test]
fn mps_is_selectable_only_when_available() {
    assert_eq!(
        with_mps(true).select(DevicePreference::Mps).unwrap(),
        Device::Mps
    );
    assert_not_available(&with_mps(false), DevicePreference::Mps);
    assert_not_available(&cpu_only(), DevicePreference::Mps);
    assert_eq!(
        with_mps(false).select(DevicePreference::Auto).unwrap(),
        Device::Cpu
    );
}

#[test]
fn not_available_error_lists_what_the_machine_has() {
    let err = with_cuda(&[0])
        .select(DevicePreference::CudaId(3))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "device cuda:3 is not available on this machine (available: cpu, cuda:0); pick one of those or use 'auto'"
    );
}

#[test]
fn fallback_returns_the_first_available_preference() {
    let prefs = [
        DevicePreference::Cuda,
        DevicePreference::Mps,
        DevicePreference::Cpu,
    ];
    assert_eq!(
        with_cuda(&[1]).select_with_fallback(&prefs).unwrap(),
        Device::Cuda(1)
    );
    assert_eq!(
        with_mps(true).select_with_fallback(&prefs).unwrap(),
        Device::Mps
    );
    assert_eq!(
        cpu_only().select_with_fallback(&prefs).unwrap(),
        Device::Cpu
    );
    let rocm_first = [DevicePreference::RocmId(1), DevicePreference::Auto];
    assert_eq!(
        with_rocm(&[0, 1])
            .select_with_fallback(&rocm_first)
            .unwrap(),
        Device::Rocm(1)
    );
    assert_eq!(
        with_cuda(&[0]).select_with_fallback(&rocm_first).unwrap(),
        Device::Cuda(0)
    );
}

#[test]
fn fallback_without_an_available_preference_is_no_device() {
    let prefs = [DevicePreference::Cuda, DevicePreference::Mps];
    match cpu_only().select_with_fallback(&prefs) {
        Err(HardwareError::NoDevice { tried, available }) => {
            assert_eq!(tried, prefs);
            assert_eq!(available, [Device::Cpu]);
        }
        other => panic!("expected NoDevice, got {other:?}"),
    }
    assert!(matches!(
        with_cuda(&[0]).select_with_fallback(&[]),
        Err(HardwareError::NoDevice { .. })
    ));
}

#[test]
fn devices_format_and_parse_round_trip() {
    for device in [
        Device::Cpu,
        Device::Mps,
        Device::Cuda(0),
        Device::Rocm(1),
        Device::Cuda(12),
    ] {
        let text = device.to_string();
        assert_eq!(text.parse::<Device>().unwrap(), device);
    }
    assert_eq!(Device::Cuda(0).to_string(), "cuda:0");
    assert_eq!(Device::Rocm(1).to_string(), "rocm:1");
    assert_eq!(" CUDA ".parse::<Device>().unwrap(), Device::Cuda(0));
    assert_eq!("rocm".parse::<Device>().unwrap(), Device::Rocm(0));
}

#[test]
fn preferences_format_and_parse_round_trip() {
    for pref in [
        DevicePreference::Auto,
        DevicePreference::Cpu,
        DevicePreference::Cuda,
        DevicePreference::CudaId(3),
        DevicePreference::Mps,
        DevicePreference::Rocm,
        DevicePreference::RocmId(0),
    ] {
        assert_eq!(pref.to_string().parse::<DevicePreference>().unwrap(), pref);
    }
}

#[test]
fn bad_device_strings_are_rejected_with_the_reason() {
    let cases = [
        ("gpu:0", "'gpu' is not a device kind"),
        ("cuda:x", "'x' is not a device index"),
        ("cuda:-1", "'-1' is not a device index"),
        ("cpu:0", "'cpu' takes no device index"),
        ("", "it is empty"),
        ("auto", "'auto' is a preference, not a device"),
    ];
    for (input, reason) in cases {
        match input.parse::<Device>() {
            Err(HardwareError::InvalidDevice {
                input: got,
                reason: why,
            }) => {
                assert_eq!(got, input);
                assert_eq!(why, reason, "for '{input}'");
            }
            other => panic!("'{input}': expected InvalidDevice, got {other:?}"),
        }
    }
}

#[test]
fn devices_serialize_as_strings() {
    let json = serde_json::to_string(&[Device::Cuda(1), Device::Cpu]).unwrap();
    assert_eq!(json, r#"["cuda:1","cpu"]"#);
    let back: Vec<Device> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, [Device::Cuda(1), Device::Cpu]);
    assert!(serde_json::from_str::<Device>(r#""tpu:0""#).is_err());
}

#[test]
fn device_info_describes_gpus_and_rejects_missing_ones() {
    let report = with_cuda(&[0]);
    let info = report.device_info(Device::Cuda(0)).unwrap();
    assert_eq!(info.name, "GPU 0");
    assert_eq!(info.compute_capability.as_deref(), Some("8.6"));
    assert_eq!(report.device_info(Device::Cpu).unwrap().name, "Test CPU");
    assert!(matches!(
        report.device_info(Device::Rocm(0)),
        Err(HardwareError::DeviceNotAvailable { .. })
    ));
}
