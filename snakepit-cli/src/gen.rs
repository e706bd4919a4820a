//! `snakepit gen adapter NAME`: scaffolds a Python adapter package and prints its config.

use std::path::PathBuf;

use clap::Subcommand;

use crate::gen_names::{PYTHON_KEYWORDS, RESERVED_MODULES};
use crate::CliError;

/// What `snakepit gen` can generate.
#[derive(Subcommand)]
pub(crate) enum GenCommand {
    /// Scaffold `<dir>/<NAME>/adapter.py` with an example tool and print the pool config.
    Adapter {
        /// The Python package name (a valid identifier, e.g. `my_adapter`).
        name: String,
        /// Where to create the package.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

pub(crate) fn run(cmd: GenCommand) -> Result<(), CliError> {
    let GenCommand::Adapter { name, dir } = cmd;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(CliError::usage(format!(
            "adapter name {name:?} is not a Python identifier (use letters, digits and '_', e.g. my_adapter)"
        )));
    }
    if PYTHON_KEYWORDS.contains(&name.as_str()) {
        return Err(CliError::usage(format!(
            "adapter name {name:?} is a Python keyword and cannot be imported; pick another, e.g. {name}_adapter"
        )));
    }
    if RESERVED_MODULES.contains(&name.as_str()) {
        return Err(CliError::usage(format!(
            "adapter name {name:?} is a module of Python's standard library (or one every worker imports); a package of that name would shadow it or be shadowed, so pick another, e.g. my_{name}"
        )));
    }
    let package = dir.join(&name);
    if package.exists() {
        return Err(CliError::usage(format!(
            "{} already exists; pick another name or --dir",
            package.display()
        )));
    }
    let class = class_name(&name);
    let write = |file: &str, text: String| {
        std::fs::write(package.join(file), text).map_err(|e| {
            CliError::infra(format!(
                "cannot write {}: {e}",
                package.join(file).display()
            ))
        })
    };
    std::fs::create_dir_all(&package)
        .map_err(|e| CliError::infra(format!("cannot create {}: {e}", package.display())))?;
    write("__init__.py", format!("\"\"\"The {name} adapter package.\"\"\"\n\nfrom .adapter import {class}\n\n__all__ = [\"{class}\"]\n"))?;
    write("adapter.py", adapter_source(&class))?;
    let root = std::fs::canonicalize(&dir).unwrap_or(dir);
    println!("created {}", package.display());
    println!();
    println!("# snakepit.toml");
    println!("[[pools]]");
    println!("name = \"default\"");
    println!("adapter_spec = \"{name}.adapter.{class}\"");
    println!("adapter_env = {{ PYTHONPATH = \"{}\" }}", root.display());
    println!();
    println!("# then: snakepit exec hello --args '{{\"name\": \"world\"}}' --config snakepit.toml");
    Ok(())
}

fn class_name(name: &str) -> String {
    let mut out: String = name
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    if !out.ends_with("Adapter") {
        out.push_str("Adapter");
    }
    out
}

fn adapter_source(class: &str) -> String {
    format!(
        r#""""A snakepit adapter: each @tool method can be called from the host."""

from snakepit_bridge import BaseAdapter, tool


class {class}(BaseAdapter):
    def initialize(self):
        """Runs once per worker before the first call (load models here)."""

    @tool(description="Greet someone.")
    def hello(self, name: str = "world") -> dict:
        return {{"greeting": f"hello, {{name}}"}}

    @tool
    def count(self, n: int = 3):
        """Stream the numbers 1..n (generators are streaming tools)."""
        for i in range(1, n + 1):
            yield {{"i": i}}

    def cleanup(self):
        """Runs at shutdown."""
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_standard_library_names_are_refused() {
        for name in [
            "os",
            "json",
            "asyncio",
            "class",
            "None",
            "grpc",
            "snakepit_bridge",
        ] {
            let cmd = GenCommand::Adapter {
                name: name.into(),
                dir: PathBuf::from("/nonexistent-snakepit-gen"),
            };
            let err = run(cmd).err().unwrap_or_else(|| panic!("{name} accepted"));
            assert_eq!(err.code, crate::EXIT_USAGE, "{name}");
            assert!(err.message.contains(name), "{}", err.message);
        }
    }

    #[test]
    fn class_names_are_camel_case_adapters() {
        assert_eq!(class_name("my_tools"), "MyToolsAdapter");
        assert_eq!(class_name("ml_adapter"), "MlAdapter");
    }
}
