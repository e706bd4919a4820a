//! The `snakepit_bridge` package carried inside the binary, written out for pip to install.

use std::path::Path;

use snakepit_core::Error;

include!(concat!(env!("OUT_DIR"), "/bridge_files.rs"));

/// The bundled package's version, from its `pyproject.toml`.
pub fn bridge_version() -> &'static str {
    BRIDGE_FILES
        .iter()
        .find(|(name, _)| *name == "pyproject.toml")
        .and_then(|(_, bytes)| std::str::from_utf8(bytes).ok())
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("version = "))
                .map(|v| v.trim_matches('"'))
        })
        .unwrap_or("0")
}

/// A short hash of the bundled files: environments built from them carry it in their name.
pub fn bridge_hash() -> &'static str {
    BRIDGE_HASH
}

/// Writes the bundled package (pyproject.toml, README.md, src/snakepit_bridge) under `dir`.
pub(crate) fn write_bridge(dir: &Path) -> Result<usize, Error> {
    for (name, bytes) in BRIDGE_FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::pool_from(format!("cannot create {}: {e}", parent.display()), e)
            })?;
        }
        std::fs::write(&path, bytes)
            .map_err(|e| Error::pool_from(format!("cannot write {}: {e}", path.display()), e))?;
    }
    Ok(BRIDGE_FILES.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_holds_an_installable_package() {
        let dir = tempfile::tempdir().unwrap();
        let n = write_bridge(dir.path()).unwrap();
        assert!(n > 5, "{n} files");
        assert!(dir.path().join("pyproject.toml").is_file());
        assert!(dir.path().join("src/snakepit_bridge/server.py").is_file());
        assert!(!BRIDGE_FILES.iter().any(|(n, _)| n.contains("__pycache__")));
        assert!(bridge_version()
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit()));
        assert_eq!(bridge_hash().len(), 8);
    }
}
