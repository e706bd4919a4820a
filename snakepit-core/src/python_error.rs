//! Recognised kinds of Python failure: shape and device mismatches, out of memory, missing packages.
//!
//! The worker classifies the exception (by type where Python has one, by the messages NumPy and
//! PyTorch write otherwise) and sends `kind` and `details` in its error object; the host reads
//! them into a [`PythonErrorDetail`] and never parses messages itself.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which recognised failure a Python exception is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PythonErrorKind {
    /// Tensor or array shapes do not fit the operation (`ShapeMismatch` in the seeds).
    ShapeMismatch,
    /// Tensors of one operation live on different devices (`DeviceMismatch`).
    DeviceMismatch,
    /// The requested device is not available (`device_unavailable`).
    DeviceUnavailable,
    /// An allocation failed on a GPU or in host memory (`OutOfMemory`).
    OutOfMemory,
    /// A Python package the tool imports is not installed (`PackageError` `not_installed`).
    MissingPackage,
}

impl PythonErrorKind {
    /// The snake_case name, as the worker sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            PythonErrorKind::ShapeMismatch => "shape_mismatch",
            PythonErrorKind::DeviceMismatch => "device_mismatch",
            PythonErrorKind::DeviceUnavailable => "device_unavailable",
            PythonErrorKind::OutOfMemory => "out_of_memory",
            PythonErrorKind::MissingPackage => "missing_package",
        }
    }
}

impl fmt::Display for PythonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of a recognised failure, as the seeds' structured errors hold them.
///
/// Devices are written `cpu`, `mps`, `cuda:N` or `rocm:N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PythonErrorDetail {
    /// Shapes differ; `dimension` is the first index where they do.
    ShapeMismatch {
        /// The shape the operation expected, when the message named it.
        #[serde(default)]
        expected: Option<Vec<i64>>,
        /// The shape it got.
        #[serde(default)]
        got: Option<Vec<i64>>,
        /// The first differing dimension.
        #[serde(default)]
        dimension: Option<usize>,
        /// The operation, when the message named it.
        #[serde(default)]
        operation: Option<String>,
        /// What to try.
        #[serde(default)]
        suggestions: Vec<String>,
    },
    /// Tensors of one operation are on different devices.
    DeviceMismatch {
        /// The first device named.
        #[serde(default)]
        expected: Option<String>,
        /// The second device named.
        #[serde(default)]
        got: Option<String>,
        /// The operation, when named.
        #[serde(default)]
        operation: Option<String>,
        /// What to try.
        #[serde(default)]
        suggestions: Vec<String>,
    },
    /// The device asked for does not exist or cannot be used.
    DeviceUnavailable {
        /// The device.
        #[serde(default)]
        device: Option<String>,
        /// The operation, when named.
        #[serde(default)]
        operation: Option<String>,
        /// What to try.
        #[serde(default)]
        suggestions: Vec<String>,
    },
    /// An allocation failed (`device` is `cpu` for host memory).
    OutOfMemory {
        /// Where memory ran out.
        device: String,
        /// The allocation that failed, when the message said.
        #[serde(default)]
        requested_bytes: Option<u64>,
        /// The memory that was free, when the message said.
        #[serde(default)]
        available_bytes: Option<u64>,
        /// The seeds' recovery suggestions (batch size, precision, cache, ...).
        #[serde(default)]
        suggestions: Vec<String>,
    },
    /// An import failed because a package is not installed.
    MissingPackage {
        /// The missing top-level packages.
        #[serde(default)]
        packages: Vec<String>,
        /// The command that installs them into the worker's interpreter.
        #[serde(default)]
        suggestions: Vec<String>,
    },
}

impl PythonErrorDetail {
    /// Which failure this is.
    pub fn kind(&self) -> PythonErrorKind {
        match self {
            PythonErrorDetail::ShapeMismatch { .. } => PythonErrorKind::ShapeMismatch,
            PythonErrorDetail::DeviceMismatch { .. } => PythonErrorKind::DeviceMismatch,
            PythonErrorDetail::DeviceUnavailable { .. } => PythonErrorKind::DeviceUnavailable,
            PythonErrorDetail::OutOfMemory { .. } => PythonErrorKind::OutOfMemory,
            PythonErrorDetail::MissingPackage { .. } => PythonErrorKind::MissingPackage,
        }
    }

    /// The suggestions for recovering from it.
    pub fn suggestions(&self) -> &[String] {
        match self {
            PythonErrorDetail::ShapeMismatch { suggestions, .. }
            | PythonErrorDetail::DeviceMismatch { suggestions, .. }
            | PythonErrorDetail::DeviceUnavailable { suggestions, .. }
            | PythonErrorDetail::OutOfMemory { suggestions, .. }
            | PythonErrorDetail::MissingPackage { suggestions, .. } => suggestions,
        }
    }

    /// Reads the `kind` and `details` of a worker's error object; `None` when unrecognised.
    pub fn from_wire(kind: &str, details: Option<&serde_json::Value>) -> Option<Self> {
        let mut fields = match details {
            Some(serde_json::Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        fields.insert("kind".into(), serde_json::Value::String(kind.to_owned()));
        serde_json::from_value(serde_json::Value::Object(fields)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_details_become_typed_details() {
        let d = PythonErrorDetail::from_wire(
            "out_of_memory",
            Some(&json!({"device": "cuda:0", "requested_bytes": 2048, "available_bytes": null, "suggestions": ["Reduce batch size"]})),
        )
        .unwrap();
        assert_eq!(d.kind(), PythonErrorKind::OutOfMemory);
        assert_eq!(d.suggestions(), ["Reduce batch size".to_string()]);
        let d = PythonErrorDetail::from_wire(
            "shape_mismatch",
            Some(&json!({"expected": [3, 224], "got": [3, 256], "dimension": 1})),
        )
        .unwrap();
        assert!(matches!(
            d,
            PythonErrorDetail::ShapeMismatch {
                dimension: Some(1),
                ..
            }
        ));
        assert_eq!(PythonErrorDetail::from_wire("something_else", None), None);
        assert_eq!(
            PythonErrorDetail::from_wire("missing_package", None).map(|d| d.kind()),
            Some(PythonErrorKind::MissingPackage)
        );
    }
}
