//! Several named pools started from one configuration (the seeds' multi-pool form).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use snakepit_core::config::SnakepitConfig;
use snakepit_core::{CallOptions, ChunkStream, Error, Payload};

use crate::{Pool, PoolStats};

/// The pools of a host, by name; calls pick their pool (`pool: :compute` in the seeds).
#[derive(Debug)]
pub struct PoolSet {
    pools: BTreeMap<String, Pool>,
}

impl PoolSet {
    /// Validates every pool of `config` up front, then starts them all.
    ///
    /// Nothing starts when any pool's configuration is invalid.
    pub async fn start(config: &SnakepitConfig) -> Result<Self, Error> {
        let configs = config.pool_configs()?;
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
        Ok(Self { pools })
    }

    /// Returns the pool named `name`, or an error listing the configured pools.
    pub fn pool(&self, name: &str) -> Result<&Pool, Error> {
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
        futures::future::join_all(self.pools.values().map(Pool::shutdown)).await;
    }
}
