use std::path::{Path, PathBuf};

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
    _root: tempfile::TempDir,
    project: PathBuf,
    nested: PathBuf,
    home: PathBuf,
}

fn world() -> World {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    let nested = project.join("app/src");
    std::fs::create_dir_all(&nested).unwrap();
    let home = root.path().join("home");
    World {
        project,
        nested,
        home,
        _root: root,
    }
}

fn ctx(w: &World, env_var: Option<&str>) -> ResolveContext {
    ResolveContext {
        python_env_var: env_var.map(PathBuf::from),
        cwd: Some(w.nested.clone()),
        home: Some(w.home.clone()),
    }
}

#[test]
fn resolution_order_is_env_var_then_configured_then_runtime() {
    let w = world();
    fake_venv(&w.project, true);
    let settings = PythonEnvConfig::default();
    let configured = Path::new("/opt/py/bin/python3");

    let c = resolve(Some(configured), &settings, &ctx(&w, Some("/env/python")));
    assert_eq!(
        (c.python, c.source),
        (PathBuf::from("/env/python"), PythonSource::EnvVar)
    );

    let c = resolve(Some(configured), &settings, &ctx(&w, None));
    assert_eq!(
        (c.python.as_path(), c.source),
        (configured, PythonSource::Configured)
    );

    let system = PythonEnvConfig {
        runtime: PythonRuntime::System,
        ..PythonEnvConfig::default()
    };
    let c = resolve(None, &system, &ctx(&w, None));
    assert_eq!(
        (c.python, c.source),
        (PathBuf::from("python3"), PythonSource::System)
    );
    assert!(c.reason.contains("system"), "{}", c.reason);
}

#[test]
fn env_dir_wins_over_project_venvs() {
    let w = world();
    fake_venv(&w.project, true);
    let env_dir = w.home.join("custom-env");
    let settings = PythonEnvConfig {
        env_dir: Some(env_dir.clone()),
        ..PythonEnvConfig::default()
    };
    let c = resolve(None, &settings, &ctx(&w, None));
    assert_eq!(c.source, PythonSource::Owned(env_dir.clone()));
    assert_eq!(c.python, venv_python(&env_dir));
}

#[test]
fn a_project_venv_without_the_bridge_is_skipped_with_the_reason() {
    let w = world();
    let with_bridge = fake_venv(&w.project, true);
    let without = fake_venv(&w.nested, false);
    let c = resolve(None, &PythonEnvConfig::default(), &ctx(&w, None));
    assert_eq!(c.source, PythonSource::ProjectVenv(with_bridge.clone()));
    assert_eq!(c.python, venv_python(&with_bridge));
    assert_eq!(c.skipped.len(), 1, "{:?}", c.skipped);
    assert!(c.skipped[0].contains(&without.display().to_string()));
    assert!(c.skipped[0].contains("not installed"));
}

#[test]
fn without_a_usable_venv_snakepit_uses_its_own_environment() {
    let w = world();
    fake_venv(&w.nested, false);
    for runtime in [PythonRuntime::Venv, PythonRuntime::Managed] {
        let settings = PythonEnvConfig {
            runtime,
            ..PythonEnvConfig::default()
        };
        let c = resolve(None, &settings, &ctx(&w, None));
        let dir = own_env_dir(&w.home, &settings);
        assert!(dir.starts_with(&w.home));
        assert!(dir.to_string_lossy().contains(runtime.as_str()));
        assert!(dir.to_string_lossy().contains(bridge_hash()));
        assert_eq!(c.source, PythonSource::Owned(dir));
    }
    let no_home = ResolveContext {
        home: None,
        ..ctx(&w, None)
    };
    let c = resolve(None, &PythonEnvConfig::default(), &no_home);
    assert_eq!(c.source, PythonSource::System);
}
