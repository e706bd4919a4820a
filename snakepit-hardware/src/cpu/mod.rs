//! CPU detection: model, cores, threads, SIMD features and memory, from procfs, sysctl or std.

use std::collections::BTreeSet;

use crate::config::{DetectorConfig, Tool};
use crate::report::{CpuFeature, CpuInfo, Diagnostic};
use crate::tool::run_tool;

/// Detects the CPU. Always returns an answer; what could not be learned is reported as diagnostics.
pub(crate) async fn detect(config: &DetectorConfig) -> (CpuInfo, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut info = fallback_info();
    if config.os == "linux" {
        match tokio::fs::read_to_string(&config.cpuinfo_path).await {
            Ok(text) => merge(&mut info, parse_cpuinfo(&text)),
            Err(err) => diagnostics.push(Diagnostic::new(
                config.cpuinfo_path.display().to_string(),
                format!("could not be read: {err}; CPU model and features come from the running process instead"),
            )),
        }
        match tokio::fs::read_to_string(&config.meminfo_path).await {
            Ok(text) => info.memory_total_mb = parse_meminfo(&text).unwrap_or(0),
            Err(err) => diagnostics.push(Diagnostic::new(
                config.meminfo_path.display().to_string(),
                format!("could not be read: {err}; memory is reported as 0"),
            )),
        }
    } else if config.os == "macos" {
        let keys = [
            "machdep.cpu.brand_string",
            "hw.physicalcpu",
            "hw.logicalcpu",
            "hw.memsize",
        ];
        match run_tool(config, Tool::Sysctl, &[&["-n"][..], &keys[..]].concat()).await {
            Ok(out) => merge(&mut info, parse_sysctl_cpu(&out.stdout)),
            Err(failure) => diagnostics.extend(failure.diagnostic(Tool::Sysctl)),
        }
    }
    (info, diagnostics)
}

/// What the CPU looks like from inside the process, used when the system says nothing better.
fn fallback_info() -> CpuInfo {
    let threads = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    CpuInfo {
        cores: threads,
        threads,
        model: "unknown".to_owned(),
        features: runtime_features(),
        memory_total_mb: 0,
    }
}

/// What a system description told about the CPU; `None`/empty fields keep the fallback's value.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuFacts {
    pub(crate) model: Option<String>,
    pub(crate) cores: Option<u32>,
    pub(crate) threads: Option<u32>,
    /// `None` when the description lists no flags at all.
    pub(crate) features: Option<Vec<CpuFeature>>,
    pub(crate) memory_total_mb: Option<u64>,
}

fn merge(info: &mut CpuInfo, facts: CpuFacts) {
    if let Some(model) = facts.model {
        info.model = model;
    }
    if let Some(threads) = facts.threads {
        info.threads = threads;
    }
    info.cores = facts.cores.unwrap_or(info.threads);
    if let Some(features) = facts.features {
        info.features = features;
    }
    if let Some(mb) = facts.memory_total_mb {
        info.memory_total_mb = mb;
    }
}

/// Parses Linux `/proc/cpuinfo` (x86 and ARM layouts).
pub(crate) fn parse_cpuinfo(text: &str) -> CpuFacts {
    let mut facts = CpuFacts::default();
    let mut threads = 0u32;
    let mut physical_id = None;
    let mut core_pairs = BTreeSet::new();
    let mut features: Option<BTreeSet<CpuFeature>> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => {
                threads += 1;
                physical_id = None;
            }
            "model name" | "Model" | "Hardware" if facts.model.is_none() && !value.is_empty() => {
                facts.model = Some(value.to_owned());
            }
            "physical id" => physical_id = Some(value.to_owned()),
            "core id" => {
                core_pairs.insert((physical_id.clone().unwrap_or_default(), value.to_owned()));
            }
            "flags" | "Features" => {
                let set = features.get_or_insert_with(BTreeSet::new);
                set.extend(value.split_whitespace().filter_map(CpuFeature::from_flag));
            }
            _ => {}
        }
    }
    if threads > 0 {
        facts.threads = Some(threads);
    }
    if !core_pairs.is_empty() {
        facts.cores = u32::try_from(core_pairs.len()).ok();
    }
    facts.features = features.map(|set| set.into_iter().collect());
    facts
}

/// Parses the `MemTotal` line of Linux `/proc/meminfo` into MiB.
pub(crate) fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// Parses `sysctl -n machdep.cpu.brand_string hw.physicalcpu hw.logicalcpu hw.memsize`.
pub(crate) fn parse_sysctl_cpu(text: &str) -> CpuFacts {
    let mut lines = text.lines().map(str::trim);
    let model = lines.next().filter(|l| !l.is_empty()).map(str::to_owned);
    let cores = lines.next().and_then(|l| l.parse().ok());
    let threads = lines.next().and_then(|l| l.parse().ok());
    let memory_total_mb = lines
        .next()
        .and_then(|l| l.parse::<u64>().ok())
        .map(|bytes| bytes / (1024 * 1024));
    CpuFacts {
        model,
        cores,
        threads,
        features: None,
        memory_total_mb,
    }
}

/// The features the running CPU reports to this process.
fn runtime_features() -> Vec<CpuFeature> {
    let mut found = Vec::new();
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        let checks = [
            (CpuFeature::Sse4_1, is_x86_feature_detected!("sse4.1")),
            (CpuFeature::Sse4_2, is_x86_feature_detected!("sse4.2")),
            (CpuFeature::Avx, is_x86_feature_detected!("avx")),
            (CpuFeature::Avx2, is_x86_feature_detected!("avx2")),
            (CpuFeature::Fma, is_x86_feature_detected!("fma")),
            (CpuFeature::Avx512f, is_x86_feature_detected!("avx512f")),
            (CpuFeature::Avx512cd, is_x86_feature_detected!("avx512cd")),
            (CpuFeature::Avx512dq, is_x86_feature_detected!("avx512dq")),
            (CpuFeature::Avx512bw, is_x86_feature_detected!("avx512bw")),
            (CpuFeature::Avx512vl, is_x86_feature_detected!("avx512vl")),
        ];
        found.extend(checks.into_iter().filter(|(_, on)| *on).map(|(f, _)| f));
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            found.push(CpuFeature::Neon);
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests;
