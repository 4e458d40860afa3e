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
//! end step is `round(end · total)` and `n·Δt` is their distance. Masks are
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
//! search-space dimension `sparsity.<L>` (see [`layer_context`] for the
//! features given to optimizers) instead of the uniform `sparsity`. The
//! per-layer dimensions are part of the search space only when the user
//! fixes `per_layer = true` (the host passes fixed settings to
//! `search-space`).

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
    /// Fraction of the host's fine-tuning steps at which the final sparsity is reached (at least `begin`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub end: f64,
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
            end: 0.75,
            interval: 10,
            per_layer: false,
        }
    }
}

/// The name of a layer's own sparsity dimension.
fn layer_dim(layer: &str) -> String {
    format!("sparsity.{layer}")
}

/// The 8 features describing a layer to optimizers (the `context` of its
/// `sparsity.<layer>` dimension), each in `[0, 1]`:
///
/// 0. position: `index / layers`;
/// 1. size: `ln(1 + params) / ln(1 + largest params)`;
/// 2. cost: `ln(1 + macs) / ln(1 + largest macs)`;
/// 3. – 5. kind, one-hot: convolution, depthwise convolution, linear;
/// 6. stride: `stride / largest stride`;
/// 7. shape: `out / (in + out)` channels (or features).
pub fn layer_context(layer: &LayerInfo, all: &[LayerInfo]) -> Vec<f64> {
    let max_of = |f: fn(&LayerInfo) -> f64| all.iter().map(f).fold(0.0, f64::max);
    let ratio = |x: f64, max: f64| if max > 0.0 { x / max } else { 0.0 };
    let log_params = |l: &LayerInfo| (l.params as f64).ln_1p();
    let log_macs = |l: &LayerInfo| (l.macs as f64).ln_1p();
    let stride = |l: &LayerInfo| f64::from(l.stride);
    let (out_c, in_c) = (
        f64::from(layer.out_channels()),
        f64::from(layer.in_channels()),
    );
    let one_hot = |kind: LayerKind| if layer.kind == kind { 1.0 } else { 0.0 };
    vec![
        f64::from(layer.index) / all.len().max(1) as f64,
        ratio(log_params(layer), max_of(log_params)),
        ratio(log_macs(layer), max_of(log_macs)),
        one_hot(LayerKind::Conv2d),
        one_hot(LayerKind::DepthwiseConv2d),
        one_hot(LayerKind::Linear),
        ratio(stride(layer), max_of(stride)),
        ratio(out_c, in_c + out_c),
    ]
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
    }

    fn search_space(settings: &WeightSparseParams, model: &Model) -> Result<Vec<ParamSpec>> {
        let mut space = WeightSparseParams::search_space()?;
        if !settings.per_layer {
            return Ok(space);
        }
        let default = settings.sparsity;
        let layers = model.layers();
        for layer in &layers {
            space.push(
                ParamSpec::float(layer_dim(&layer.name), 0.0, 0.99, default)
                    .with_help(format!("Final sparsity of layer `{}`.", layer.name))
                    .with_context(layer_context(layer, &layers)),
            );
        }
        Ok(space)
    }

    fn compress(
        params: WeightSparseParams,
        extra: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        if params.end < params.begin {
            return Err(Error::invalid_argument(format!(
                "parameter `end` ({}) must not be before `begin` ({})",
                params.end, params.begin
            )));
        }
        let targets = model
            .layers()
            .into_iter()
            .map(|l| {
                let s_f = if params.per_layer {
                    extra.float(&layer_dim(&l.name)).unwrap_or(params.sparsity)
                } else {
                    params.sparsity
                };
                (l.name, s_f)
            })
            .collect();
        let learner = WeightSparse {
            targets,
            initial: params.initial_sparsity,
            begin: params.begin,
            end: params.end,
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

pf_sdk::export_learner!(WeightSparse);
