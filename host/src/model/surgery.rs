//! Physical channel pruning: removing channels from a coupling group shrinks
//! every producer, follower and consumer of the group, so the pruned model is
//! really smaller and faster (no gather layers, no masks).

use super::Model;
use crate::graph::{Op, Shape};
use anyhow::{bail, Context, Result};
use candle_core::{Tensor, Var};

impl Model {
    /// Keeps only the channels `keep` (ascending, distinct) of the coupling
    /// group that `layer`'s output belongs to, removing the others from the
    /// group's producers (output channels), followers (batch norms and
    /// depthwise convolutions) and consumers (input channels, or input
    /// features of a linear layer after a flatten). Weights, biases, running
    /// statistics and masks shrink with them; the graph is updated and
    /// validated.
    pub fn prune_channels(&mut self, layer: &str, keep: &[usize]) -> Result<()> {
        let coupling = self.graph.coupling()?;
        let group = coupling
            .group_of(layer)
            .with_context(|| format!("no layer `{layer}` in model `{}`", self.graph.name))?
            .clone();
        if !group.prunable {
            bail!(
                "the channels of `{layer}` cannot be pruned: {}",
                group.reason.as_deref().unwrap_or("the group is fixed")
            );
        }
        if keep.is_empty() {
            bail!("pruning `{layer}` must keep at least one channel");
        }
        if keep.windows(2).any(|w| w[0] >= w[1]) || keep[keep.len() - 1] >= group.channels {
            bail!(
                "channels to keep for `{layer}` must be ascending, distinct and below {}",
                group.channels
            );
        }
        let shapes = self.graph.shapes()?;
        let index = Tensor::from_vec(
            keep.iter().map(|&k| k as u32).collect::<Vec<_>>(),
            keep.len(),
            &self.device,
        )?;
        let new_c = keep.len();

        for name in &group.producers {
            self.select(&format!("{name}.weight"), 0, &index)?;
            self.select_if_present(&format!("{name}.bias"), 0, &index)?;
            self.select_mask(name, 0, &index)?;
            match &mut self.layer_mut(name)?.op {
                Op::Conv2d { out_channels, .. } => *out_channels = new_c,
                Op::Linear { out_features, .. } => *out_features = new_c,
                other => bail!("`{name}` ({}) cannot produce channels", other.kind()),
            }
        }
        for name in &group.followers {
            let op = self.layer_mut(name)?.op.clone();
            match op {
                Op::BatchNorm { .. } => {
                    for t in ["weight", "bias", "running_mean", "running_var"] {
                        self.select(&format!("{name}.{t}"), 0, &index)?;
                    }
                    if let Op::BatchNorm { channels, .. } = &mut self.layer_mut(name)?.op {
                        *channels = new_c;
                    }
                }
                Op::Conv2d { .. } => {
                    self.select(&format!("{name}.weight"), 0, &index)?;
                    self.select_if_present(&format!("{name}.bias"), 0, &index)?;
                    self.select_mask(name, 0, &index)?;
                    if let Op::Conv2d {
                        in_channels,
                        out_channels,
                        groups,
                        ..
                    } = &mut self.layer_mut(name)?.op
                    {
                        (*in_channels, *out_channels, *groups) = (new_c, new_c, new_c);
                    }
                }
                other => bail!("`{name}` ({}) cannot follow channels", other.kind()),
            }
        }
        for name in &group.consumers {
            let l = self.graph.layer(name).context("consumer vanished")?.clone();
            match l.op {
                Op::Conv2d { .. } => {
                    self.select(&format!("{name}.weight"), 1, &index)?;
                    self.select_mask(name, 1, &index)?;
                    if let Op::Conv2d { in_channels, .. } = &mut self.layer_mut(name)?.op {
                        *in_channels = new_c;
                    }
                }
                Op::Linear { .. } => {
                    // Features of a flattened C×H×W map come in blocks of H·W
                    // per channel.
                    let input = self.graph.shape_of(&shapes, &l.inputs[0]);
                    let per = input.numel() / group.channels;
                    let features: Vec<u32> = keep
                        .iter()
                        .flat_map(|&k| (k * per..(k + 1) * per).map(|f| f as u32))
                        .collect();
                    let n = features.len();
                    let fidx = Tensor::from_vec(features, n, &self.device)?;
                    self.select(&format!("{name}.weight"), 1, &fidx)?;
                    self.select_mask(name, 1, &fidx)?;
                    if let Op::Linear { in_features, .. } = &mut self.layer_mut(name)?.op {
                        *in_features = n;
                    }
                    if !matches!(input, Shape::Vector { .. }) {
                        bail!("linear layer `{name}` reads a feature map directly; add a flatten");
                    }
                }
                other => bail!("`{name}` ({}) cannot consume channels", other.kind()),
            }
        }
        self.graph
            .validate()
            .context("the pruned graph is inconsistent")?;
        Ok(())
    }

    fn layer_mut(&mut self, name: &str) -> Result<&mut crate::graph::Layer> {
        self.graph
            .layers
            .iter_mut()
            .find(|l| l.name == name)
            .with_context(|| format!("no layer `{name}`"))
    }

    /// Replaces a parameter or buffer with the rows of `index` along `dim`.
    fn select(&mut self, key: &str, dim: usize, index: &Tensor) -> Result<()> {
        if let Some(v) = self.params.get(key) {
            let t = v.as_tensor().index_select(index, dim)?.contiguous()?;
            self.params.insert(key.to_string(), Var::from_tensor(&t)?);
            return Ok(());
        }
        let t = self
            .buffers
            .get(key)
            .with_context(|| format!("model has no tensor `{key}`"))?;
        let t = t.index_select(index, dim)?.contiguous()?;
        self.buffers.insert(key.to_string(), t);
        Ok(())
    }

    fn select_if_present(&mut self, key: &str, dim: usize, index: &Tensor) -> Result<()> {
        if self.params.contains_key(key) {
            self.select(key, dim, index)?;
        }
        Ok(())
    }

    fn select_mask(&mut self, layer: &str, dim: usize, index: &Tensor) -> Result<()> {
        if let Some(m) = self.masks.get(layer) {
            let m = m.index_select(index, dim)?.contiguous()?;
            self.masks.insert(layer.to_string(), m);
        }
        Ok(())
    }
}
