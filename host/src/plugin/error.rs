//! Typed errors of plugin loading and plugin calls.

use super::bindings::types;
use std::fmt;

/// Why a plugin call ended without a result.
#[derive(Debug, Clone)]
pub enum Cause {
    /// The call used up its fuel (an endless or too long loop).
    OutOfFuel,
    /// The call's fuel ran out inside the plugin's allocator
    /// (`cabi_realloc`), which wasmtime calls on the host's behalf to copy a
    /// host call's result (or the call's arguments) into the plugin's
    /// memory: not in a loop of the plugin's own code.
    OutOfFuelInHostCopy,
    /// The plugin tried to grow its memory beyond the limit.
    MemoryLimit,
    /// The plugin's stack overflowed (deep recursion).
    StackOverflow,
    /// The plugin panicked; the message is what its panic hook reported.
    Panic(String),
    /// A sandbox rule enforced by the host (live tensor handles, tensor
    /// size, ...).
    Sandbox(String),
    /// Any other trap (unreachable, out-of-bounds access, a bad handle, a
    /// limit enforced by the host, ...), with wasmtime's description.
    Trap(String),
    /// The plugin returned an error value.
    Returned(types::Error),
    /// The plugin ran out of its time or host-work budget (a runaway loop,
    /// or a flood of expensive host calls); the message says which.
    Budget(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::OutOfFuel => write!(
                f,
                "it ran out of its execution budget (fuel); an endless loop, or raise --plugin-fuel"
            ),
            Cause::OutOfFuelInHostCopy => write!(
                f,
                "its execution budget (fuel) ran out inside its allocator (`cabi_realloc`), which wasmtime runs on pf's behalf to copy a host call's result or the call's arguments into the plugin's memory, not in a loop of its own; its allocator is too slow or it asked the host for too much at once, or raise --plugin-fuel"
            ),
            Cause::MemoryLimit => write!(
                f,
                "it hit the memory limit; a memory bomb, or raise --plugin-memory"
            ),
            Cause::StackOverflow => write!(f, "its stack overflowed (runaway recursion)"),
            Cause::Panic(m) => write!(f, "it panicked: {m}"),
            Cause::Sandbox(m) => write!(f, "it broke a sandbox rule: {m}"),
            Cause::Trap(m) => write!(f, "it trapped: {m}"),
            Cause::Returned(e) => write!(f, "it returned an error: {}", describe(e)),
            Cause::Budget(m) => write!(f, "{m}"),
        }
    }
}

/// A WIT error value as one line.
pub fn describe(e: &types::Error) -> String {
    match e {
        types::Error::InvalidArgument(m) => format!("invalid argument: {m}"),
        types::Error::NotFound(m) => format!("not found: {m}"),
        types::Error::Unsupported(m) => format!("unsupported: {m}"),
        types::Error::LimitExceeded(m) => format!("limit exceeded: {m}"),
        types::Error::Numerical(m) => format!("numerical problem: {m}"),
        types::Error::Host(m) => format!("host error: {m}"),
    }
}

/// A failed plugin call: which plugin, which export, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin `{plugin}` failed in `{export}`: {cause}")]
pub struct CallError {
    /// The plugin's name.
    pub plugin: String,
    /// The export that was called.
    pub export: String,
    /// What happened.
    pub cause: Cause,
}

impl CallError {
    /// Whether the instance trapped (and so cannot be called again).
    pub fn is_trap(&self) -> bool {
        !matches!(self.cause, Cause::Returned(_))
    }
}
