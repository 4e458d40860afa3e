//! Read-only probes of a model on data, for compression algorithms: sampled
//! input patches and output responses of a layer (for reconstruction-based
//! channel pruning, He et al. 2017), and weight gradients over a few batches
//! (for discrimination-aware pruning and sensitivity measures).

use super::Model;
use crate::data::{Augment, Batcher};
use crate::graph::Op;
use crate::nn::loss;
use crate::rng;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use rand::Rng;
use std::collections::BTreeMap;

/// Samples of a convolution's (or linear layer's) inputs and outputs.
pub struct FeatureSample {
    /// `(S, C·kh·kw)`: the input patch under each sampled output position
    /// (`(S, in_features)` for a linear layer).
    pub inputs: Tensor,
    /// `(S, O)`: the layer's output (before bias) at each sampled position.
    pub outputs: Tensor,
}

impl Model {
    /// Samples `per_image` output positions from each of the first `images`
    /// images of `batcher`'s data (evaluation mode), returning the input
    /// patches and output responses of `layer`. Positions are drawn from the
    /// seeded stream `["features", layer]`.
    pub fn sample_features(
        &self,
        batcher: &Batcher<'_>,
        layer: &str,
        images: usize,
        per_image: usize,
        seed: u64,
    ) -> Result<FeatureSample> {
        let l = self
            .graph
            .layer(layer)
            .with_context(|| format!("no layer `{layer}`"))?
            .clone();
        let input_name = l.inputs[0].as_str();
        let images = images.min(batcher.data().len());
        if images == 0 || per_image == 0 {
            bail!("sampling features needs at least one image and one position per image");
        }
        let idx: Vec<usize> = (0..images).collect();
        let mut no_rng = rng::stream(seed, &["unused"]);
        let b = batcher.batch(&idx, Augment::None, &mut no_rng)?;
        let x = if input_name == crate::graph::INPUT {
            b.images.clone()
        } else {
            let out = self.forward(&b.images, false, &[input_name])?;
            out.captured
                .get(input_name)
                .context("input not captured")?
                .detach()
        };
        let w = self
            .params
            .get(&format!("{layer}.weight"))
            .context("layer has no weight")?
            .as_tensor()
            .detach();
        let mut r = rng::stream(seed, &["features", layer]);
        match l.op {
            Op::Conv2d {
                kernel,
                stride,
                padding,
                groups,
                ..
            } => {
                if groups != 1 {
                    bail!("feature sampling supports ungrouped convolutions; `{layer}` has {groups} groups");
                }
                let (n, c, h, wd) = x.dims4()?;
                let oh = (h + 2 * padding[0] - kernel[0]) / stride[0] + 1;
                let ow = (wd + 2 * padding[1] - kernel[1]) / stride[1] + 1;
                let xp = x
                    .pad_with_zeros(2, padding[0], padding[0])?
                    .pad_with_zeros(3, padding[1], padding[1])?;
                let mut patches = Vec::with_capacity(n * per_image);
                for i in 0..n {
                    for _ in 0..per_image {
                        let (oy, ox) = (r.random_range(0..oh), r.random_range(0..ow));
                        let patch = xp
                            .get(i)?
                            .narrow(1, oy * stride[0], kernel[0])?
                            .narrow(2, ox * stride[1], kernel[1])?
                            .reshape(c * kernel[0] * kernel[1])?;
                        patches.push(patch);
                    }
                }
                let inputs = Tensor::stack(&patches, 0)?;
                let outputs = inputs.matmul(&w.flatten_from(1)?.t()?)?;
                Ok(FeatureSample { inputs, outputs })
            }
            Op::Linear { .. } => {
                let inputs = x.flatten_from(1)?;
                let outputs = inputs.matmul(&w.t()?)?;
                Ok(FeatureSample { inputs, outputs })
            }
            ref other => bail!(
                "`{layer}` is a {} layer; features can be sampled for conv2d and linear layers",
                other.kind()
            ),
        }
    }

    /// Sum of the cross-entropy gradients of every weight over `batches`
    /// training batches of `batch_size` (training-mode forward, no update),
    /// keyed by layer name. The batches are the `draw`-th from the seeded
    /// stream: draw 0, 1, 2, ... see different data, and the same draw the
    /// same data.
    pub fn weight_gradients(
        &self,
        batcher: &Batcher<'_>,
        batches: usize,
        batch_size: usize,
        seed: u64,
        draw: u64,
    ) -> Result<BTreeMap<String, Tensor>> {
        self.loss_gradients(
            batcher,
            batches,
            batch_size,
            seed,
            draw,
            &[],
            |out, labels| Ok(loss::cross_entropy(&out.output, labels, 0.0)?),
        )
    }

    /// As [`Model::weight_gradients`], of the loss `loss` computes from the
    /// forward pass (with the tensors named in `capture` captured) and the
    /// batch's labels.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_gradients(
        &self,
        batcher: &Batcher<'_>,
        batches: usize,
        batch_size: usize,
        seed: u64,
        draw: u64,
        capture: &[&str],
        loss: impl Fn(&super::ForwardOutput, &Tensor) -> Result<Tensor>,
    ) -> Result<BTreeMap<String, Tensor>> {
        let n = batcher.data().len();
        if batches == 0 || batch_size == 0 || n == 0 {
            bail!("weight gradients need at least one non-empty batch");
        }
        let draw = draw.to_string();
        let mut order_rng = if draw == "0" {
            rng::stream(seed, &["gradients"])
        } else {
            rng::stream(seed, &["gradients", &draw])
        };
        let order = rng::permutation(&mut order_rng, n);
        let mut sums: BTreeMap<String, Tensor> = BTreeMap::new();
        for b in 0..batches {
            let idx: Vec<usize> = (0..batch_size)
                .map(|i| order[(b * batch_size + i) % n])
                .collect();
            let batch = batcher.batch(&idx, Augment::None, &mut order_rng)?;
            let out = self.forward(&batch.images, true, capture)?;
            let grads = loss(&out, &batch.labels)?.backward()?;
            for layer in self.graph.layers.iter().filter(|l| l.op.has_weight()) {
                let w = &self.params[&format!("{}.weight", layer.name)];
                if let Some(g) = grads.get(w.as_tensor()) {
                    let g = g.detach().to_dtype(DType::F32)?;
                    let entry = match sums.remove(&layer.name) {
                        Some(acc) => (acc + g)?,
                        None => g,
                    };
                    sums.insert(layer.name.clone(), entry);
                }
            }
        }
        Ok(sums)
    }
}
