//! Checking an exported file against pf on real data: the file runs in
//! LiteRT on test images, and its predictions are compared with pf's own
//! evaluation of the same lowered graph (pf's simulated-quantization
//! forward pass for an int8 file) and with the float model.

use super::litert::{self, Kernels};
use super::lower::Lowered;
use super::simulate;
use crate::data::{Augment, Batcher, Dataset, Normalization};
use crate::export::compare::{compare, correct};
use crate::model::Model;
use anyhow::{bail, Result};
use candle_core::Tensor;
use serde::Serialize;
use std::path::Path;

/// Normalised images from `data` (`(N, C, H, W)`), in batches of `batch`:
/// the first `count` of a seeded shuffle, or all of them in order.
pub fn image_batches(
    data: &Dataset,
    norm: &Normalization,
    count: Option<usize>,
    seed: u64,
    batch: usize,
    device: &candle_core::Device,
) -> Result<Vec<(Tensor, Vec<u32>)>> {
    let indices: Vec<usize> = match count {
        Some(k) => {
            let mut r = crate::rng::stream(seed, &["export", "images"]);
            let mut p = crate::rng::permutation(&mut r, data.len());
            p.truncate(k.min(data.len()));
            p
        }
        None => (0..data.len()).collect(),
    };
    if indices.is_empty() {
        bail!("the data set has no images to use");
    }
    let batcher = Batcher::new(data, norm.clone(), device);
    let mut unused = crate::rng::stream(seed, &["unused"]);
    indices
        .chunks(batch.max(1))
        .map(|idx| {
            let b = batcher.batch(idx, Augment::None, &mut unused)?;
            Ok((b.images, idx.iter().map(|&i| data.labels[i]).collect()))
        })
        .collect()
}

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Images compared.
    pub images: usize,
    /// Top-1 accuracy of the float model in pf.
    pub float_accuracy: f64,
    /// Top-1 accuracy of pf's evaluation of the file's graph (for an int8
    /// file: pf's simulated-quantization forward pass).
    pub pf_accuracy: f64,
    /// Top-1 accuracy of the file in LiteRT.
    pub litert_accuracy: f64,
    /// Fraction of images where LiteRT's and pf's top-1 predictions for the
    /// file agree.
    pub agreement: f64,
    /// Largest difference between a LiteRT output and pf's for the file.
    pub max_abs_diff: f64,
    /// Largest magnitude of pf's outputs (to judge `max_abs_diff` by).
    pub max_abs_output: f64,
}

/// Runs `file` (written from `graph`, which was lowered from `model`) in
/// LiteRT on `batches`, and compares it with pf.
pub fn verify(
    python: &Path,
    file: &Path,
    graph: &Lowered,
    model: &Model,
    batches: &[(Tensor, Vec<u32>)],
    kernels: Kernels,
) -> Result<Verification> {
    let mut pf_rows: Vec<Vec<f32>> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut float_correct = 0usize;
    let mut nhwc: Vec<f32> = Vec::new();
    for (x, y) in batches {
        let float = model.forward_inference(x)?.to_vec2::<f32>()?;
        float_correct += correct(&float, y);
        let out = simulate::evaluate(graph, x, false)?.output;
        pf_rows.extend(out.to_vec2::<f32>()?);
        labels.extend(y);
        nhwc.extend(x.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1::<f32>()?);
    }
    let n = labels.len();
    let lite = litert::infer(python, file, &nhwc, n, kernels)?;
    let a = compare(&pf_rows, &lite, &labels, "LiteRT")?;
    Ok(Verification {
        images: n,
        float_accuracy: a.fraction(float_correct),
        pf_accuracy: a.fraction(a.pf_correct),
        litert_accuracy: a.fraction(a.runtime_correct),
        agreement: a.fraction(a.agree),
        max_abs_diff: a.max_abs_diff,
        max_abs_output: a.max_abs_output,
    })
}
