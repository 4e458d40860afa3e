//! Checking an exported file against pf on real data: the file runs in
//! LiteRT on test images, and its predictions are compared with pf's own
//! evaluation of the same lowered graph (pf's simulated-quantization
//! forward pass for an int8 file) and with the float model.

use super::litert::{self, Kernels};
use super::lower::Lowered;
use super::simulate;
use crate::data::{Augment, Batcher, Dataset, Normalization};
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

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
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
        float_correct += float
            .iter()
            .zip(y)
            .filter(|(r, &l)| argmax(r) == l as usize)
            .count();
        let out = simulate::evaluate(graph, x, false)?.output;
        pf_rows.extend(out.to_vec2::<f32>()?);
        labels.extend(y);
        nhwc.extend(x.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1::<f32>()?);
    }
    let n = labels.len();
    let lite = litert::infer(python, file, &nhwc, n, kernels)?;
    let (mut pf_correct, mut lite_correct, mut agree) = (0usize, 0usize, 0usize);
    let (mut max_diff, mut max_out) = (0f64, 0f64);
    for ((p, l), &label) in pf_rows.iter().zip(&lite).zip(&labels) {
        if p.len() != l.len() {
            bail!(
                "LiteRT gives {} outputs per image and pf {}",
                l.len(),
                p.len()
            );
        }
        let (pa, la) = (argmax(p), argmax(l));
        pf_correct += usize::from(pa == label as usize);
        lite_correct += usize::from(la == label as usize);
        agree += usize::from(pa == la);
        for (a, b) in p.iter().zip(l) {
            max_diff = max_diff.max((a - b).abs() as f64);
            max_out = max_out.max(a.abs() as f64);
        }
    }
    let frac = |k: usize| k as f64 / n as f64;
    Ok(Verification {
        images: n,
        float_accuracy: frac(float_correct),
        pf_accuracy: frac(pf_correct),
        litert_accuracy: frac(lite_correct),
        agreement: frac(agree),
        max_abs_diff: max_diff,
        max_abs_output: max_out,
    })
}
