//! Which candle device the engine computes on: the CPU, or a CUDA GPU chosen once per process
//! at start-up (`serve --device cuda`, only in builds with the `cuda` feature).
//!
//! The choice is process-wide rather than passed down to every `GflowNet::new`: a CUDA device
//! is a context and a stream that every network of the process should share (creating one
//! per network would cost milliseconds and memory each time), and the trainer, rounds and
//! previews then need no knowledge of it. Networks built before any selection, and in every
//! process that selects nothing, run on the CPU. Checkpoints are the same bytes on either
//! device.

use super::train::GfnError;
use candle_core::Device;
use std::sync::OnceLock;

/// Where tensors live and are computed, as `--device` names it: `cpu`, `cuda` (the first
/// GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ComputeDevice {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(0) => f.write_str("cuda"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

impl ComputeDevice {
    /// Whether this build can compute on the device at all; the reason when it cannot.
    pub fn check_supported(self) -> Result<(), GfnError> {
        match self {
            Self::Cuda(_) if !cfg!(feature = "cuda") => Err(GfnError::Config(format!(
                "--device {self} needs a flowlab built with the `cuda` feature \
                 (cargo build --release --features cuda); this binary computes on the CPU only"
            ))),
            _ => Ok(()),
        }
    }
}

static SELECTED: OnceLock<(ComputeDevice, Device)> = OnceLock::new();

/// Makes `choice` the device of every network this process builds from now on. Selecting
/// the CPU while nothing else was selected changes nothing; a second, different choice is
/// refused, because networks already built would live on the first device.
pub fn select(choice: ComputeDevice) -> Result<(), GfnError> {
    choice.check_supported()?;
    let already = |(selected, _): &(ComputeDevice, Device)| {
        if *selected == choice {
            Ok(())
        } else {
            Err(GfnError::Config(format!(
                "this process already computes on {selected}, not {choice}"
            )))
        }
    };
    if let Some(selected) = SELECTED.get() {
        return already(selected);
    }
    let device = match choice {
        ComputeDevice::Cpu => return Ok(()),
        ComputeDevice::Cuda(ordinal) => Device::new_cuda(ordinal)
            .map_err(|e| GfnError::Config(format!("cannot open CUDA device {ordinal}: {e}")))?,
    };
    // Two threads selecting at once: the first wins, the other is checked against it.
    already(SELECTED.get_or_init(|| (choice, device)))
}

/// The device networks are built on: the selected one, else the CPU.
pub fn current() -> Device {
    SELECTED
        .get()
        .map(|(_, device)| device.clone())
        .unwrap_or(Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        for name in ["cpu", "cuda", "cuda:3"] {
            let parsed: ComputeDevice = name.parse().expect("a device");
            assert_eq!(parsed.to_string(), name);
        }
        assert_eq!("cuda:0".parse(), Ok(ComputeDevice::Cuda(0)));
        for wrong in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            assert!(wrong.parse::<ComputeDevice>().is_err(), "{wrong}");
        }
    }

    #[test]
    fn selecting_the_cpu_keeps_networks_on_the_cpu() {
        select(ComputeDevice::Cpu).expect("the CPU is always there");
        assert!(current().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn selecting_cuda_without_the_feature_names_the_feature() {
        let refused = select(ComputeDevice::Cuda(0)).expect_err("no CUDA in this build");
        assert!(refused.to_string().contains("`cuda` feature"), "{refused}");
        assert!(current().is_cpu(), "a refused choice selects nothing");
    }
}
