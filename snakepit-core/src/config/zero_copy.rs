//! The `zero_copy` table: when arrays travel through shared memory instead of the message.

use serde::Deserialize;

use super::ConfigError;

/// The seeds' default threshold (1 MiB): smaller buffers ride in the message.
pub const DEFAULT_ZERO_COPY_THRESHOLD: usize = 1_048_576;

/// `zero_copy = { enabled = true, threshold_bytes = 1048576 }` as written in the file
/// (globally, or in a pool where its keys win over the global ones).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ZeroCopyTable {
    /// Whether large arrays go through the worker's shared-memory arena (default `true`).
    pub enabled: Option<bool>,
    /// Smallest buffer, in bytes, that takes the shared-memory path (default 1 048 576).
    pub threshold_bytes: Option<usize>,
}

/// The zero-copy settings of a pool, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroCopySettings {
    /// Whether large arrays go through shared memory.
    pub enabled: bool,
    /// Smallest buffer that takes the shared-memory path.
    pub threshold_bytes: usize,
}

impl Default for ZeroCopySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold_bytes: DEFAULT_ZERO_COPY_THRESHOLD,
        }
    }
}

impl ZeroCopySettings {
    /// Overlays `global` then `local` on the defaults and checks the values.
    pub(super) fn from_tables(
        global: Option<&ZeroCopyTable>,
        local: Option<&ZeroCopyTable>,
        key: &str,
    ) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        for t in [global, local].into_iter().flatten() {
            if let Some(e) = t.enabled {
                out.enabled = e;
            }
            if let Some(b) = t.threshold_bytes {
                if b == 0 {
                    return Err(ConfigError::invalid(
                        format!("{key}.threshold_bytes"),
                        0,
                        "a positive number of bytes (default 1048576); set enabled = false to turn zero-copy off",
                    ));
                }
                out.threshold_bytes = b;
            }
        }
        Ok(out)
    }

    /// Whether a buffer of `len` bytes takes the shared-memory path.
    pub fn applies_to(&self, len: usize) -> bool {
        self.enabled && len >= self.threshold_bytes
    }
}
