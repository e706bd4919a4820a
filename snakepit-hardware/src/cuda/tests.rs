//! Tests for the nvidia-smi, nvcc and cuDNN parsers on recorded output.

use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("fixture {path}: {err}"))
}

#[test]
fn query_with_one_gpu_gives_every_field() {
    let query = parse_gpu_query(&fixture("nvidia_smi_query_one_gpu.csv"), true).unwrap();
    assert_eq!(query.driver_version, "535.104.05");
    assert_eq!(
        query.devices,
        vec![CudaDevice {
            id: 0,
            name: "NVIDIA GeForce RTX 3080".to_owned(),
            memory_total_mb: Some(10240),
            memory_free_mb: Some(9800),
            compute_capability: Some("8.6".to_owned()),
            utilization_percent: Some(3),
        }]
    );
}

#[test]
fn query_with_four_gpus_keeps_index_order_and_per_device_values() {
    let query = parse_gpu_query(&fixture("nvidia_smi_query_four_gpus.csv"), true).unwrap();
    let ids: Vec<u32> = query.devices.iter().map(|d| d.id).collect();
    assert_eq!(ids, [0, 1, 2, 3]);
    assert_eq!(query.devices[1].memory_free_mb, Some(60211));
    assert_eq!(query.devices[3].utilization_percent, Some(100));
    assert_eq!(query.driver_version, "550.54.15");
}

#[test]
fn query_with_mig_names_keeps_names_even_with_commas() {
    let query = parse_gpu_query(&fixture("nvidia_smi_query_mig.csv"), true).unwrap();
    assert_eq!(query.devices[0].name, "NVIDIA A100-SXM4-40GB MIG 3g.20gb");
    assert_eq!(query.devices[1].name, "NVIDIA H100 80GB HBM3, MIG 1g.10gb");
    assert_eq!(query.devices[1].compute_capability.as_deref(), Some("9.0"));
    assert_eq!(query.devices[0].utilization_percent, None);
}

#[test]
fn query_with_not_available_fields_reports_them_as_unknown() {
    let query = parse_gpu_query(&fixture("nvidia_smi_query_not_available.csv"), true).unwrap();
    let k80 = &query.devices[0];
    assert_eq!(k80.memory_total_mb, Some(11441));
    assert_eq!(k80.memory_free_mb, None);
    assert_eq!(k80.compute_capability, None);
    assert_eq!(k80.utilization_percent, None);
    assert_eq!(query.devices[1].memory_total_mb, None);
    assert_eq!(query.devices[1].compute_capability.as_deref(), Some("7.5"));
}

#[test]
fn query_without_compute_cap_reads_the_legacy_layout() {
    let query = parse_gpu_query(
        "0, Tesla P100-PCIE-16GB, 16280, 16000, 7, 470.57.02\n",
        false,
    )
    .unwrap();
    assert_eq!(query.devices[0].compute_capability, None);
    assert_eq!(query.devices[0].utilization_percent, Some(7));
    assert_eq!(query.driver_version, "470.57.02");
}

#[test]
fn driver_failure_message_is_an_error_quoting_the_driver() {
    let err = parse_gpu_query(&fixture("nvidia_smi_driver_failure.txt"), true).unwrap_err();
    assert!(
        err.reason
            .contains("couldn't communicate with the NVIDIA driver"),
        "{err}"
    );
}

#[test]
fn empty_output_and_no_devices_message_list_no_gpu() {
    assert!(parse_gpu_query("", true).unwrap().devices.is_empty());
    assert!(parse_gpu_query("\n  \n", true).unwrap().devices.is_empty());
    assert!(parse_gpu_query("No devices were found\n", true)
        .unwrap()
        .devices
        .is_empty());
}

#[test]
fn garbage_output_is_an_error_naming_the_line() {
    let err = parse_gpu_query(&fixture("nvidia_smi_garbage.txt"), true).unwrap_err();
    assert!(err.reason.contains("Segmentation fault"), "{err}");
}

#[test]
fn non_numeric_memory_is_an_error_naming_the_field() {
    let err = parse_gpu_query("0, GPU, lots, 1, 8.0, 1, 535.1\n", true).unwrap_err();
    assert!(err.reason.contains("memory.total 'lots'"), "{err}");
    let err = parse_gpu_query("x, GPU, 1, 1, 8.0, 1, 535.1\n", true).unwrap_err();
    assert!(err.reason.contains("'x' is not a GPU index"), "{err}");
}

#[test]
fn cuda_version_comes_from_the_nvidia_smi_banner() {
    assert_eq!(
        parse_smi_cuda_version(&fixture("nvidia_smi_header.txt")).as_deref(),
        Some("12.2")
    );
    assert_eq!(parse_smi_cuda_version("no banner here"), None);
    assert_eq!(parse_smi_cuda_version("CUDA Version: N/A"), None);
}

#[test]
fn cuda_version_comes_from_nvcc_release_line() {
    assert_eq!(
        parse_nvcc_version(&fixture("nvcc_version.txt")).as_deref(),
        Some("12.1")
    );
    assert_eq!(parse_nvcc_version("bash: nvcc: command not found"), None);
}

#[test]
fn cudnn_version_comes_from_the_header_defines() {
    assert_eq!(
        parse_cudnn_header(&fixture("cudnn_version.h")).as_deref(),
        Some("8.9.2")
    );
    assert_eq!(parse_cudnn_header("#define CUDNN_MAJOR 9\n"), None);
}
