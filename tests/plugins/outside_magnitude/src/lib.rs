//! One-shot global magnitude pruning, written as a third-party plugin would
//! be: its only dependency is `pf-sdk` (serde and schemars come through the
//! SDK's re-exports).
//!
//! `compress` ranks the magnitudes of all weight layers together and masks
//! out the `⌊sparsity · total⌋` smallest at once; `finish` reports the
//! sparsity the host counts.

use pf_sdk::prelude::*;

/// The hyper-parameters.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(crate = "pf_sdk::serde", default)]
#[schemars(crate = "pf_sdk::schemars")]
struct MagnitudeParams {
    /// Fraction of all weights (over every layer together) to set to zero.
    #[schemars(range(min = 0.0, max = 0.99))]
    sparsity: f64,
}

impl Default for MagnitudeParams {
    fn default() -> Self {
        MagnitudeParams { sparsity: 0.5 }
    }
}

struct OutsideMagnitude {
    target: f64,
}

impl Learner for OutsideMagnitude {
    type Params = MagnitudeParams;

    fn info() -> Info {
        Info::new(
            "outside_magnitude",
            env!("CARGO_PKG_VERSION"),
            "One-shot global magnitude pruning: the smallest weights of the whole model \
             are masked out at once.",
        )
    }

    fn compress(
        params: MagnitudeParams,
        _: Option<Target>,
        _: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        let layers = model.layers();
        let magnitudes = layers
            .iter()
            .map(|l| model.weight(&l.name)?.abs()?.flatten())
            .collect::<Result<Vec<Tensor>>>()?;
        let total: u64 = magnitudes.iter().map(Tensor::numel).sum();
        let k = (params.sparsity * total as f64).floor() as u64;
        if k > 0 {
            let all = Tensor::concat(&magnitudes.iter().collect::<Vec<_>>(), 0)?;
            let threshold = all.kth_smallest(k)?;
            drop(all);
            for (layer, magnitude) in layers.iter().zip(&magnitudes) {
                let shaped = magnitude.reshape(&layer.weight_shape)?;
                model.set_mask(&layer.name, &shaped.gt_scalar(threshold)?)?;
            }
        }
        let report = Report::new(format!("pruned {k} of {total} weights"))
            .with("sparsity", model.weight_sparsity());
        Ok((
            OutsideMagnitude {
                target: params.sparsity,
            },
            report,
        ))
    }

    fn finish(&mut self, model: &Model) -> Result<Report> {
        let achieved = model.weight_sparsity();
        Ok(Report::new(format!(
            "{:.1}% of the weights are zero (target {:.1}%)",
            achieved * 100.0,
            self.target * 100.0
        ))
        .with("sparsity", achieved))
    }
}

pf_sdk::export_learner!(OutsideMagnitude);
