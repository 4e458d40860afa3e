//! Sandbox limits applied to every plugin instance.

use serde::{Deserialize, Serialize};

/// What one plugin instance may use. Every trial gets a fresh instance in a
/// short-lived store with these limits; the defaults are safe for untrusted
/// code and roomy for the built-in plugins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most bytes of linear memory and tables, all of an instance's
    /// memories and tables together (a table element costs
    /// [`TABLE_ELEMENT_BYTES`]). A plugin needs about 1.1 MiB to start.
    pub memory_bytes: u64,
    /// Most WebAssembly instructions (fuel) one export call may execute.
    /// Time spent in host calls (training, tensor ops) is not counted.
    pub fuel_per_call: u64,
    /// Most tensor handles alive at once.
    pub max_tensors: u32,
    /// Most elements one `tensor.to-vec` may copy into the plugin.
    pub max_copy_elements: u64,
    /// Most elements one tensor created from plugin data may have.
    pub max_tensor_elements: u64,
    /// Wall-clock seconds one learner trial may take, host work included
    /// (one optimizer call, or one load's `describe`, gets as long).
    #[serde(default = "default_trial_seconds")]
    pub trial_seconds: u64,
    /// Host work (in element-operations, see [`super::budget`]) the calls
    /// of one learner trial may make the host do: fine-tuning steps,
    /// gradient batches, tensor operations.
    #[serde(default = "default_host_work")]
    pub host_work: u64,
}

/// The per-trial wall-clock budget when neither `--trial-timeout` nor the
/// admission policy sets one: ten minutes.
pub const DEFAULT_TRIAL_SECONDS: u64 = pf_registry::policy::DEFAULT_TRIAL_TIMEOUT_SECONDS;

/// The host-work budget of one trial when `--plugin-host-work` does not set
/// one: 10^14 element-operations, about as much as two CPU cores do in half
/// an hour; the wall-clock budget usually ends a flood first.
pub const DEFAULT_HOST_WORK: u64 = 100_000_000_000_000;

/// Most linear memories one plugin instance may create (all its core
/// instances together); the SDK's components have one.
pub const MAX_MEMORIES: usize = 4;

/// Most tables one plugin instance may create.
pub const MAX_TABLES: usize = 16;

/// Most core instances one plugin instance may create.
pub const MAX_CORE_INSTANCES: usize = 64;

/// Bytes of the memory budget one table element costs (a pointer).
pub const TABLE_ELEMENT_BYTES: u64 = 8;

fn default_trial_seconds() -> u64 {
    DEFAULT_TRIAL_SECONDS
}

fn default_host_work() -> u64 {
    DEFAULT_HOST_WORK
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            fuel_per_call: 20_000_000_000,
            max_tensors: 4096,
            max_copy_elements: 16 << 20,
            max_tensor_elements: 64 << 20,
            trial_seconds: DEFAULT_TRIAL_SECONDS,
            host_work: DEFAULT_HOST_WORK,
        }
    }
}

impl Limits {
    /// What these limits give a plugin, in the admission policy's units,
    /// for a search of `trials` (if any).
    pub fn grant(&self, trials: Option<u32>) -> pf_registry::admission::Grant {
        pf_registry::admission::Grant {
            memory_mib: self.memory_bytes.div_ceil(1 << 20),
            fuel_millions: self.fuel_per_call.div_ceil(1_000_000),
            tensors: self.max_tensors,
            trials,
        }
    }

    /// Most elements all live tensors of one instance may hold together.
    pub fn max_live_elements(&self) -> u64 {
        self.max_tensor_elements * 4
    }

    /// Checks that the limits can work at all.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.memory_bytes < 2 << 20 {
            anyhow::bail!(
                "the plugin memory limit of {} bytes is below the 2 MiB a plugin needs to start; raise --plugin-memory",
                self.memory_bytes
            );
        }
        if self.fuel_per_call == 0 {
            anyhow::bail!("the plugin fuel budget must be at least 1; raise --plugin-fuel");
        }
        if self.trial_seconds == 0 {
            anyhow::bail!("the trial time budget must be at least 1 second; raise --trial-timeout");
        }
        if self.host_work == 0 {
            anyhow::bail!("the host-work budget must be at least 1; raise --plugin-host-work");
        }
        if self.max_tensors == 0 {
            anyhow::bail!("the tensor handle cap must be at least 1; raise --plugin-tensors");
        }
        Ok(())
    }
}
