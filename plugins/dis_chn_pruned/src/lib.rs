//! Discrimination-aware channel pruning (Zhuang et al., NeurIPS 2018,
//! "Discrimination-aware Channel Pruning for Deep Neural Networks"): a pf
//! learner plugin.
//!
//! The weight layers are cut into `stages` stages of about equal length.
//! Every stage but the last gets an auxiliary classifier at its end
//! (`model.add-auxiliary-head`: average pooling and a fully connected layer,
//! the paper's discrimination-aware loss `L_S`); the last stage uses the
//! network's own classifier. Then, stage by stage:
//!
//! 1. the network and the heads fine-tune for `stage_steps` steps on the
//!    final cross-entropy plus every head's;
//! 2. for each prunable group read in the stage, channels are chosen
//!    greedily: starting from none, each step scores every channel by the
//!    gradient of the combined loss `L_M + λ·L_S` with respect to the
//!    reader's weights of that channel (squared Frobenius norm), adds the
//!    best, and rebuilds the reader's weights of the chosen channels by
//!    least squares, until the preserve ratio is reached. `L_M` is the
//!    reconstruction error of the reader's output against the original
//!    model's (from sampled features, computed in the host); `L_S` is the
//!    stage's head's cross-entropy (its gradient comes from the host with
//!    the reader's unchosen channels zeroed);
//! 3. the channels leave the network physically and the reader keeps its
//!    least-squares weights.
//!
//! The host fine-tunes the pruned network afterwards, as for every learner.
//!
//! Three departures from the paper, each to fit a trial's budget: the two
//! gradients are each scaled to unit norm before they are combined (their
//! raw scales differ by orders of magnitude from layer to layer, so one `λ`
//! could not balance both everywhere); each greedy step adds
//! `⌈remaining / steps left⌉` channels instead of one (`greedy_steps`; set
//! it to the channel count for the paper's one at a time); and the chosen
//! weights are solved by least squares on `L_M` rather than by SGD on the
//! combined loss (for readers too wide to solve at every step, such as
//! LeNet's first fully connected layer, the intermediate steps keep the
//! chosen channels' original weights).
//!
//! Groups, ratios and targets are those of `channel_pruned` (the shared
//! `channel_kit`): single-producer groups, a per-layer preserve ratio (the
//! default) or a uniform one (`per_layer = false`), scaled to meet a
//! `flops` target.

use channel_kit::groups::Candidate;
use channel_kit::outcome::Outcome;
use channel_kit::ratios::Ratios;
use channel_kit::reconstruct::{self, Samples};
use pf_sdk::prelude::*;

/// The hyper-parameters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(crate = "pf_sdk::serde", default, deny_unknown_fields)]
#[schemars(crate = "pf_sdk::schemars")]
pub struct DisChnPrunedParams {
    /// Fraction of each group's channels to keep without a FLOPs target (with `per_layer`, the default of every `preserve.<layer>`).
    #[schemars(range(min = 0.05, max = 1.0))]
    pub preserve_ratio: f64,
    /// Weight of the discrimination-aware loss against the reconstruction loss.
    #[schemars(range(min = 0.0, max = 10.0))]
    pub lambda: f64,
    /// Stages, each but the last with an auxiliary classifier at its end.
    #[schemars(range(min = 1, max = 8), extend("x-fixed" = true))]
    pub stages: i64,
    /// Fine-tuning steps with the auxiliary losses before each stage's selection.
    #[schemars(range(min = 0, max = 100000), extend("x-fixed" = true))]
    pub stage_steps: i64,
    /// Greedy steps per group (each adds an equal share of the channels to keep).
    #[schemars(range(min = 1, max = 4096), extend("x-fixed" = true))]
    pub greedy_steps: i64,
    /// Training images to sample each reader's features on (as many again are held out).
    #[schemars(range(min = 1, max = 512), extend("x-fixed" = true))]
    pub images: i64,
    /// Positions sampled per image in a convolution's output.
    #[schemars(range(min = 1, max = 100), extend("x-fixed" = true))]
    pub points_per_image: i64,
    /// Give each group its own preserve ratio (the `preserve.<layer>` dimensions; under a FLOPs target they are scaled together to meet it, as in AMC); false: one uniform ratio.
    #[schemars(extend("x-fixed" = true))]
    pub per_layer: bool,
}

impl Default for DisChnPrunedParams {
    fn default() -> Self {
        DisChnPrunedParams {
            preserve_ratio: 0.5,
            lambda: 1.0,
            stages: 3,
            stage_steps: 50,
            greedy_steps: 8,
            images: 128,
            points_per_image: 10,
            per_layer: true,
        }
    }
}

/// The largest least-squares system (unknowns² × outputs) solved at every
/// greedy step; the final reconstruction is always solved.
const MAX_STEP_SOLVE: u64 = 20_000_000;

/// The stage (0-based) of each weight layer, by position: `stages` runs of
/// about equal length.
fn stage_of(index: u32, layers: usize, stages: usize) -> usize {
    (index as usize * stages / layers.max(1)).min(stages - 1)
}

/// Squared Frobenius norm per channel of a gradient `[O, c·kk]`, over its
/// total, as `c` values.
fn channel_scores(g: &Tensor, c: u32, kk: u32) -> Result<Vec<f64>> {
    let out = g.shape()[0];
    let per = g
        .sqr()?
        .reshape(&[out, c, kk])?
        .sum(&[0, 2], false)?
        .to_vec()?;
    let total: f64 = per.iter().map(|&v| f64::from(v)).sum();
    Ok(per
        .into_iter()
        .map(|v| {
            if total > 0.0 {
                f64::from(v) / total
            } else {
                0.0
            }
        })
        .collect())
}

/// The ratio settings of `p`.
fn ratios(p: &DisChnPrunedParams) -> Ratios {
    Ratios {
        preserve_ratio: p.preserve_ratio,
        per_layer: p.per_layer,
    }
}

/// The learner's state between `compress` and `finish`.
pub struct DisChnPruned {
    outcome: Outcome,
}

/// Chooses `k` channels of `group` greedily and returns them (ascending).
#[allow(clippy::too_many_arguments)]
fn greedy(
    model: &Model,
    group: &Candidate,
    samples: &[Samples],
    k: u32,
    head: Option<u32>,
    lambda: f64,
    steps: u32,
) -> Result<Vec<u32>> {
    let c = group.channels;
    let reader = &samples[0];
    let kk = reader.kk;
    let shape = group.consumers[0].weight_shape.clone();
    let original = model.weight(&group.consumers[0].name)?;
    let mut chosen: Vec<u32> = Vec::new();
    // The reader's weight with only the chosen channels (none at first).
    let out = reader.weight().shape()[0];
    let mut current = Tensor::zeros(&[out, c * kk])?;
    for step in 0..steps {
        let left = k - chosen.len() as u32;
        if left == 0 {
            break;
        }
        let add = left.div_ceil(steps - step);
        // L_M: the reconstruction gradient, summed over the readers.
        let mut score = vec![0.0; c as usize];
        for (i, s) in samples.iter().enumerate() {
            let w = if i == 0 {
                current.add_scalar(0.0)?
            } else {
                let cols = s.columns(&chosen);
                let mut mask = vec![0.0f32; (c * s.kk) as usize];
                for &col in &cols {
                    mask[col as usize] = 1.0;
                }
                s.weight().mul(&Tensor::from_slice(&mask)?)?
            };
            let g = s.reconstruction_gradient(&w)?;
            for (t, v) in score.iter_mut().zip(channel_scores(&g, c, s.kk)?) {
                *t += v;
            }
        }
        // L_S: the stage's classifier, with the unchosen channels zeroed.
        if lambda > 0.0 {
            model.set_weight(&group.consumers[0].name, &current.reshape(&shape)?)?;
            let name = vec![group.consumers[0].name.clone()];
            let g = match head {
                Some(h) => model.auxiliary_gradients(h, &name, 1)?,
                None => model.gradients(&name, 1)?,
            }
            .remove(0);
            let g = g.reshape(&[out, c * kk])?;
            for (t, v) in score.iter_mut().zip(channel_scores(&g, c, kk)?) {
                *t += lambda * v;
            }
        }
        let mut order: Vec<u32> = (0..c).filter(|j| !chosen.contains(j)).collect();
        order.sort_by(|&a, &b| {
            score[b as usize]
                .total_cmp(&score[a as usize])
                .then(a.cmp(&b))
        });
        chosen.extend(order.into_iter().take(add as usize));
        chosen.sort_unstable();
        // The chosen channels' weights by least squares (where the system is
        // small enough to solve at every step; otherwise their original
        // weights), the rest zero.
        let cols = reader.columns(&chosen);
        let width = cols.len();
        let solvable = (width as u64).pow(2) * u64::from(out) <= MAX_STEP_SOLVE;
        let w = if solvable {
            reader.kept_weight(&chosen, true)?.0
        } else {
            reader.weight().index_select(1, &cols)?
        };
        let rebuilt = w.to_vec()?;
        let mut full = vec![0.0f32; (out * c * kk) as usize];
        for o in 0..out as usize {
            for (j, &col) in cols.iter().enumerate() {
                full[o * (c * kk) as usize + col as usize] = rebuilt[o * width + j];
            }
        }
        current = Tensor::from_data(&[out, c * kk], &full)?;
    }
    // The reader gets its own weight back; pruning and reconstruction follow.
    model.set_weight(&group.consumers[0].name, &original)?;
    Ok(chosen)
}

impl Learner for DisChnPruned {
    type Params = DisChnPrunedParams;

    fn info() -> Info {
        Info::new(
            "dis_chn_pruned",
            env!("CARGO_PKG_VERSION"),
            "Discrimination-aware channel pruning (Zhuang et al. 2018): auxiliary classifiers at \
             the ends of stages, and each layer's channels chosen greedily by the gradient of \
             its reconstruction loss plus its stage's classification loss, then rebuilt by \
             least squares and pruned physically.",
        )
        .with_targets(&[Measure::Flops])
        .made_for(Measure::Flops, 0.5)
    }

    fn search_space(
        settings: &DisChnPrunedParams,
        target: Option<Target>,
        model: &Model,
    ) -> Result<Vec<ParamSpec>> {
        let space = DisChnPrunedParams::search_space()?;
        Ok(ratios(settings).shape_space(space, target, model))
    }

    fn compress(
        p: DisChnPrunedParams,
        target: Option<Target>,
        extra: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        let layers = model.layers();
        let baseline_macs = model.cost().macs;
        let (groups, keep) = ratios(&p).plan("dis_chn_pruned", model, &layers, extra, target)?;
        let todo: Vec<&Candidate> = groups
            .iter()
            .filter(|g| keep[&g.id].1 < g.channels)
            .collect();
        let images = p.images.clamp(1, 512) as u32;
        let per_image = p.points_per_image.clamp(1, 100) as u32;

        // The original model's responses, before any fine-tuning or pruning.
        let mut originals = Vec::with_capacity(todo.len());
        for g in &todo {
            let outputs = g
                .consumers
                .iter()
                .map(|c| Ok(reconstruct::sample(model, c, images, per_image)?.outputs))
                .collect::<Result<Vec<Tensor>>>()?;
            originals.push(Some(outputs));
        }

        // A head at the end of every stage but the last.
        let stages = p.stages.clamp(1, 8) as usize;
        let mut heads: Vec<Option<u32>> = vec![None; stages];
        for (s, head) in heads.iter_mut().enumerate().take(stages - 1) {
            let last = layers.iter().rfind(|l| {
                stage_of(l.index, layers.len(), stages) == s && l.kind != LayerKind::Linear
            });
            if let Some(l) = last {
                *head = Some(model.add_auxiliary_head(&l.name)?);
            }
        }

        let mut removed = 0;
        let mut errors = Vec::new();
        let mut done = 0;
        for (s, head) in heads.iter().enumerate() {
            let in_stage: Vec<usize> = (0..todo.len())
                .filter(|&i| stage_of(todo[i].consumers[0].index, layers.len(), stages) == s)
                .collect();
            if in_stage.is_empty() {
                continue;
            }
            if p.stage_steps > 0 && head.is_some() {
                model.fine_tune(p.stage_steps.clamp(1, 100_000) as u32)?;
            }
            for i in in_stage {
                let g = todo[i];
                pf_sdk::progress(
                    done,
                    todo.len() as u64,
                    &format!("choosing the channels of `{}`", g.producer.name),
                );
                done += 1;
                let outputs = originals[i].take().expect("each group once");
                let samples = g
                    .consumers
                    .iter()
                    .zip(outputs)
                    .map(|(c, y)| {
                        let x = reconstruct::sample(model, c, images, per_image)?.inputs;
                        // The reader's current layer info (its rows may
                        // have been pruned with an earlier group).
                        let info = model.layer(&c.name)?;
                        Samples::new(model, &info, g.channels, x, y)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let k = keep[&g.id].1;
                let steps = (p.greedy_steps.clamp(1, 4096) as u32).min(k);
                let kept = greedy(model, g, &samples, k, *head, p.lambda.max(0.0), steps)?;
                let mut weights = Vec::new();
                for s in &samples {
                    let (w, error) = s.kept_weight(&kept, true)?;
                    errors.push((s.layer.clone(), error));
                    weights.push((s.layer.clone(), w));
                }
                drop(samples);
                model.prune_input_channels(&g.consumers[0].name, &kept)?;
                for (layer, w) in weights {
                    let shape = model.layer(&layer)?.weight_shape;
                    model.set_weight(&layer, &w.reshape(&shape)?)?;
                }
                removed += g.channels - kept.len() as u32;
            }
        }
        pf_sdk::progress(todo.len() as u64, todo.len() as u64, "channels pruned");

        let error = if errors.is_empty() {
            0.0
        } else {
            errors.iter().map(|e| e.1).sum::<f64>() / errors.len() as f64
        };
        let total: u32 = groups.iter().map(|g| g.channels).sum();
        let left: u32 = keep.values().map(|&(_, k)| k).sum();
        let macs_ratio = model.cost().macs as f64 / baseline_macs.max(1) as f64;
        let summary = format!(
            "discrimination-aware selection over {stages} stages: kept {left} of {total} \
             channels in {} groups, {:.1}% of the MACs; held-out reconstruction error {error:.4}",
            groups.len(),
            100.0 * macs_ratio,
        );
        let mut values = vec![
            ("reconstruction_error".to_string(), error),
            ("channels_removed".to_string(), f64::from(removed)),
            (
                "preserve_ratio".to_string(),
                f64::from(left) / f64::from(total.max(1)),
            ),
            (
                "auxiliary_heads".to_string(),
                heads.iter().flatten().count() as f64,
            ),
        ];
        for (layer, e) in errors {
            values.push((format!("reconstruction_error.{layer}"), e));
        }
        let learner = DisChnPruned {
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

pf_sdk::export_learner!(DisChnPruned);

#[cfg(test)]
mod tests {
    use super::stage_of;

    #[test]
    fn stages_split_the_layers_evenly() {
        let stages: Vec<usize> = (0..6).map(|i| stage_of(i, 6, 3)).collect();
        assert_eq!(stages, vec![0, 0, 1, 1, 2, 2]);
        assert!((0..4).all(|i| stage_of(i, 4, 1) == 0));
        assert_eq!(stage_of(3, 4, 8), 6);
    }
}
