//! The Python environment from the installed binary's point of view: setup anywhere, runtimes,
//! packages, interpreters that cannot run, and doctor starting each pool's adapter for real.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory outside the repository holding only a copy of the binary, an empty home and an
/// empty working directory.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for d in ["bin", "home", "work"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        std::fs::copy(
            env!("CARGO_BIN_EXE_snakepit"),
            root.path().join("bin/snakepit"),
        )
        .unwrap();
        Self { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Runs `snakepit` found on PATH, with the sandbox's HOME and working directory.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let real_home = std::env::var("HOME").unwrap_or_default();
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("snakepit");
        cmd.args(args)
            .current_dir(self.path("work"))
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env_remove("SNAKEPIT_PYTHON")
            .env_remove("SNAKEPIT_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("VIRTUAL_ENV");
        // Downloads are shared with the real home's cache; pyenv shims need their root.
        if std::env::var_os("PIP_CACHE_DIR").is_none() {
            cmd.env("PIP_CACHE_DIR", Path::new(&real_home).join(".cache/pip"));
        }
        let pyenv = Path::new(&real_home).join(".pyenv");
        if std::env::var_os("PYENV_ROOT").is_none() && pyenv.is_dir() {
            cmd.env("PYENV_ROOT", pyenv);
        }
        cmd.envs(env.iter().copied());
        // Another test thread forking while this sandbox's copy of the binary was still open
        // for writing makes exec fail with ETXTBSY until that child has exec'd: retry briefly.
        let mut attempts = 0;
        loop {
            match cmd.output() {
                Err(e)
                    if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
                        && attempts < 100 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other.expect("run snakepit from PATH"),
            }
        }
    }

    fn write(&self, rel: &str, text: &str) -> String {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Folders under `dir` whose name marks an unfinished build.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// The worktree's interpreter (bootstrapped for the integration tests).
fn project_python() -> String {
    std::env::var("SNAKEPIT_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python").to_owned())
}

#[test]
fn setup_then_exec_ping_work_from_an_empty_directory_with_only_the_binary() {
    let sb = Sandbox::new();
    let out = sb.run(&["setup"], &[]);
    assert!(out.status.success(), "setup failed: {}", stderr(&out));
    let python = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        python.starts_with(&sb.path("home").display().to_string()),
        "{python}"
    );
    let progress = stderr(&out);
    assert!(
        progress.contains("[1/4]") && progress.contains("[4/4]"),
        "{progress}"
    );
    assert!(leftovers(&sb.path("home/.local/share/snakepit/python")).is_empty());

    let out = sb.run(&["exec", "ping", "--pool-size", "1"], &[]);
    assert!(out.status.success(), "exec failed: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message"], "pong");

    // Done once: a second setup keeps the environment.
    let again = sb.run(&["setup"], &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), python);
    assert!(!stderr(&again).contains("[1/4]"), "{}", stderr(&again));
}

#[test]
fn exec_and_doctor_use_the_project_venv_of_a_parent_directory() {
    let sb = Sandbox::new();
    // The sandbox's root holds the project's `.venv` (the bootstrapped one, linked); the CLI runs
    // in `work/` below it, with an empty home.
    let python = PathBuf::from(project_python());
    let venv = python.parent().and_then(Path::parent).unwrap();
    std::os::unix::fs::symlink(venv, sb.path(".venv")).unwrap();

    let out = sb.run(&["exec", "ping", "--pool-size", "1"], &[]);
    assert!(out.status.success(), "exec failed: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message"], "pong");
    // Served by the project's environment: snakepit built none of its own.
    assert!(!sb.path("home/.local/share/snakepit").exists());

    let out = sb.run(&["doctor"], &[]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("nearest project .venv")
            && report.contains(&sb.path(".venv").display().to_string()),
        "{report}{}",
        stderr(&out)
    );
}

#[test]
fn a_failed_or_timed_out_setup_leaves_no_environment_behind() {
    let sb = Sandbox::new();
    let home = sb.path("spk");
    let home_s = home.display().to_string();
    let cfg = sb.write(
        "slow.toml",
        "python_packages = { requirements = [], timeout_ms = 30 }\n",
    );
    let out = sb.run(&["setup", "--config", &cfg], &[("SNAKEPIT_HOME", &home_s)]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not finish within"),
        "{}",
        stderr(&out)
    );
    let envs = home.join("python");
    let built: Vec<_> = std::fs::read_dir(&envs)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(built.is_empty(), "{built:?}");
    assert!(leftovers(&envs).is_empty(), "{:?}", leftovers(&envs));
}

#[test]
fn managed_runtime_without_uv_says_how_to_get_it() {
    let sb = Sandbox::new();
    let cfg = sb.write("managed.toml", "python_runtime = \"managed\"\n");
    let out = sb.run(
        &["exec", "ping", "--config", &cfg],
        &[(
            "PATH",
            &format!("{}:/usr/bin:/bin", sb.path("bin").display()),
        )],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("needs uv") && text.contains("python_runtime = \"venv\""),
        "{text}"
    );
}

#[test]
fn missing_python_packages_are_named_with_the_command_that_installs_them() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "pkgs.toml",
        "python_packages = [\"grpcio\", \"snakepit-no-such-package>=1\"]\n",
    );
    let python = project_python();
    let out = sb.run(
        &["exec", "ping", "--config", &cfg],
        &[("SNAKEPIT_PYTHON", &python)],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("'snakepit-no-such-package>=1'"), "{text}");
    assert!(!text.contains("'grpcio'"), "{text}");
    assert!(
        text.contains(&format!(
            "{python} -m pip install 'snakepit-no-such-package>=1'"
        )),
        "{text}"
    );
}

#[test]
fn an_interpreter_that_exits_silently_is_named() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "false.toml",
        "python_executable = \"/bin/false\"\npool_config = { pool_size = 1 }\n",
    );
    let out = sb.run(&["exec", "ping", "--config", &cfg], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("/bin/false") && text.contains("without output"),
        "{text}"
    );
}

#[test]
fn doctor_starts_each_adapter_and_reports_initialize_failures_and_hangs() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("work/badinit")).unwrap();
    sb.write("work/badinit/__init__.py", "");
    sb.write(
        "work/badinit/adapters.py",
        "import time\nfrom snakepit_bridge import BaseAdapter, tool\n\n\
         class Raises(BaseAdapter):\n    def initialize(self):\n        raise RuntimeError('no model file')\n\n    @tool\n    def ping(self):\n        return 1\n\n\
         class Hangs(BaseAdapter):\n    def initialize(self):\n        time.sleep(1000)\n\n    @tool\n    def ping(self):\n        return 1\n",
    );
    let work = sb.path("work").display().to_string();
    let cfg = sb.write(
        "doctor.toml",
        &format!(
            "[[pools]]\nname = \"raises\"\npool_size = 1\nadapter_spec = \"badinit.adapters.Raises\"\nadapter_env = {{ PYTHONPATH = \"{work}\" }}\n\n\
             [[pools]]\nname = \"hangs\"\npool_size = 1\npool_startup_timeout = 4000\nadapter_spec = \"badinit.adapters.Hangs\"\nadapter_env = {{ PYTHONPATH = \"{work}\" }}\n\n\
             [[pools]]\nname = \"fine\"\npool_size = 1\n"
        ),
    );
    let python = project_python();
    let out = sb.run(
        &["doctor", "--config", &cfg],
        &[("SNAKEPIT_PYTHON", &python)],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
            .to_owned()
    };
    let raises = line("pool 'raises' adapter");
    assert!(raises.starts_with("[  error]"), "{text}");
    assert!(
        text.contains("failed in initialize(): RuntimeError: no model file"),
        "{text}"
    );
    let hangs = line("pool 'hangs' adapter");
    assert!(
        hangs.starts_with("[  error]") && hangs.contains("pool_startup_timeout"),
        "{text}"
    );
    assert!(
        line("pool 'fine' adapter").starts_with("[     ok]"),
        "{text}"
    );
    let picked = line("pool 'fine' python");
    assert!(
        picked.contains(&python) && picked.contains("SNAKEPIT_PYTHON is set"),
        "{text}"
    );
}

#[test]
fn log_lines_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let sb = Sandbox::new();
    let python = project_python();
    let out = sb.run(
        &["exec", "ping", "--pool-size", "1"],
        &[("SNAKEPIT_PYTHON", &python), ("SNAKEPIT_LOG", "debug")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("DEBUG"), "debug lines were logged: {text}");
    assert!(!text.contains('\u{1b}'), "no ANSI escape codes: {text:?}");
}
