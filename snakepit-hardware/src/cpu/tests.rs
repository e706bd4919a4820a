//! Tests for the CPU parsers on recorded procfs and sysctl output.

use super::*;

#[test]
fn cpuinfo_with_two_sockets_counts_cores_per_socket() {
    let facts = parse_cpuinfo(include_str!(
        "../../tests/fixtures/proc_cpuinfo_two_sockets.txt"
    ));
    assert_eq!(
        facts.model.as_deref(),
        Some("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz")
    );
    assert_eq!(facts.threads, Some(4));
    assert_eq!(facts.cores, Some(2));
    let features = facts.features.unwrap_or_default();
    for expected in [
        CpuFeature::Sse4_1,
        CpuFeature::Sse4_2,
        CpuFeature::Avx,
        CpuFeature::Avx2,
        CpuFeature::Fma,
        CpuFeature::Avx512f,
        CpuFeature::Avx512Vnni,
    ] {
        assert!(features.contains(&expected), "missing {expected}");
    }
    assert!(!features.contains(&CpuFeature::Neon));
    assert!(!features.contains(&CpuFeature::Avx512Bf16));
    assert!(
        features.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates"
    );
}

#[test]
fn cpuinfo_on_arm_maps_asimd_to_neon_and_has_no_model_name() {
    let facts = parse_cpuinfo(include_str!("../../tests/fixtures/proc_cpuinfo_arm64.txt"));
    assert_eq!(facts.model, None);
    assert_eq!(facts.threads, Some(2));
    assert_eq!(facts.cores, None);
    assert_eq!(facts.features, Some(vec![CpuFeature::Neon]));
}

#[test]
fn merge_uses_threads_for_cores_when_cpuinfo_has_no_core_ids() {
    let mut info = fallback_info();
    merge(
        &mut info,
        parse_cpuinfo(include_str!("../../tests/fixtures/proc_cpuinfo_arm64.txt")),
    );
    assert_eq!((info.cores, info.threads), (2, 2));
    assert_eq!(info.model, "unknown");
}

#[test]
fn meminfo_total_is_converted_to_mib() {
    let text = include_str!("../../tests/fixtures/proc_meminfo.txt");
    assert_eq!(parse_meminfo(text), Some(32000));
    assert_eq!(parse_meminfo("MemFree: 12 kB\n"), None);
}

#[test]
fn sysctl_cpu_output_gives_model_counts_and_memory() {
    let facts = parse_sysctl_cpu("Apple M2 Pro\n10\n10\n34359738368\n");
    assert_eq!(facts.model.as_deref(), Some("Apple M2 Pro"));
    assert_eq!(facts.cores, Some(10));
    assert_eq!(facts.threads, Some(10));
    assert_eq!(facts.memory_total_mb, Some(32768));
}

#[test]
fn sysctl_cpu_output_with_non_numeric_counts_leaves_them_unknown() {
    let facts = parse_sysctl_cpu("sysctl: unknown oid\nx\ny\n");
    assert_eq!(facts.cores, None);
    assert_eq!(facts.threads, None);
    assert_eq!(facts.memory_total_mb, None);
}
