//! A learner that also imports `wasi:cli/environment`, for pf's sandbox tests:
//! pf must refuse to load it. It is an ordinary SDK learner whose world (in
//! `wit/`) adds the WASI import; `compress` reads the environment so the
//! import stays in the module.

use pf_sdk::prelude::*;

mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "pf-test:wasi-import/learner-with-wasi",
        with: {
            "pocketflow:plugin/types@0.1.0": pf_sdk::bindings::learner::pocketflow::plugin::types,
            "pocketflow:plugin/host@0.1.0": pf_sdk::bindings::learner::pocketflow::plugin::host,
            "pocketflow:plugin/model@0.1.0": pf_sdk::bindings::learner::pocketflow::plugin::model,
            "pocketflow:plugin/learner-plugin@0.1.0": generate,
            "wasi:cli/environment@0.2.0": generate,
        },
    });
}

struct WasiImport;

impl Learner for WasiImport {
    type Params = ();

    fn info() -> Info {
        Info::new(
            "wasi_import",
            env!("CARGO_PKG_VERSION"),
            "Test fixture: a learner that imports wasi:cli/environment.",
        )
    }

    fn compress(_: (), _: Option<Target>, _: &Extra, _: &Model) -> Result<(Self, Report)> {
        let vars = bindings::wasi::cli::environment::get_environment();
        Ok((
            WasiImport,
            Report::new("read the environment").with("variables", vars.len() as f64),
        ))
    }
}

pf_sdk::export_learner!(WasiImport);
