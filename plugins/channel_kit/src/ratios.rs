//! Preserve ratios: one per group (the `preserve.<producer>` dimensions,
//! with the producer's features as context for DDPG; the default), or one
//! for every group (`per_layer = false`), scaled to a FLOPs target.
//!
//! Under a target the search is over the per-layer ratios, scaled by the
//! largest common factor that meets it (AMC's formulation): their
//! proportions are what is searched, and the target fixes their level. With
//! uniform ratios a target leaves nothing to search, since the largest
//! uniform ratio that fits is the only choice (no ratio is searched). Without a target
//! `preserve_ratio` stays a dimension and is the default of every per-layer
//! one, so `--set preserve_ratio=0.3` still prunes every group to 0.3.

use crate::budget::{self, Keep};
use crate::groups::{candidates, Candidate};
use pf_sdk::prelude::*;

/// The name of a group's own preserve-ratio dimension.
pub fn group_dim(producer: &str) -> String {
    format!("preserve.{producer}")
}

/// A learner's ratio settings.
#[derive(Clone, Copy, Debug)]
pub struct Ratios {
    /// The ratio of every group, and the default of the per-group ones.
    pub preserve_ratio: f64,
    /// One ratio per group (the learners' default).
    pub per_layer: bool,
}

impl Ratios {
    /// `space` (the learner's own dimensions, with `preserve_ratio`) as the
    /// target and the per-layer switch shape it: under a target the ratios
    /// are scaled to it, so `preserve_ratio` leaves the space (the per-group
    /// dimensions, when there are, still set the proportions); without one
    /// it stays, as the default of the per-group dimensions.
    pub fn shape_space(
        &self,
        mut space: Vec<ParamSpec>,
        target: Option<Target>,
        model: &Model,
    ) -> Vec<ParamSpec> {
        if target.is_some() {
            space.retain(|s| s.name != "preserve_ratio");
        }
        if self.per_layer {
            let layers = model.layers();
            let (groups, _) = candidates(model, &layers);
            for g in &groups {
                space.push(
                    ParamSpec::float(group_dim(&g.producer.name), 0.05, 1.0, self.preserve_ratio)
                        .with_help(format!(
                            "Fraction of the {} output channels of `{}` to keep.",
                            g.channels, g.producer.name
                        ))
                        .with_context(g.producer.context(&layers)),
                );
            }
        }
        space
    }

    /// The prunable groups and the channels each keeps: its ratio, or under
    /// a FLOPs target the ratios scaled by the largest common factor that
    /// fits (one uniform ratio without `per_layer`). A model with nothing to
    /// prune is an error naming `learner` and why each group was left alone.
    pub fn plan(
        &self,
        learner: &str,
        model: &Model,
        layers: &[LayerInfo],
        extra: &Extra,
        target: Option<Target>,
    ) -> Result<(Vec<Candidate>, Keep)> {
        let (groups, skipped) = candidates(model, layers);
        if groups.is_empty() {
            return Err(Error::unsupported(format!(
                "{learner} found nothing to prune in this model: it prunes channels written by \
                 one convolution or linear layer and read by ungrouped convolutions or linear \
                 layers. {}",
                if skipped.is_empty() {
                    "The model has no channel groups.".to_string()
                } else {
                    format!("Left alone: {}.", skipped.join("; "))
                }
            )));
        }
        let prefs: Vec<f64> = groups
            .iter()
            .map(|g| match self.per_layer {
                true => extra
                    .float(&group_dim(&g.producer.name))
                    .unwrap_or(self.preserve_ratio),
                false => self.preserve_ratio,
            })
            .collect();
        let keep = match target {
            None => groups
                .iter()
                .zip(&prefs)
                .map(|(g, &r)| (g.id, (g.channels, budget::kept(g.channels, r))))
                .collect(),
            Some(t) => {
                let budget = (t.ratio * model.cost().macs as f64).floor() as u64;
                let ids: Vec<u32> = groups.iter().map(|g| g.id).collect();
                let channels: Vec<u32> = groups.iter().map(|g| g.channels).collect();
                // Uniform ratios: one common ratio, the largest that fits.
                let prefs = match self.per_layer {
                    true => prefs,
                    false => vec![1.0; groups.len()],
                };
                budget::allocate(layers, &ids, &channels, &prefs, budget)?
            }
        };
        Ok((groups, keep))
    }
}
