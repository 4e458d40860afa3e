//! The plugin platform: WebAssembly components that implement learners
//! (compression algorithms) and optimizers (hyper-parameter searches), run in
//! a sandbox.
//!
//! - [`inspect`] reads what a component declares and refuses foreign imports.
//! - [`runtime`] compiles (with a cache), checks and instantiates plugins
//!   under [`limits`], turning every trap into a typed [`error::CallError`].
//! - [`tensor`], [`model_api`] and [`state`] are the host side of the WIT
//!   interfaces a plugin imports.
//! - [`space`] checks parameters against search spaces.
//! - [`build`] turns plugin crates into components; [`resolve`] finds a
//!   plugin by name; [`conformance`] is the suite every plugin must pass.

pub mod bindings;
pub mod build;
pub mod conformance;
pub mod error;
pub mod inspect;
pub mod limits;
pub mod model_api;
pub mod resolve;
pub mod runtime;
pub mod scaffold;
pub mod space;
pub mod state;
pub mod tensor;
pub mod trial;

pub use error::{CallError, Cause};
pub use inspect::{Inspection, PluginKind};
pub use limits::Limits;
pub use model_api::{FineTune, ModelContext, TrialData};
pub use runtime::{LearnerInstance, OptimizerInstance, Plugin, Runtime, TrialError};
