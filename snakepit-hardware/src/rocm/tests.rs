//! Tests for the rocm-smi JSON parser on recorded output.

use super::*;

#[test]
fn one_gpu_gives_name_and_memory_in_mib() {
    let query = parse_rocm_smi(include_str!("../../tests/fixtures/rocm_smi_one_gpu.json")).unwrap();
    assert_eq!(
        query.devices,
        vec![RocmDevice {
            id: 0,
            name: "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]".to_owned(),
            memory_total_mb: Some(16368),
            memory_free_mb: Some(16356),
        }]
    );
    assert_eq!(query.driver_version, None);
}

#[test]
fn two_gpus_after_a_banner_are_listed_in_card_order_with_driver_version() {
    let query =
        parse_rocm_smi(include_str!("../../tests/fixtures/rocm_smi_two_gpus.json")).unwrap();
    let ids: Vec<u32> = query.devices.iter().map(|d| d.id).collect();
    assert_eq!(ids, [0, 1]);
    assert!(query.devices.iter().all(|d| d.name == "AMD Instinct MI210"));
    assert_eq!(query.devices[1].memory_total_mb, Some(65520));
    assert_eq!(query.devices[1].memory_free_mb, Some(32752));
    assert_eq!(query.driver_version.as_deref(), Some("6.3.6"));
}

#[test]
fn empty_output_and_empty_object_list_no_gpu() {
    assert!(parse_rocm_smi("").unwrap().devices.is_empty());
    assert!(parse_rocm_smi("{}").unwrap().devices.is_empty());
}

#[test]
fn output_without_json_is_an_error_quoting_it() {
    let err = parse_rocm_smi("ERROR: GPU[0] : Unable to open device\n").unwrap_err();
    assert!(err.reason.contains("Unable to open device"), "{err}");
}

#[test]
fn truncated_json_is_an_error() {
    let err = parse_rocm_smi("{\"card0\": {\"Card series\": ").unwrap_err();
    assert!(err.reason.starts_with("invalid JSON"), "{err}");
}

#[test]
fn non_numeric_vram_is_an_error_naming_the_card() {
    let err = parse_rocm_smi(r#"{"card1": {"VRAM Total Memory (B)": "lots"}}"#).unwrap_err();
    assert!(err.reason.contains("card1"), "{err}");
}
