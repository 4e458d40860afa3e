//! Channel pruning (He, Zhang & Sun, ICCV 2017, "Channel Pruning for
//! Accelerating Very Deep Neural Networks"): a pf learner plugin.
//!
//! For each prunable channel group (the output channels of one convolution
//! or linear layer, with its batch norm), `compress`
//!
//! 1. **samples** the layers that read the channels: input patches and
//!    output responses of the original model at `points_per_image` random
//!    positions of `images` training images (as many again are held out to
//!    measure the reconstruction error);
//! 2. **selects** the channels to keep: by LASSO on the channels'
//!    contributions to those outputs, stopping when exactly the preserve
//!    ratio remains ([`channel_kit::lasso::Lasso`]; `selection = l1` or `random` for
//!    the usual baselines);
//! 3. **reconstructs** the readers' weights of the kept channels by least
//!    squares, so that they reproduce the original outputs
//!    (`channel_kit::reconstruct`);
//! 4. **prunes physically**: the producing layer, its batch norm and every
//!    reader shrink (the host's channel surgery).
//!
//! The host then fine-tunes. All samples come from the original model
//! (nothing is applied until every group is planned), and all products run
//! in the host: only `c×c` LASSO and `(k·kh·kw)²` least-squares systems are
//! copied into the sandbox.
//!
//! ## Which channels
//!
//! As PocketFlow's channel-pruning learner does for residual networks, only
//! groups with a single producer are pruned: plain chains and the inner
//! convolutions of residual blocks. A group tied across a residual add
//! keeps its channels. Its readers must be ungrouped convolutions or linear
//! layers, whose features the host can sample.
//!
//! ## Preserve ratios and targets
//!
//! Every group keeps `⌈r·c⌉` of its `c` channels. By default (`per_layer`)
//! `r` is the group's own `preserve.<producer>` dimension (with the
//! producer's features as context, for DDPG), whose default is
//! `preserve_ratio`; with `per_layer = false` it is `preserve_ratio` for
//! every group. Under a `flops` target the ratios are scaled by the largest
//! common factor whose model fits the budget (`channel_kit::ratios`):
//! per-layer ratios keep their proportions, so a search explores how the
//! budget is allocated over the layers (AMC's formulation); uniform ratios
//! become the largest uniform ratio that meets it, which leaves no ratio
//! to search (`per_layer = false` is that uniform baseline). Without a
//! target `preserve_ratio` stays a dimension: `--set preserve_ratio=0.3`
//! prunes every group to 0.3.

use channel_kit::groups::Candidate;
use channel_kit::lasso::{self, Lasso};
use channel_kit::outcome::Outcome;
use channel_kit::ratios::Ratios;
use channel_kit::reconstruct::{self, Samples};
use pf_sdk::prelude::*;

/// How a group's channels are chosen.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(crate = "pf_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "pf_sdk::schemars")]
pub enum Selection {
    /// LASSO regression on the channels' contributions to the next layer's
    /// output (He et al. 2017).
    Lasso,
    /// The producer's filters with the largest L1 norms (Li et al. 2017).
    L1,
    /// A uniformly random subset, from the trial's seeded stream.
    Random,
}

/// The hyper-parameters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(crate = "pf_sdk::serde", default, deny_unknown_fields)]
#[schemars(crate = "pf_sdk::schemars")]
pub struct ChannelPrunedParams {
    /// Fraction of each group's channels to keep without a FLOPs target (with `per_layer`, the default of every `preserve.<layer>`).
    #[schemars(range(min = 0.05, max = 1.0))]
    pub preserve_ratio: f64,
    /// How channels are chosen: `lasso` (He et al.), or `l1` / `random` as baselines.
    #[schemars(extend("x-fixed" = true))]
    pub selection: Selection,
    /// Rebuild the kept weights by least squares to match the original outputs.
    #[schemars(extend("x-fixed" = true))]
    pub reconstruct: bool,
    /// Training images to sample each layer's features on (as many again are held out).
    #[schemars(range(min = 1, max = 512), extend("x-fixed" = true))]
    pub images: i64,
    /// Positions sampled per image in a convolution's output.
    #[schemars(range(min = 1, max = 100), extend("x-fixed" = true))]
    pub points_per_image: i64,
    /// Give each group its own preserve ratio (the `preserve.<layer>` dimensions; under a FLOPs target they are scaled together to meet it, as in AMC); false: one uniform ratio.
    #[schemars(extend("x-fixed" = true))]
    pub per_layer: bool,
}

impl Default for ChannelPrunedParams {
    fn default() -> Self {
        ChannelPrunedParams {
            preserve_ratio: 0.5,
            selection: Selection::Lasso,
            reconstruct: true,
            images: 128,
            points_per_image: 10,
            per_layer: true,
        }
    }
}

/// What `compress` did to one consumer.
struct Rebuilt {
    layer: String,
    error: f64,
}

/// The ratio settings of `p`.
fn ratios(p: &ChannelPrunedParams) -> Ratios {
    Ratios {
        preserve_ratio: p.preserve_ratio,
        per_layer: p.per_layer,
    }
}

/// The learner's state between `compress` and `finish`.
pub struct ChannelPruned {
    outcome: Outcome,
}

/// Samples the features of `consumer` (which reads `channels` channels).
fn sample(
    model: &Model,
    consumer: &LayerInfo,
    channels: u32,
    p: &ChannelPrunedParams,
) -> Result<Samples> {
    let s = reconstruct::sample(
        model,
        consumer,
        p.images.clamp(1, 512) as u32,
        p.points_per_image.clamp(1, 100) as u32,
    )?;
    Samples::new(model, consumer, channels, s.inputs, s.outputs)
}

/// The `k` channels of `group` to keep.
fn choose(
    model: &Model,
    group: &Candidate,
    samples: &[Samples],
    k: u32,
    selection: Selection,
    rng: &mut HostRng,
) -> Result<Vec<u32>> {
    let c = group.channels as usize;
    match selection {
        Selection::Lasso => {
            // Every reader's output counts: their problems add up.
            let mut total = Lasso {
                gram: vec![0.0; c * c],
                zty: vec![0.0; c],
            };
            for s in samples {
                let p = s.lasso()?;
                total
                    .gram
                    .iter_mut()
                    .zip(&p.gram)
                    .for_each(|(t, g)| *t += g);
                total.zty.iter_mut().zip(&p.zty).for_each(|(t, b)| *t += b);
            }
            total.select(k as usize)
        }
        Selection::L1 => {
            let w = model.weight(&group.producer.name)?.abs()?;
            let dims: Vec<u32> = (1..w.rank() as u32).collect();
            let scores = w.sum(&dims, false)?.to_vec()?;
            let scores: Vec<f64> = scores.into_iter().map(f64::from).collect();
            Ok(lasso::top_k(&scores, k as usize))
        }
        Selection::Random => Ok(lasso::random(c, k as usize, rng)),
    }
}

impl Learner for ChannelPruned {
    type Params = ChannelPrunedParams;

    fn info() -> Info {
        Info::new(
            "channel_pruned",
            env!("CARGO_PKG_VERSION"),
            "Channel pruning (He et al. 2017): each layer's input channels are chosen by LASSO \
             regression on their contributions to its output, the kept weights are rebuilt by \
             least squares to match the original outputs, and the channels leave the network \
             physically (the producing layer and its batch norm shrink) before fine-tuning.",
        )
        .with_targets(&[Measure::Flops])
        .made_for(Measure::Flops, 0.5)
    }

    fn search_space(
        settings: &ChannelPrunedParams,
        target: Option<Target>,
        model: &Model,
    ) -> Result<Vec<ParamSpec>> {
        let space = ChannelPrunedParams::search_space()?;
        Ok(ratios(settings).shape_space(space, target, model))
    }

    fn compress(
        p: ChannelPrunedParams,
        target: Option<Target>,
        extra: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        let layers = model.layers();
        let baseline_macs = model.cost().macs;
        let (groups, keep) = ratios(&p).plan("channel_pruned", model, &layers, extra, target)?;

        // Plan every group on the original model, then apply.
        let mut rng = HostRng::new();
        let mut plans = Vec::new();
        let mut rebuilt = Vec::new();
        let todo: Vec<&Candidate> = groups
            .iter()
            .filter(|g| keep[&g.id].1 < g.channels)
            .collect();
        for (done, g) in todo.iter().enumerate() {
            pf_sdk::progress(
                done as u64,
                todo.len() as u64,
                &format!("selecting channels of `{}`", g.producer.name),
            );
            let k = keep[&g.id].1;
            let samples = g
                .consumers
                .iter()
                .map(|c| sample(model, c, g.channels, &p))
                .collect::<Result<Vec<_>>>()?;
            let kept = choose(model, g, &samples, k, p.selection, &mut rng)?;
            let mut weights = Vec::new();
            for s in &samples {
                let (w, error) = s.kept_weight(&kept, p.reconstruct)?;
                weights.push((s.layer.clone(), w.to_vec()?, w.shape()));
                rebuilt.push(Rebuilt {
                    layer: s.layer.clone(),
                    error,
                });
            }
            plans.push((g, kept, weights));
        }
        let mut removed = 0;
        for (g, kept, weights) in &plans {
            // Removing input channels of one reader removes them from the
            // whole group: the producer, its batch norm, every reader.
            model.prune_input_channels(&g.consumers[0].name, kept)?;
            for (layer, data, _) in weights {
                let shape = model.layer(layer)?.weight_shape;
                model.set_weight(layer, &Tensor::from_data(&shape, data)?)?;
            }
            removed += g.channels - kept.len() as u32;
        }
        pf_sdk::progress(todo.len() as u64, todo.len() as u64, "channels pruned");

        let error = if rebuilt.is_empty() {
            0.0
        } else {
            rebuilt.iter().map(|r| r.error).sum::<f64>() / rebuilt.len() as f64
        };
        let total: u32 = groups.iter().map(|g| g.channels).sum();
        let left: u32 = keep.values().map(|&(_, k)| k).sum();
        let macs_ratio = model.cost().macs as f64 / baseline_macs.max(1) as f64;
        let summary =
            format!(
            "{} selection{}: kept {left} of {total} channels in {} groups, {:.1}% of the MACs; \
             held-out reconstruction error {:.4}",
            match p.selection {
                Selection::Lasso => "LASSO",
                Selection::L1 => "L1-norm",
                Selection::Random => "random",
            },
            if p.reconstruct { " with least-squares reconstruction" } else { "" },
            groups.len(),
            100.0 * macs_ratio,
            error,
        );
        let mut values = vec![
            ("reconstruction_error".to_string(), error),
            ("channels_removed".to_string(), f64::from(removed)),
            (
                "preserve_ratio".to_string(),
                f64::from(left) / f64::from(total.max(1)),
            ),
        ];
        for r in &rebuilt {
            values.push((format!("reconstruction_error.{}", r.layer), r.error));
        }
        let learner = ChannelPruned {
            outcome: Outcome {
                baseline_macs,
                summary,
                values,
            },
        };
        let report = learner.outcome.report(model);
        Ok((learner, report))
    }

    fn finish(&mut self, model: &Model) -> Result<Report> {
        Ok(self.outcome.report(model))
    }
}

pf_sdk::export_learner!(ChannelPruned);
