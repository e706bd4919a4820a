//! Random nested JSON and random durations through `snakepit exec`: every outcome is a result
//! or a typed failure with its exit code, never a panic (101) or a signal.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use rand::{Rng, SeedableRng};
use snakepit_core::json_limits::{parse_json_limited, value_depth};

/// JSON text of `{"x": v}` where `v` nests `depth` levels, arrays and objects as `shape` says.
fn nested_args(depth: usize, shape: u64) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for level in 0..depth {
        if shape >> (level % 64) & 1 == 1 {
            open.push_str(&format!("{{\"k{level}\": "));
            close.insert(0, '}');
        } else {
            open.push_str(&format!("[{level}, "));
            close.insert(0, ']');
        }
    }
    format!("{{\"x\": {open}\"leaf\"{close}}}")
}

/// How `--args` reaches the binary.
#[derive(Debug, Clone, Copy)]
enum Via {
    Inline,
    File,
    Stdin,
}

fn exec(args_text: &str, via: Via, timeout: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("args.json");
    let spec = match via {
        Via::Inline => args_text.to_owned(),
        Via::File => {
            std::fs::write(&file, args_text).unwrap();
            format!("@{}", file.display())
        }
        Via::Stdin => "-".to_owned(),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snakepit"));
    cmd.args(["exec", "echo", "--pool-size", "1", "--args", &spec]);
    if let Some(t) = timeout {
        cmd.args(["--timeout-ms", t]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if matches!(via, Via::Stdin) {
        // The binary may refuse a bad --timeout-ms before reading stdin: a broken pipe is fine.
        let _ = stdin.write_all(args_text.as_bytes());
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn a_huge_timeout_is_a_usage_error_not_a_panic() {
    for t in [
        "360000000000000",
        "0",
        "2592000001",
        "18446744073709551616",
        "-1",
        "soon",
    ] {
        let out = exec("{}", Via::Inline, Some(t));
        assert_eq!(
            out.status.code(),
            Some(2),
            "--timeout-ms {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("timeout-ms") || stderr.contains(t),
            "{t}: {stderr}"
        );
    }
}

#[test]
fn args_from_a_file_and_stdin_carry_more_than_the_os_argument_limit() {
    // ~400 KiB of arguments: more than one command-line argument may hold (128 KiB).
    let big = format!("{{\"text\": \"{}\"}}", "a".repeat(400 * 1024));
    for via in [Via::File, Via::Stdin] {
        let out = exec(&big, via, None);
        assert!(
            out.status.success(),
            "{via:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["text"].as_str().map(str::len), Some(400 * 1024));
    }
}

#[test]
fn random_depths_and_durations_exit_with_a_result_or_a_typed_failure() {
    let seed: u64 = std::env::var("SNAKEPIT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("fuzz seed {seed} (rerun with SNAKEPIT_FUZZ_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for case in 0..12 {
        // Mostly cases refused before a pool starts; a few that run a worker.
        let depth = match rng.gen_range(0..6) {
            0 => rng.gen_range(0..=200),
            1 => rng.gen_range(500..=514),
            2 | 3 => rng.gen_range(514..20_000),
            _ => rng.gen_range(20_000..=100_000),
        };
        let timeout = match rng.gen_range(0..5) {
            0 => None,
            1 => Some(rng.gen_range(2_000..60_000u64).to_string()),
            2 => Some(rng.gen_range(2_592_000_001..u64::MAX).to_string()),
            3 => Some("0".to_owned()),
            _ => Some(format!("{}0", u64::MAX)),
        };
        let via = [Via::Inline, Via::File, Via::Stdin][rng.gen_range(0..3)];
        let text = nested_args(depth, rng.gen());
        // The OS refuses an argument over 128 KiB before the binary runs; send those otherwise.
        let via = if text.len() > 100_000 && matches!(via, Via::Inline) {
            Via::File
        } else {
            via
        };
        let out = exec(&text, via, timeout.as_deref());
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what =
            format!("case {case}: depth {depth}, timeout {timeout:?}, {via:?}: {code:?} {stderr}");
        let timeout_ok = timeout.as_deref().is_none_or(|t| {
            t.parse::<u64>()
                .is_ok_and(|n| (1..=2_592_000_000).contains(&n))
        });
        let expected = if !timeout_ok || depth > 512 {
            2 // usage: bad --timeout-ms or --args too deep, refused before any worker
        } else if depth == 512 {
            1 // the echoed result is one level deeper than the limit: the tool's fault
        } else {
            0
        };
        assert_eq!(code, Some(expected), "{what}");
        assert!(
            stderr.len() < 4_000,
            "the error does not echo the input: {what}"
        );
        if expected == 0 {
            let v = parse_json_limited(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(value_depth(&v), depth + 1, "{what}");
        }
    }
}
