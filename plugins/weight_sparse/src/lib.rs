//! Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune"):
//! a pf learner plugin.
//!
//! Every weight layer (convolutions, depthwise convolutions, linear layers)
//! is pruned by magnitude to a sparsity that follows the cubic schedule
//!
//! ```text
//! s_t = s_f + (s_i - s_f) · (1 - (t - t0) / (n·Δt))³     for t0 ≤ t ≤ t0 + n·Δt
//! ```
//!
//! over the host's fine-tuning steps, where `t0 = round(begin · total)`, the
//! end step is `round(end · total)` with `end = begin + span · (1 − begin)`,
//! and `n·Δt` is their distance. (`span` rather than an end of its own keeps
//! every point of the search space valid: the end can never precede the
//! beginning.) Masks are
//! recomputed every `Δt = interval` steps from `t0` and at the end step; after
//! it the sparsity stays `s_f`. `compress` applies `s_i` at once, and `finish`
//! applies `s_f` to every layer, so the target is reached even when the host
//! fine-tunes for zero steps.
//!
//! Magnitude pruning of a layer to sparsity `s` zeroes the `k = ⌊s·numel⌋`
//! smallest `|w|` of its current (masked) weights: the host sorts `|w|`, the
//! plugin copies out the single `k`-th value as a threshold and sets the mask
//! `|w| > threshold`. No weight tensor is ever copied into the plugin.
//!
//! With `per_layer`, each layer `L` gets its own final sparsity from the
//! search-space dimension `sparsity.<L>` (see `LayerInfo::context` in the SDK
//! for the features given to optimizers) instead of the uniform `sparsity`. The
//! per-layer dimensions are part of the search space only when the user
//! fixes `per_layer = true` (the host passes fixed settings to
//! `search-space`).
//!
//! ## Targets
//!
//! The learner meets a `params` or `size` target (a `flops` target is out of
//! reach: masked weights still cost their MACs in dense kernels). The target
//! fixes how many weights may stay non-zero, so the `sparsity` dimension
//! leaves the search space and [`weight_budget`] derives it instead: the
//! parameters outside the weights (biases, batch norms) are kept whole, and
//! the size counts a sparse weight as its non-zero values plus one mask bit
//! per entry, as the host does (a size target needs a dense float baseline;
//! a params target counts against the baseline's non-zero parameters, so an
//! already sparse model can be pruned further). Without `per_layer` every layer keeps the
//! same fraction of its weights; with it, the `sparsity.<layer>` values are
//! preferences, scaled by one common factor until the budget is met
//! ([`allocate`]), as AMC does with its agent's actions.

use pf_sdk::prelude::*;

/// The hyper-parameters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(crate = "pf_sdk::serde", default, deny_unknown_fields)]
#[schemars(crate = "pf_sdk::schemars")]
pub struct WeightSparseParams {
    /// Final sparsity s_f: the fraction of each layer's weights that are zero at the end.
    #[schemars(range(min = 0.0, max = 0.99))]
    pub sparsity: f64,
    /// Initial sparsity s_i, applied by `compress` before any fine-tuning (at most s_f).
    #[schemars(range(min = 0.0, max = 0.99))]
    pub initial_sparsity: f64,
    /// Fraction of the host's fine-tuning steps after which pruning starts (t0).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub begin: f64,
    /// Fraction of the fine-tuning steps after `begin` over which the sparsity ramps up to s_f.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub span: f64,
    /// Fine-tuning steps between mask updates (Δt).
    #[schemars(range(min = 1, max = 1000), extend("x-log" = true))]
    pub interval: i64,
    /// Give each layer its own final sparsity (the `sparsity.<layer>` dimensions) instead of one for all.
    pub per_layer: bool,
}

impl Default for WeightSparseParams {
    fn default() -> Self {
        WeightSparseParams {
            sparsity: 0.8,
            initial_sparsity: 0.0,
            begin: 0.0,
            span: 0.75,
            interval: 10,
            per_layer: false,
        }
    }
}

/// The name of a layer's own sparsity dimension.
fn layer_dim(layer: &str) -> String {
    format!("sparsity.{layer}")
}

/// Prunes `layer` by magnitude to sparsity `s` of its current (masked)
/// weights: the `⌊s·numel⌋` smallest `|w|` are masked out. Returns whether a
/// mask was set.
fn prune_layer(model: &Model, layer: &str, s: f64) -> Result<bool> {
    let weight = model.weight(layer)?;
    let magnitude = match model.mask(layer)? {
        Some(mask) => weight.mul(&mask)?.abs()?,
        None => weight.abs()?,
    };
    drop(weight);
    let k = (s * magnitude.numel() as f64).floor() as u64;
    if k == 0 {
        return Ok(false);
    }
    let threshold = magnitude.kth_smallest(k)?;
    let mask = magnitude.gt_scalar(threshold)?;
    model.set_mask(layer, &mask)?;
    Ok(true)
}

/// The state kept between `compress` and `finish`.
pub struct WeightSparse {
    /// Each weight layer with its final sparsity s_f.
    targets: Vec<(String, f64)>,
    initial: f64,
    begin: f64,
    end: f64,
    interval: u32,
    /// The last step whose sparsity was applied.
    last_applied: Option<u32>,
}

impl WeightSparse {
    /// Applies the schedule's sparsity for progress `f ∈ [0, 1]` through the
    /// pruning span (0: s_i, 1: s_f) to every layer.
    fn apply(&self, model: &Model, f: f64) -> Result<()> {
        let remaining = (1.0 - f.clamp(0.0, 1.0)).powi(3);
        for (layer, s_f) in &self.targets {
            let s_i = self.initial.min(*s_f);
            let s_t = s_f + (s_i - s_f) * remaining;
            prune_layer(model, layer, s_t)?;
        }
        Ok(())
    }

    fn report(&self, model: &Model, what: &str) -> Report {
        let achieved = model.weight_sparsity();
        let cost = model.cost();
        // The target over all layers, weighted by their sizes.
        let (mut total, mut zeros) = (0.0, 0.0);
        for layer in model.layers() {
            let n = layer.weight_numel() as f64;
            let s_f = self
                .targets
                .iter()
                .find(|(name, _)| *name == layer.name)
                .map_or(0.0, |t| t.1);
            total += n;
            zeros += s_f * n;
        }
        let target = if total > 0.0 { zeros / total } else { 0.0 };
        Report::new(format!(
            "{what}: {:.1}% of the weights of {} layers are zero (target {:.1}%)",
            achieved * 100.0,
            self.targets.len(),
            target * 100.0
        ))
        .with("sparsity", achieved)
        .with("target_sparsity", target)
        .with("params", cost.params as f64)
        .with("nonzero_params", cost.nonzero_params as f64)
    }
}

impl Learner for WeightSparse {
    type Params = WeightSparseParams;

    fn info() -> Info {
        Info::new(
            "weight_sparse",
            env!("CARGO_PKG_VERSION"),
            "Gradual magnitude pruning (Zhu & Gupta 2017): each weight layer's smallest \
             weights are masked out on a cubic schedule over the host's fine-tuning, from \
             an initial to a final sparsity, optionally with one final sparsity per layer.",
        )
        .with_targets(&[Measure::Params, Measure::Size])
        .made_for(Measure::Params, 0.25)
    }

    fn search_space(
        settings: &WeightSparseParams,
        target: Option<Target>,
        model: &Model,
    ) -> Result<Vec<ParamSpec>> {
        let mut space = WeightSparseParams::search_space()?;
        if target.is_some() {
            // The target decides the overall sparsity.
            space.retain(|s| s.name != "sparsity");
        }
        if !settings.per_layer {
            return Ok(space);
        }
        let default = settings.sparsity;
        let layers = model.layers();
        for layer in &layers {
            space.push(
                ParamSpec::float(layer_dim(&layer.name), 0.0, 0.99, default)
                    .with_help(format!("Final sparsity of layer `{}`.", layer.name))
                    .with_context(layer.context(&layers)),
            );
        }
        Ok(space)
    }

    fn compress(
        params: WeightSparseParams,
        target: Option<Target>,
        extra: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        let layers = model.layers();
        let sparsity_of = |l: &LayerInfo| {
            if params.per_layer {
                extra.float(&layer_dim(&l.name)).unwrap_or(params.sparsity)
            } else {
                params.sparsity
            }
        };
        let targets = match target {
            None => layers
                .iter()
                .map(|l| (l.name.clone(), sparsity_of(l)))
                .collect(),
            Some(t) => {
                let budget = weight_budget(model, &layers, t)?;
                let sizes: Vec<u64> = layers.iter().map(|l| l.weight_numel()).collect();
                let prefs: Vec<f64> = layers.iter().map(|l| 1.0 - sparsity_of(l)).collect();
                let keep = allocate(&sizes, &prefs, budget);
                layers
                    .iter()
                    .zip(sizes.iter().zip(keep))
                    .map(|(l, (&n, k))| {
                        // Pruning zeroes ⌊s·n⌋ weights: half a weight of
                        // slack keeps the float product from rounding down.
                        let zeroed = n - k;
                        let s = ((zeroed as f64 + 0.5) / n.max(1) as f64).min(1.0);
                        (l.name.clone(), if zeroed == 0 { 0.0 } else { s })
                    })
                    .collect()
            }
        };
        let learner = WeightSparse {
            targets,
            initial: params.initial_sparsity,
            begin: params.begin,
            end: params.begin + params.span.clamp(0.0, 1.0) * (1.0 - params.begin),
            // The schema bounds it to [1, 1000].
            interval: params.interval.clamp(1, 1000) as u32,
            last_applied: None,
        };
        if params.initial_sparsity > 0.0 {
            learner.apply(model, 0.0)?;
        }
        let report = learner.report(model, "initial sparsity");
        Ok((learner, report))
    }

    fn on_train_step(&mut self, model: &Model, step: u32, total: u32) -> Result<()> {
        let t0 = (self.begin * f64::from(total)).round() as u32;
        let t_end = ((self.end * f64::from(total)).round() as u32).max(t0);
        let span = t_end - t0;
        let due = if step < t0 {
            false
        } else if step >= t_end {
            // The end step, or any later one if the end step was missed.
            self.last_applied.is_none_or(|last| last < t_end)
        } else {
            (step - t0) % self.interval == 0
        };
        if !due {
            return Ok(());
        }
        let f = if span == 0 {
            1.0
        } else {
            f64::from(step.min(t_end) - t0) / f64::from(span)
        };
        self.apply(model, f)?;
        self.last_applied = Some(step);
        Ok(())
    }

    fn finish(&mut self, model: &Model) -> Result<Report> {
        self.apply(model, 1.0)?;
        Ok(self.report(model, "gradual magnitude pruning"))
    }
}

/// How many weight entries (over every weight layer) may stay non-zero under
/// the target, counted as the host counts them (see the module docs).
pub fn weight_budget(model: &Model, layers: &[LayerInfo], target: Target) -> Result<u64> {
    let cost = model.cost();
    let weights: u64 = layers.iter().map(|l| l.weight_numel()).sum();
    let nonzero_weights: u64 = layers.iter().map(|l| l.nonzero_weights).sum();
    let (allowed, outside, per_weight, what) = match target.measure {
        // The host bounds the non-zero parameters by the baseline's.
        Measure::Params => (
            target.ratio * cost.nonzero_params as f64,
            cost.nonzero_params.saturating_sub(nonzero_weights) as f64,
            1.0,
            "non-zero parameters",
        ),
        Measure::Size => {
            if cost.bytes != 4 * cost.params {
                return Err(Error::unsupported(
                    "weight_sparse meets a size target only from a dense float baseline; \
                     this model is already sparse or quantized",
                ));
            }
            let mask_bytes: u64 = layers.iter().map(|l| l.weight_numel().div_ceil(8)).sum();
            (
                target.ratio * cost.bytes as f64,
                (cost.bytes - 4 * weights) as f64 + mask_bytes as f64,
                4.0,
                "bytes",
            )
        }
        Measure::Flops => {
            return Err(Error::unsupported(
                "weight_sparse cannot meet a flops target: zeroed weights still cost their \
                 MACs in dense kernels; use a channel-pruning learner",
            ))
        }
    };
    if allowed < outside {
        return Err(Error::invalid_argument(format!(
            "a {} target of {} is out of reach: {outside:.0} {what} lie outside the \
             weights, more than the {allowed:.0} allowed",
            match target.measure {
                Measure::Params => "params",
                _ => "size",
            },
            target.ratio,
        )));
    }
    Ok((((allowed - outside) / per_weight).floor() as u64).min(weights))
}

/// Weights to keep per layer: `min(1, c·pref)` of each layer's `sizes`,
/// rounded down, with the largest common factor `c` whose total stays within
/// `budget`. Preferences are clamped to `[0, 1]`.
pub fn allocate(sizes: &[u64], prefs: &[f64], budget: u64) -> Vec<u64> {
    let keep_at = |c: f64| -> Vec<u64> {
        sizes
            .iter()
            .zip(prefs)
            .map(|(&n, &p)| ((c * p.clamp(0.0, 1.0)).min(1.0) * n as f64).floor() as u64)
            .collect()
    };
    let total = |k: &[u64]| k.iter().sum::<u64>();
    let smallest = prefs
        .iter()
        .map(|p| p.clamp(0.0, 1.0))
        .filter(|&p| p > 0.0)
        .fold(f64::INFINITY, f64::min);
    if !smallest.is_finite() {
        return vec![0; sizes.len()];
    }
    let (mut lo, mut hi) = (0.0, 1.0 / smallest);
    if total(&keep_at(hi)) <= budget {
        return keep_at(hi);
    }
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if total(&keep_at(mid)) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    keep_at(lo)
}

pf_sdk::export_learner!(WeightSparse);

#[cfg(test)]
mod tests {
    use super::allocate;

    #[test]
    fn allocation_meets_the_budget_and_follows_preferences() {
        let sizes = [1000, 200, 50];
        let keep = allocate(&sizes, &[0.2, 0.2, 0.2], 250);
        assert!(keep.iter().sum::<u64>() <= 250);
        assert!(keep.iter().sum::<u64>() >= 245, "{keep:?}");
        // Equal preferences keep equal fractions.
        assert!((keep[0] as f64 / 1000.0 - keep[1] as f64 / 200.0).abs() < 0.01);
        // A layer preferring to keep more keeps more.
        let keep = allocate(&sizes, &[0.1, 0.9, 0.5], 300);
        assert!(keep[1] as f64 / 200.0 > keep[0] as f64 / 1000.0);
        assert!(keep.iter().sum::<u64>() <= 300);
        // A budget above everything keeps everything.
        assert_eq!(
            allocate(&sizes, &[1.0, 1.0, 1.0], 5000),
            vec![1000, 200, 50]
        );
        assert_eq!(allocate(&sizes, &[0.0, 0.0, 0.0], 100), vec![0, 0, 0]);
    }
}
