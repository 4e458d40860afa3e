//! The full-precision baseline (PocketFlow's `FullPrecLearner`): a pf
//! learner plugin that compresses nothing.
//!
//! The host trains or fine-tunes the model exactly as it does for every
//! other learner (`pf plugin apply -p full_prec --finetune-steps N`), so the
//! result is the control for a compression learner at the same fine-tuning
//! budget: what the steps alone buy, with no masks, pruning or quantizers.
//! It declares no target, so a search (`pf compress`, which always has one)
//! refuses it; use `pf plugin apply` or `pf train`.

use pf_sdk::prelude::*;

/// No hyper-parameters: full precision is one point.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(crate = "pf_sdk::serde", default, deny_unknown_fields)]
#[schemars(crate = "pf_sdk::schemars")]
pub struct FullPrecParams {}

/// The learner's (empty) state.
pub struct FullPrec;

fn report(model: &Model, what: &str) -> Report {
    let cost = model.cost();
    Report::new(format!(
        "{what}: full precision, {} parameters, {} MACs, {} bytes",
        cost.params, cost.macs, cost.bytes
    ))
    .with("params", cost.params as f64)
    .with("macs", cost.macs as f64)
    .with("bytes", cost.bytes as f64)
}

impl Learner for FullPrec {
    type Params = FullPrecParams;

    fn info() -> Info {
        Info::new(
            "full_prec",
            env!("CARGO_PKG_VERSION"),
            "The full-precision baseline: compresses nothing, so the host's fine-tuning alone \
             runs; the control for a compression learner at the same budget.",
        )
    }

    fn compress(
        _: FullPrecParams,
        target: Option<Target>,
        _: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        if let Some(t) = target {
            return Err(Error::Unsupported(format!(
                "full_prec compresses nothing, so it cannot meet a {:?} target",
                t.measure
            )));
        }
        Ok((FullPrec, report(model, "unchanged")))
    }

    fn finish(&mut self, model: &Model) -> Result<Report> {
        Ok(report(model, "fine-tuned"))
    }
}

pf_sdk::export_learner!(FullPrec);
