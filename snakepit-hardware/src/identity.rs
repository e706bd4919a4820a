//! The hardware identity recorded in `hardware.lock`, and what changed between two of them.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::HardwareError;
use crate::report::HardwareReport;

/// The conventional name of the lock file.
pub const LOCK_FILE_NAME: &str = "hardware.lock";

/// The facts about a machine a reproducible environment depends on.
///
/// Serialised with the seeds' string keys: `platform`, `accelerator`, `cpu_features` (sorted),
/// `gpu_count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareIdentity {
    /// `<os>-<arch>`, such as `linux-x86_64`.
    pub platform: String,
    /// The primary accelerator: `cpu`, `cuda`, `mps` or `rocm`.
    pub accelerator: String,
    /// CPU feature names, sorted.
    pub cpu_features: Vec<String>,
    /// The number of GPUs.
    pub gpu_count: u32,
}

impl HardwareReport {
    /// Returns the identity of the machine this report describes.
    pub fn identity(&self) -> HardwareIdentity {
        let mut cpu_features: Vec<String> = self
            .cpu
            .features
            .iter()
            .map(|f| f.as_str().to_owned())
            .collect();
        cpu_features.sort();
        cpu_features.dedup();
        HardwareIdentity {
            platform: self.platform.clone(),
            accelerator: self.accelerator.as_str().to_owned(),
            cpu_features,
            gpu_count: self.gpu_count(),
        }
    }
}

impl HardwareIdentity {
    /// Renders the lock file's content: pretty JSON with a trailing newline.
    pub fn to_lock_json(&self) -> String {
        // Serialising a struct of strings and numbers cannot fail; keep the fallback total.
        let mut json = serde_json::to_string_pretty(self).unwrap_or_default();
        json.push('\n');
        json
    }

    /// Parses a lock file's content.
    ///
    /// # Errors
    /// [`HardwareError::LockFileFormat`] when the text is not a valid identity.
    pub fn from_lock_json(text: &str) -> Result<Self, HardwareError> {
        serde_json::from_str(text).map_err(|source| HardwareError::LockFileFormat {
            path: "(in-memory text)".into(),
            source,
        })
    }

    /// Writes the lock file (blocking; call it from `spawn_blocking` inside async code).
    ///
    /// # Errors
    /// [`HardwareError::LockFileIo`] when the file cannot be written.
    pub fn write_lock(&self, path: impl AsRef<Path>) -> Result<(), HardwareError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_lock_json()).map_err(|source| HardwareError::LockFileIo {
            action: "write",
            path: path.to_owned(),
            source,
        })
    }

    /// Reads a lock file (blocking; call it from `spawn_blocking` inside async code).
    ///
    /// # Errors
    /// [`HardwareError::LockFileIo`] when the file cannot be read and
    /// [`HardwareError::LockFileFormat`] when it does not hold an identity.
    pub fn read_lock(path: impl AsRef<Path>) -> Result<Self, HardwareError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| HardwareError::LockFileIo {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| HardwareError::LockFileFormat {
            path: path.to_owned(),
            source,
        })
    }

    /// Lists what differs from `self` (the recorded identity) in `current`; empty when equal.
    pub fn diff(&self, current: &HardwareIdentity) -> Vec<IdentityChange> {
        let mut changes = Vec::new();
        if self.platform != current.platform {
            changes.push(IdentityChange::Platform {
                before: self.platform.clone(),
                after: current.platform.clone(),
            });
        }
        if self.accelerator != current.accelerator {
            changes.push(IdentityChange::Accelerator {
                before: self.accelerator.clone(),
                after: current.accelerator.clone(),
            });
        }
        let added: Vec<String> = difference(&current.cpu_features, &self.cpu_features);
        let removed: Vec<String> = difference(&self.cpu_features, &current.cpu_features);
        if !added.is_empty() || !removed.is_empty() {
            changes.push(IdentityChange::CpuFeatures { added, removed });
        }
        if self.gpu_count != current.gpu_count {
            changes.push(IdentityChange::GpuCount {
                before: self.gpu_count,
                after: current.gpu_count,
            });
        }
        changes
    }
}

fn difference(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = a.iter().filter(|x| !b.contains(x)).cloned().collect();
    out.sort();
    out.dedup();
    out
}

/// One difference between a recorded identity and the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum IdentityChange {
    /// The platform changed.
    Platform {
        /// The recorded value.
        before: String,
        /// The current value.
        after: String,
    },
    /// The primary accelerator changed.
    Accelerator {
        /// The recorded value.
        before: String,
        /// The current value.
        after: String,
    },
    /// CPU features appeared or disappeared.
    CpuFeatures {
        /// Features the current machine has and the recorded one did not.
        added: Vec<String>,
        /// Features the recorded machine had and the current one lacks.
        removed: Vec<String>,
    },
    /// The number of GPUs changed.
    GpuCount {
        /// The recorded value.
        before: u32,
        /// The current value.
        after: u32,
    },
}

impl IdentityChange {
    /// Returns the identity key that changed (`platform`, `accelerator`, ...).
    pub fn field(&self) -> &'static str {
        match self {
            IdentityChange::Platform { .. } => "platform",
            IdentityChange::Accelerator { .. } => "accelerator",
            IdentityChange::CpuFeatures { .. } => "cpu_features",
            IdentityChange::GpuCount { .. } => "gpu_count",
        }
    }
}

impl fmt::Display for IdentityChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityChange::Platform { before, after }
            | IdentityChange::Accelerator { before, after } => {
                write!(f, "{}: {before} -> {after}", self.field())
            }
            IdentityChange::GpuCount { before, after } => {
                write!(f, "gpu_count: {before} -> {after}")
            }
            IdentityChange::CpuFeatures { added, removed } => {
                f.write_str("cpu_features:")?;
                if !added.is_empty() {
                    write!(f, " added {}", added.join(", "))?;
                }
                if !removed.is_empty() {
                    if !added.is_empty() {
                        f.write_str(";")?;
                    }
                    write!(f, " removed {}", removed.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(accelerator: &str, features: &[&str], gpus: u32) -> HardwareIdentity {
        HardwareIdentity {
            platform: "linux-x86_64".to_owned(),
            accelerator: accelerator.to_owned(),
            cpu_features: features.iter().map(|s| (*s).to_owned()).collect(),
            gpu_count: gpus,
        }
    }

    #[test]
    fn equal_identities_have_no_changes() {
        let id = identity("cuda", &["avx", "avx2"], 2);
        assert!(id.diff(&id.clone()).is_empty());
    }

    #[test]
    fn changes_name_each_field_in_readable_form() {
        let locked = identity("cuda", &["avx", "avx2", "fma"], 2);
        let mut current = identity("cpu", &["avx", "avx2", "avx512f"], 0);
        current.platform = "macos-aarch64".to_owned();
        let lines: Vec<String> = locked
            .diff(&current)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "platform: linux-x86_64 -> macos-aarch64",
                "accelerator: cuda -> cpu",
                "cpu_features: added avx512f; removed fma",
                "gpu_count: 2 -> 0",
            ]
        );
    }

    #[test]
    fn lock_file_round_trips_with_the_seed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE_NAME);
        let id = identity("cuda", &["avx", "avx2"], 2);
        id.write_lock(&path).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["accelerator"], "cuda");
        assert_eq!(json["cpu_features"], serde_json::json!(["avx", "avx2"]));
        assert_eq!(json["gpu_count"], 2);
        assert_eq!(HardwareIdentity::read_lock(&path).unwrap(), id);
    }

    #[test]
    fn missing_and_corrupt_lock_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.lock");
        assert!(matches!(
            HardwareIdentity::read_lock(&missing),
            Err(HardwareError::LockFileIo { action: "read", .. })
        ));
        let corrupt = dir.path().join("corrupt.lock");
        std::fs::write(&corrupt, "{\"platform\": 3}").unwrap();
        assert!(matches!(
            HardwareIdentity::read_lock(&corrupt),
            Err(HardwareError::LockFileFormat { .. })
        ));
    }
}
