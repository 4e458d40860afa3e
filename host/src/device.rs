//! Choosing the compute device. pf code asks for a [`DeviceSpec`] and gets a
//! Candle device; multi-GPU placement will extend this in one place.

use anyhow::{bail, Result};
use candle_core::Device;

/// A device named on the command line: `cpu` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The host CPU.
    Cpu,
    /// The N-th CUDA GPU.
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                _ => Err(format!("unknown device `{s}`; use cpu or cuda:N")),
            },
        }
    }
}

impl DeviceSpec {
    /// Opens the device.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    bail!("this pf was built without CUDA; rebuild with `cargo build --release --features cuda` on a machine with the CUDA toolkit, or use --device cpu");
                }
                Device::new_cuda(n).map_err(|e| anyhow::anyhow!("cannot open cuda:{n}: {e}"))
            }
        }
    }
}
