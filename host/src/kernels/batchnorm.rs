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
}

/// Lanes of the vectorisable partial sums below.
const LANES: usize = 8;

/// `Σ f(a[i])` with eight independent accumulators over fixed-size chunks
/// (no bounds checks, so the compiler vectorises), finished in f64.
#[inline]
fn lane_sum<T: Element>(a: &[T], f: impl Fn(T) -> T) -> f64 {
    let mut acc = [T::zero(); LANES];
    let chunks = a.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += f(c[l]);
        }
    }
    let mut total: f64 = acc.iter().map(|&v| to_f64(v)).sum();
    for &v in rest {
        total += to_f64(f(v));
    }
    total
}

/// For one plane: `(Σ dz, Σ dz·(x − mean))` with `dz = dy·[y > 0]` under a
/// ReLU, `dz = dy` otherwise.
#[inline]
fn plane_grad_sums<T: Element>(dy: &[T], y: &[T], x: &[T], mean: T, relu: bool) -> (f64, f64) {
    let zero = T::zero();
    let (mut sb, mut sg) = ([zero; LANES], [zero; LANES]);
    let n = dy.len() / LANES * LANES;
    let body = dy[..n]
        .chunks_exact(LANES)
        .zip(y[..n].chunks_exact(LANES))
        .zip(x[..n].chunks_exact(LANES));
    for ((d, yy), xx) in body {
        for l in 0..LANES {
            let dz = if relu && yy[l] <= zero { zero } else { d[l] };
            sb[l] += dz;
            sg[l] += dz * (xx[l] - mean);
        }
    }
    let (mut b, mut g): (f64, f64) = (
        sb.iter().map(|&v| to_f64(v)).sum(),
        sg.iter().map(|&v| to_f64(v)).sum(),
    );
    for j in n..dy.len() {
        let dz = if relu && y[j] <= zero { zero } else { dy[j] };
        b += to_f64(dz);
        g += to_f64(dz * (x[j] - mean));
    }
    (b, g)
}

/// Batch statistics of `x` (training mode): per-channel mean and biased
/// variance, computed in two passes (mean, then squared deviations).
pub fn statistics<T: Element>(x: &[T], n: usize, c: usize, p: usize) -> (Vec<T>, Vec<T>) {
    let m = (n * p) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * p..][..p]);
            let mean = planes().map(|pl| lane_sum(pl, |v| v)).sum::<f64>() / m;
            let mt: T = from_f64(mean);
            let var = planes()
                .map(|pl| {
                    lane_sum(pl, |v| {
                        let d = v - mt;
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
    // Per channel: Σ dz and Σ dz·x̂ (= inv_std · Σ dz·(x − mean)).
    let sums: Vec<(T, T)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mean, inv) = (saved.mean[ch], saved.inv_std[ch]);
            let (mut sb, mut sg) = (0f64, 0f64);
            for s in 0..n {
                let r = (s * c + ch) * p..(s * c + ch + 1) * p;
                let (b, g) = plane_grad_sums(&dy[r.clone()], &y[r.clone()], &x[r], mean, relu);
                sb += b;
                sg += g;
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
        let r = i * p..(i + 1) * p;
        let (dyp, yp, xp) = (&dy[r.clone()], &y[r.clone()], &x[r]);
        let (mean, inv, g) = (saved.mean[ch], saved.inv_std[ch], gamma[ch]);
        let k = g * inv;
        let (sb, sg) = if train {
            (dbeta[ch] / m, dgamma[ch] / m * inv)
        } else {
            (zero, zero)
        };
        for (((o, &gy), &yv), &xv) in d.iter_mut().zip(dyp).zip(yp).zip(xp) {
            let dz = if relu && yv <= zero { zero } else { gy };
            *o = k * (dz - sb - (xv - mean) * sg);
        }
    });
    (dx, dgamma, dbeta)
}
