//! The GPU profiler: a task that samples GPUs periodically and publishes the readings.
//!
//! Each reading is emitted as a `tracing` event with target `snakepit::gpu_profiler` and sent to
//! every [`GpuProfiler::subscribe`]r. The task lives exactly as long as its [`GpuProfiler`]
//! handle: [`GpuProfiler::stop`] ends it and waits, dropping the handle aborts it.

mod sampler;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::DetectorConfig;
use crate::error::HardwareError;
use crate::select::Device;

pub use sampler::{GpuSample, GpuSampler, NvidiaSmiSampler, SampleFuture};

/// The default sampling interval, as in the seeds.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = snakepit_core::config::DEFAULT_GPU_PROFILER_INTERVAL;

/// The `tracing` target of profiler events.
pub const GPU_PROFILER_TARGET: &str = "snakepit::gpu_profiler";

/// How the profiler starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuProfilerConfig {
    /// Time between samples; must be greater than zero.
    pub interval: Duration,
    /// Whether sampling starts at once (the first sample is taken immediately).
    pub enabled: bool,
    /// How many samples a slow subscriber may fall behind before it misses some.
    pub channel_capacity: usize,
}

impl Default for GpuProfilerConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_SAMPLE_INTERVAL,
            enabled: true,
            channel_capacity: 64,
        }
    }
}

/// What the profiler has done so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfilerStats {
    /// Whether periodic sampling is on.
    pub enabled: bool,
    /// The sampling interval in milliseconds.
    pub interval_ms: u64,
    /// Successful sampling rounds (one round reads every GPU).
    pub sample_count: u64,
    /// When the last successful round happened, in milliseconds since the Unix epoch.
    pub last_sample_time: Option<u64>,
    /// The GPUs seen in the last successful round.
    pub devices: Vec<Device>,
    /// Why the last round failed, cleared by the next success.
    pub last_error: Option<String>,
}

enum Command {
    Enable(oneshot::Sender<()>),
    Disable(oneshot::Sender<()>),
    SetInterval(Duration, oneshot::Sender<()>),
    SampleNow(oneshot::Sender<Result<Vec<GpuSample>, HardwareError>>),
    Stats(oneshot::Sender<ProfilerStats>),
    Stop,
}

/// The handle of a running GPU profiler; the task stops when it is stopped or dropped.
#[derive(Debug)]
pub struct GpuProfiler {
    commands: mpsc::Sender<Command>,
    samples: broadcast::Sender<GpuSample>,
    task: Option<JoinHandle<()>>,
}

impl GpuProfiler {
    /// Starts a profiler reading GPUs with `sampler`.
    ///
    /// # Errors
    /// [`HardwareError::InvalidInterval`] for a zero interval and [`HardwareError::NoRuntime`]
    /// outside a tokio runtime.
    pub fn start(
        config: GpuProfilerConfig,
        sampler: impl GpuSampler,
    ) -> Result<Self, HardwareError> {
        check_interval(config.interval)?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| HardwareError::NoRuntime)?;
        let (commands, receiver) = mpsc::channel(16);
        let (samples, _) = broadcast::channel(config.channel_capacity.max(1));
        let state = ProfilerTask {
            sampler: Arc::new(sampler),
            samples: samples.clone(),
            stats: ProfilerStats {
                enabled: config.enabled,
                interval_ms: millis(config.interval),
                sample_count: 0,
                last_sample_time: None,
                devices: Vec::new(),
                last_error: None,
            },
            interval: config.interval,
        };
        let task = runtime.spawn(state.run(receiver));
        Ok(Self {
            commands,
            samples,
            task: Some(task),
        })
    }

    /// Starts a profiler that samples NVIDIA GPUs with `nvidia-smi`, found as `detector` says.
    ///
    /// # Errors
    /// As [`GpuProfiler::start`].
    pub fn start_nvidia(
        config: GpuProfilerConfig,
        detector: DetectorConfig,
    ) -> Result<Self, HardwareError> {
        Self::start(config, NvidiaSmiSampler::new(detector))
    }

    /// Receives every sample taken from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<GpuSample> {
        self.samples.subscribe()
    }

    /// Turns periodic sampling on; the first sample is taken at once.
    ///
    /// # Errors
    /// [`HardwareError::ProfilerStopped`] when the task has ended.
    pub async fn enable(&self) -> Result<(), HardwareError> {
        self.request(Command::Enable).await
    }

    /// Turns periodic sampling off; [`GpuProfiler::sample_now`] still works.
    ///
    /// # Errors
    /// [`HardwareError::ProfilerStopped`] when the task has ended.
    pub async fn disable(&self) -> Result<(), HardwareError> {
        self.request(Command::Disable).await
    }

    /// Changes the sampling interval; the next sample is due one new interval from now.
    ///
    /// # Errors
    /// [`HardwareError::InvalidInterval`] for zero, [`HardwareError::ProfilerStopped`] when the
    /// task has ended.
    pub async fn set_interval(&self, interval: Duration) -> Result<(), HardwareError> {
        check_interval(interval)?;
        self.request(|reply| Command::SetInterval(interval, reply))
            .await
    }

    /// Samples every GPU now, publishing the readings like a periodic sample.
    ///
    /// # Errors
    /// [`HardwareError::NoGpu`] when there is no GPU to read, [`HardwareError::ProfilerStopped`]
    /// when the task has ended.
    pub async fn sample_now(&self) -> Result<Vec<GpuSample>, HardwareError> {
        self.request(Command::SampleNow).await?
    }

    /// Returns what the profiler has done so far.
    ///
    /// # Errors
    /// [`HardwareError::ProfilerStopped`] when the task has ended.
    pub async fn stats(&self) -> Result<ProfilerStats, HardwareError> {
        self.request(Command::Stats).await
    }

    /// Stops the task and waits for it to end.
    pub async fn stop(mut self) {
        // A full or closed queue both mean the task will not read it; aborting covers both.
        if self.commands.try_send(Command::Stop).is_err() {
            if let Some(task) = &self.task {
                task.abort();
            }
        }
        if let Some(task) = self.task.take() {
            // The task either returned or was aborted; neither outcome needs reporting.
            let _ = task.await;
        }
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, HardwareError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| HardwareError::ProfilerStopped)?;
        answer.await.map_err(|_| HardwareError::ProfilerStopped)
    }
}

impl Drop for GpuProfiler {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn check_interval(interval: Duration) -> Result<(), HardwareError> {
    if interval.is_zero() {
        return Err(HardwareError::InvalidInterval { interval });
    }
    Ok(())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The state owned by the profiler task.
struct ProfilerTask {
    sampler: Arc<dyn GpuSampler>,
    samples: broadcast::Sender<GpuSample>,
    stats: ProfilerStats,
    interval: Duration,
}

impl ProfilerTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut next = Instant::now();
        loop {
            let due = self.stats.enabled;
            tokio::select! {
                command = commands.recv() => match command {
                    // Every handle is gone or asked to stop: end the task.
                    None | Some(Command::Stop) => break,
                    Some(Command::Enable(reply)) => {
                        if !self.stats.enabled {
                            self.stats.enabled = true;
                            next = Instant::now();
                        }
                        let _ = reply.send(());
                    }
                    Some(Command::Disable(reply)) => {
                        self.stats.enabled = false;
                        let _ = reply.send(());
                    }
                    Some(Command::SetInterval(interval, reply)) => {
                        self.interval = interval;
                        self.stats.interval_ms = millis(interval);
                        next = Instant::now() + interval;
                        let _ = reply.send(());
                    }
                    Some(Command::SampleNow(reply)) => {
                        let result = self.sample().await;
                        let _ = reply.send(result);
                    }
                    Some(Command::Stats(reply)) => {
                        let _ = reply.send(self.stats.clone());
                    }
                },
                () = tokio::time::sleep_until(next), if due => {
                    // A failed periodic round is recorded in the stats and logged by sample().
                    let _ = self.sample().await;
                    next = Instant::now() + self.interval;
                }
            }
        }
    }

    async fn sample(&mut self) -> Result<Vec<GpuSample>, HardwareError> {
        match self.sampler.sample().await {
            Ok(samples) if !samples.is_empty() => {
                for sample in &samples {
                    emit(sample);
                    // No subscriber is fine: the tracing event already went out.
                    let _ = self.samples.send(sample.clone());
                }
                self.stats.sample_count += 1;
                self.stats.last_sample_time = Some(sampler::unix_ms_now());
                self.stats.devices = samples.iter().map(|s| s.device).collect();
                self.stats.last_error = None;
                Ok(samples)
            }
            Ok(_) => self.failed(HardwareError::NoGpu {
                reason: "the sampler found no GPU".to_owned(),
            }),
            Err(err) => self.failed(err),
        }
    }

    fn failed(&mut self, err: HardwareError) -> Result<Vec<GpuSample>, HardwareError> {
        tracing::debug!(target: GPU_PROFILER_TARGET, error = %err, "gpu sample failed");
        self.stats.last_error = Some(err.to_string());
        Err(err)
    }
}

fn emit(sample: &GpuSample) {
    tracing::info!(
        target: GPU_PROFILER_TARGET,
        device = %sample.device,
        name = %sample.name,
        memory_used_mb = sample.memory_used_mb,
        memory_total_mb = sample.memory_total_mb,
        utilization_percent = sample.utilization_percent,
        temperature_c = sample.temperature_c,
        power_w = sample.power_w,
        "gpu sample"
    );
}

#[cfg(test)]
mod tests;
