//! How a pool obtains its worker processes (`start_mode`) and what a zygote preloads (`preload`).

use serde::Deserialize;

use super::ConfigError;

/// How a pool's worker processes are started.
///
/// `zygote` (the default on Linux) starts one preloaded Python process per pool that imports
/// grpc, the adapter and the `preload` modules once and forks ready workers from it; `spawn`
/// starts a fresh interpreter per worker (the default elsewhere, and the fallback when forking
/// is unsafe or the pool runs its own `server_script`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartMode {
    /// A fresh interpreter per worker.
    Spawn,
    /// Workers forked from a per-pool zygote process.
    Zygote,
}

impl Default for StartMode {
    fn default() -> Self {
        if cfg!(target_os = "linux") {
            StartMode::Zygote
        } else {
            StartMode::Spawn
        }
    }
}

impl StartMode {
    /// Returns the name used in configuration files (`spawn` or `zygote`).
    pub fn as_str(self) -> &'static str {
        match self {
            StartMode::Spawn => "spawn",
            StartMode::Zygote => "zygote",
        }
    }
}

/// Whether `s` reads as a dotted Python module path (`pkg.sub_mod`).
pub(crate) fn is_module_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !part.starts_with(|c: char| c.is_ascii_digit())
        })
}

/// Checks that every `preload` entry is a module path; the error names the entry.
pub(crate) fn validate_preload(key: &str, preload: &[String]) -> Result<(), ConfigError> {
    match preload.iter().find(|m| !is_module_path(m)) {
        Some(bad) => Err(ConfigError::invalid(
            key,
            format!("{bad:?}"),
            "a list of Python module paths like [\"numpy\", \"mypkg.models\"]",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zygote_is_the_linux_default() {
        let expected = if cfg!(target_os = "linux") {
            StartMode::Zygote
        } else {
            StartMode::Spawn
        };
        assert_eq!(StartMode::default(), expected);
    }

    #[test]
    fn preload_rejects_what_is_not_a_module_path() {
        assert!(validate_preload("k", &["numpy".into(), "a.b_c".into()]).is_ok());
        let err = validate_preload("pools[p].preload", &["numpy".into(), "not a module".into()])
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("pools[p].preload"), "{text}");
        assert!(text.contains("not a module"), "{text}");
    }
}
