//! The forward pass: running the graph in training, evaluation or inference
//! mode, with the fusions the CPU kernels allow (batch norm + ReLU in
//! training; conv + folded batch norm + ReLU in inference) and fake
//! quantization of weights and activations.

use super::Model;
use crate::graph::{pool_padding, Op, Quantizer, INPUT};
use crate::nn::{self, batchnorm::BatchNormParams, pool::Pool};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use std::collections::HashMap;

/// Momentum of the running activation ranges of uniform activation
/// quantizers.
const ACT_RANGE_MOMENTUM: f64 = 0.1;

/// What a forward pass returns.
pub struct ForwardOutput {
    /// Output of the last layer.
    pub output: Tensor,
    /// Outputs of the layers that were asked for.
    pub captured: HashMap<String, Tensor>,
    /// New buffer values computed in training mode; apply them with
    /// [`Model::apply_updates`] after the step.
    pub updates: Vec<(String, Tensor)>,
}

impl Model {
    fn param(&self, key: &str, grad: bool) -> Result<Tensor> {
        let t = self
            .params
            .get(key)
            .map(|v| v.as_tensor())
            .with_context(|| format!("model has no parameter `{key}`"))?;
        Ok(if grad { t.clone() } else { t.detach() })
    }

    /// The weight a layer computes with: masked, then fake-quantized.
    pub(crate) fn effective_weight(
        &self,
        layer: &crate::graph::Layer,
        grad: bool,
    ) -> Result<Tensor> {
        let mut w = self.param(&format!("{}.weight", layer.name), grad)?;
        if let Some(mask) = self.masks.get(&layer.name) {
            w = w.mul(mask)?;
        }
        if let Some(q) = layer.quant.as_ref().and_then(|q| q.weight.as_ref()) {
            w = nn::quant::fake_quant_weight(&w, q)?;
        }
        Ok(w)
    }

    /// Runs the graph on a batch `x` (`(N, C, H, W)`).
    ///
    /// In training mode batch norms use batch statistics and the new running
    /// statistics come back in `updates`. Layers named in `capture` have their
    /// outputs returned. A softmax that ends the graph is left out, so that
    /// the output is logits, which the losses take.
    pub fn forward(&self, x: &Tensor, train: bool, capture: &[&str]) -> Result<ForwardOutput> {
        self.run(x, train, true, true, capture)
    }

    /// Inference: evaluation mode, no gradient tracking; returns the output.
    pub fn forward_inference(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.run(x, false, false, false, &[])?.output)
    }

    /// Inference that returns logits: as [`Model::forward_inference`], but
    /// a softmax that ends the graph is left out (for losses).
    pub fn forward_logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.run(x, false, false, true, &[])?.output)
    }

    fn run(
        &self,
        x: &Tensor,
        train: bool,
        grad: bool,
        logits: bool,
        capture: &[&str],
    ) -> Result<ForwardOutput> {
        let mut values: HashMap<&str, Tensor> = HashMap::new();
        let want = self.graph.input;
        if x.rank() != 4 || x.dims()[1..] != [want.channels, want.height, want.width] {
            bail!(
                "model `{}` expects input batches of shape N×{}×{}×{} but got {:?}",
                self.graph.name,
                want.channels,
                want.height,
                want.width,
                x.dims()
            );
        }
        values.insert(INPUT, x.clone());
        let mut updates = Vec::new();
        let mut captured = HashMap::new();
        // Free each intermediate after its last reader.
        let mut last_use: HashMap<&str, usize> = HashMap::new();
        for (i, layer) in self.graph.layers.iter().enumerate() {
            for input in &layer.inputs {
                last_use.insert(input.as_str(), i);
            }
        }
        let fused = self.relu_fusions(capture);
        let folds = if !train && !grad && nn::cpu_ops::supported(x) {
            self.batch_norm_folds(capture)
        } else {
            HashMap::new()
        };
        // Layers computed together with the layer before them.
        let mut skip: std::collections::HashSet<&str> = fused.values().copied().collect();
        for (bn, relu) in folds.values() {
            skip.insert(bn);
            skip.extend(relu.iter());
        }
        for (i, layer) in self.graph.layers.iter().enumerate() {
            let name = layer.name.as_str();
            if skip.contains(name) {
                continue;
            }
            let x = &values[layer.inputs[0].as_str()];
            let bias_t = self.params.get(&format!("{name}.bias")).map(|v| {
                if grad {
                    v.as_tensor().clone()
                } else {
                    v.as_tensor().detach()
                }
            });
            let bias = || bias_t.as_ref();
            let mut y = match &layer.op {
                Op::Conv2d {
                    stride,
                    padding,
                    groups,
                    ..
                } if folds.contains_key(name) => {
                    let (bn, relu) = folds[name];
                    let (w, b) = self.folded_conv(layer, bn)?;
                    nn::cpu_ops::conv2d_bias_act(
                        x,
                        &w,
                        &b,
                        *stride,
                        *padding,
                        *groups,
                        relu.is_some(),
                    )?
                }
                Op::Conv2d {
                    stride,
                    padding,
                    groups,
                    ..
                } => nn::conv2d(
                    x,
                    &self.effective_weight(layer, grad)?,
                    bias(),
                    *stride,
                    *padding,
                    *groups,
                )?,
                Op::Linear { .. } => nn::linear(x, &self.effective_weight(layer, grad)?, bias())?,
                Op::BatchNorm { eps, momentum, .. } => {
                    let key = |s: &str| format!("{name}.{s}");
                    let rm = self
                        .buffers
                        .get(&key("running_mean"))
                        .context("missing running mean")?;
                    let rv = self
                        .buffers
                        .get(&key("running_var"))
                        .context("missing running variance")?;
                    let p = BatchNormParams {
                        weight: &self.param(&key("weight"), grad)?,
                        bias: &self.param(&key("bias"), grad)?,
                        running_mean: rm,
                        running_var: rv,
                        eps: *eps,
                        momentum: *momentum,
                    };
                    let relu = fused.get(name).copied();
                    let (y, update) = nn::batchnorm::batch_norm(x, &p, train, relu.is_some())?;
                    if let Some(u) = update {
                        updates.push((key("running_mean"), u.mean));
                        updates.push((key("running_var"), u.var));
                    }
                    y
                }
                Op::Relu => nn::relu(x)?,
                Op::Relu6 => nn::relu6(x)?,
                Op::Sigmoid => nn::sigmoid(x)?,
                Op::HardSigmoid { alpha, beta } => nn::hard_sigmoid(x, *alpha, *beta)?,
                Op::HardSwish => nn::hard_swish(x)?,
                Op::Mul => x.broadcast_mul(&values[layer.inputs[1].as_str()])?,
                Op::Concat => {
                    let parts: Vec<&Tensor> =
                        layer.inputs.iter().map(|i| &values[i.as_str()]).collect();
                    Tensor::cat(&parts, 1)?
                }
                Op::ChannelShuffle { groups } => nn::channel_shuffle(x, *groups)?,
                Op::ChannelSlice { start, len } => x.narrow(1, *start, *len)?.contiguous()?,
                Op::Add => {
                    let mut acc = x.clone();
                    for other in &layer.inputs[1..] {
                        acc = (acc + &values[other.as_str()])?;
                    }
                    acc
                }
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                    ceil_mode,
                }
                | Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                    ceil_mode,
                } => {
                    let kind = match layer.op {
                        Op::MaxPool { .. } => Pool::Max,
                        _ => Pool::Avg,
                    };
                    let (_, _, h, w) = x.dims4()?;
                    let pads = pool_padding([h, w], *kernel, *stride, *padding, *ceil_mode)
                        .with_context(|| {
                            format!(
                                "layer `{name}`: the pooling window does not fit a {h}×{w} input"
                            )
                        })?;
                    nn::pool::pool2d(x, kind, *kernel, *stride, pads)?
                }
                Op::GlobalAvgPool => nn::pool::global_avg_pool(x)?,
                Op::PadChannels { before, after } => x.pad_with_zeros(1, *before, *after)?,
                Op::Flatten => x.flatten_from(1)?,
                // Losses (cross-entropy, distillation) take logits: for them
                // a softmax that ends the graph (as many imported ONNX
                // classifiers have) is left out.
                Op::Softmax if logits && name == self.graph.output() => x.clone(),
                Op::Softmax => nn::softmax(x)?,
            };
            if let Some(q) = layer.quant.as_ref().and_then(|q| q.activation.as_ref()) {
                y = self.quantize_activation(name, &y, q, train, &mut updates)?;
            }
            let name = match folds.get(name) {
                Some((bn, relu)) => relu.unwrap_or(bn),
                None => fused.get(name).copied().unwrap_or(name),
            };
            if capture.contains(&name) {
                captured.insert(name.to_string(), y.clone());
            }
            values.insert(name, y);
            for input in &layer.inputs {
                if last_use.get(input.as_str()) == Some(&i) {
                    values.remove(input.as_str());
                }
            }
        }
        let output = values
            .remove(self.graph.output())
            .context("graph produced no output")?;
        Ok(ForwardOutput {
            output,
            captured,
            updates,
        })
    }

    /// Convolutions whose output only feeds a batch norm (optionally followed
    /// by a ReLU that is its only reader), with nothing captured or quantized
    /// in between: conv name → (batch norm, ReLU). In inference the batch norm
    /// folds into the convolution's weights and the ReLU into its kernel.
    fn batch_norm_folds<'a>(
        &'a self,
        capture: &[&str],
    ) -> HashMap<&'a str, (&'a str, Option<&'a str>)> {
        let only_reader = |name: &str| -> Option<&'a crate::graph::Layer> {
            match self.graph.consumers(name).as_slice() {
                [one]
                    if one.inputs.len() == 1
                        && one.quant.is_none()
                        && !capture.contains(&one.name.as_str()) =>
                {
                    Some(*one)
                }
                _ => None,
            }
        };
        let mut folds = HashMap::new();
        for layer in &self.graph.layers {
            if !matches!(layer.op, Op::Conv2d { .. })
                || layer.quant.is_some()
                || capture.contains(&layer.name.as_str())
            {
                continue;
            }
            let Some(bn) =
                only_reader(&layer.name).filter(|l| matches!(l.op, Op::BatchNorm { .. }))
            else {
                continue;
            };
            let relu = only_reader(&bn.name)
                .filter(|l| l.op == Op::Relu && self.graph.output() != bn.name);
            folds.insert(
                layer.name.as_str(),
                (bn.name.as_str(), relu.map(|r| r.name.as_str())),
            );
        }
        folds
    }

    /// The weight and bias of `conv` with the batch norm `bn` (evaluation
    /// mode) folded in: `w·γ/σ` and `(b − μ)·γ/σ + β`.
    pub(crate) fn folded_conv(
        &self,
        conv: &crate::graph::Layer,
        bn: &str,
    ) -> Result<(Tensor, Tensor)> {
        let w = self.effective_weight(conv, false)?;
        let o = w.dim(0)?;
        let (scale, shift) = self.batch_norm_affine(bn)?;
        let w = w.broadcast_mul(&scale.reshape((o, 1, 1, 1))?)?;
        let b = match self.params.get(&format!("{}.bias", conv.name)) {
            Some(b) => b.as_tensor().detach(),
            None => Tensor::zeros(o, w.dtype(), w.device())?,
        };
        let b = (b.mul(&scale)? + shift)?;
        Ok((w, b))
    }

    /// The per-channel affine map a batch norm computes at inference, as
    /// `(scale, shift)`: `y = x · scale + shift`, with `scale = γ / √(σ² +
    /// ε)` and `shift = β − μ · scale`.
    pub(crate) fn batch_norm_affine(&self, bn: &str) -> Result<(Tensor, Tensor)> {
        let Some(Op::BatchNorm { eps, .. }) = self.graph.layer(bn).map(|l| &l.op) else {
            bail!("`{bn}` is not a batch norm");
        };
        let get = |k: &str| -> Result<Tensor> {
            let key = format!("{bn}.{k}");
            match self.params.get(&key) {
                Some(v) => Ok(v.as_tensor().detach()),
                None => self
                    .buffers
                    .get(&key)
                    .cloned()
                    .with_context(|| format!("missing `{key}`")),
            }
        };
        let scale = get("weight")?.div(&(get("running_var")? + *eps)?.sqrt()?)?;
        let shift = (get("bias")? - get("running_mean")?.mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// Batch norms whose output only feeds a ReLU (and is neither captured
    /// nor quantized) run fused with it: batch-norm name → ReLU name.
    fn relu_fusions<'a>(&'a self, capture: &[&str]) -> HashMap<&'a str, &'a str> {
        let mut fused = HashMap::new();
        for layer in &self.graph.layers {
            if !matches!(layer.op, Op::BatchNorm { .. })
                || capture.contains(&layer.name.as_str())
                || layer.quant.is_some()
            {
                continue;
            }
            let readers = self.graph.consumers(&layer.name);
            if let [relu] = readers.as_slice() {
                if relu.op == Op::Relu && relu.quant.is_none() && self.graph.output() != layer.name
                {
                    fused.insert(layer.name.as_str(), relu.name.as_str());
                }
            }
        }
        fused
    }

    fn quantize_activation(
        &self,
        name: &str,
        y: &Tensor,
        q: &Quantizer,
        train: bool,
        updates: &mut Vec<(String, Tensor)>,
    ) -> Result<Tensor> {
        let key = format!("{name}.act_range");
        let range = match (q, self.buffers.get(&key)) {
            (Quantizer::Uniform { .. }, Some(stored)) => {
                let stored = stored.to_vec1::<f32>()?;
                let mut r = (stored[0], stored[1]);
                if train {
                    let lo = y.min_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
                    let hi = y.max_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
                    r = if stored == [0.0, 0.0] {
                        (lo, hi)
                    } else {
                        let m = ACT_RANGE_MOMENTUM as f32;
                        ((1.0 - m) * r.0 + m * lo, (1.0 - m) * r.1 + m * hi)
                    };
                    updates.push((key, Tensor::new(&[r.0, r.1], &self.device)?));
                }
                Some(r)
            }
            (Quantizer::Uniform { .. }, None) => {
                bail!("layer `{name}` has an activation quantizer but no range buffer")
            }
            _ => None,
        };
        Ok(nn::quant::fake_quant_activation(y, q, range)?)
    }
}
