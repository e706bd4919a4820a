//! The typed hardware report: CPU, CUDA, ROCm and MPS sections, diagnostics and capability flags.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The primary accelerator of a machine, chosen in the order CUDA > MPS > ROCm > CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accelerator {
    /// No accelerator: the CPU does the work.
    Cpu,
    /// NVIDIA GPUs through CUDA.
    Cuda,
    /// Apple Metal Performance Shaders.
    Mps,
    /// AMD GPUs through ROCm.
    Rocm,
}

impl Accelerator {
    /// Returns the lowercase name (`cpu`, `cuda`, `mps`, `rocm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Cpu => "cpu",
            Accelerator::Cuda => "cuda",
            Accelerator::Mps => "mps",
            Accelerator::Rocm => "rocm",
        }
    }
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CPU instruction-set extension that matters to numerical code.
///
/// Names follow the Linux `/proc/cpuinfo` flags (`sse4_1`, `avx512f`, `avx512_vnni`); `neon`
/// stands for Advanced SIMD on ARM (`asimd` in `/proc/cpuinfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CpuFeature {
    /// SSE 4.1.
    #[serde(rename = "sse4_1")]
    Sse4_1,
    /// SSE 4.2.
    #[serde(rename = "sse4_2")]
    Sse4_2,
    /// AVX.
    #[serde(rename = "avx")]
    Avx,
    /// AVX2.
    #[serde(rename = "avx2")]
    Avx2,
    /// Fused multiply-add (FMA3).
    #[serde(rename = "fma")]
    Fma,
    /// AVX-512 Foundation.
    #[serde(rename = "avx512f")]
    Avx512f,
    /// AVX-512 Conflict Detection.
    #[serde(rename = "avx512cd")]
    Avx512cd,
    /// AVX-512 Doubleword and Quadword.
    #[serde(rename = "avx512dq")]
    Avx512dq,
    /// AVX-512 Byte and Word.
    #[serde(rename = "avx512bw")]
    Avx512bw,
    /// AVX-512 Vector Length.
    #[serde(rename = "avx512vl")]
    Avx512vl,
    /// AVX-512 Vector Neural Network Instructions.
    #[serde(rename = "avx512_vnni")]
    Avx512Vnni,
    /// AVX-512 bfloat16.
    #[serde(rename = "avx512_bf16")]
    Avx512Bf16,
    /// ARM Advanced SIMD.
    #[serde(rename = "neon")]
    Neon,
}

impl CpuFeature {
    /// Every feature the detector looks for.
    pub const ALL: [CpuFeature; 13] = [
        CpuFeature::Sse4_1,
        CpuFeature::Sse4_2,
        CpuFeature::Avx,
        CpuFeature::Avx2,
        CpuFeature::Fma,
        CpuFeature::Avx512f,
        CpuFeature::Avx512cd,
        CpuFeature::Avx512dq,
        CpuFeature::Avx512bw,
        CpuFeature::Avx512vl,
        CpuFeature::Avx512Vnni,
        CpuFeature::Avx512Bf16,
        CpuFeature::Neon,
    ];

    /// Returns the feature's name as `/proc/cpuinfo` spells it (`neon` for ARM SIMD).
    pub fn as_str(self) -> &'static str {
        match self {
            CpuFeature::Sse4_1 => "sse4_1",
            CpuFeature::Sse4_2 => "sse4_2",
            CpuFeature::Avx => "avx",
            CpuFeature::Avx2 => "avx2",
            CpuFeature::Fma => "fma",
            CpuFeature::Avx512f => "avx512f",
            CpuFeature::Avx512cd => "avx512cd",
            CpuFeature::Avx512dq => "avx512dq",
            CpuFeature::Avx512bw => "avx512bw",
            CpuFeature::Avx512vl => "avx512vl",
            CpuFeature::Avx512Vnni => "avx512_vnni",
            CpuFeature::Avx512Bf16 => "avx512_bf16",
            CpuFeature::Neon => "neon",
        }
    }

    /// Maps a `/proc/cpuinfo` flag to a feature; `asimd` maps to [`CpuFeature::Neon`].
    pub fn from_flag(flag: &str) -> Option<CpuFeature> {
        if flag == "asimd" {
            return Some(CpuFeature::Neon);
        }
        CpuFeature::ALL.into_iter().find(|f| f.as_str() == flag)
    }
}

impl fmt::Display for CpuFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the CPU detector found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// Physical cores.
    pub cores: u32,
    /// Logical processors (hardware threads).
    pub threads: u32,
    /// The model name, such as `Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz`; `unknown` when the
    /// system does not say.
    pub model: String,
    /// The detected features, sorted and without duplicates.
    pub features: Vec<CpuFeature>,
    /// Total system memory in MiB (0 when unknown).
    pub memory_total_mb: u64,
}

impl CpuInfo {
    /// Returns whether the CPU has `feature`.
    pub fn has(&self, feature: CpuFeature) -> bool {
        self.features.contains(&feature)
    }
}

/// One NVIDIA GPU as `nvidia-smi` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaDevice {
    /// The `nvidia-smi` index, the `N` of `cuda:N`.
    pub id: u32,
    /// The product name, such as `NVIDIA A100-SXM4-40GB`.
    pub name: String,
    /// Total memory in MiB, `None` when the driver reports `[N/A]`.
    pub memory_total_mb: Option<u64>,
    /// Free memory in MiB, `None` when the driver reports `[N/A]`.
    pub memory_free_mb: Option<u64>,
    /// The compute capability, such as `8.0`, when the driver reports it.
    pub compute_capability: Option<String>,
    /// GPU utilisation in percent, when the driver reports it.
    pub utilization_percent: Option<u32>,
}

/// The CUDA section of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaInfo {
    /// The CUDA version the driver supports (`nvidia-smi` header) or the toolkit's (`nvcc`).
    pub version: Option<String>,
    /// The NVIDIA driver version.
    pub driver_version: String,
    /// The cuDNN version, when its header could be found.
    pub cudnn_version: Option<String>,
    /// The GPUs, in index order.
    pub devices: Vec<CudaDevice>,
}

/// One AMD GPU as `rocm-smi` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RocmDevice {
    /// The card number, the `N` of `rocm:N`.
    pub id: u32,
    /// The product name (card series), such as `AMD Instinct MI210`.
    pub name: String,
    /// Total VRAM in MiB, when reported.
    pub memory_total_mb: Option<u64>,
    /// Free VRAM in MiB, when reported.
    pub memory_free_mb: Option<u64>,
}

/// The ROCm section of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RocmInfo {
    /// The ROCm version (from `/opt/rocm/.info/version`) or else the driver version.
    pub version: Option<String>,
    /// The GPUs, in card order.
    pub devices: Vec<RocmDevice>,
}

/// The Apple Metal (MPS) section of a report; present on macOS only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpsInfo {
    /// Whether MPS can be used (Apple Silicon).
    pub available: bool,
    /// The chip name, such as `Apple M2 Pro`.
    pub device_name: String,
    /// Unified memory shared by CPU and GPU, in MiB.
    pub memory_total_mb: u64,
}

/// Why part of the detection came back empty: a tool that failed, timed out or said nonsense.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// What produced it: a tool (`nvidia-smi`, `rocm-smi`, `sysctl`) or a file.
    pub source: String,
    /// What went wrong and, where possible, what to do.
    pub message: String,
}

impl Diagnostic {
    /// Builds a diagnostic.
    pub fn new(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// Everything detection found about a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareReport {
    /// The primary accelerator (CUDA > MPS > ROCm > CPU).
    pub accelerator: Accelerator,
    /// `<os>-<arch>`, such as `linux-x86_64` or `macos-aarch64`.
    pub platform: String,
    /// The CPU.
    pub cpu: CpuInfo,
    /// NVIDIA GPUs, `None` when there are none.
    pub cuda: Option<CudaInfo>,
    /// AMD GPUs, `None` when there are none.
    pub rocm: Option<RocmInfo>,
    /// Apple Metal, `None` when not on macOS.
    pub mps: Option<MpsInfo>,
    /// Why a section is missing, when a tool was there but did not answer properly.
    pub diagnostics: Vec<Diagnostic>,
}

impl HardwareReport {
    /// Builds a report and chooses its primary accelerator from the sections present.
    pub fn new(
        platform: impl Into<String>,
        cpu: CpuInfo,
        cuda: Option<CudaInfo>,
        rocm: Option<RocmInfo>,
        mps: Option<MpsInfo>,
        diagnostics: Vec<Diagnostic>,
    ) -> Self {
        let mut report = Self {
            accelerator: Accelerator::Cpu,
            platform: platform.into(),
            cpu,
            cuda,
            rocm,
            mps,
            diagnostics,
        };
        report.accelerator = report.best_accelerator();
        report
    }

    fn best_accelerator(&self) -> Accelerator {
        if self.cuda_devices().next().is_some() {
            Accelerator::Cuda
        } else if self.mps_available() {
            Accelerator::Mps
        } else if self.rocm_devices().next().is_some() {
            Accelerator::Rocm
        } else {
            Accelerator::Cpu
        }
    }

    /// Iterates over the NVIDIA GPUs.
    pub fn cuda_devices(&self) -> impl Iterator<Item = &CudaDevice> {
        self.cuda.iter().flat_map(|c| c.devices.iter())
    }

    /// Iterates over the AMD GPUs.
    pub fn rocm_devices(&self) -> impl Iterator<Item = &RocmDevice> {
        self.rocm.iter().flat_map(|r| r.devices.iter())
    }

    /// Returns whether Apple Metal can be used.
    pub fn mps_available(&self) -> bool {
        self.mps.as_ref().is_some_and(|m| m.available)
    }

    /// Counts the GPUs: CUDA and ROCm devices, plus one for an available Apple GPU.
    pub fn gpu_count(&self) -> u32 {
        let count = self.cuda_devices().count()
            + self.rocm_devices().count()
            + usize::from(self.mps_available());
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Returns the capability flags of this report.
    pub fn capabilities(&self) -> Capabilities {
        let cudnn_version = self.cuda.as_ref().and_then(|c| c.cudnn_version.clone());
        Capabilities {
            cuda: self.cuda_devices().next().is_some(),
            mps: self.mps_available(),
            rocm: self.rocm_devices().next().is_some(),
            avx: self.cpu.has(CpuFeature::Avx),
            avx2: self.cpu.has(CpuFeature::Avx2),
            avx512: self.cpu.has(CpuFeature::Avx512f),
            fma: self.cpu.has(CpuFeature::Fma),
            neon: self.cpu.has(CpuFeature::Neon),
            cudnn: cudnn_version.is_some(),
            cuda_version: self.cuda.as_ref().and_then(|c| c.version.clone()),
            cudnn_version,
        }
    }
}

/// Quick yes/no checks derived from a [`HardwareReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// At least one NVIDIA GPU.
    pub cuda: bool,
    /// Apple Metal is usable.
    pub mps: bool,
    /// At least one AMD GPU.
    pub rocm: bool,
    /// The CPU has AVX.
    pub avx: bool,
    /// The CPU has AVX2.
    pub avx2: bool,
    /// The CPU has AVX-512 Foundation.
    pub avx512: bool,
    /// The CPU has FMA.
    pub fma: bool,
    /// The CPU has ARM NEON.
    pub neon: bool,
    /// cuDNN was found.
    pub cudnn: bool,
    /// The CUDA version, when known.
    pub cuda_version: Option<String>,
    /// The cuDNN version, when known.
    pub cudnn_version: Option<String>,
}
