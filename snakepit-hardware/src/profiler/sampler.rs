//! Where GPU samples come from: the `GpuSampler` trait and its `nvidia-smi` implementation.

use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{DetectorConfig, Tool};
use crate::cuda::{parse_index, parse_number, split_record, QUERY_FORMAT};
use crate::error::HardwareError;
use crate::select::Device;
use crate::tool::{reported, run_tool, summarize, ToolFailure, UnexpectedOutput};

/// The fields asked of `nvidia-smi --query-gpu` for a sample, in order.
const SAMPLE_FIELDS: &str =
    "index,name,memory.used,memory.total,utilization.gpu,temperature.gpu,power.draw";

/// One reading of one GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    /// The GPU sampled.
    pub device: Device,
    /// Its product name.
    pub name: String,
    /// Memory in use, in MiB.
    pub memory_used_mb: Option<u64>,
    /// Total memory, in MiB.
    pub memory_total_mb: Option<u64>,
    /// Utilisation in percent.
    pub utilization_percent: Option<u32>,
    /// Temperature in degrees Celsius.
    pub temperature_c: Option<u32>,
    /// Power draw in watts.
    pub power_w: Option<f64>,
    /// When the sample was taken, in milliseconds since the Unix epoch.
    pub sampled_at_unix_ms: u64,
}

/// The future a [`GpuSampler`] returns.
pub type SampleFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<GpuSample>, HardwareError>> + Send + 'a>>;

/// Something that reads every GPU once; the profiler calls it on each tick.
pub trait GpuSampler: Send + Sync + 'static {
    /// Reads every GPU.
    ///
    /// # Errors
    /// [`HardwareError::NoGpu`] when there is nothing to sample or the reading failed.
    fn sample(&self) -> SampleFuture<'_>;
}

/// Samples NVIDIA GPUs with `nvidia-smi --query-gpu`.
#[derive(Debug, Clone, Default)]
pub struct NvidiaSmiSampler {
    config: DetectorConfig,
}

impl NvidiaSmiSampler {
    /// Creates a sampler that finds and runs `nvidia-smi` as `config` says.
    pub fn new(config: DetectorConfig) -> Self {
        Self { config }
    }
}

impl GpuSampler for NvidiaSmiSampler {
    fn sample(&self) -> SampleFuture<'_> {
        Box::pin(async move {
            let args = [&format!("--query-gpu={SAMPLE_FIELDS}"), QUERY_FORMAT];
            let output = run_tool(&self.config, Tool::NvidiaSmi, &args)
                .await
                .map_err(|failure| HardwareError::NoGpu {
                    reason: match failure {
                        ToolFailure::NotFound => {
                            "nvidia-smi is not installed (or not on the search path)".to_owned()
                        }
                        other => format!("nvidia-smi {other}"),
                    },
                })?;
            let samples = parse_samples(&output.stdout, unix_ms_now()).map_err(|err| {
                HardwareError::NoGpu {
                    reason: format!("nvidia-smi {err}"),
                }
            })?;
            if samples.is_empty() {
                return Err(HardwareError::NoGpu {
                    reason: "nvidia-smi lists no GPU".to_owned(),
                });
            }
            Ok(samples)
        })
    }
}

/// Returns the current time in milliseconds since the Unix epoch.
pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Parses `nvidia-smi --query-gpu=<SAMPLE_FIELDS> --format=csv,noheader,nounits` output.
pub(crate) fn parse_samples(text: &str, now_ms: u64) -> Result<Vec<GpuSample>, UnexpectedOutput> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with("No devices were found") {
        return Ok(Vec::new());
    }
    let mut samples = Vec::new();
    for line in trimmed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let record = split_record(line, 5).ok_or_else(|| {
            UnexpectedOutput::new(format!(
                "expected 7 comma-separated fields in '{}'",
                summarize(line)
            ))
        })?;
        let id = parse_index(record.index, line)?;
        let power_w = match reported(record.trailing[4]) {
            None => None,
            Some(value) => Some(value.parse::<f64>().map_err(|_| {
                UnexpectedOutput::new(format!("power.draw '{value}' is not a number in '{line}'"))
            })?),
        };
        samples.push(GpuSample {
            device: Device::Cuda(id),
            name: record.name,
            memory_used_mb: parse_number(record.trailing[0], "memory.used", line)?,
            memory_total_mb: parse_number(record.trailing[1], "memory.total", line)?,
            utilization_percent: parse_number(record.trailing[2], "utilization.gpu", line)?,
            temperature_c: parse_number(record.trailing[3], "temperature.gpu", line)?,
            power_w,
            sampled_at_unix_ms: now_ms,
        });
    }
    Ok(samples)
}
