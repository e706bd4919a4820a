//! Renders a hardware report as an aligned, human-readable table for `snakepit hardware`.

use std::fmt::Write as _;

use crate::report::HardwareReport;

/// Renders `report` as a two-column table (label, value), one line per fact, ending in a newline.
///
/// Sections: platform, accelerator, CPU (model, cores, threads, features, memory), each CUDA,
/// ROCm and MPS device, and the diagnostics explaining anything left out.
pub fn render_table(report: &HardwareReport) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("Platform".into(), report.platform.clone()),
        ("Accelerator".into(), report.accelerator.to_string()),
        ("CPU".into(), report.cpu.model.clone()),
        ("  Cores".into(), report.cpu.cores.to_string()),
        ("  Threads".into(), report.cpu.threads.to_string()),
        ("  Features".into(), features(report)),
        (
            "  Memory".into(),
            mb(Some(report.cpu.memory_total_mb).filter(|m| *m > 0)),
        ),
    ];
    match &report.cuda {
        Some(cuda) => {
            let mut summary = format!(
                "CUDA {}, driver {}",
                cuda.version.as_deref().unwrap_or("unknown"),
                cuda.driver_version
            );
            if let Some(cudnn) = &cuda.cudnn_version {
                let _ = write!(summary, ", cuDNN {cudnn}");
            }
            rows.push(("CUDA".into(), summary));
            for gpu in &cuda.devices {
                let mut value = format!(
                    "{}, {} total, {} free",
                    gpu.name,
                    mb(gpu.memory_total_mb),
                    mb(gpu.memory_free_mb)
                );
                if let Some(cc) = &gpu.compute_capability {
                    let _ = write!(value, ", compute {cc}");
                }
                if let Some(util) = gpu.utilization_percent {
                    let _ = write!(value, ", {util}% busy");
                }
                rows.push((format!("  cuda:{}", gpu.id), value));
            }
        }
        None => rows.push(("CUDA".into(), "not detected".into())),
    }
    match &report.rocm {
        Some(rocm) => {
            let version = rocm.version.as_deref().unwrap_or("unknown");
            rows.push(("ROCm".into(), format!("ROCm {version}")));
            for gpu in &rocm.devices {
                let value = format!(
                    "{}, {} total, {} free",
                    gpu.name,
                    mb(gpu.memory_total_mb),
                    mb(gpu.memory_free_mb)
                );
                rows.push((format!("  rocm:{}", gpu.id), value));
            }
        }
        None => rows.push(("ROCm".into(), "not detected".into())),
    }
    let mps = match &report.mps {
        Some(m) if m.available => format!(
            "{}, {} unified memory",
            m.device_name,
            mb(Some(m.memory_total_mb))
        ),
        Some(m) => format!("not available on {}", m.device_name),
        None => "not detected".into(),
    };
    rows.push(("MPS".into(), mps));
    if report.diagnostics.is_empty() {
        rows.push(("Diagnostics".into(), "none".into()));
    } else {
        rows.push(("Diagnostics".into(), String::new()));
        for diagnostic in &report.diagnostics {
            rows.push((
                format!("  {}", diagnostic.source),
                diagnostic.message.clone(),
            ));
        }
    }

    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in rows {
        let line = format!("{label:<width$}  {value}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn features(report: &HardwareReport) -> String {
    if report.cpu.features.is_empty() {
        return "none detected".into();
    }
    let names: Vec<&str> = report.cpu.features.iter().map(|f| f.as_str()).collect();
    names.join(" ")
}

fn mb(value: Option<u64>) -> String {
    match value {
        Some(mb) => format!("{mb} MB"),
        None => "? MB".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CpuFeature, CpuInfo, CudaDevice, CudaInfo, Diagnostic};

    #[test]
    fn table_aligns_values_and_lists_gpus_and_diagnostics() {
        let cpu = CpuInfo {
            cores: 8,
            threads: 16,
            model: "Intel Core i7-9700K".into(),
            features: vec![CpuFeature::Avx, CpuFeature::Avx2],
            memory_total_mb: 32768,
        };
        let cuda = CudaInfo {
            version: Some("12.2".into()),
            driver_version: "535.104.05".into(),
            cudnn_version: Some("8.9.2".into()),
            devices: vec![CudaDevice {
                id: 0,
                name: "RTX 3080".into(),
                memory_total_mb: Some(10240),
                memory_free_mb: None,
                compute_capability: Some("8.6".into()),
                utilization_percent: Some(3),
            }],
        };
        let diagnostics = vec![Diagnostic::new("rocm-smi", "timed out")];
        let report = HardwareReport::new("linux-x86_64", cpu, Some(cuda), None, None, diagnostics);
        let table = render_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "Platform     linux-x86_64");
        assert_eq!(lines[1], "Accelerator  cuda");
        assert!(lines.contains(&"  Features   avx avx2"), "{table}");
        assert!(lines.contains(&"CUDA         CUDA 12.2, driver 535.104.05, cuDNN 8.9.2"));
        assert!(lines
            .contains(&"  cuda:0     RTX 3080, 10240 MB total, ? MB free, compute 8.6, 3% busy"));
        assert!(lines.contains(&"ROCm         not detected"));
        assert!(lines.contains(&"  rocm-smi   timed out"), "{table}");
    }
}
