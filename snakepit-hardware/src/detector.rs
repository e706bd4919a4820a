//! Runs every detector concurrently and caches the report for cheap, race-free repeated calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use crate::config::DetectorConfig;
use crate::error::HardwareError;
use crate::identity::HardwareIdentity;
use crate::report::{Capabilities, CpuInfo, Diagnostic, HardwareReport};
use crate::select::{Device, DeviceInfo, DevicePreference};
use crate::{cpu, cuda, mps, rocm};

/// Runs a fresh detection with `config`, bypassing every cache.
///
/// The CPU, CUDA, ROCm and MPS probes run concurrently; each vendor tool gets
/// `config.timeout`. Never fails: what could not be detected is left out and explained in
/// [`HardwareReport::diagnostics`].
pub async fn detect_uncached(config: &DetectorConfig) -> HardwareReport {
    let ((cpu, cpu_diag), (cuda, cuda_diag), (rocm, rocm_diag), (mps, mps_diag)) = tokio::join!(
        cpu::detect(config),
        cuda::detect(config),
        rocm::detect(config),
        mps::detect(config),
    );
    let diagnostics: Vec<Diagnostic> = [cpu_diag, cuda_diag, rocm_diag, mps_diag].concat();
    for diagnostic in &diagnostics {
        tracing::debug!(
            target: "snakepit::hardware",
            source = %diagnostic.source,
            message = %diagnostic.message,
            "hardware detection diagnostic"
        );
    }
    let report = HardwareReport::new(config.platform(), cpu, cuda, rocm, mps, diagnostics);
    tracing::debug!(
        target: "snakepit::hardware",
        accelerator = %report.accelerator,
        gpu_count = report.gpu_count(),
        "hardware detected"
    );
    report
}

/// A detector with a cache: the first call detects, later calls return the same report until
/// [`Hardware::clear_cache`].
///
/// Concurrent first calls share one detection. The process-wide instance behind the crate's
/// free functions is [`Hardware::global`]; tests and embedders can make their own with
/// [`Hardware::new`].
#[derive(Debug)]
pub struct Hardware {
    config: DetectorConfig,
    cached: RwLock<Option<Arc<HardwareReport>>>,
    /// Serialises detections so that concurrent callers wait for one instead of each running one.
    detecting: tokio::sync::Mutex<()>,
    /// Bumped by `clear_cache`, so a detection that started before a clear does not refill it.
    generation: AtomicU64,
}

impl Hardware {
    /// Creates a detector with its own cache.
    pub fn new(config: DetectorConfig) -> Self {
        Self {
            config,
            cached: RwLock::new(None),
            detecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    /// Returns the process-wide detector, configured with [`DetectorConfig::default`].
    pub fn global() -> &'static Hardware {
        static GLOBAL: OnceLock<Hardware> = OnceLock::new();
        GLOBAL.get_or_init(|| Hardware::new(DetectorConfig::default()))
    }

    /// Returns the configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Returns the cached report, detecting first when there is none.
    pub async fn detect(&self) -> Arc<HardwareReport> {
        if let Some(report) = self.cached() {
            return report;
        }
        let _detecting = self.detecting.lock().await;
        if let Some(report) = self.cached() {
            return report;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let report = Arc::new(detect_uncached(&self.config).await);
        let mut cached = self.cached.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) == generation {
            *cached = Some(Arc::clone(&report));
        }
        report
    }

    /// Returns the cached report, detecting first on a helper thread when there is none.
    ///
    /// For synchronous callers. Inside async code use [`Hardware::detect`]; this blocks the
    /// calling thread for as long as detection takes (bounded by the tool timeouts).
    pub fn detect_blocking(&self) -> Arc<HardwareReport> {
        if let Some(report) = self.cached() {
            return report;
        }
        // A separate thread with its own runtime works whether or not the caller is inside one.
        let outcome = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map(|runtime| runtime.block_on(self.detect()))
                })
                .join()
        });
        match outcome {
            Ok(Ok(report)) => report,
            Ok(Err(err)) => self.unavailable_report(format!("could not start a runtime: {err}")),
            Err(_) => self.unavailable_report("the detection thread panicked".to_owned()),
        }
    }

    fn unavailable_report(&self, why: String) -> Arc<HardwareReport> {
        let threads = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let cpu = CpuInfo {
            cores: threads,
            threads,
            model: "unknown".to_owned(),
            features: Vec::new(),
            memory_total_mb: 0,
        };
        let diagnostic = Diagnostic::new("detector", format!("{why}; only the CPU is reported"));
        Arc::new(HardwareReport::new(
            self.config.platform(),
            cpu,
            None,
            None,
            None,
            vec![diagnostic],
        ))
    }

    fn cached(&self) -> Option<Arc<HardwareReport>> {
        self.cached
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the cached report; the next call detects again.
    pub fn clear_cache(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.cached.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Returns the capability flags of the (cached) report.
    pub async fn capabilities(&self) -> Capabilities {
        self.detect().await.capabilities()
    }

    /// Selects a device; see [`HardwareReport::select`].
    ///
    /// # Errors
    /// [`HardwareError::DeviceNotAvailable`] when the machine has no such device.
    pub async fn select(&self, preference: DevicePreference) -> Result<Device, HardwareError> {
        self.detect().await.select(preference)
    }

    /// Selects the first available preference; see [`HardwareReport::select_with_fallback`].
    ///
    /// # Errors
    /// [`HardwareError::NoDevice`] when none is available.
    pub async fn select_with_fallback(
        &self,
        preferences: &[DevicePreference],
    ) -> Result<Device, HardwareError> {
        self.detect().await.select_with_fallback(preferences)
    }

    /// Describes a device; see [`HardwareReport::device_info`].
    ///
    /// # Errors
    /// [`HardwareError::DeviceNotAvailable`] when the machine has no such device.
    pub async fn device_info(&self, device: Device) -> Result<DeviceInfo, HardwareError> {
        self.detect().await.device_info(device)
    }

    /// Returns the hardware identity for lock files.
    pub async fn identity(&self) -> HardwareIdentity {
        self.detect().await.identity()
    }
}
