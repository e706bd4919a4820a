//! The errors hardware selection, lock files and the GPU profiler report.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::select::{Device, DevicePreference};

/// Everything that can go wrong in `snakepit-hardware`.
///
/// Detection itself never fails: a missing or broken vendor tool leaves that accelerator out of
/// the report and adds a [`Diagnostic`](crate::Diagnostic). These errors are for the calls that
/// ask for something specific: a device, a lock file, a GPU sample.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardwareError {
    /// The requested device does not exist on this machine.
    #[error("device {requested} is not available on this machine (available: {}); pick one of those or use 'auto'", DeviceList(available))]
    DeviceNotAvailable {
        /// What was asked for.
        requested: DevicePreference,
        /// The devices the machine does have.
        available: Vec<Device>,
    },
    /// None of the preferences given to `select_with_fallback` is available.
    #[error("none of the preferred devices [{}] is available (available: {}); add 'cpu' as the last fallback", PreferenceList(tried), DeviceList(available))]
    NoDevice {
        /// The preferences, in the order they were tried.
        tried: Vec<DevicePreference>,
        /// The devices the machine does have.
        available: Vec<Device>,
    },
    /// A device or preference string could not be parsed.
    #[error("invalid device '{input}': {reason}; expected cpu, mps, cuda, cuda:N, rocm or rocm:N (auto is also accepted as a preference)")]
    InvalidDevice {
        /// The text that was given.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// There is no NVIDIA GPU the profiler could sample.
    #[error("no gpu to sample: {reason}")]
    NoGpu {
        /// Why no sample could be taken (tool missing, no device, driver error, timeout).
        reason: String,
    },
    /// The profiler interval was zero.
    #[error("invalid gpu profiler interval {} ms: the interval must be greater than zero", interval.as_millis())]
    InvalidInterval {
        /// The rejected interval.
        interval: Duration,
    },
    /// The profiler task has ended (stopped, or its runtime shut down).
    #[error("the gpu profiler is stopped; start a new one with GpuProfiler::start")]
    ProfilerStopped,
    /// A call that spawns a task was made outside a tokio runtime.
    #[error("the gpu profiler must be started inside a tokio runtime; call GpuProfiler::start from async code")]
    NoRuntime,
    /// A hardware lock file could not be read or written.
    #[error("could not {action} hardware lock file '{}': {source}; check the path and its permissions", path.display())]
    LockFileIo {
        /// `read` or `write`.
        action: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A hardware lock file does not hold a valid identity.
    #[error("hardware lock file '{}' is not valid: {source}; delete it and write it again with HardwareIdentity::write_lock", path.display())]
    LockFileFormat {
        /// The lock file (empty when parsing from a string).
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl From<HardwareError> for snakepit_core::Error {
    fn from(err: HardwareError) -> Self {
        let subject = match &err {
            HardwareError::DeviceNotAvailable { .. }
            | HardwareError::NoDevice { .. }
            | HardwareError::InvalidDevice { .. } => "device",
            HardwareError::NoGpu { .. }
            | HardwareError::InvalidInterval { .. }
            | HardwareError::ProfilerStopped
            | HardwareError::NoRuntime => "gpu profiler",
            HardwareError::LockFileIo { .. } | HardwareError::LockFileFormat { .. } => {
                "hardware lock"
            }
        };
        snakepit_core::Error::validation(subject, err.to_string())
    }
}

/// Formats devices as `cpu, cuda:0`.
struct DeviceList<'a>(&'a [Device]);

impl fmt::Display for DeviceList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(f, self.0)
    }
}

/// Formats preferences as `cuda, mps`.
struct PreferenceList<'a>(&'a [DevicePreference]);

impl fmt::Display for PreferenceList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(f, self.0)
    }
}

fn join<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    if items.is_empty() {
        return f.write_str("none");
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}
