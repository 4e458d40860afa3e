//! Batch normalisation over `(N, C, P)` data (P = H·W, or 1 for vectors), with
//! an optional fused ReLU, in one pass forward and one pass backward.

use super::{from_f64, to_f64, Element};
use rayon::prelude::*;

/// Per-channel statistics the backward pass needs.
#[derive(Debug, Clone)]
pub struct Saved<T> {
    /// Mean used to normalise.
    pub mean: Vec<T>,
    /// `1 / sqrt(var + eps)` used to normalise.
    pub inv_std: Vec<T>,
    /// The biased batch variance (training mode), for the running average.
    pub batch_var: Vec<T>,
}

/// Lanes of the vectorisable partial sums below.
const LANES: usize = 8;

/// `Σ f(i)` over `0..n` with eight independent accumulators (so the compiler
/// can vectorise), finished in f64.
#[inline]
fn lane_sum<T: Element>(n: usize, f: impl Fn(usize) -> T) -> f64 {
    let mut acc = [T::zero(); LANES];
    let full = n / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    let mut total: f64 = acc.iter().map(|&a| to_f64(a)).sum();
    for i in full..n {
        total += to_f64(f(i));
    }
    total
}

/// Batch statistics of `x` (training mode): per-channel mean and biased
/// variance, computed in two passes (mean, then squared deviations).
pub fn statistics<T: Element>(x: &[T], n: usize, c: usize, p: usize) -> (Vec<T>, Vec<T>) {
    let m = (n * p) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * p..][..p]);
            let mean = planes().map(|pl| lane_sum(p, |j| pl[j])).sum::<f64>() / m;
            let mt: T = from_f64(mean);
            let var = planes()
                .map(|pl| {
                    lane_sum(p, |j| {
                        let d = pl[j] - mt;
                        d * d
                    })
                })
                .sum::<f64>()
                / m;
            (from_f64::<T>(mean), from_f64::<T>(var.max(0.0)))
        })
        .unzip()
}

/// `y = relu?(γ·(x − mean)·inv_std + β)`.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Element>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    inv_std: &[T],
    c: usize,
    p: usize,
    relu: bool,
) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(p)
        .zip(x.par_chunks(p))
        .enumerate()
        .for_each(|(i, (yd, xs))| {
            let ch = i % c;
            let scale = gamma[ch] * inv_std[ch];
            let shift = beta[ch] - mean[ch] * scale;
            for (o, &v) in yd.iter_mut().zip(xs) {
                let t = v * scale + shift;
                *o = if relu && t < T::zero() { T::zero() } else { t };
            }
        });
    y
}

/// Gradients of [`forward`]. `y` is the forward output (for the ReLU mask).
/// In training mode the mean and variance depend on `x`, which adds the
/// usual two correction terms to `dx`; in evaluation mode they are constants.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Element>(
    dy: &[T],
    x: &[T],
    y: &[T],
    gamma: &[T],
    saved: &Saved<T>,
    n: usize,
    c: usize,
    p: usize,
    relu: bool,
    train: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let zero = T::zero();
    // The ReLU mask as a branch-free select, so the loops vectorise.
    let masked = |i: usize| -> T {
        if relu && y[i] <= zero {
            zero
        } else {
            dy[i]
        }
    };
    // Per channel: Σ dz and Σ dz·x̂ (= inv_std · Σ dz·(x − mean)).
    let sums: Vec<(T, T)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mean, inv) = (saved.mean[ch], saved.inv_std[ch]);
            let (mut sb, mut sg) = (0f64, 0f64);
            for s in 0..n {
                let base = (s * c + ch) * p;
                sb += lane_sum(p, |j| masked(base + j));
                sg += lane_sum(p, |j| masked(base + j) * (x[base + j] - mean));
            }
            (from_f64::<T>(sb), from_f64::<T>(sg * to_f64(inv)))
        })
        .collect();
    let dbeta: Vec<T> = sums.iter().map(|s| s.0).collect();
    let dgamma: Vec<T> = sums.iter().map(|s| s.1).collect();
    let m: T = from_f64((n * p) as f64);
    let mut dx = vec![T::zero(); x.len()];
    dx.par_chunks_mut(p).enumerate().for_each(|(i, d)| {
        let ch = i % c;
        let base = i * p;
        let (mean, inv, g) = (saved.mean[ch], saved.inv_std[ch], gamma[ch]);
        let k = g * inv;
        if train {
            let (sb, sg) = (dbeta[ch] / m, dgamma[ch] / m * inv);
            let xs = &x[base..][..p];
            for (j, o) in d.iter_mut().enumerate() {
                *o = k * (masked(base + j) - sb - (xs[j] - mean) * sg);
            }
        } else {
            for (j, o) in d.iter_mut().enumerate() {
                *o = k * masked(base + j);
            }
        }
    });
    (dx, dgamma, dbeta)
}
