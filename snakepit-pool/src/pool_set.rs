//! Several named pools started from one configuration (the seeds' multi-pool form), plus the
//! host-wide GPU profiler that lives as long as they do.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
#[cfg(feature = "gpu-profiler")]
use snakepit_core::config::GpuProfilerSettings;
use snakepit_core::config::{PoolConfig, SnakepitConfig};
use snakepit_core::{CallOptions, ChunkStream, Error, Payload};
#[cfg(feature = "gpu-profiler")]
use snakepit_hardware::{GpuProfiler, GpuProfilerConfig, GpuSample, Hardware, ProfilerStats};
#[cfg(feature = "gpu-profiler")]
use tokio::sync::{broadcast, Mutex};

use crate::{Pool, PoolStats};

/// The pools of a host, by name; calls pick their pool (`pool: :compute` in the seeds).
#[derive(Debug)]
pub struct PoolSet {
    pools: BTreeMap<String, Pool>,
    /// Samples the host's NVIDIA GPUs while the pools run; taken and stopped at shutdown.
    #[cfg(feature = "gpu-profiler")]
    gpu_profiler: Mutex<Option<GpuProfiler>>,
    /// `pooling_enabled = false`: nothing started, every call is refused naming the key.
    pooling_disabled: bool,
}

impl PoolSet {
    /// Validates every pool of `config` up front, then starts them all.
    ///
    /// Nothing starts when any pool's configuration is invalid, nor with `pooling_enabled =
    /// false` (the configuration is still validated; every call then fails with a pool error
    /// that names the key, as the seeds' calls do without pooling). When `gpu_profiler` is enabled
    /// (the default) and NVIDIA GPUs are found, a GPU profiler samples them every
    /// `gpu_profiler.interval_ms` until [`PoolSet::shutdown`].
    pub async fn start(config: &SnakepitConfig) -> Result<Self, Error> {
        Self::start_pools(config, config.pool_configs()?).await
    }

    /// Like [`PoolSet::start`], with `pools` in place of `config`'s own: its pools, normalized
    /// with [`SnakepitConfig::pool_configs`] and then adjusted by the application (the `snakepit`
    /// CLI sets the `python_executable` it found, say). `config` still gives the host-wide
    /// settings (`pooling_enabled`, `gpu_profiler`).
    pub async fn start_pools(
        config: &SnakepitConfig,
        pools: Vec<PoolConfig>,
    ) -> Result<Self, Error> {
        #[cfg(feature = "gpu-profiler")]
        return Self::start_on(config, pools, Hardware::global()).await;
        #[cfg(not(feature = "gpu-profiler"))]
        {
            if !config.pooling_enabled() {
                tracing::info!("pooling_enabled = false: no pool started");
                return Ok(Self {
                    pools: BTreeMap::new(),
                    pooling_disabled: true,
                });
            }
            Ok(Self {
                pools: start_pools(pools).await?,
                pooling_disabled: false,
            })
        }
    }

    #[cfg(feature = "gpu-profiler")]
    /// Like [`PoolSet::start`], finding GPUs with `hardware` (its detector settings say where
    /// the vendors' tools are, which lets tests use recorded outputs).
    pub async fn start_with_hardware(
        config: &SnakepitConfig,
        hardware: &Hardware,
    ) -> Result<Self, Error> {
        Self::start_on(config, config.pool_configs()?, hardware).await
    }

    #[cfg(feature = "gpu-profiler")]
    async fn start_on(
        config: &SnakepitConfig,
        configs: Vec<PoolConfig>,
        hardware: &Hardware,
    ) -> Result<Self, Error> {
        let gpu = config.gpu_profiler_settings()?;
        if !config.pooling_enabled() {
            tracing::info!("pooling_enabled = false: no pool started");
            return Ok(Self {
                pools: BTreeMap::new(),
                gpu_profiler: Mutex::new(None),
                pooling_disabled: true,
            });
        }
        // GPU detection runs while the workers start, so it adds nothing to start-up.
        let (pools, gpu_profiler) =
            tokio::join!(start_pools(configs), start_gpu_profiler(gpu, hardware));
        Ok(Self {
            pools: pools?,
            gpu_profiler: Mutex::new(gpu_profiler),
            pooling_disabled: false,
        })
    }

    /// Returns the pool named `name`, or an error listing the configured pools.
    pub fn pool(&self, name: &str) -> Result<&Pool, Error> {
        if self.pooling_disabled {
            return Err(pooling_disabled_error(name));
        }
        self.pools.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.pools.keys().map(String::as_str).collect();
            Error::pool(format!(
                "no pool named '{name}' (configured pools: {})",
                names.join(", ")
            ))
        })
    }

    /// Returns the names of the pools.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    /// Waits until every worker of every pool is ready.
    pub async fn await_ready(&self, timeout: Duration) -> Result<(), Error> {
        let waits = self.pools.values().map(|p| p.await_ready(timeout));
        futures::future::try_join_all(waits).await.map(|_| ())
    }

    /// Runs `tool` on the pool named `pool`.
    pub async fn execute(
        &self,
        pool: &str,
        tool: &str,
        args: Value,
        opts: CallOptions,
    ) -> Result<Payload, Error> {
        self.pool(pool)?.execute(tool, args, opts).await
    }

    /// Runs a streaming tool on the pool named `pool`.
    pub async fn execute_stream(
        &self,
        pool: &str,
        tool: &str,
        args: Value,
        opts: CallOptions,
    ) -> Result<ChunkStream, Error> {
        self.pool(pool)?.execute_stream(tool, args, opts).await
    }

    /// Returns every pool's statistics by name (`get_stats` over all pools).
    pub fn stats(&self) -> BTreeMap<String, PoolStats> {
        self.pools
            .iter()
            .map(|(n, p)| (n.clone(), p.stats()))
            .collect()
    }

    /// Stops every pool; returns once all their worker processes are gone.
    pub async fn shutdown(&self) {
        #[cfg(feature = "gpu-profiler")]
        {
            let profiler = self.gpu_profiler.lock().await.take();
            if let Some(profiler) = profiler {
                profiler.stop().await;
            }
        }
        futures::future::join_all(self.pools.values().map(Pool::shutdown)).await;
    }

    #[cfg(feature = "gpu-profiler")]
    /// Returns the GPU profiler's statistics, or `None` when the host is not sampling GPUs
    /// (disabled, no NVIDIA GPU found, or shut down).
    pub async fn gpu_profiler_stats(&self) -> Option<ProfilerStats> {
        let profiler = self.gpu_profiler.lock().await;
        profiler.as_ref()?.stats().await.ok()
    }

    #[cfg(feature = "gpu-profiler")]
    /// Receives every GPU sample taken from now on, or `None` when the host is not sampling.
    pub async fn gpu_samples(&self) -> Option<broadcast::Receiver<GpuSample>> {
        Some(self.gpu_profiler.lock().await.as_ref()?.subscribe())
    }
}

/// The refusal of a call when the configuration says `pooling_enabled = false`.
fn pooling_disabled_error(pool: &str) -> Error {
    Error::pool(format!(
        "pooling is disabled (pooling_enabled = false), so pool '{pool}' was not started; set pooling_enabled = true to run calls"
    ))
}

/// Starts every pool; on a failure stops the ones already started.
///
/// Every pool's resilience tables are checked first, so a bad one starts nothing.
async fn start_pools(configs: Vec<PoolConfig>) -> Result<BTreeMap<String, Pool>, Error> {
    for pool_config in &configs {
        crate::resilience::stack_for(pool_config)?;
    }
    let mut pools = BTreeMap::new();
    for pool_config in configs {
        let name = pool_config.name.clone();
        match Pool::start(pool_config).await {
            Ok(pool) => {
                pools.insert(name, pool);
            }
            Err(e) => {
                for pool in pools.values() {
                    pool.shutdown().await;
                }
                return Err(e);
            }
        }
    }
    Ok(pools)
}

#[cfg(feature = "gpu-profiler")]
/// Starts the GPU profiler when it is enabled and `hardware` finds NVIDIA GPUs.
async fn start_gpu_profiler(
    settings: GpuProfilerSettings,
    hardware: &Hardware,
) -> Option<GpuProfiler> {
    if !settings.enabled {
        return None;
    }
    let report = hardware.detect().await;
    let gpus = report.cuda.as_ref().map_or(0, |cuda| cuda.devices.len());
    if gpus == 0 {
        return None;
    }
    let config = GpuProfilerConfig {
        interval: settings.interval,
        ..GpuProfilerConfig::default()
    };
    match GpuProfiler::start_nvidia(config, hardware.config().clone()) {
        Ok(profiler) => {
            tracing::info!(
                gpus,
                interval_ms = settings.interval.as_millis() as u64,
                "gpu profiler started"
            );
            Some(profiler)
        }
        Err(e) => {
            // Profiling is telemetry: a host without it still serves, so say why and go on.
            tracing::warn!(error = %e, "gpu profiler not started");
            None
        }
    }
}
