//! The plugin sandbox: WebAssembly components that implement learners
//! (compression algorithms) and optimizers (hyper-parameter searches), run
//! by wasmtime under limits. This module is the only part of pf that sees
//! wasmtime or the types `bindgen!` generates from `wit/plugin.wit`; the
//! rest of the host uses the domain types re-exported here ([`Param`],
//! [`ParamSpec`], [`ParamValue`], ...).
//!
//! - [`inspect`] reads what a component declares and refuses foreign imports.
//! - [`runtime`] compiles (with a cache), checks, admits (through the
//!   registry's admission gate) and instantiates plugins under [`limits`],
//!   turning every trap into a typed [`error::CallError`].
//! - [`tensor`], [`model_api`] and [`state`] are the host side of the WIT
//!   interfaces a plugin imports; `model_api` also holds a trial's model and
//!   data ([`ModelContext`], [`TrialData`]).
//! - [`bounds`] caps and escapes everything a plugin hands the host.
//! - [`space`] checks parameters against search spaces.
//! - [`trial`] runs one learner trial: instantiate, compress, fine-tune,
//!   finish.
//!
//! Elsewhere: the conformance suites are in [`crate::conformance`], the
//! developer tooling (cargo driver, scaffolder, benchmark) in
//! [`crate::devtools`], finding plugins by name and the admission policy in
//! [`crate::registry`].

mod bindings;
pub mod bounds;
pub mod budget;
pub mod error;
pub mod inspect;
pub mod limits;
pub mod model_api;
pub mod runtime;
pub mod space;
pub mod state;
pub mod tensor;
#[cfg(test)]
mod tensor_tests;
pub mod trial;

pub use bindings::types::{
    FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue, PluginInfo,
};
pub use error::{CallError, Cause};
pub use inspect::{Inspection, PluginKind};
pub use limits::Limits;
pub use model_api::{FineTune, ModelContext, TrialData};
pub use runtime::{LearnerInstance, OptimizerInstance, Plugin, Runtime, TrialError};
