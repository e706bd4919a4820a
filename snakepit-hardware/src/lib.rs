//! CPU, CUDA, ROCm and Apple MPS detection, device selection and hardware identity for snakepit-rs.
//!
//! Detection runs the vendors' own tools (`nvidia-smi`, `nvcc`, `rocm-smi`, `sysctl`) with a
//! timeout and reads `/proc` on Linux. It never fails and never hangs: a tool that is missing
//! means "not present", and a tool that errors, times out or prints nonsense leaves its
//! accelerator out of the report with a [`Diagnostic`] saying why.
//!
//! ```no_run
//! # async fn demo() -> Result<(), snakepit_hardware::HardwareError> {
//! use snakepit_hardware::{DevicePreference, render_table};
//!
//! let report = snakepit_hardware::detect().await; // cached after the first call
//! println!("{}", render_table(&report));
//! let device = snakepit_hardware::select_with_fallback(&[
//!     DevicePreference::Cuda,
//!     DevicePreference::Mps,
//!     DevicePreference::Cpu,
//! ])
//! .await?;
//! println!("running on {device}"); // "cuda:0", "mps" or "cpu"
//! # Ok(()) }
//! ```
//!
//! The free functions use the process-wide [`Hardware::global`] detector and its cache; build a
//! [`Hardware`] with a [`DetectorConfig`] to change the timeout or where tools are looked up.

mod config;
mod cpu;
mod cuda;
mod detector;
mod error;
mod identity;
mod mps;
pub mod profiler;
mod report;
mod rocm;
mod select;
mod table;
mod tool;

use std::sync::Arc;

pub use config::{DetectorConfig, Tool, ToolOverrides, DEFAULT_TOOL_TIMEOUT};
pub use detector::{detect_uncached, Hardware};
pub use error::HardwareError;
pub use identity::{HardwareIdentity, IdentityChange, LOCK_FILE_NAME};
pub use profiler::{GpuProfiler, GpuProfilerConfig, GpuSample, ProfilerStats, GPU_PROFILER_TARGET};
pub use report::{
    Accelerator, Capabilities, CpuFeature, CpuInfo, CudaDevice, CudaInfo, Diagnostic,
    HardwareReport, MpsInfo, RocmDevice, RocmInfo,
};
pub use select::{Device, DeviceInfo, DevicePreference};
pub use table::render_table;

/// Returns this machine's hardware report, detecting it on the first call and caching it.
pub async fn detect() -> Arc<HardwareReport> {
    Hardware::global().detect().await
}

/// Same as [`detect`] for synchronous code; blocks the calling thread while detecting.
pub fn detect_blocking() -> Arc<HardwareReport> {
    Hardware::global().detect_blocking()
}

/// Forgets the cached report, so the next call detects again.
pub fn clear_cache() {
    Hardware::global().clear_cache();
}

/// Returns this machine's capability flags.
pub async fn capabilities() -> Capabilities {
    Hardware::global().capabilities().await
}

/// Selects a device of this machine.
///
/// # Errors
/// [`HardwareError::DeviceNotAvailable`] when the machine has no such device.
pub async fn select(preference: DevicePreference) -> Result<Device, HardwareError> {
    Hardware::global().select(preference).await
}

/// Selects the first available device from `preferences`.
///
/// # Errors
/// [`HardwareError::NoDevice`] when none is available.
pub async fn select_with_fallback(
    preferences: &[DevicePreference],
) -> Result<Device, HardwareError> {
    Hardware::global().select_with_fallback(preferences).await
}

/// Describes a device of this machine, for logs and telemetry.
///
/// # Errors
/// [`HardwareError::DeviceNotAvailable`] when the machine has no such device.
pub async fn device_info(device: Device) -> Result<DeviceInfo, HardwareError> {
    Hardware::global().device_info(device).await
}

/// Returns this machine's identity for `hardware.lock`.
pub async fn identity() -> HardwareIdentity {
    Hardware::global().identity().await
}
