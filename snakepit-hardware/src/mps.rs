//! Apple Metal (MPS) detection on macOS through `sysctl`.

use crate::config::{DetectorConfig, Tool};
use crate::report::{Diagnostic, MpsInfo};
use crate::tool::{run_tool, summarize, UnexpectedOutput};

/// Detects Apple Metal; `None` off macOS or when `sysctl` is missing.
pub(crate) async fn detect(config: &DetectorConfig) -> (Option<MpsInfo>, Vec<Diagnostic>) {
    if config.os != "macos" {
        return (None, Vec::new());
    }
    let chip = run_tool(
        config,
        Tool::Sysctl,
        &["-n", "machdep.cpu.brand_string", "hw.memsize"],
    )
    .await;
    let output = match chip {
        Ok(output) => output,
        Err(failure) => return (None, failure.diagnostic(Tool::Sysctl).into_iter().collect()),
    };
    let (device_name, memory_total_mb) = match parse_chip(&output.stdout) {
        Ok(chip) => chip,
        Err(err) => {
            let message = format!("{err}; MPS is left out");
            return (None, vec![Diagnostic::new(Tool::Sysctl.program(), message)]);
        }
    };
    // Intel Macs have no `hw.optional.arm64`; sysctl then fails, which means "not Apple Silicon".
    let apple_silicon = run_tool(config, Tool::Sysctl, &["-n", "hw.optional.arm64"])
        .await
        .is_ok_and(|out| out.stdout.trim() == "1");
    let info = MpsInfo {
        available: apple_silicon,
        device_name,
        memory_total_mb,
    };
    (Some(info), Vec::new())
}

/// Parses `sysctl -n machdep.cpu.brand_string hw.memsize` into the chip name and memory in MiB.
pub(crate) fn parse_chip(text: &str) -> Result<(String, u64), UnexpectedOutput> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let name = lines.next();
    let bytes = lines.next().and_then(|l| l.parse::<u64>().ok());
    match (name, bytes) {
        (Some(name), Some(bytes)) => Ok((name.to_owned(), bytes / (1024 * 1024))),
        _ => Err(UnexpectedOutput::new(format!(
            "expected the chip name and memory size in bytes, got '{}'",
            summarize(text)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_name_and_unified_memory_are_read() {
        let (name, mb) = parse_chip("Apple M1 Max\n68719476736\n").unwrap();
        assert_eq!(name, "Apple M1 Max");
        assert_eq!(mb, 65536);
    }

    #[test]
    fn missing_memory_line_is_an_error() {
        let err = parse_chip("Apple M1 Max\n").unwrap_err();
        assert!(err.reason.contains("Apple M1 Max"), "{err}");
    }
}
