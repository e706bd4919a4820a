//! The CLI's interpreter choice: the library's order, with the project's `.venv` before
//! snakepit's own environment.
//!
//! Looking through the current directory and its parents is an application's policy, so it
//! lives here and not in the library crates: a Rust host embedding `snakepit-pool` gets exactly
//! the interpreter its configuration or `SNAKEPIT_PYTHON` names (or snakepit's own environment).
//! The CLI hands what it finds to the pool as `python_executable`.

use std::path::Path;

use snakepit_core::config::PoolConfig;
use snakepit_worker::python_env::{self, PythonChoice, PythonSource, ResolveContext};

/// Picks the interpreter of `pool` as the CLI runs it, creating nothing.
pub(crate) fn resolve(pool: &PoolConfig) -> PythonChoice {
    resolve_in(
        pool,
        &ResolveContext::from_process(),
        std::env::current_dir().ok().as_deref(),
    )
}

/// Sets `python_executable` on each pool whose interpreter is a project `.venv`, so the pool
/// runs what [`resolve`] picked.
pub(crate) fn adopt_project_venvs(pools: &mut [PoolConfig]) {
    for pool in pools {
        let choice = resolve(pool);
        if let PythonSource::ProjectVenv(venv) = &choice.source {
            tracing::info!(target: "snakepit::startup", pool = %pool.name, venv = %venv.display(), "using the project .venv");
            pool.python_executable = Some(choice.python);
        }
    }
}

fn resolve_in(pool: &PoolConfig, ctx: &ResolveContext, cwd: Option<&Path>) -> PythonChoice {
    let settings = &pool.python_env;
    if let Some(choice) =
        python_env::resolve_explicit(pool.python_executable.as_deref(), settings, ctx)
    {
        return choice;
    }
    let mut skipped = Vec::new();
    for dir in cwd.iter().flat_map(|c| c.ancestors()) {
        let venv = dir.join(".venv");
        if !python_env::venv_python(&venv).is_file() {
            continue;
        }
        if has_bridge(&venv) {
            return PythonChoice {
                python: python_env::venv_python(&venv),
                reason: format!(
                    "the nearest project .venv with snakepit_bridge installed ({})",
                    venv.display()
                ),
                source: PythonSource::ProjectVenv(venv),
                skipped,
            };
        }
        skipped.push(format!(
            "{}: snakepit_bridge is not installed in it",
            venv.display()
        ));
    }
    let mut choice = python_env::default_choice(settings, ctx);
    skipped.append(&mut choice.skipped);
    choice.skipped = skipped;
    choice
}

/// Tells whether the virtual environment `venv` has the snakepit_bridge distribution installed.
///
/// Looks for its `dist-info` in site-packages (regular and editable installs both have one),
/// so no interpreter is started.
fn has_bridge(venv: &Path) -> bool {
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return false;
    };
    libs.flatten().any(|lib| {
        std::fs::read_dir(lib.path().join("site-packages")).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("snakepit_bridge-") && name.ends_with(".dist-info")
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use snakepit_core::config::{PythonEnvConfig, PythonRuntime};

    use super::*;

    /// A fake virtual environment: `bin/python` and, when `bridge`, the bridge's dist-info.
    fn fake_venv(dir: &Path, bridge: bool) -> PathBuf {
        let venv = dir.join(".venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python"), "").unwrap();
        let site = venv.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(&site).unwrap();
        if bridge {
            std::fs::create_dir_all(site.join("snakepit_bridge-0.1.0.dist-info")).unwrap();
        }
        venv
    }

    struct World {
        root: tempfile::TempDir,
        ctx: ResolveContext,
    }

    impl World {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            let ctx = ResolveContext {
                python_env_var: None,
                home: Some(root.path().join("home")),
            };
            Self { root, ctx }
        }
        fn project(&self) -> PathBuf {
            self.root.path().join("project")
        }
        fn nested(&self) -> PathBuf {
            let nested = self.project().join("app/src");
            std::fs::create_dir_all(&nested).unwrap();
            nested
        }
    }

    fn pool(settings: PythonEnvConfig) -> PoolConfig {
        let mut pool = PoolConfig::showcase(1);
        pool.python_env = settings;
        pool
    }

    #[test]
    fn the_nearest_project_venv_with_the_bridge_wins_and_others_are_skipped_with_the_reason() {
        let w = World::new();
        let nested = w.nested();
        let with_bridge = fake_venv(&w.project(), true);
        let without = fake_venv(&nested, false);
        let c = resolve_in(&pool(PythonEnvConfig::default()), &w.ctx, Some(&nested));
        assert_eq!(c.source, PythonSource::ProjectVenv(with_bridge.clone()));
        assert_eq!(c.python, python_env::venv_python(&with_bridge));
        assert_eq!(c.skipped.len(), 1, "{:?}", c.skipped);
        assert!(c.skipped[0].contains(&without.display().to_string()));
        assert!(c.skipped[0].contains("not installed"));
    }

    #[test]
    fn explicit_sources_win_over_a_project_venv() {
        let w = World::new();
        let nested = w.nested();
        fake_venv(&w.project(), true);
        let env_dir = w.root.path().join("custom-env");
        let settings = PythonEnvConfig {
            env_dir: Some(env_dir.clone()),
            ..PythonEnvConfig::default()
        };
        let c = resolve_in(&pool(settings), &w.ctx, Some(&nested));
        assert_eq!(c.source, PythonSource::Owned(env_dir));
        let system = PythonEnvConfig {
            runtime: PythonRuntime::System,
            ..PythonEnvConfig::default()
        };
        let c = resolve_in(&pool(system), &w.ctx, Some(&nested));
        assert_eq!(c.source, PythonSource::System);
        let ctx = ResolveContext {
            python_env_var: Some("/env/python".into()),
            ..w.ctx.clone()
        };
        let c = resolve_in(&pool(PythonEnvConfig::default()), &ctx, Some(&nested));
        assert_eq!(c.source, PythonSource::EnvVar);
    }

    #[test]
    fn without_a_usable_project_venv_the_librarys_default_is_used_and_the_skip_is_kept() {
        let w = World::new();
        let nested = w.nested();
        fake_venv(&nested, false);
        let settings = PythonEnvConfig::default();
        let c = resolve_in(&pool(settings.clone()), &w.ctx, Some(&nested));
        let own = python_env::default_choice(&settings, &w.ctx);
        assert_eq!((&c.python, &c.source), (&own.python, &own.source));
        assert_eq!(c.skipped.len(), 1, "{:?}", c.skipped);
        let no_home = ResolveContext {
            home: None,
            ..w.ctx.clone()
        };
        let c = resolve_in(&pool(settings), &no_home, Some(&nested));
        assert_eq!(c.source, PythonSource::System);
        assert_eq!(c.skipped.len(), 2, "{:?}", c.skipped);
    }
}
