//! # pf-sdk: write pf plugins in Rust
//!
//! pf runs compression algorithms (*learners*) and hyper-parameter search
//! strategies (*optimizers*) as sandboxed WebAssembly components that speak
//! the contract in `wit/0.1.0/plugin.wit`. This crate is the only dependency a
//! plugin needs: it wraps the generated bindings in two traits, exports them
//! with one macro, turns a parameter struct into a search space, sends panics
//! to pf's log and serves randomness from the host's seeded stream.
//!
//! ```ignore
//! use pf_sdk::prelude::*;
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! #[serde(crate = "pf_sdk::serde", default)]
//! #[schemars(crate = "pf_sdk::schemars")]
//! struct P {
//!     /// Fraction of each layer's weights to zero.
//!     #[schemars(range(min = 0.0, max = 0.99))]
//!     sparsity: f64,
//! }
//! impl Default for P {
//!     fn default() -> Self { P { sparsity: 0.5 } }
//! }
//!
//! struct Magnitude;
//!
//! impl Learner for Magnitude {
//!     type Params = P;
//!     fn info() -> Info {
//!         Info::new("magnitude", env!("CARGO_PKG_VERSION"), "One-shot magnitude pruning.")
//!     }
//!     fn compress(p: P, _: Option<Target>, _: &Extra, model: &Model) -> Result<(Self, Report)> {
//!         for layer in model.layers() {
//!             let w = model.weight(&layer.name)?.abs()?;
//!             let k = (p.sparsity * layer.weight_numel() as f64) as u64;
//!             if k > 0 {
//!                 let threshold = w.kth_smallest(k)?;
//!                 model.set_mask(&layer.name, &w.gt_scalar(threshold)?)?;
//!             }
//!         }
//!         Ok((Magnitude, Report::new("pruned").with("sparsity", model.weight_sparsity())))
//!     }
//! }
//!
//! pf_sdk::export_learner!(Magnitude);
//! ```
//!
//! The crate must be a `cdylib` built for `wasm32-unknown-unknown`; `pf plugin
//! build` does that and wraps the module into a component (see the README).

#![warn(missing_docs)]

// Lets the generated bindings and the export macros name this crate as
// `pf_sdk` both here and in plugin crates.
extern crate self as pf_sdk;

#[allow(missing_docs)] // generated: documented where the WIT is
pub mod bindings;
mod error;
#[doc(hidden)]
pub mod glue;
mod host;
mod learner;
pub mod math;
mod model;
mod optimizer;
pub mod params;
pub mod rng;
pub mod space;
mod tensor;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// A budget a learner must meet, and the measure it bounds.
pub use bindings::types::{Measure, Target};
pub use error::{Error, Result};
pub use host::{limits, log, progress, Level, Limits};
pub use learner::{Info, Learner, Report, MADE_FOR_KEY};
pub use model::{
    ChannelGroup, Cost, FeatureSample, LayerInfo, LayerKind, Metrics, Model, QuantTarget,
    Quantizer, UniformQuantizer,
};
pub use optimizer::{count_suggestion, startup_for_budget, Optimizer, Outcome};
pub use params::{Extra, Params};
pub use rng::{HostRng, RandomExt, SplitMix64};
pub use space::{FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue};
pub use tensor::{BinaryOp, CompareOp, ReduceOp, Tensor, UnaryOp};

/// `rand_core` 0.9, which [`HostRng`] implements.
pub use rand_core;
/// `schemars` 1.x, for `#[derive(JsonSchema)]` on parameter structs (with
/// `#[schemars(crate = "pf_sdk::schemars")]`).
pub use schemars;
/// `serde`, for `#[derive(Serialize, Deserialize)]` on parameter structs (with
/// `#[serde(crate = "pf_sdk::serde")]`).
pub use serde;
/// `serde_json`, which the SDK uses for parameter schemas.
pub use serde_json;

/// What a plugin usually needs: `use pf_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::rng::{HostRng, RandomExt, SplitMix64};
    pub use crate::schemars::JsonSchema;
    pub use crate::serde::{Deserialize, Serialize};
    pub use crate::{
        ChannelGroup, Error, Extra, Info, LayerInfo, LayerKind, Learner, Measure, Model, Optimizer,
        Outcome, Param, ParamKind, ParamSpec, ParamValue, Params, Report, Result, Target, Tensor,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::glue::*;
}

/// Exports a [`Learner`] as the plugin's `learner-plugin` interface.
///
/// Use it once, at the root of a `cdylib` crate:
/// `pf_sdk::export_learner!(MyLearner);`. It implements the generated `Guest`
/// trait by delegating to the trait impl, keeps the learner's state between
/// `compress` and `finish`, and installs the SDK's panic hook.
#[macro_export]
macro_rules! export_learner {
    ($learner:ty) => {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        struct __PfSdkLearnerExport;

        impl $crate::bindings::learner::exports::pocketflow::plugin::learner_plugin::Guest
            for __PfSdkLearnerExport
        {
            fn describe() -> $crate::bindings::learner::pocketflow::plugin::types::PluginInfo {
                $crate::__private::learner_describe::<$learner>()
            }
            fn search_space(
                settings: ::std::vec::Vec<$crate::Param>,
                target: ::std::option::Option<$crate::Target>,
            ) -> $crate::Result<::std::vec::Vec<$crate::ParamSpec>> {
                $crate::__private::learner_search_space::<$learner>(settings, target)
            }
            fn compress(
                params: ::std::vec::Vec<$crate::Param>,
                target: ::std::option::Option<$crate::Target>,
            ) -> $crate::Result<
                $crate::bindings::learner::exports::pocketflow::plugin::learner_plugin::CompressReport,
            > {
                $crate::__private::learner_compress::<$learner>(params, target)
            }
            fn on_train_step(step: u32, total: u32) -> $crate::Result<()> {
                $crate::__private::learner_on_train_step::<$learner>(step, total)
            }
            fn finish() -> $crate::Result<
                $crate::bindings::learner::exports::pocketflow::plugin::learner_plugin::CompressReport,
            > {
                $crate::__private::learner_finish::<$learner>()
            }
        }

        $crate::bindings::learner::export_learner_world!(
            __PfSdkLearnerExport with_types_in $crate::bindings::learner
        );
    };
}

/// Exports an [`Optimizer`] as the plugin's `optimizer-plugin` interface.
///
/// Use it once, at the root of a `cdylib` crate:
/// `pf_sdk::export_optimizer!(MySearch);`. Each `search` resource the host
/// creates holds one value of the type; the SDK's panic hook is installed.
#[macro_export]
macro_rules! export_optimizer {
    ($optimizer:ty) => {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        struct __PfSdkOptimizerExport;

        impl $crate::bindings::optimizer::exports::pocketflow::plugin::optimizer_plugin::Guest
            for __PfSdkOptimizerExport
        {
            type Search = $crate::__private::SearchGlue<$optimizer>;
            fn describe() -> $crate::bindings::learner::pocketflow::plugin::types::PluginInfo {
                $crate::__private::optimizer_describe::<$optimizer>()
            }
        }

        $crate::bindings::optimizer::export_optimizer_world!(
            __PfSdkOptimizerExport with_types_in $crate::bindings::optimizer
        );
    };
}
