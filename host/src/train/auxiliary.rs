//! Auxiliary classifiers on intermediate features: the discrimination-aware
//! losses of Zhuang et al. 2018 ("Discrimination-aware Channel Pruning").
//!
//! A head reads one tensor of the network (a block's output), averages it
//! over its spatial positions and maps the channels to the classes with a
//! fully connected layer. Its cross-entropy is added to the final one while
//! training, and its gradients tell a learner which channels carry
//! discriminative power at that depth.

use crate::model::{ForwardOutput, Model};
use crate::nn::loss;
use crate::rng;
use anyhow::{bail, Context, Result};
use candle_core::{Tensor, Var};
use rand::Rng;
use std::collections::BTreeMap;

/// One auxiliary classifier.
pub struct AuxHead {
    /// The weight layer whose block output it reads.
    pub source: String,
    /// The tensor it reads: a layer's output, `(N, C, H, W)` or `(N, C)`.
    pub tensor: String,
    /// `(classes, C)`.
    pub weight: Var,
    /// `(classes)`.
    pub bias: Var,
}

impl AuxHead {
    /// A head on `tensor` of `channels` channels, initialised as PyTorch
    /// initialises a linear layer (uniform in ±1/√C), from the seeded stream
    /// `["auxiliary", index]`.
    pub fn new(
        source: &str,
        tensor: &str,
        channels: usize,
        classes: usize,
        seed: u64,
        index: usize,
        model: &Model,
    ) -> Result<Self> {
        if channels == 0 || classes == 0 {
            bail!("an auxiliary head needs channels and classes");
        }
        let mut r = rng::stream(seed, &["auxiliary", &index.to_string()]);
        let bound = 1.0 / (channels as f32).sqrt();
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| r.random_range(-bound..bound)).collect() };
        let device = model.device();
        let weight = Tensor::from_vec(draw(classes * channels), (classes, channels), device)?;
        let bias = Tensor::from_vec(draw(classes), classes, device)?;
        Ok(AuxHead {
            source: source.to_string(),
            tensor: tensor.to_string(),
            weight: Var::from_tensor(&weight)?,
            bias: Var::from_tensor(&bias)?,
        })
    }

    /// The head's logits for the captured features.
    pub fn logits(&self, out: &ForwardOutput) -> Result<Tensor> {
        let x = out
            .captured
            .get(&self.tensor)
            .with_context(|| format!("auxiliary head: `{}` was not captured", self.tensor))?;
        let pooled = match x.rank() {
            4 => x.mean((2, 3))?,
            2 => x.clone(),
            r => bail!("auxiliary head: `{}` has rank {r}", self.tensor),
        };
        Ok(pooled
            .matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())?)
    }

    /// The head's cross-entropy on a batch's labels.
    pub fn loss(&self, out: &ForwardOutput, labels: &Tensor) -> Result<Tensor> {
        Ok(loss::cross_entropy(&self.logits(out)?, labels, 0.0)?)
    }

    /// Keeps only the input channels `keep` (after channel pruning of the
    /// tensor the head reads).
    pub fn keep_channels(&mut self, keep: &[u32]) -> Result<()> {
        let idx = Tensor::new(keep, self.weight.device())?;
        let w = self.weight.as_tensor().index_select(&idx, 1)?;
        self.weight = Var::from_tensor(&w)?;
        Ok(())
    }
}

/// Every head's parameters, named for the optimizer (`aux<i>.weight`,
/// `aux<i>.bias`; distinct from any model parameter).
pub fn parameters(heads: &[AuxHead]) -> BTreeMap<String, Var> {
    let mut out = BTreeMap::new();
    for (i, h) in heads.iter().enumerate() {
        out.insert(format!("aux{i}.weight"), h.weight.clone());
        out.insert(format!("aux{i}.bias"), h.bias.clone());
    }
    out
}

/// The tensors the heads read, for the forward pass to capture.
pub fn captures(heads: &[AuxHead]) -> Vec<&str> {
    heads.iter().map(|h| h.tensor.as_str()).collect()
}
