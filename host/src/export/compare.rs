//! Comparing a runtime's outputs for an exported file with pf's, image by
//! image: the shared core of `--verify` for TFLite (LiteRT) and ONNX (ONNX
//! Runtime).

use anyhow::{bail, Result};

/// How a runtime's outputs compare with pf's on labelled images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Images compared.
    pub images: usize,
    /// Images pf classifies correctly.
    pub pf_correct: usize,
    /// Images the runtime classifies correctly.
    pub runtime_correct: usize,
    /// Images where the two top-1 predictions agree.
    pub agree: usize,
    /// Largest difference between a runtime output and pf's.
    pub max_abs_diff: f64,
    /// Largest magnitude of pf's outputs (to judge `max_abs_diff` by).
    pub max_abs_output: f64,
}

impl Agreement {
    /// `k` as a fraction of the images compared.
    pub fn fraction(&self, k: usize) -> f64 {
        k as f64 / self.images.max(1) as f64
    }
}

/// The index of the largest value (the first of equals).
pub fn argmax(v: &[f32]) -> usize {
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

/// How many rows (one per image) have their largest value at the label.
pub fn correct(rows: &[Vec<f32>], labels: &[u32]) -> usize {
    rows.iter()
        .zip(labels)
        .filter(|(r, &l)| argmax(r) == l as usize)
        .count()
}

/// Compares `runtime`'s outputs (named `name` in errors) with pf's, one row
/// per image, against `labels`.
pub fn compare(
    pf: &[Vec<f32>],
    runtime: &[Vec<f32>],
    labels: &[u32],
    name: &str,
) -> Result<Agreement> {
    if pf.len() != runtime.len() || pf.len() != labels.len() {
        bail!(
            "{name} gives outputs for {} images, pf for {} and there are {} labels",
            runtime.len(),
            pf.len(),
            labels.len()
        );
    }
    let mut a = Agreement {
        images: labels.len(),
        pf_correct: 0,
        runtime_correct: 0,
        agree: 0,
        max_abs_diff: 0.0,
        max_abs_output: 0.0,
    };
    a.pf_correct = correct(pf, labels);
    a.runtime_correct = correct(runtime, labels);
    for (p, r) in pf.iter().zip(runtime) {
        if p.len() != r.len() {
            bail!(
                "{name} gives {} outputs per image and pf {}",
                r.len(),
                p.len()
            );
        }
        let (pa, ra) = (argmax(p), argmax(r));
        a.agree += usize::from(pa == ra);
        for (x, y) in p.iter().zip(r) {
            a.max_abs_diff = a.max_abs_diff.max((x - y).abs() as f64);
            a.max_abs_output = a.max_abs_output.max(x.abs() as f64);
        }
    }
    Ok(a)
}
