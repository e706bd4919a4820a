//! Configuration tests: parsing, defaults, and errors that name the key.

use std::time::Duration;

use snakepit_core::config::ConfigError;
use snakepit_core::ErrorKind;

use super::*;

fn invalid_key(text: &str) -> String {
    match ResilienceConfig::from_toml_str(text)
        .unwrap()
        .validate()
        .unwrap_err()
    {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("expected an invalid value, got {other}"),
    }
}

#[test]
fn empty_config_has_only_the_default_deadline() {
    let config = ResilienceConfig::from_toml_str("").unwrap();
    assert_eq!(config.circuit_breaker_config().unwrap(), None);
    assert_eq!(config.retry_config().unwrap(), None);
    assert_eq!(config.call_timeout().unwrap(), DEFAULT_CALL_TIMEOUT);
    assert_eq!(config.attempt_timeout().unwrap(), None);
}

#[test]
fn present_tables_take_the_seeds_defaults() {
    let config = ResilienceConfig::from_toml_str("[circuit_breaker]\n[retry]\n").unwrap();
    assert_eq!(
        config.circuit_breaker_config().unwrap(),
        Some(CircuitBreakerConfig::default())
    );
    let (policy, budget) = config.retry_config().unwrap().unwrap();
    assert_eq!(policy, RetryPolicy::default());
    assert_eq!(budget, RetryBudget::default());
}

#[test]
fn every_key_is_read() {
    let config = ResilienceConfig::from_toml_str(
        r#"
        [circuit_breaker]
        enabled = true
        failure_threshold = 3
        reset_timeout_ms = 1000
        half_open_max_calls = 2

        [retry]
        max_attempts = 4
        backoff_ms = [10, 20]
        base_backoff_ms = 5
        backoff_multiplier = 3.0
        max_backoff_ms = 500
        jitter = true
        jitter_factor = 0.1
        retriable_errors = ["timeout", "unavailable", "connection_refused", "worker_crash"]
        budget_ttl_ms = 5000
        budget_min_per_sec = 2
        budget_retry_percent = 0.5

        [timeouts]
        call_timeout_ms = 2000
        attempt_timeout_ms = 700
        "#,
    )
    .unwrap();
    let breaker = config.circuit_breaker_config().unwrap().unwrap();
    assert_eq!(
        (
            breaker.failure_threshold,
            breaker.reset_timeout,
            breaker.half_open_max_calls
        ),
        (3, Duration::from_secs(1), 2)
    );
    let (policy, budget) = config.retry_config().unwrap().unwrap();
    assert_eq!(policy.max_attempts, 4);
    assert_eq!(policy.backoff_ms, vec![10, 20]);
    assert_eq!(
        (
            policy.base_backoff_ms,
            policy.backoff_multiplier,
            policy.max_backoff_ms
        ),
        (5, 3.0, 500)
    );
    assert!(policy.jitter);
    assert_eq!(policy.jitter_factor, 0.1);
    assert_eq!(
        policy.retriable_errors,
        RetriableErrors::Kinds(vec![
            ErrorKind::Timeout,
            ErrorKind::Transport,
            ErrorKind::WorkerCrash
        ])
    );
    assert_eq!(
        budget,
        RetryBudget::new(Duration::from_secs(5), 2, 0.5).unwrap()
    );
    assert_eq!(config.call_timeout().unwrap(), Duration::from_secs(2));
    assert_eq!(
        config.attempt_timeout().unwrap(),
        Some(Duration::from_millis(700))
    );
}

#[test]
fn disabled_tables_turn_their_stage_off() {
    let config = ResilienceConfig::from_toml_str(
        "[circuit_breaker]\nenabled = false\n[retry]\nenabled = false\n",
    )
    .unwrap();
    assert_eq!(config.circuit_breaker_config().unwrap(), None);
    assert_eq!(config.retry_config().unwrap(), None);
}

#[test]
fn base_backoff_without_a_list_means_pure_exponential_backoff() {
    let config = ResilienceConfig::from_toml_str("[retry]\nbase_backoff_ms = 50\n").unwrap();
    let (policy, _) = config.retry_config().unwrap().unwrap();
    assert!(policy.backoff_ms.is_empty());
    assert_eq!(policy.backoff_for_attempt(3), Duration::from_millis(200));
}

#[test]
fn retriable_errors_accepts_all() {
    let config = ResilienceConfig::from_toml_str("[retry]\nretriable_errors = \"all\"\n").unwrap();
    assert_eq!(
        config.retry_config().unwrap().unwrap().0.retriable_errors,
        RetriableErrors::All
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let err = ResilienceConfig::from_toml_str("[retry]\nmax_retries = 3\n").unwrap_err();
    assert!(err.to_string().contains("max_retries"), "{err}");
    let err = ResilienceConfig::from_toml_str("[breaker]\n").unwrap_err();
    assert!(err.to_string().contains("breaker"), "{err}");
}

#[test]
fn invalid_values_name_their_key() {
    assert_eq!(
        invalid_key("[circuit_breaker]\nfailure_threshold = 0"),
        "circuit_breaker.failure_threshold"
    );
    assert_eq!(
        invalid_key("[circuit_breaker]\nreset_timeout_ms = 0"),
        "circuit_breaker.reset_timeout_ms"
    );
    assert_eq!(
        invalid_key("[circuit_breaker]\nhalf_open_max_calls = 0"),
        "circuit_breaker.half_open_max_calls"
    );
    assert_eq!(
        invalid_key("[retry]\nmax_attempts = 0"),
        "retry.max_attempts"
    );
    assert_eq!(
        invalid_key("[retry]\nbackoff_multiplier = 0.5"),
        "retry.backoff_multiplier"
    );
    assert_eq!(
        invalid_key("[retry]\njitter_factor = 1.5"),
        "retry.jitter_factor"
    );
    assert_eq!(
        invalid_key("[retry]\nretriable_errors = [\"timeout\", \"nope\"]"),
        "retry.retriable_errors"
    );
    assert_eq!(
        invalid_key("[retry]\nretriable_errors = \"some\""),
        "retry.retriable_errors"
    );
    assert_eq!(
        invalid_key("[retry]\nbudget_ttl_ms = 100"),
        "retry.budget_ttl_ms"
    );
    assert_eq!(
        invalid_key("[timeouts]\ncall_timeout_ms = 0"),
        "timeouts.call_timeout_ms"
    );
    assert_eq!(
        invalid_key("[timeouts]\nattempt_timeout_ms = 0"),
        "timeouts.attempt_timeout_ms"
    );
}

#[test]
fn invalid_value_message_says_what_is_allowed() {
    let err = ResilienceConfig::from_toml_str("[retry]\njitter_factor = 2.0")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config value for `retry.jitter_factor`: 2 (a fraction from 0.0 to 1.0)"
    );
}
