//! Devices and device preferences: selection with fallback, and the `cuda:0` string form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::HardwareError;
use crate::report::{Accelerator, HardwareReport};

/// A concrete device a worker can be told to use.
///
/// Its string form is the one PyTorch-style code expects: `cpu`, `mps`, `cuda:0`, `rocm:1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    /// The CPU.
    Cpu,
    /// The NVIDIA GPU with this index.
    Cuda(u32),
    /// The Apple GPU through Metal.
    Mps,
    /// The AMD GPU with this index.
    Rocm(u32),
}

impl Device {
    /// Returns the accelerator this device belongs to.
    pub fn accelerator(self) -> Accelerator {
        match self {
            Device::Cpu => Accelerator::Cpu,
            Device::Cuda(_) => Accelerator::Cuda,
            Device::Mps => Accelerator::Mps,
            Device::Rocm(_) => Accelerator::Rocm,
        }
    }

    /// Returns the GPU index, `None` for the CPU and MPS.
    pub fn index(self) -> Option<u32> {
        match self {
            Device::Cuda(id) | Device::Rocm(id) => Some(id),
            Device::Cpu | Device::Mps => None,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
            Device::Mps => f.write_str("mps"),
            Device::Rocm(id) => write!(f, "rocm:{id}"),
        }
    }
}

impl FromStr for Device {
    type Err = HardwareError;

    /// Parses `cpu`, `mps`, `cuda:N` or `rocm:N`; a bare `cuda` or `rocm` means index 0.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.parse::<DevicePreference>()? {
            DevicePreference::Auto => Err(HardwareError::InvalidDevice {
                input: input.to_owned(),
                reason: "'auto' is a preference, not a device".to_owned(),
            }),
            DevicePreference::Cpu => Ok(Device::Cpu),
            DevicePreference::Mps => Ok(Device::Mps),
            DevicePreference::Cuda => Ok(Device::Cuda(0)),
            DevicePreference::CudaId(id) => Ok(Device::Cuda(id)),
            DevicePreference::Rocm => Ok(Device::Rocm(0)),
            DevicePreference::RocmId(id) => Ok(Device::Rocm(id)),
        }
    }
}

/// What a caller would like to run on; [`HardwareReport::select`] turns it into a [`Device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DevicePreference {
    /// The best available accelerator (CUDA > MPS > ROCm > CPU).
    Auto,
    /// The CPU; always available.
    Cpu,
    /// The first NVIDIA GPU.
    Cuda,
    /// The NVIDIA GPU with this index.
    CudaId(u32),
    /// The Apple GPU.
    Mps,
    /// The first AMD GPU.
    Rocm,
    /// The AMD GPU with this index.
    RocmId(u32),
}

impl fmt::Display for DevicePreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevicePreference::Auto => f.write_str("auto"),
            DevicePreference::Cpu => f.write_str("cpu"),
            DevicePreference::Cuda => f.write_str("cuda"),
            DevicePreference::CudaId(id) => write!(f, "cuda:{id}"),
            DevicePreference::Mps => f.write_str("mps"),
            DevicePreference::Rocm => f.write_str("rocm"),
            DevicePreference::RocmId(id) => write!(f, "rocm:{id}"),
        }
    }
}

impl FromStr for DevicePreference {
    type Err = HardwareError;

    /// Parses `auto`, `cpu`, `mps`, `cuda`, `cuda:N`, `rocm` or `rocm:N` (case-insensitive).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| HardwareError::InvalidDevice {
            input: input.to_owned(),
            reason,
        };
        let text = input.trim().to_ascii_lowercase();
        let (kind, index) = match text.split_once(':') {
            Some((kind, index)) => (kind, Some(index)),
            None => (text.as_str(), None),
        };
        let index = index
            .map(|i| {
                i.parse::<u32>()
                    .map_err(|_| invalid(format!("'{i}' is not a device index")))
            })
            .transpose()?;
        match (kind, index) {
            ("auto", None) => Ok(DevicePreference::Auto),
            ("cpu", None) => Ok(DevicePreference::Cpu),
            ("mps", None) => Ok(DevicePreference::Mps),
            ("cuda", None) => Ok(DevicePreference::Cuda),
            ("cuda", Some(id)) => Ok(DevicePreference::CudaId(id)),
            ("rocm", None) => Ok(DevicePreference::Rocm),
            ("rocm", Some(id)) => Ok(DevicePreference::RocmId(id)),
            ("auto" | "cpu" | "mps", Some(_)) => {
                Err(invalid(format!("'{kind}' takes no device index")))
            }
            ("", _) => Err(invalid("it is empty".to_owned())),
            (other, _) => Err(invalid(format!("'{other}' is not a device kind"))),
        }
    }
}

macro_rules! serde_as_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(Device);
serde_as_string!(DevicePreference);

/// Details about one device, for logs and telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device.
    pub device: Device,
    /// Its accelerator.
    pub accelerator: Accelerator,
    /// The product or CPU model name.
    pub name: String,
    /// Its memory in MiB (system memory for the CPU, unified memory for MPS), when known.
    pub memory_total_mb: Option<u64>,
    /// Its free memory in MiB, when known.
    pub memory_free_mb: Option<u64>,
    /// The CUDA compute capability, for NVIDIA GPUs that report it.
    pub compute_capability: Option<String>,
}

impl HardwareReport {
    /// Lists every device of this machine: the CPU, then CUDA, MPS and ROCm devices.
    pub fn available_devices(&self) -> Vec<Device> {
        let mut devices = vec![Device::Cpu];
        devices.extend(self.cuda_devices().map(|d| Device::Cuda(d.id)));
        if self.mps_available() {
            devices.push(Device::Mps);
        }
        devices.extend(self.rocm_devices().map(|d| Device::Rocm(d.id)));
        devices
    }

    /// Turns a preference into a device of this machine.
    ///
    /// # Errors
    /// [`HardwareError::DeviceNotAvailable`] when the machine has no such device.
    pub fn select(&self, preference: DevicePreference) -> Result<Device, HardwareError> {
        let first_cuda = || self.cuda_devices().next().map(|d| Device::Cuda(d.id));
        let first_rocm = || self.rocm_devices().next().map(|d| Device::Rocm(d.id));
        let device = match preference {
            DevicePreference::Auto => match self.accelerator {
                Accelerator::Cuda => first_cuda(),
                Accelerator::Mps => Some(Device::Mps),
                Accelerator::Rocm => first_rocm(),
                Accelerator::Cpu => Some(Device::Cpu),
            }
            .or(Some(Device::Cpu)),
            DevicePreference::Cpu => Some(Device::Cpu),
            DevicePreference::Cuda => first_cuda(),
            DevicePreference::CudaId(id) => self
                .cuda_devices()
                .any(|d| d.id == id)
                .then_some(Device::Cuda(id)),
            DevicePreference::Mps => self.mps_available().then_some(Device::Mps),
            DevicePreference::Rocm => first_rocm(),
            DevicePreference::RocmId(id) => self
                .rocm_devices()
                .any(|d| d.id == id)
                .then_some(Device::Rocm(id)),
        };
        device.ok_or_else(|| HardwareError::DeviceNotAvailable {
            requested: preference,
            available: self.available_devices(),
        })
    }

    /// Returns the first preference that is available.
    ///
    /// # Errors
    /// [`HardwareError::NoDevice`] when none is (including for an empty list).
    pub fn select_with_fallback(
        &self,
        preferences: &[DevicePreference],
    ) -> Result<Device, HardwareError> {
        preferences
            .iter()
            .find_map(|p| self.select(*p).ok())
            .ok_or_else(|| HardwareError::NoDevice {
                tried: preferences.to_vec(),
                available: self.available_devices(),
            })
    }

    /// Describes a device of this machine.
    ///
    /// # Errors
    /// [`HardwareError::DeviceNotAvailable`] when the machine has no such device.
    pub fn device_info(&self, device: Device) -> Result<DeviceInfo, HardwareError> {
        let not_available = || HardwareError::DeviceNotAvailable {
            requested: match device {
                Device::Cpu => DevicePreference::Cpu,
                Device::Cuda(id) => DevicePreference::CudaId(id),
                Device::Mps => DevicePreference::Mps,
                Device::Rocm(id) => DevicePreference::RocmId(id),
            },
            available: self.available_devices(),
        };
        let base = DeviceInfo {
            device,
            accelerator: device.accelerator(),
            name: String::new(),
            memory_total_mb: None,
            memory_free_mb: None,
            compute_capability: None,
        };
        match device {
            Device::Cpu => Ok(DeviceInfo {
                name: self.cpu.model.clone(),
                memory_total_mb: Some(self.cpu.memory_total_mb).filter(|mb| *mb > 0),
                ..base
            }),
            Device::Cuda(id) => {
                let gpu = self
                    .cuda_devices()
                    .find(|d| d.id == id)
                    .ok_or_else(not_available)?;
                Ok(DeviceInfo {
                    name: gpu.name.clone(),
                    memory_total_mb: gpu.memory_total_mb,
                    memory_free_mb: gpu.memory_free_mb,
                    compute_capability: gpu.compute_capability.clone(),
                    ..base
                })
            }
            Device::Mps => {
                let mps = self
                    .mps
                    .as_ref()
                    .filter(|m| m.available)
                    .ok_or_else(not_available)?;
                Ok(DeviceInfo {
                    name: mps.device_name.clone(),
                    memory_total_mb: Some(mps.memory_total_mb),
                    ..base
                })
            }
            Device::Rocm(id) => {
                let gpu = self
                    .rocm_devices()
                    .find(|d| d.id == id)
                    .ok_or_else(not_available)?;
                Ok(DeviceInfo {
                    name: gpu.name.clone(),
                    memory_total_mb: gpu.memory_total_mb,
                    memory_free_mb: gpu.memory_free_mb,
                    ..base
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
