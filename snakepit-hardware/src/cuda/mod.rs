//! NVIDIA detection: parses `nvidia-smi` queries, the CUDA version and the cuDNN header.

use crate::config::{DetectorConfig, Tool};
use crate::report::{CudaDevice, CudaInfo, Diagnostic};
use crate::tool::{reported, run_tool, summarize, ToolFailure, UnexpectedOutput};

/// The fields asked of `nvidia-smi --query-gpu`, in order.
pub(crate) const QUERY_FIELDS: &str =
    "index,name,memory.total,memory.free,compute_cap,utilization.gpu,driver_version";
/// The same without `compute_cap`, which drivers older than 510 do not know.
const LEGACY_QUERY_FIELDS: &str =
    "index,name,memory.total,memory.free,utilization.gpu,driver_version";
/// The `--format` argument every query uses.
pub(crate) const QUERY_FORMAT: &str = "--format=csv,noheader,nounits";

/// The GPUs and driver version a `--query-gpu` run listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GpuQuery {
    pub(crate) devices: Vec<CudaDevice>,
    pub(crate) driver_version: String,
}

/// Detects NVIDIA GPUs; `None` with no diagnostic when `nvidia-smi` is not installed.
pub(crate) async fn detect(config: &DetectorConfig) -> (Option<CudaInfo>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let query = match query_gpus(config).await {
        Ok(query) => query,
        Err(diagnostic) => {
            diagnostics.extend(diagnostic);
            return (None, diagnostics);
        }
    };
    if query.devices.is_empty() {
        diagnostics.push(Diagnostic::new(
            Tool::NvidiaSmi.program(),
            "is installed but lists no GPU; CUDA is left out",
        ));
        return (None, diagnostics);
    }
    let version = cuda_version(config, &mut diagnostics).await;
    let cudnn_version = cudnn_version(config).await;
    let info = CudaInfo {
        version,
        driver_version: query.driver_version,
        cudnn_version,
        devices: query.devices,
    };
    (Some(info), diagnostics)
}

/// Runs the GPU query, retrying without `compute_cap` for old drivers.
async fn query_gpus(config: &DetectorConfig) -> Result<GpuQuery, Option<Diagnostic>> {
    let mut with_compute_cap = true;
    let mut result = run_tool(
        config,
        Tool::NvidiaSmi,
        &[&format!("--query-gpu={QUERY_FIELDS}"), QUERY_FORMAT],
    )
    .await;
    if let Err(ToolFailure::Failed { output, .. }) = &result {
        if output.contains("compute_cap") {
            with_compute_cap = false;
            result = run_tool(
                config,
                Tool::NvidiaSmi,
                &[&format!("--query-gpu={LEGACY_QUERY_FIELDS}"), QUERY_FORMAT],
            )
            .await;
        }
    }
    let output = result.map_err(|failure| failure.diagnostic(Tool::NvidiaSmi))?;
    parse_gpu_query(&output.stdout, with_compute_cap).map_err(|err| {
        Some(Diagnostic::new(
            Tool::NvidiaSmi.program(),
            format!("{err}; CUDA is left out"),
        ))
    })
}

/// Parses `nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits` output.
pub(crate) fn parse_gpu_query(
    text: &str,
    with_compute_cap: bool,
) -> Result<GpuQuery, UnexpectedOutput> {
    let trimmed = text.trim();
    if trimmed.starts_with("NVIDIA-SMI has failed") {
        return Err(UnexpectedOutput::new(summarize(trimmed)));
    }
    if trimmed.is_empty() || trimmed.starts_with("No devices were found") {
        return Ok(GpuQuery {
            devices: Vec::new(),
            driver_version: String::new(),
        });
    }
    let trailing = if with_compute_cap { 5 } else { 4 };
    let mut devices = Vec::new();
    let mut driver_version = String::new();
    for line in trimmed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let record = split_record(line, trailing).ok_or_else(|| {
            UnexpectedOutput::new(format!(
                "expected {} comma-separated fields in '{}'",
                trailing + 2,
                summarize(line)
            ))
        })?;
        let id = parse_index(record.index, line)?;
        let (compute_capability, rest) = if with_compute_cap {
            (
                reported(record.trailing[2]).map(str::to_owned),
                &record.trailing[3..],
            )
        } else {
            (None, &record.trailing[2..])
        };
        devices.push(CudaDevice {
            id,
            name: record.name,
            memory_total_mb: parse_number(record.trailing[0], "memory.total", line)?,
            memory_free_mb: parse_number(record.trailing[1], "memory.free", line)?,
            compute_capability,
            utilization_percent: parse_number(rest[0], "utilization.gpu", line)?,
        });
        if driver_version.is_empty() {
            driver_version = reported(rest[1]).unwrap_or_default().to_owned();
        }
    }
    devices.sort_by_key(|d| d.id);
    Ok(GpuQuery {
        devices,
        driver_version,
    })
}

/// One CSV line: index first, then the name (which may itself contain commas), then fixed fields.
pub(crate) struct Record<'a> {
    pub(crate) index: &'a str,
    pub(crate) name: String,
    pub(crate) trailing: Vec<&'a str>,
}

/// Splits a line into index, name and `trailing` fields counted from the end.
pub(crate) fn split_record(line: &str, trailing: usize) -> Option<Record<'_>> {
    let (index, rest) = line.split_once(',')?;
    // The name ends at the `trailing`-th comma counted from the end of the line.
    let name_end = rest.rmatch_indices(',').nth(trailing.checked_sub(1)?)?.0;
    let name = rest[..name_end].trim();
    Some(Record {
        index: index.trim(),
        name: name.to_owned(),
        trailing: rest[name_end + 1..].split(',').map(str::trim).collect(),
    })
}

/// Parses a GPU index.
pub(crate) fn parse_index(value: &str, line: &str) -> Result<u32, UnexpectedOutput> {
    value.parse().map_err(|_| {
        UnexpectedOutput::new(format!(
            "'{value}' is not a GPU index in '{}'",
            summarize(line)
        ))
    })
}

/// Parses a number, treating `[N/A]` and friends as unknown; accepts `12.0` for integer fields.
pub(crate) fn parse_number<T: TryFrom<u64>>(
    value: &str,
    field: &str,
    line: &str,
) -> Result<Option<T>, UnexpectedOutput> {
    let Some(value) = reported(value) else {
        return Ok(None);
    };
    let whole = value
        .parse::<u64>()
        .ok()
        .or_else(|| {
            value
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f.round() as u64)
        })
        .and_then(|n| T::try_from(n).ok());
    whole.map(Some).ok_or_else(|| {
        UnexpectedOutput::new(format!(
            "{field} '{value}' is not a number in '{}'",
            summarize(line)
        ))
    })
}

/// Finds the CUDA version from the `nvidia-smi` banner, else from `nvcc --version`.
async fn cuda_version(
    config: &DetectorConfig,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    match run_tool(config, Tool::NvidiaSmi, &[]).await {
        Ok(out) => {
            if let Some(version) = parse_smi_cuda_version(&out.stdout) {
                return Some(version);
            }
        }
        Err(failure) => diagnostics.extend(failure.diagnostic(Tool::NvidiaSmi)),
    }
    match run_tool(config, Tool::Nvcc, &["--version"]).await {
        Ok(out) => parse_nvcc_version(&out.stdout),
        Err(failure) => {
            diagnostics.extend(failure.diagnostic(Tool::Nvcc));
            None
        }
    }
}

/// Reads `CUDA Version: 12.2` from the `nvidia-smi` banner.
pub(crate) fn parse_smi_cuda_version(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("CUDA Version:")?;
    version_token(rest)
}

/// Reads `release 12.1,` from `nvcc --version`.
pub(crate) fn parse_nvcc_version(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("release ")?;
    version_token(rest)
}

fn version_token(text: &str) -> Option<String> {
    let token: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let token = token.trim_end_matches('.');
    (!token.is_empty() && token.starts_with(|c: char| c.is_ascii_digit())).then(|| token.to_owned())
}

/// Looks for the cuDNN version header in the configured include folders.
async fn cudnn_version(config: &DetectorConfig) -> Option<String> {
    for dir in &config.cudnn_include_dirs {
        for file in ["cudnn_version.h", "cudnn.h"] {
            if let Ok(text) = tokio::fs::read_to_string(dir.join(file)).await {
                if let Some(version) = parse_cudnn_header(&text) {
                    return Some(version);
                }
            }
        }
    }
    None
}

/// Reads `CUDNN_MAJOR`, `CUDNN_MINOR` and `CUDNN_PATCHLEVEL` from a cuDNN header.
pub(crate) fn parse_cudnn_header(text: &str) -> Option<String> {
    let define = |name: &str| {
        text.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("#define") && words.next() == Some(name))
                .then(|| words.next()?.parse::<u32>().ok())
                .flatten()
        })
    };
    let major = define("CUDNN_MAJOR")?;
    let minor = define("CUDNN_MINOR")?;
    Some(match define("CUDNN_PATCHLEVEL") {
        Some(patch) => format!("{major}.{minor}.{patch}"),
        None => format!("{major}.{minor}"),
    })
}

#[cfg(test)]
mod tests;
