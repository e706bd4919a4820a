//! AMD detection: parses `rocm-smi --json` output and reads the ROCm version file.

use serde_json::{Map, Value};

use crate::config::{DetectorConfig, Tool};
use crate::report::{Diagnostic, RocmDevice, RocmInfo};
use crate::tool::{run_tool, summarize, UnexpectedOutput};

/// The arguments `rocm-smi` is run with.
const ROCM_SMI_ARGS: [&str; 5] = [
    "--showproductname",
    "--showmeminfo",
    "vram",
    "--showdriverversion",
    "--json",
];

const MIB: u64 = 1024 * 1024;

/// What one `rocm-smi` run listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RocmQuery {
    pub(crate) devices: Vec<RocmDevice>,
    pub(crate) driver_version: Option<String>,
}

/// Detects AMD GPUs; `None` with no diagnostic when `rocm-smi` is not installed.
pub(crate) async fn detect(config: &DetectorConfig) -> (Option<RocmInfo>, Vec<Diagnostic>) {
    let source = Tool::RocmSmi.program();
    let output = match run_tool(config, Tool::RocmSmi, &ROCM_SMI_ARGS).await {
        Ok(output) => output,
        Err(failure) => {
            return (
                None,
                failure.diagnostic(Tool::RocmSmi).into_iter().collect(),
            )
        }
    };
    let query = match parse_rocm_smi(&output.stdout) {
        Ok(query) => query,
        Err(err) => {
            let diagnostic = Diagnostic::new(source, format!("{err}; ROCm is left out"));
            return (None, vec![diagnostic]);
        }
    };
    if query.devices.is_empty() {
        let diagnostic = Diagnostic::new(source, "is installed but lists no GPU; ROCm is left out");
        return (None, vec![diagnostic]);
    }
    let version = match rocm_version(config).await {
        Some(version) => Some(version),
        None => query.driver_version,
    };
    let info = RocmInfo {
        version,
        devices: query.devices,
    };
    (Some(info), Vec::new())
}

async fn rocm_version(config: &DetectorConfig) -> Option<String> {
    for file in &config.rocm_version_files {
        if let Ok(text) = tokio::fs::read_to_string(file).await {
            let version = text.trim();
            if !version.is_empty() {
                return Some(version.to_owned());
            }
        }
    }
    None
}

/// Parses `rocm-smi --showproductname --showmeminfo vram --showdriverversion --json`.
///
/// Banner or warning lines before the JSON object are skipped. Keys are matched without regard
/// to case, since ROCm 5 writes `Card series` and ROCm 6 `Card Series`.
pub(crate) fn parse_rocm_smi(text: &str) -> Result<RocmQuery, UnexpectedOutput> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(RocmQuery {
            devices: Vec::new(),
            driver_version: None,
        });
    }
    let start = trimmed.find('{').ok_or_else(|| {
        UnexpectedOutput::new(format!("no JSON object in '{}'", summarize(trimmed)))
    })?;
    let mut stream = serde_json::Deserializer::from_str(&trimmed[start..]).into_iter::<Value>();
    let root = match stream.next() {
        Some(Ok(Value::Object(map))) => map,
        Some(Ok(_)) => return Err(UnexpectedOutput::new("the JSON is not an object")),
        Some(Err(err)) => return Err(UnexpectedOutput::new(format!("invalid JSON: {err}"))),
        None => return Err(UnexpectedOutput::new("no JSON value")),
    };
    let mut devices = Vec::new();
    let mut driver_version = None;
    for (key, value) in &root {
        let Some(fields) = value.as_object() else {
            continue;
        };
        if key == "system" {
            driver_version = field(fields, "driver version").map(str::to_owned);
            continue;
        }
        let Some(id) = key.strip_prefix("card").and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let name = ["card series", "device name", "card model", "card sku"]
            .into_iter()
            .find_map(|k| field(fields, k))
            .unwrap_or("AMD GPU")
            .to_owned();
        let total = bytes(fields, "vram total memory (b)", key)?;
        let used = bytes(fields, "vram total used memory (b)", key)?;
        devices.push(RocmDevice {
            id,
            name,
            memory_total_mb: total.map(|b| b / MIB),
            memory_free_mb: total.zip(used).map(|(t, u)| t.saturating_sub(u) / MIB),
        });
    }
    devices.sort_by_key(|d| d.id);
    Ok(RocmQuery {
        devices,
        driver_version,
    })
}

fn field<'a>(fields: &'a Map<String, Value>, wanted: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
        .and_then(|(_, v)| v.as_str())
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("n/a"))
}

fn bytes(
    fields: &Map<String, Value>,
    wanted: &str,
    card: &str,
) -> Result<Option<u64>, UnexpectedOutput> {
    let Some(value) = field(fields, wanted) else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|_| {
        UnexpectedOutput::new(format!("{card} '{wanted}' is '{value}', not a byte count"))
    })
}

#[cfg(test)]
mod tests;
