//! Detection end to end with fake nvidia-smi, nvcc, rocm-smi and sysctl on a private search path.

mod support;

use std::time::{Duration, Instant};

use snakepit_hardware::{detect_uncached, Accelerator, Device, DevicePreference, Hardware};
use support::{fixture, FakeTools};

fn diagnostic_from<'a>(
    report: &'a snakepit_hardware::HardwareReport,
    source: &str,
) -> Option<&'a str> {
    report
        .diagnostics
        .iter()
        .find(|d| d.source == source)
        .map(|d| d.message.as_str())
}

#[tokio::test]
async fn no_vendor_tools_means_cpu_only_without_diagnostics() {
    let tools = FakeTools::new();
    let report = detect_uncached(&tools.config()).await;
    assert_eq!(report.accelerator, Accelerator::Cpu);
    assert!(report.cuda.is_none() && report.rocm.is_none() && report.mps.is_none());
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    assert_eq!(report.platform, format!("linux-{}", std::env::consts::ARCH));
}

#[tokio::test]
async fn one_nvidia_gpu_gives_cuda_with_banner_version_and_cudnn() {
    let tools = FakeTools::new();
    tools.nvidia_smi("nvidia_smi_query_one_gpu.csv", "nvidia_smi_header.txt");
    let mut config = tools.config();
    config.cudnn_include_dirs = vec![fixture("")];
    let report = detect_uncached(&config).await;
    assert_eq!(report.accelerator, Accelerator::Cuda);
    let cuda = report.cuda.as_ref().unwrap();
    assert_eq!(cuda.version.as_deref(), Some("12.2"));
    assert_eq!(cuda.driver_version, "535.104.05");
    assert_eq!(cuda.cudnn_version.as_deref(), Some("8.9.2"));
    assert_eq!(cuda.devices[0].name, "NVIDIA GeForce RTX 3080");
    let caps = report.capabilities();
    assert!(caps.cuda && caps.cudnn);
    assert_eq!(caps.cuda_version.as_deref(), Some("12.2"));
    assert_eq!(
        report.select(DevicePreference::Auto).unwrap(),
        Device::Cuda(0)
    );
    assert_eq!(report.identity().gpu_count, 1);
}

#[tokio::test]
async fn cuda_version_falls_back_to_nvcc_when_the_banner_has_none() {
    let tools = FakeTools::new();
    tools
        .nvidia_smi("nvidia_smi_query_four_gpus.csv", "nvidia_smi_garbage.txt")
        .add(
            "nvcc",
            &format!("cat '{}'", fixture("nvcc_version.txt").display()),
        );
    let report = detect_uncached(&tools.config()).await;
    let cuda = report.cuda.as_ref().unwrap();
    assert_eq!(cuda.version.as_deref(), Some("12.1"));
    assert_eq!(cuda.devices.len(), 4);
    assert_eq!(report.gpu_count(), 4);
}

#[tokio::test]
async fn driver_failure_leaves_cuda_out_with_the_drivers_message() {
    let tools = FakeTools::new();
    let message = fixture("nvidia_smi_driver_failure.txt");
    tools.add(
        "nvidia-smi",
        &format!("cat '{}'\nexit 9", message.display()),
    );
    let report = detect_uncached(&tools.config()).await;
    assert!(report.cuda.is_none());
    assert_eq!(report.accelerator, Accelerator::Cpu);
    let diagnostic = diagnostic_from(&report, "nvidia-smi").unwrap();
    assert!(diagnostic.contains("exit status: 9"), "{diagnostic}");
    assert!(
        diagnostic.contains("couldn't communicate with the NVIDIA driver"),
        "{diagnostic}"
    );
}

#[tokio::test]
async fn garbage_output_leaves_cuda_out_with_a_diagnostic() {
    let tools = FakeTools::new();
    tools.nvidia_smi("nvidia_smi_garbage.txt", "nvidia_smi_garbage.txt");
    let report = detect_uncached(&tools.config()).await;
    assert!(report.cuda.is_none());
    let diagnostic = diagnostic_from(&report, "nvidia-smi").unwrap();
    assert!(
        diagnostic.contains("printed something unexpected"),
        "{diagnostic}"
    );
}

#[tokio::test]
async fn empty_output_leaves_cuda_out_saying_no_gpu_is_listed() {
    let tools = FakeTools::new();
    tools.add("nvidia-smi", "exit 0");
    let report = detect_uncached(&tools.config()).await;
    assert!(report.cuda.is_none());
    let diagnostic = diagnostic_from(&report, "nvidia-smi").unwrap();
    assert!(diagnostic.contains("lists no GPU"), "{diagnostic}");
}

#[tokio::test]
async fn old_driver_without_compute_cap_is_queried_again_without_it() {
    let tools = FakeTools::new();
    tools.add(
        "nvidia-smi",
        "case \"$*\" in\n  *compute_cap*) echo 'Field \"compute_cap\" is not a valid field to query.'; exit 2 ;;\n  *--query-gpu*) echo '0, Tesla P100-PCIE-16GB, 16280, 16000, 0, 470.57.02' ;;\n  *) echo 'CUDA Version: 11.4' ;;\nesac",
    );
    let report = detect_uncached(&tools.config()).await;
    let cuda = report.cuda.as_ref().unwrap();
    assert_eq!(cuda.devices[0].name, "Tesla P100-PCIE-16GB");
    assert_eq!(cuda.devices[0].compute_capability, None);
    assert_eq!(cuda.version.as_deref(), Some("11.4"));
}

#[tokio::test]
async fn a_tool_that_hangs_is_killed_at_the_timeout_and_reported() {
    let tools = FakeTools::new();
    tools
        .add("nvidia-smi", "exec sleep 30")
        .add("rocm-smi", "exec sleep 30");
    let config = tools.config().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let report = detect_uncached(&config).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(report.cuda.is_none() && report.rocm.is_none());
    for tool in ["nvidia-smi", "rocm-smi"] {
        let diagnostic = diagnostic_from(&report, tool).unwrap();
        assert!(
            diagnostic.contains("did not answer within 300 ms"),
            "{diagnostic}"
        );
    }
}

#[tokio::test]
async fn rocm_with_two_gpus_gives_rocm_devices_and_version_file() {
    let tools = FakeTools::new();
    let json = fixture("rocm_smi_two_gpus.json");
    tools.add("rocm-smi", &format!("cat '{}'", json.display()));
    let version_file = tools.path().join("version");
    std::fs::write(&version_file, "6.0.2-115\n").unwrap();
    let mut config = tools.config();
    config.rocm_version_files = vec![tools.path().join("missing"), version_file];
    let report = detect_uncached(&config).await;
    assert_eq!(report.accelerator, Accelerator::Rocm);
    let rocm = report.rocm.as_ref().unwrap();
    assert_eq!(rocm.version.as_deref(), Some("6.0.2-115"));
    assert_eq!(rocm.devices.len(), 2);
    assert_eq!(
        report.select(DevicePreference::RocmId(1)).unwrap(),
        Device::Rocm(1)
    );
}

#[tokio::test]
async fn rocm_with_one_gpu_and_no_version_file_has_no_version() {
    let tools = FakeTools::new();
    let json = fixture("rocm_smi_one_gpu.json");
    tools.add("rocm-smi", &format!("cat '{}'", json.display()));
    let report = detect_uncached(&tools.config()).await;
    let rocm = report.rocm.as_ref().unwrap();
    assert_eq!(rocm.version, None);
    assert_eq!(rocm.devices[0].memory_total_mb, Some(16368));
}

#[tokio::test]
async fn cuda_wins_over_rocm_when_both_are_present() {
    let tools = FakeTools::new();
    tools
        .nvidia_smi("nvidia_smi_query_one_gpu.csv", "nvidia_smi_header.txt")
        .add(
            "rocm-smi",
            &format!("cat '{}'", fixture("rocm_smi_one_gpu.json").display()),
        );
    let report = detect_uncached(&tools.config()).await;
    assert_eq!(report.accelerator, Accelerator::Cuda);
    assert_eq!(report.gpu_count(), 2);
}

#[tokio::test]
async fn apple_silicon_gives_mps_through_sysctl() {
    let tools = FakeTools::new();
    tools.add(
        "sysctl",
        "case \"$*\" in\n  *hw.optional.arm64*) echo 1 ;;\n  *physicalcpu*) printf 'Apple M2 Pro\\n10\\n10\\n34359738368\\n' ;;\n  *) printf 'Apple M2 Pro\\n34359738368\\n' ;;\nesac",
    );
    let mut config = tools.config();
    config.os = "macos".to_owned();
    config.arch = "aarch64".to_owned();
    let report = detect_uncached(&config).await;
    assert_eq!(report.platform, "macos-aarch64");
    assert_eq!(report.accelerator, Accelerator::Mps);
    let mps = report.mps.as_ref().unwrap();
    assert!(mps.available);
    assert_eq!(mps.device_name, "Apple M2 Pro");
    assert_eq!(mps.memory_total_mb, 32768);
    assert_eq!(report.cpu.model, "Apple M2 Pro");
    assert_eq!(report.cpu.memory_total_mb, 32768);
    assert_eq!(report.select(DevicePreference::Auto).unwrap(), Device::Mps);
}

#[tokio::test]
async fn cached_detector_runs_tools_once_until_the_cache_is_cleared() {
    let tools = FakeTools::new();
    let log = tools.path().join("calls.log");
    tools.add(
        "nvidia-smi",
        &format!(
            "echo call >> '{}'\ncat '{}'",
            log.display(),
            fixture("nvidia_smi_query_one_gpu.csv").display()
        ),
    );
    let hardware = Hardware::new(tools.config());
    let calls = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let (a, b, c) = tokio::join!(hardware.detect(), hardware.detect(), hardware.detect());
    assert!(std::sync::Arc::ptr_eq(&a, &b) && std::sync::Arc::ptr_eq(&b, &c));
    let after_first = calls();
    assert!(after_first >= 1);
    hardware.detect().await;
    assert_eq!(
        hardware.select(DevicePreference::Cuda).await.unwrap(),
        Device::Cuda(0)
    );
    assert_eq!(calls(), after_first, "cached report reused");
    hardware.clear_cache();
    hardware.detect().await;
    assert_eq!(calls(), after_first * 2, "detected again after clear_cache");
}

#[test]
fn blocking_detection_works_inside_and_outside_a_runtime() {
    let tools = FakeTools::new();
    tools.nvidia_smi("nvidia_smi_query_one_gpu.csv", "nvidia_smi_header.txt");
    let hardware = Hardware::new(tools.config());
    let outside = hardware.detect_blocking();
    assert_eq!(outside.accelerator, Accelerator::Cuda);
    hardware.clear_cache();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let inside = runtime.block_on(async { hardware.detect_blocking() });
    assert_eq!(*inside, *outside);
}
