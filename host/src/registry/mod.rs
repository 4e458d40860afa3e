//! The host side of the plugin registry: which file a plugin name refers
//! to, and which plugins may load. The registry itself (index, manifests,
//! signatures, the admission rules) is the `pf-registry` crate; this module
//! applies it on this machine.
//!
//! - [`resolve`] finds a plugin by path, `NAME` or `NAME@VERSION` among
//!   `PF_PLUGIN_PATH`, the installed plugins and the built-ins.
//! - [`admission`] builds the admission gate from the policy file, the
//!   audit log and the command doing the loading; the sandbox
//!   ([`crate::plugin::Runtime::load`]) passes every load through it.

pub mod admission;
pub mod resolve;

pub use admission::gate;
pub use resolve::resolve;
