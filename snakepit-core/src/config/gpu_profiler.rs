//! The `gpu_profiler` table: whether the host samples its GPUs, and how often.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The seeds' default sampling interval (5 000 ms).
pub const DEFAULT_GPU_PROFILER_INTERVAL: Duration = Duration::from_millis(5000);

/// `gpu_profiler = { enabled = true, interval_ms = 5000 }` as written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GpuProfilerTable {
    /// Whether a host with NVIDIA GPUs samples them (seeds' default `true`).
    pub enabled: Option<bool>,
    /// Time between samples in milliseconds (default 5 000, at least 1).
    pub interval_ms: Option<u64>,
}

/// The GPU profiler settings with defaults filled in and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuProfilerSettings {
    /// Whether the host starts the profiler when it finds NVIDIA GPUs.
    pub enabled: bool,
    /// Time between samples.
    pub interval: Duration,
}

impl Default for GpuProfilerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: DEFAULT_GPU_PROFILER_INTERVAL,
        }
    }
}

impl GpuProfilerTable {
    /// Fills in the defaults and checks the values.
    pub fn settings(&self) -> Result<GpuProfilerSettings, ConfigError> {
        let defaults = GpuProfilerSettings::default();
        let interval = match self.interval_ms {
            None => defaults.interval,
            Some(0) => {
                return Err(ConfigError::invalid(
                    "gpu_profiler.interval_ms",
                    0,
                    "an interval of at least 1 ms; the default is 5000",
                ))
            }
            Some(ms) => Duration::from_millis(ms),
        };
        Ok(GpuProfilerSettings {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            interval,
        })
    }
}
