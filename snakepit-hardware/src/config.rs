//! How detection finds and runs the vendors' tools: search path, overrides, timeout, file locations.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The default time a vendor tool gets to answer before it is killed.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The external tools detection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// NVIDIA's `nvidia-smi`.
    NvidiaSmi,
    /// The CUDA compiler `nvcc`, asked for its version only.
    Nvcc,
    /// AMD's `rocm-smi`.
    RocmSmi,
    /// `sysctl`, used on macOS.
    Sysctl,
}

impl Tool {
    /// Returns the executable name looked up on the search path.
    pub fn program(self) -> &'static str {
        match self {
            Tool::NvidiaSmi => "nvidia-smi",
            Tool::Nvcc => "nvcc",
            Tool::RocmSmi => "rocm-smi",
            Tool::Sysctl => "sysctl",
        }
    }
}

/// Explicit paths for tools, used instead of searching for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOverrides {
    /// Path to `nvidia-smi`.
    pub nvidia_smi: Option<PathBuf>,
    /// Path to `nvcc`.
    pub nvcc: Option<PathBuf>,
    /// Path to `rocm-smi`.
    pub rocm_smi: Option<PathBuf>,
    /// Path to `sysctl`.
    pub sysctl: Option<PathBuf>,
}

impl ToolOverrides {
    /// Returns the override for `tool`, if any.
    pub fn get(&self, tool: Tool) -> Option<&PathBuf> {
        match tool {
            Tool::NvidiaSmi => self.nvidia_smi.as_ref(),
            Tool::Nvcc => self.nvcc.as_ref(),
            Tool::RocmSmi => self.rocm_smi.as_ref(),
            Tool::Sysctl => self.sysctl.as_ref(),
        }
    }
}

/// Settings for one detector; [`Default`] describes the machine the process runs on.
///
/// Tests point `search_path` at a folder of fake tools instead of changing the process `PATH`,
/// so detections with different settings can run side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorConfig {
    /// How long each tool may run before it is killed and reported as timed out.
    pub timeout: Duration,
    /// Where tools are looked up, in `PATH` syntax; `None` uses the process `PATH`.
    pub search_path: Option<OsString>,
    /// Explicit tool paths, taking precedence over the search path.
    pub tools: ToolOverrides,
    /// The operating system, as `std::env::consts::OS` names it; MPS is probed on `macos` only.
    pub os: String,
    /// The architecture, as `std::env::consts::ARCH` names it.
    pub arch: String,
    /// The Linux CPU description, `/proc/cpuinfo`.
    pub cpuinfo_path: PathBuf,
    /// The Linux memory description, `/proc/meminfo`.
    pub meminfo_path: PathBuf,
    /// Folders searched for `cudnn_version.h` (or `cudnn.h`) to learn the cuDNN version.
    pub cudnn_include_dirs: Vec<PathBuf>,
    /// Files holding the ROCm version; the first readable one wins.
    pub rocm_version_files: Vec<PathBuf>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        let mut cudnn_include_dirs = Vec::new();
        for var in ["CUDNN_HOME", "CUDA_HOME", "CUDA_PATH"] {
            if let Some(home) = std::env::var_os(var) {
                cudnn_include_dirs.push(PathBuf::from(home).join("include"));
            }
        }
        cudnn_include_dirs.extend(
            [
                "/usr/local/cuda/include",
                "/usr/include",
                "/usr/include/x86_64-linux-gnu",
                "/usr/include/aarch64-linux-gnu",
            ]
            .map(PathBuf::from),
        );
        let rocm_root = std::env::var_os("ROCM_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/rocm"));
        Self {
            timeout: DEFAULT_TOOL_TIMEOUT,
            search_path: None,
            tools: ToolOverrides::default(),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            cpuinfo_path: PathBuf::from("/proc/cpuinfo"),
            meminfo_path: PathBuf::from("/proc/meminfo"),
            cudnn_include_dirs,
            rocm_version_files: vec![
                rocm_root.join(".info").join("version"),
                rocm_root.join(".info").join("version-dev"),
            ],
        }
    }
}

impl DetectorConfig {
    /// Sets the per-tool timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Looks tools up in `search_path` (`PATH` syntax) instead of the process `PATH`.
    pub fn with_search_path(mut self, search_path: impl Into<OsString>) -> Self {
        self.search_path = Some(search_path.into());
        self
    }

    /// Returns `<os>-<arch>`, such as `linux-x86_64`.
    pub fn platform(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }
}
