//! The network under compression, as a learner sees it.

use crate::bindings::model as raw;
use crate::{Error, Result, Tensor};

pub use raw::{
    ChannelGroup, FeatureSample, LayerInfo, LayerKind, Metrics, QuantTarget, Quantizer,
    UniformQuantizer,
};

/// Size and cost of the whole model, counted by the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Multiply-accumulates for one sample.
    pub macs: u64,
    /// Parameters (weights, biases, batch-norm affine terms).
    pub params: u64,
    /// Parameters that are not zero after masks.
    pub nonzero_params: u64,
    /// Bytes to store the weights with their quantizers.
    pub bytes: u64,
}

/// The model a learner works on: a handle to the host's copy of the network
/// for this trial. The SDK hands one to every [`Learner`](crate::Learner)
/// method; it cannot be made elsewhere, so optimizers (which have no model)
/// cannot reach it by mistake.
#[derive(Debug)]
pub struct Model {
    _private: (),
}

impl Model {
    pub(crate) fn new() -> Self {
        Model { _private: () }
    }

    /// The weight layers, from input to output.
    pub fn layers(&self) -> Vec<LayerInfo> {
        raw::layers()
    }

    /// The weight layer named `name`, or `not-found`.
    pub fn layer(&self, name: &str) -> Result<LayerInfo> {
        self.layers()
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| Error::not_found(format!("no weight layer named `{name}`")))
    }

    /// The channel coupling groups.
    pub fn groups(&self) -> Vec<ChannelGroup> {
        raw::groups()
    }

    /// Size and cost now.
    pub fn cost(&self) -> Cost {
        let c = raw::cost();
        Cost {
            macs: c.macs,
            params: c.params,
            nonzero_params: c.nonzero_params,
            bytes: c.bytes,
        }
    }

    /// The fraction of weight entries (over all weight layers) that are zero
    /// after masks, from the host's counts; 0 for a model without weights.
    pub fn weight_sparsity(&self) -> f64 {
        let (mut total, mut nonzero) = (0u64, 0u64);
        for layer in self.layers() {
            total += layer.weight_numel();
            nonzero += layer.nonzero_weights;
        }
        if total == 0 {
            0.0
        } else {
            1.0 - nonzero as f64 / total as f64
        }
    }

    /// A copy of the layer's weight.
    pub fn weight(&self, layer: &str) -> Result<Tensor> {
        raw::weight(layer)
    }

    /// Replaces the layer's weight (same shape).
    pub fn set_weight(&self, layer: &str, weight: &Tensor) -> Result<()> {
        raw::set_weight(layer, weight)
    }

    /// The layer's mask (1 keeps a weight, 0 zeroes it), if it has one.
    pub fn mask(&self, layer: &str) -> Result<Option<Tensor>> {
        raw::mask(layer)
    }

    /// Sets a mask of the weight's shape; the host applies it now and keeps it
    /// through every later training step and export.
    pub fn set_mask(&self, layer: &str, mask: &Tensor) -> Result<()> {
        raw::set_mask(layer, mask)
    }

    /// Physically removes every input channel of `layer` not in `keep`
    /// (ascending), with the whole coupling group.
    pub fn prune_input_channels(&self, layer: &str, keep: &[u32]) -> Result<()> {
        raw::prune_input_channels(layer, keep)
    }

    /// Sets (or with [`Quantizer::None`] clears) a quantizer of the layer.
    pub fn set_quantizer(
        &self,
        layer: &str,
        target: QuantTarget,
        quantizer: &Quantizer,
    ) -> Result<()> {
        raw::set_quantizer(layer, target, quantizer)
    }

    /// The layer's input patches and outputs at `per_image` sampled positions
    /// of each of `images` training images.
    pub fn sample_features(
        &self,
        layer: &str,
        images: u32,
        per_image: u32,
    ) -> Result<FeatureSample> {
        raw::sample_features(layer, images, per_image)
    }

    /// The summed cross-entropy gradient of the layer's weight over `batches`
    /// training batches. Every call draws fresh batches from the trial's
    /// seeded stream.
    pub fn gradient(&self, layer: &str, batches: u32) -> Result<Tensor> {
        raw::gradient(layer, batches)
    }

    /// The gradients of several layers' weights, in the order named, from
    /// one pass over `batches` fresh training batches.
    pub fn gradients(&self, layers: &[String], batches: u32) -> Result<Vec<Tensor>> {
        raw::gradients(layers, batches)
    }

    /// Adds an auxiliary classifier (Zhuang et al. 2018) on the output of
    /// `layer`'s block; the learner's own [`fine_tune`](Model::fine_tune)
    /// calls train it with the network. Returns its number.
    pub fn add_auxiliary_head(&self, layer: &str) -> Result<u32> {
        raw::add_auxiliary_head(layer)
    }

    /// The gradients of several layers' weights of auxiliary head `head`'s
    /// cross-entropy, from one pass over `batches` fresh training batches.
    pub fn auxiliary_gradients(
        &self,
        head: u32,
        layers: &[String],
        batches: u32,
    ) -> Result<Vec<Tensor>> {
        raw::auxiliary_gradients(head, layers, batches)
    }

    /// Loss and accuracy on the validation split (`batches` = 0: all of it).
    pub fn evaluate(&self, batches: u32) -> Result<Metrics> {
        raw::evaluate(batches)
    }

    /// Trains `steps` steps with the trial's fine-tuning settings (masks and
    /// quantizers stay in force).
    pub fn fine_tune(&self, steps: u32) -> Result<Metrics> {
        raw::fine_tune(steps)
    }
}

impl LayerInfo {
    /// The number of weight entries (the product of the weight shape).
    pub fn weight_numel(&self) -> u64 {
        self.weight_shape.iter().map(|&d| u64::from(d)).product()
    }

    /// Output channels (or features): the first weight dimension.
    pub fn out_channels(&self) -> u32 {
        self.weight_shape.first().copied().unwrap_or(0)
    }

    /// Input channels (or features): the first input dimension.
    pub fn in_channels(&self) -> u32 {
        self.input_shape.first().copied().unwrap_or(0)
    }

    /// The 8 features describing this layer among `all` (the model's weight
    /// layers) to optimizers: the `context` of a per-layer dimension, which
    /// an RL optimizer such as DDPG uses as its state (AMC's embedding).
    /// Each lies in `[0, 1]`:
    ///
    /// 0. position: `index / layers`;
    /// 1. size: `ln(1 + params) / ln(1 + largest params)`;
    /// 2. cost: `ln(1 + macs) / ln(1 + largest macs)`;
    /// 3. – 5. kind, one-hot: convolution, depthwise convolution, linear;
    /// 6. stride: `stride / largest stride`;
    /// 7. shape: `out / (in + out)` channels (or features).
    pub fn context(&self, all: &[LayerInfo]) -> Vec<f64> {
        let max_of = |f: fn(&LayerInfo) -> f64| all.iter().map(f).fold(0.0, f64::max);
        let ratio = |x: f64, max: f64| if max > 0.0 { x / max } else { 0.0 };
        let log_params = |l: &LayerInfo| (l.params as f64).ln_1p();
        let log_macs = |l: &LayerInfo| (l.macs as f64).ln_1p();
        let stride = |l: &LayerInfo| f64::from(l.stride);
        let (out_c, in_c) = (
            f64::from(self.out_channels()),
            f64::from(self.in_channels()),
        );
        let one_hot = |kind: LayerKind| if self.kind == kind { 1.0 } else { 0.0 };
        vec![
            f64::from(self.index) / all.len().max(1) as f64,
            ratio(log_params(self), max_of(log_params)),
            ratio(log_macs(self), max_of(log_macs)),
            one_hot(LayerKind::Conv2d),
            one_hot(LayerKind::DepthwiseConv2d),
            one_hot(LayerKind::Linear),
            ratio(stride(self), max_of(stride)),
            ratio(out_c, in_c + out_c),
        ]
    }
}
