//! Embeds the `snakepit_bridge` Python package (python/) so an installed binary can provision it anywhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "__pycache__" || name.ends_with(".pyc") || name.ends_with(".egg-info") {
            continue;
        }
        if path.is_dir() {
            collect(&path, root, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push((rel.to_string_lossy().replace('\\', "/"), path.clone()));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let python = manifest.join("../python");
    let python = python.canonicalize().unwrap_or(python);
    let mut files = Vec::new();
    for top in ["pyproject.toml", "README.md"] {
        if python.join(top).is_file() {
            files.push((top.to_owned(), python.join(top)));
        }
    }
    collect(&python.join("src/snakepit_bridge"), &python, &mut files);
    files.sort();
    // Each file, not the folder: a folder is rescanned on every change, __pycache__ included.
    for (_, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // FNV-1a over names and contents: names the environment built from this exact copy.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut table = String::from("&[\n");
    for (rel, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_default();
        for b in rel.bytes().chain([0]).chain(bytes) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let _ = writeln!(
            table,
            "    ({rel:?}, include_bytes!({:?}) as &[u8]),",
            path.display().to_string()
        );
    }
    table.push(']');
    let code = format!(
        "/// The files of the bundled bridge package, relative to `python/`.\n\
         pub(crate) const BRIDGE_FILES: &[(&str, &[u8])] = {table};\n\
         /// A hash of [`BRIDGE_FILES`], part of the name of environments built from them.\n\
         pub(crate) const BRIDGE_HASH: &str = \"{:08x}\";\n",
        hash >> 32
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("bridge_files.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}
