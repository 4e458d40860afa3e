//! Host bindings generated from `wit/plugin.wit` by wasmtime's `bindgen!`.
//!
//! The `learner` world is generated first; the `optimizer` world reuses its
//! `types` and `host` interfaces so both worlds share one set of Rust types
//! (one `Param`, one `Error`, one tensor resource).

/// Bindings of the `learner` world (and the shared interfaces).
pub mod learner {
    wasmtime::component::bindgen!({
        world: "learner",
        path: "../wit",
        imports: { default: trappable },
        with: {
            "pocketflow:plugin/types.tensor": crate::plugin::tensor::HostTensorData,
        },
    });
}

/// Bindings of the `optimizer` world.
pub mod optimizer {
    wasmtime::component::bindgen!({
        world: "optimizer",
        path: "../wit",
        imports: { default: trappable },
        with: {
            "pocketflow:plugin/types": crate::plugin::bindings::learner::pocketflow::plugin::types,
            "pocketflow:plugin/host": crate::plugin::bindings::learner::pocketflow::plugin::host,
        },
    });
}

pub use learner::pocketflow::plugin::{host, model, types};
