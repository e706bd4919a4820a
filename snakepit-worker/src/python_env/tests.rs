use std::path::{Path, PathBuf};

use snakepit_core::config::{PythonEnvConfig, PythonRuntime};

use super::*;

struct World {
    _root: tempfile::TempDir,
    home: PathBuf,
}

fn world() -> World {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    World { home, _root: root }
}

fn ctx(w: &World, env_var: Option<&str>) -> ResolveContext {
    ResolveContext {
        python_env_var: env_var.map(PathBuf::from),
        home: Some(w.home.clone()),
    }
}

#[test]
fn resolution_order_is_env_var_then_configured_then_runtime() {
    let w = world();
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
fn env_dir_wins_over_snakepits_own_environment() {
    let w = world();
    let env_dir = w.home.join("custom-env");
    let settings = PythonEnvConfig {
        env_dir: Some(env_dir.clone()),
        ..PythonEnvConfig::default()
    };
    let c = resolve(None, &settings, &ctx(&w, None));
    assert_eq!(c.source, PythonSource::Owned(env_dir.clone()));
    assert_eq!(c.python, venv_python(&env_dir));
    assert_eq!(resolve_explicit(None, &settings, &ctx(&w, None)), Some(c));
}

#[test]
fn nothing_explicit_leaves_the_default_to_the_application() {
    let w = world();
    let settings = PythonEnvConfig::default();
    assert_eq!(resolve_explicit(None, &settings, &ctx(&w, None)), None);
    assert_eq!(
        resolve(None, &settings, &ctx(&w, None)),
        default_choice(&settings, &ctx(&w, None))
    );
}

#[test]
fn without_an_explicit_interpreter_snakepit_uses_its_own_environment() {
    let w = world();
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
