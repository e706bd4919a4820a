//! Fake vendor tools for integration tests: shell scripts in a temporary search path.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use snakepit_hardware::DetectorConfig;

/// A temporary folder of fake executables and the detector config that finds only them.
pub struct FakeTools {
    dir: tempfile::TempDir,
}

impl FakeTools {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes an executable `name` whose body is the given shell script.
    pub fn add(&self, name: &str, body: &str) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write fake tool");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod fake tool");
        self
    }

    /// Adds an `nvidia-smi` that prints `query` for `--query-gpu` runs and `banner` otherwise.
    pub fn nvidia_smi(&self, query: &str, banner: &str) -> &Self {
        self.add(
            "nvidia-smi",
            &format!(
                "case \"$*\" in\n  *--query-gpu*) cat '{}' ;;\n  *) cat '{}' ;;\nesac",
                fixture(query).display(),
                fixture(banner).display()
            ),
        )
    }

    /// A config that looks up tools only here, with no cuDNN or ROCm version files.
    pub fn config(&self) -> DetectorConfig {
        let mut config = DetectorConfig::default()
            .with_search_path(self.dir.path())
            .with_timeout(Duration::from_secs(5));
        config.os = "linux".to_owned();
        config.cudnn_include_dirs = Vec::new();
        config.rocm_version_files = Vec::new();
        config
    }
}

/// The path of a recorded tool output under tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
