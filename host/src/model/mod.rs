//! The runtime model: a [`Graph`] plus its tensors on a device, and the
//! forward pass that training, evaluation and the learners use.

mod format;
mod init;
mod probe;
mod surgery;

pub use format::{load, save, to_bytes, FORMAT_NAME, FORMAT_VERSION};
pub(crate) use format::{
    tensors_from_bytes as format_tensors_from_bytes, tensors_to_bytes as format_tensors_to_bytes,
};
pub use probe::FeatureSample;

use crate::graph::{Graph, Op, Quantizer, INPUT};
use crate::nn::{self, batchnorm::BatchNormParams, pool::Pool};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeMap, HashMap};

/// Momentum of the running activation ranges of uniform activation
/// quantizers.
const ACT_RANGE_MOMENTUM: f64 = 0.1;

/// A graph with its parameters, buffers and masks.
pub struct Model {
    /// The architecture.
    pub graph: Graph,
    /// Trainable parameters, keyed `<layer>.weight` / `<layer>.bias`.
    pub params: BTreeMap<String, Var>,
    /// Non-trainable state: batch-norm running statistics
    /// (`<layer>.running_mean`, `<layer>.running_var`) and activation ranges
    /// (`<layer>.act_range`).
    pub buffers: BTreeMap<String, Tensor>,
    /// Weight masks (`<layer>` → 0/1 tensor shaped like the weight) that stay
    /// applied through training.
    pub masks: BTreeMap<String, Tensor>,
    device: Device,
}

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
    /// A freshly initialised model (He-normal convolutions, PyTorch-style
    /// linear layers, unit batch norms) from a seed.
    pub fn init(graph: Graph, seed: u64, device: &Device) -> Result<Self> {
        graph.validate()?;
        let mut params = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for layer in &graph.layers {
            for (name, shape) in layer.op.parameters() {
                let key = format!("{}.{name}", layer.name);
                let values = init::parameter(&layer.op, name, &shape, seed, &key);
                let t = Tensor::from_vec(values, shape.as_slice(), device)?;
                params.insert(key, Var::from_tensor(&t)?);
            }
            for (name, shape) in layer.op.buffers() {
                let fill = if name == "running_var" { 1.0 } else { 0.0 };
                let t = (Tensor::ones(shape.as_slice(), DType::F32, device)? * fill)?;
                buffers.insert(format!("{}.{name}", layer.name), t);
            }
        }
        let mut model = Model {
            graph,
            params,
            buffers,
            masks: BTreeMap::new(),
            device: device.clone(),
        };
        model.ensure_quant_buffers()?;
        Ok(model)
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A deep copy whose tensors share nothing with this model.
    pub fn try_clone(&self) -> Result<Self> {
        let params = self
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), Var::from_tensor(&v.as_tensor().copy()?)?)))
            .collect::<Result<_>>()?;
        let copy = |m: &BTreeMap<String, Tensor>| -> Result<BTreeMap<String, Tensor>> {
            m.iter().map(|(k, v)| Ok((k.clone(), v.copy()?))).collect()
        };
        Ok(Model {
            graph: self.graph.clone(),
            params,
            buffers: copy(&self.buffers)?,
            masks: copy(&self.masks)?,
            device: self.device.clone(),
        })
    }

    /// Adds activation-range buffers for layers that gained a uniform
    /// activation quantizer.
    pub fn ensure_quant_buffers(&mut self) -> Result<()> {
        for layer in &self.graph.layers {
            if let Some(Quantizer::Uniform { .. }) =
                layer.quant.as_ref().and_then(|q| q.activation.as_ref())
            {
                let key = format!("{}.act_range", layer.name);
                if !self.buffers.contains_key(&key) {
                    self.buffers
                        .insert(key, Tensor::zeros(2, DType::F32, &self.device)?);
                }
            }
        }
        Ok(())
    }

    /// Sets (or replaces) the mask of a layer's weight. The mask must have the
    /// weight's shape and hold only zeros and ones.
    pub fn set_mask(&mut self, layer: &str, mask: Tensor) -> Result<()> {
        let w = self
            .params
            .get(&format!("{layer}.weight"))
            .with_context(|| format!("layer `{layer}` has no weight to mask"))?;
        if mask.dims() != w.dims() {
            bail!(
                "mask for `{layer}` has shape {:?} but the weight has {:?}",
                mask.dims(),
                w.dims()
            );
        }
        let mask = mask.to_dtype(DType::F32)?.to_device(&self.device)?;
        let not_binary = mask
            .ne(0f32)?
            .mul(&mask.ne(1f32)?)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()?;
        if not_binary > 0.0 {
            bail!("mask for `{layer}` holds values other than 0 and 1");
        }
        self.masks.insert(layer.to_string(), mask);
        self.apply_masks()
    }

    /// Multiplies every masked weight by its mask, so masked weights are
    /// exactly zero (called after each optimizer step).
    pub fn apply_masks(&self) -> Result<()> {
        for (layer, mask) in &self.masks {
            if let Some(w) = self.params.get(&format!("{layer}.weight")) {
                w.set(&w.as_tensor().mul(mask)?)?;
            }
        }
        Ok(())
    }

    /// Writes new buffer values returned by a training forward pass.
    pub fn apply_updates(&mut self, updates: Vec<(String, Tensor)>) {
        for (k, v) in updates {
            self.buffers.insert(k, v);
        }
    }

    fn param(&self, key: &str, grad: bool) -> Result<Tensor> {
        let t = self
            .params
            .get(key)
            .map(|v| v.as_tensor())
            .with_context(|| format!("model has no parameter `{key}`"))?;
        Ok(if grad { t.clone() } else { t.detach() })
    }

    /// The weight a layer computes with: masked, then fake-quantized.
    fn effective_weight(&self, layer: &crate::graph::Layer, grad: bool) -> Result<Tensor> {
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
    /// outputs returned.
    pub fn forward(&self, x: &Tensor, train: bool, capture: &[&str]) -> Result<ForwardOutput> {
        self.run(x, train, true, capture)
    }

    /// Inference: evaluation mode, no gradient tracking; returns the output.
    pub fn forward_inference(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.run(x, false, false, &[])?.output)
    }

    fn run(&self, x: &Tensor, train: bool, grad: bool, capture: &[&str]) -> Result<ForwardOutput> {
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
                } => nn::pool::pool2d(x, Pool::Max, *kernel, *stride, *padding)?,
                Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                } => nn::pool::pool2d(x, Pool::Avg, *kernel, *stride, *padding)?,
                Op::GlobalAvgPool => nn::pool::global_avg_pool(x)?,
                Op::PadChannels { before, after } => x.pad_with_zeros(1, *before, *after)?,
                Op::Flatten => x.flatten_from(1)?,
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
    fn folded_conv(&self, conv: &crate::graph::Layer, bn: &str) -> Result<(Tensor, Tensor)> {
        let Some(Op::BatchNorm { eps, .. }) = self.graph.layer(bn).map(|l| &l.op) else {
            bail!("`{bn}` is not a batch norm");
        };
        let w = self.effective_weight(conv, false)?;
        let o = w.dim(0)?;
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
        let w = w.broadcast_mul(&scale.reshape((o, 1, 1, 1))?)?;
        let b = match self.params.get(&format!("{}.bias", conv.name)) {
            Some(b) => b.as_tensor().detach(),
            None => Tensor::zeros(o, w.dtype(), w.device())?,
        };
        let b = ((b - get("running_mean")?)?.mul(&scale)? + get("bias")?)?;
        Ok((w, b))
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

    /// Every tensor of the model by its stored name: parameters, buffers and
    /// masks (`<layer>.mask`).
    pub fn named_tensors(&self) -> BTreeMap<String, Tensor> {
        let mut all: BTreeMap<String, Tensor> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        all.extend(self.buffers.iter().map(|(k, v)| (k.clone(), v.clone())));
        all.extend(
            self.masks
                .iter()
                .map(|(k, v)| (format!("{k}.mask"), v.clone())),
        );
        all
    }

    /// SHA-256 over every tensor's name, shape and little-endian f32 bytes in
    /// name order: equal hashes mean bit-identical weights.
    pub fn weights_sha256(&self) -> Result<String> {
        let mut bytes = Vec::new();
        for (name, t) in self.named_tensors() {
            bytes.extend_from_slice(name.as_bytes());
            for d in t.dims() {
                bytes.extend_from_slice(&(*d as u64).to_le_bytes());
            }
            for v in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(crate::io::sha256_hex(&bytes))
    }

    /// Builds a model from a graph and named tensors, checking that every
    /// tensor the graph needs is present with the right shape and that no
    /// tensor is left over. `source` names where they came from, for errors.
    pub fn from_tensors(
        graph: Graph,
        mut tensors: HashMap<String, Tensor>,
        device: &Device,
        source: &str,
    ) -> Result<Self> {
        graph
            .validate()
            .with_context(|| format!("{source}: the model graph is invalid"))?;
        let mut take = |key: String, shape: &[usize], layer: &str| -> Result<Tensor> {
            let t = tensors.remove(&key).with_context(|| {
                format!("{source}: tensor `{key}` (shape {shape:?}) that layer `{layer}` needs is missing; the file is incomplete or was written for another graph")
            })?;
            if t.dims() != shape {
                bail!(
                    "{source}: tensor `{key}` has shape {:?} but layer `{layer}` needs {shape:?}",
                    t.dims()
                );
            }
            Ok(t.to_dtype(DType::F32)?.to_device(device)?)
        };
        let mut params = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        let mut masks = BTreeMap::new();
        for layer in &graph.layers {
            for (name, shape) in layer.op.parameters() {
                let key = format!("{}.{name}", layer.name);
                let t = take(key.clone(), &shape, &layer.name)?;
                params.insert(key, Var::from_tensor(&t)?);
            }
            for (name, shape) in layer.op.buffers() {
                let key = format!("{}.{name}", layer.name);
                buffers.insert(key.clone(), take(key, &shape, &layer.name)?);
            }
        }
        let leftover: Vec<String> = tensors.keys().cloned().collect();
        for key in leftover {
            let t = tensors.remove(&key).expect("key listed");
            if let Some(layer) = key.strip_suffix(".mask") {
                let w = params.get(&format!("{layer}.weight")).with_context(|| {
                    format!("{source}: mask `{key}` belongs to no layer with a weight")
                })?;
                if t.dims() != w.dims() {
                    bail!(
                        "{source}: mask `{key}` has shape {:?} but the weight has {:?}",
                        t.dims(),
                        w.dims()
                    );
                }
                masks.insert(
                    layer.to_string(),
                    t.to_dtype(DType::F32)?.to_device(device)?,
                );
            } else if let Some(layer) = key.strip_suffix(".act_range") {
                if graph.layer(layer).is_none() || t.dims() != [2] {
                    bail!(
                        "{source}: activation range `{key}` belongs to no layer or is not 2 values"
                    );
                }
                buffers.insert(key, t.to_dtype(DType::F32)?.to_device(device)?);
            } else {
                bail!("{source}: tensor `{key}` belongs to no layer of the graph");
            }
        }
        let mut model = Model {
            graph,
            params,
            buffers,
            masks,
            device: device.clone(),
        };
        model.ensure_quant_buffers()?;
        Ok(model)
    }
}
