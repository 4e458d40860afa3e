//! The host's services: logging, progress and sandbox limits.
//!
//! Randomness is in [`rng`](crate::rng).
//!
//! Outside WebAssembly (a plugin's native unit tests) there is no host: log
//! messages go to standard error when `PF_SDK_LOG` is set, progress is
//! dropped and the limits are the host's defaults.

use crate::bindings::host as raw;

pub use raw::Level;

/// The sandbox limits in force for the current call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most live tensor handles at once.
    pub max_tensors: u32,
    /// Most elements one [`Tensor::to_vec`](crate::Tensor::to_vec) may copy out.
    pub max_copy_elements: u64,
}

/// The sandbox limits in force, so a plugin can size its work to them.
pub fn limits() -> Limits {
    let l = imports::limits();
    Limits {
        max_tensors: l.max_tensors,
        max_copy_elements: l.max_copy_elements,
    }
}

/// Reports progress of the current call: `done` of `total` units.
pub fn progress(done: u64, total: u64, message: &str) {
    imports::progress(done, total, message)
}

/// Writes `message` to pf's log at `level`, attributed to the plugin.
pub fn log(level: Level, message: &str) {
    imports::log(level, message)
}

/// The host imports, or their native stand-ins.
#[cfg(target_arch = "wasm32")]
mod imports {
    pub(super) use super::raw::{limits, log, progress};
}

/// Native stand-ins for the host imports (see the module docs).
#[cfg(not(target_arch = "wasm32"))]
mod imports {
    use super::raw::{Level, SandboxLimits};

    pub(super) fn limits() -> SandboxLimits {
        SandboxLimits {
            max_tensors: 4096,
            max_copy_elements: 1 << 24,
        }
    }

    pub(super) fn progress(_done: u64, _total: u64, _message: &str) {}

    pub(super) fn log(level: Level, message: &str) {
        if std::env::var_os("PF_SDK_LOG").is_some() {
            eprintln!("[{level:?}] {message}");
        }
    }
}

/// Writing to pf's log, one function per level.
pub mod log {
    use super::{imports as raw, Level};

    /// Logs at trace level.
    pub fn trace(message: &str) {
        raw::log(Level::Trace, message)
    }
    /// Logs at debug level.
    pub fn debug(message: &str) {
        raw::log(Level::Debug, message)
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        raw::log(Level::Info, message)
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        raw::log(Level::Warn, message)
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        raw::log(Level::Error, message)
    }
}
