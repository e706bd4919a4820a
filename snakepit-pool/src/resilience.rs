//! The pool's resilience stack, built from its `circuit_breaker`, `retry` and `timeouts`
//! tables (see `snakepit-resilience`): the call-level half (deadline, retry) above the
//! checkout, the worker-level half (breaker, attempt timeout) around each worker.

use serde::Deserialize;
use snakepit_core::config::{ConfigError, PoolConfig};
use snakepit_core::Error;
use snakepit_resilience::{ResilienceConfig, ResilienceStack};

/// Builds the stack of a pool. Without tables it is only the overall deadline
/// (`execute_timeout_ms`); with them the deadline is the tighter of that and
/// `timeouts.call_timeout_ms` (60 s).
///
/// Errors name the pool and the key (`pools[ml]: ... retry.jitter_factor ...`).
pub(crate) fn stack_for(config: &PoolConfig) -> Result<ResilienceStack, Error> {
    if config.resilience.is_empty() {
        return Ok(ResilienceStack::new().with_deadline(config.execute_timeout));
    }
    let source = format!("resilience options of pools[{}]", config.name);
    let parsed = ResilienceConfig::deserialize(toml::Value::Table(config.resilience.clone()))
        .map_err(|e| ConfigError::Parse {
            source_name: source.clone(),
            message: e.to_string(),
        })?;
    let stack = ResilienceStack::from_config(&parsed)?;
    let deadline = stack
        .deadline_default()
        .map_or(config.execute_timeout, |d| d.min(config.execute_timeout));
    Ok(stack.with_deadline(deadline))
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
    fn no_tables_means_only_the_execute_timeout() {
        let config = pool("");
        let stack = stack_for(&config).unwrap();
        assert_eq!(stack.deadline_default(), Some(config.execute_timeout));
    }

    #[test]
    fn tables_build_a_stack_and_bad_values_name_the_key() {
        let ok = pool("[[pools]]\nname = \"a\"\n[pools.circuit_breaker]\nfailure_threshold = 2\n");
        let stack = stack_for(&ok).unwrap();
        assert!(stack.deadline_default() <= Some(ok.execute_timeout));
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
