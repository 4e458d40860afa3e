//! Tools for plugin authors, built on the sandbox ([`crate::plugin`]):
//!
//! - [`build`] is the cargo driver of `pf plugin build`: plugin crates to
//!   checked WebAssembly components (and `plugins.lock` for pf's own);
//! - [`scaffold`] writes a new plugin crate (`pf plugin new`) from the
//!   templates in `scaffold/`;
//! - [`bench`] measures what going through WebAssembly costs (`pf plugin
//!   bench`).

pub mod bench;
pub mod build;
pub mod scaffold;
