//! `cargo xtask codegen [--check]`: Rust (protox + tonic-prost-build) and Python (grpc_tools) stubs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{project_root, sh};

const PROTO_DIR: &str = "snakepit-proto/proto";
const PROTO_FILE: &str = "snakepit_bridge.proto";
const RUST_OUT: &str = "snakepit-proto/src/generated";
const PY_OUT: &str = "python/src/snakepit_bridge/_proto";
const PY_FILES: &[&str] = &[
    "snakepit_bridge_pb2.py",
    "snakepit_bridge_pb2.pyi",
    "snakepit_bridge_pb2_grpc.py",
];

pub(crate) fn run(check: bool) -> Result<()> {
    let root = project_root();
    let tmp = tempfile::tempdir()?;
    generate_rust(&root, tmp.path())?;
    let mut stale = sync(
        &root,
        &[(
            tmp.path().join("snakepit.bridge.rs"),
            root.join(RUST_OUT).join("snakepit.bridge.rs"),
        )],
        check,
    )?;
    let python = crate::bootstrap::run(false)?;
    generate_python(&root, &python, tmp.path())?;
    let py_pairs: Vec<_> = PY_FILES
        .iter()
        .map(|f| {
            (
                tmp.path().join("snakepit_bridge/_proto").join(f),
                root.join(PY_OUT).join(f),
            )
        })
        .collect();
    stale.extend(sync(&root, &py_pairs, check)?);
    if !stale.is_empty() {
        bail!(
            "generated code is stale (does not match {PROTO_DIR}/{PROTO_FILE}): {}; run `cargo xtask codegen` and never edit generated files by hand",
            stale.join(", ")
        );
    }
    if check {
        eprintln!("codegen: generated code is up to date");
    }
    Ok(())
}

/// Compares each fresh file with its committed twin: returns the stale ones (check) or overwrites them.
fn sync(root: &Path, pairs: &[(PathBuf, PathBuf)], check: bool) -> Result<Vec<String>> {
    let mut stale = Vec::new();
    for (fresh, committed) in pairs {
        let new =
            fs::read(fresh).with_context(|| format!("codegen produced no {}", fresh.display()))?;
        if fs::read(committed).ok().as_deref() == Some(new.as_slice()) {
            continue;
        }
        if check {
            stale.push(
                committed
                    .strip_prefix(root)
                    .unwrap_or(committed)
                    .display()
                    .to_string(),
            );
        } else {
            if let Some(dir) = committed.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(committed, new)?;
            eprintln!("wrote {}", committed.display());
        }
    }
    Ok(stale)
}

fn generate_rust(root: &Path, out: &Path) -> Result<()> {
    let fds = protox::compile([PROTO_FILE], [root.join(PROTO_DIR)])
        .map_err(|e| anyhow::anyhow!("cannot compile {PROTO_DIR}/{PROTO_FILE}: {e}"))?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".")
        .emit_rerun_if_changed(false)
        .out_dir(out)
        .compile_fds(fds)
        .context("tonic-prost-build failed")?;
    Ok(())
}

fn generate_python(root: &Path, python: &Path, out: &Path) -> Result<()> {
    sh(Command::new(python)
        .arg(root.join("python/scripts/gen_proto.py"))
        .arg(root)
        .arg("--out")
        .arg(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_mode_names_the_stale_file_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.rs");
        let committed = dir.path().join("gen/committed.rs");
        fs::write(&fresh, "generated").unwrap();
        fs::create_dir_all(committed.parent().unwrap()).unwrap();
        fs::write(&committed, "generated // hand edit").unwrap();
        let pairs = [(fresh, committed.clone())];
        assert_eq!(
            sync(dir.path(), &pairs, true).unwrap(),
            vec!["gen/committed.rs".to_string()]
        );
        assert_eq!(
            fs::read_to_string(&committed).unwrap(),
            "generated // hand edit"
        );
        assert!(sync(dir.path(), &pairs, false).unwrap().is_empty());
        assert_eq!(fs::read_to_string(&committed).unwrap(), "generated");
        assert!(sync(dir.path(), &pairs, true).unwrap().is_empty());
    }

    #[test]
    fn committed_rust_matches_the_proto_and_a_hand_edit_is_caught() {
        // The real generator on the real proto, compared with a copy of the committed file:
        // fresh output is up to date, and one edited line makes the check name the file.
        let root = project_root();
        let fresh_dir = tempfile::tempdir().unwrap();
        generate_rust(&root, fresh_dir.path()).unwrap();
        let fresh = fresh_dir.path().join("snakepit.bridge.rs");
        let committed = root.join(RUST_OUT).join("snakepit.bridge.rs");
        let copy_root = tempfile::tempdir().unwrap();
        let copy = copy_root.path().join(RUST_OUT).join("snakepit.bridge.rs");
        fs::create_dir_all(copy.parent().unwrap()).unwrap();
        fs::copy(&committed, &copy).unwrap();
        let pairs = [(fresh, copy.clone())];
        assert!(sync(copy_root.path(), &pairs, true).unwrap().is_empty());

        let edited = fs::read_to_string(&copy).unwrap().replacen(
            "pub struct PingRequest",
            "pub struct PingRequestEdited",
            1,
        );
        fs::write(&copy, edited).unwrap();
        assert_eq!(
            sync(copy_root.path(), &pairs, true).unwrap(),
            vec![format!("{RUST_OUT}/snakepit.bridge.rs")]
        );
    }
}
