//! The raw bindings that `wit-bindgen` generates from `wit/0.1.0/plugin.wit`
//! (the frozen contract; the host's bindings are generated from the same file).
//!
//! Plugin authors normally never need these: the crate root re-exports every
//! type worth naming, and [`export_learner!`](crate::export_learner) /
//! [`export_optimizer!`](crate::export_optimizer) implement the generated
//! `Guest` traits. They are public for power users who want to call an import
//! directly or implement the exports by hand.
//!
//! The two worlds share one set of `types` and `host` bindings: the optimizer
//! bindings reuse the learner's through `with`, so a [`Tensor`](crate::Tensor)
//! or [`ParamSpec`](crate::ParamSpec) is the same Rust type in both.

/// Bindings of the `learner` world: `types`, `host` and `model` imports and the
/// `learner-plugin` export.
pub mod learner {
    wit_bindgen::generate!({
        path: "wit/0.1.0",
        world: "pocketflow:plugin/learner@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_learner_world",
        default_bindings_module: "pf_sdk::bindings::learner",
        runtime_path: "pf_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings of the `optimizer` world: the `optimizer-plugin` export (its
/// `types` and `host` imports are the learner world's).
pub mod optimizer {
    wit_bindgen::generate!({
        path: "wit/0.1.0",
        world: "pocketflow:plugin/optimizer@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_optimizer_world",
        default_bindings_module: "pf_sdk::bindings::optimizer",
        runtime_path: "pf_sdk::__private::wit_bindgen::rt",
        with: {
            "pocketflow:plugin/types@0.1.0": crate::bindings::learner::pocketflow::plugin::types,
            "pocketflow:plugin/host@0.1.0": crate::bindings::learner::pocketflow::plugin::host,
        },
    });
}

pub(crate) use learner::exports::pocketflow::plugin::learner_plugin;
pub(crate) use learner::pocketflow::plugin::{host, model, types};
pub(crate) use optimizer::exports::pocketflow::plugin::optimizer_plugin;
