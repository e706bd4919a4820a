//! The per-worker resilience stack, built from the pool's `circuit_breaker`, `retry` and
//! `timeouts` tables (see `snakepit-resilience`).

use serde::Deserialize;
use snakepit_core::config::{ConfigError, PoolConfig};
use snakepit_core::Error;
use snakepit_resilience::{ResilienceConfig, ResilienceStack};

/// Builds the stack of a pool, or `None` when its config enables no stage (the fast path).
///
/// Errors name the pool and the key (`pools[ml]: ... retry.jitter_factor ...`).
pub(crate) fn stack_for(config: &PoolConfig) -> Result<Option<ResilienceStack>, Error> {
    if config.resilience.is_empty() {
        return Ok(None);
    }
    let source = format!("resilience options of pools[{}]", config.name);
    let parsed = ResilienceConfig::deserialize(toml::Value::Table(config.resilience.clone()))
        .map_err(|e| ConfigError::Parse {
            source_name: source.clone(),
            message: e.to_string(),
        })?;
    let stack = ResilienceStack::from_config(&parsed)?;
    Ok(Some(stack))
}

#[cfg(test)]
mod tests {
    use super::*;
    use snakepit_core::config::SnakepitConfig;

    fn pool(text: &str) -> PoolConfig {
        SnakepitConfig::from_toml_str(text)
            .unwrap()
            .pool_configs()
            .unwrap()
            .remove(0)
    }

    #[test]
    fn no_tables_means_no_stack() {
        assert!(stack_for(&pool("")).unwrap().is_none());
    }

    #[test]
    fn tables_build_a_stack_and_bad_values_name_the_key() {
        let ok = pool("[[pools]]\nname = \"a\"\n[pools.circuit_breaker]\nfailure_threshold = 2\n");
        assert!(stack_for(&ok).unwrap().is_some());
        let bad = pool("[[pools]]\nname = \"a\"\n[pools.retry]\njitter_factor = 7.0\n");
        let err = stack_for(&bad).unwrap_err().to_string();
        assert!(err.contains("jitter_factor"), "{err}");
        let unknown = pool("[[pools]]\nname = \"a\"\n[pools.retry]\nmax_atempts = 2\n");
        let err = stack_for(&unknown).unwrap_err().to_string();
        assert!(
            err.contains("max_atempts") && err.contains("pools[a]"),
            "{err}"
        );
    }
}
