//! Configuration errors: each names the key, the bad value and what is allowed.

use std::path::PathBuf;

/// A configuration that could not be read, parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The TOML could not be parsed or has an unknown key or a wrongly typed value.
    #[error("invalid {source_name}: {message}")]
    Parse {
        /// Which document.
        source_name: String,
        /// The parser's message, naming the key and line.
        message: String,
    },
    /// A key has a value outside what is allowed.
    #[error("invalid config value for `{key}`: {value} ({allowed})")]
    Invalid {
        /// The key, qualified with its pool (`pools[ml].pool_size`).
        key: String,
        /// The bad value as written.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A required key is missing.
    #[error("missing config key `{key}`: {hint}")]
    Missing {
        /// The key.
        key: String,
        /// What to set.
        hint: String,
    },
    /// No pool has the requested name.
    #[error("no pool named '{name}' (configured pools: {})", available.join(", "))]
    PoolNotFound {
        /// The requested name.
        name: String,
        /// The configured pools.
        available: Vec<String>,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        key: impl Into<String>,
        value: impl ToString,
        allowed: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}
