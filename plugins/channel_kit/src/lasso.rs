//! Channel selection: which `k` of a group's `c` channels stay.
//!
//! He et al. write the consumer's sampled output `Y` as a sum of
//! per-channel contributions `Zᵢ = Xᵢ Wᵢᵀ` (channel `i`'s slice of the
//! input patches times its slice of the weight) and choose channels with
//! the LASSO
//!
//! ```text
//! min_β ½‖y − Σᵢ βᵢ zᵢ‖² + λ‖β‖₁
//! ```
//!
//! raising `λ` until exactly `k` coefficients are non-zero. Only the `c×c`
//! Gram matrix `G = ZᵀZ` and `b = Zᵀy` cross the sandbox (the host forms
//! them from the samples). From them, with `G = LLᵀ` (Cholesky), the
//! problem is the LASSO on `c` virtual samples with records `Lᵀ` and targets
//! `t = L⁻¹b`, since `‖t − Lᵀβ‖² = βᵀGβ − 2βᵀb + const`. linfa's
//! coordinate-descent elastic net (at `l1_ratio = 1`) solves that.

use linfa::traits::Fit;
use linfa::Dataset;
use linfa_elasticnet::ElasticNet;
use ndarray::{Array1, Array2};
use pf_sdk::math;
use pf_sdk::prelude::*;

/// The LASSO problem of one group, from host-computed sums over the samples.
pub struct Lasso {
    /// `G = ZᵀZ`, `c×c`, row-major.
    pub gram: Vec<f64>,
    /// `b = Zᵀy`.
    pub zty: Vec<f64>,
}

impl Lasso {
    /// The `k` channels (ascending) the LASSO keeps.
    pub fn select(&self, k: usize) -> Result<Vec<u32>> {
        let c = self.zty.len();
        if k >= c {
            return Ok((0..c as u32).collect());
        }
        // Scale to unit mean diagonal: the selection does not change, and
        // the solver's tolerances see numbers near one.
        let scale = (0..c).map(|i| self.gram[i * c + i]).sum::<f64>() / c as f64;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::numerical(
                "the channels' contributions are all zero or not finite; \
                 the sampled features carry no signal to select channels by",
            ));
        }
        let mut gram: Vec<f64> = self.gram.iter().map(|g| g / scale).collect();
        let zty: Vec<f64> = self.zty.iter().map(|b| b / scale).collect();
        // A little jitter makes G positive definite when channels are
        // collinear (or dead: an all-zero channel has a zero row).
        for i in 0..c {
            gram[i * c + i] += 1e-6;
        }
        let l = math::cholesky(&gram, c)?;
        // t = L⁻¹ b (forward substitution); records = Lᵀ.
        let mut t = vec![0.0; c];
        for i in 0..c {
            let s: f64 = (0..i).map(|j| l[i * c + j] * t[j]).sum();
            t[i] = (zty[i] - s) / l[i * c + i];
        }
        let records = Array2::from_shape_fn((c, c), |(r, col)| l[col * c + r]);
        let data = Dataset::new(records, Array1::from_vec(t));
        // linfa's objective is 1/(2n)·‖t − Aβ‖² + α‖β‖₁ with n = c samples:
        // every β is zero from α_max = max|b|/c on.
        let alpha_max = zty.iter().fold(0.0f64, |m, b| m.max(b.abs())) / c as f64;
        // Coordinate descent costs about c² per sweep: small problems get
        // many sweeps (a precise support), the largest (hundreds of
        // channels) about a hundred, which keeps them inside the fuel.
        let sweeps = (25_000_000 / (c * c).max(1)).clamp(100, 5000) as u32;
        let fit = |alpha: f64| -> Result<Vec<f64>> {
            let model = ElasticNet::params()
                .penalty(alpha)
                .l1_ratio(1.0)
                .with_intercept(false)
                .tolerance(1e-6)
                .max_iterations(sweeps)
                .fit(&data)
                .map_err(|e| Error::numerical(format!("LASSO did not solve: {e}")))?;
            Ok(model.hyperplane().to_vec())
        };
        let nonzero = |beta: &[f64]| beta.iter().filter(|b| **b != 0.0).count();
        // Bisection on log α for exactly k non-zero coefficients. The count
        // falls (not always strictly) as α grows; when no α gives exactly k,
        // take the solution with the fewest non-zeros above k and keep its
        // k largest |β|.
        let (mut lo, mut hi) = ((alpha_max * 1e-6).ln(), alpha_max.ln());
        let mut best: Option<Vec<f64>> = None;
        // Down to α within 1% (about 11 fits), unless a fit hits k first.
        while hi - lo > 1e-2 {
            let mid = 0.5 * (lo + hi);
            let beta = fit(mid.exp())?;
            let n = nonzero(&beta);
            if n == k {
                best = Some(beta);
                break;
            }
            if n > k {
                lo = mid;
                best = Some(beta);
            } else {
                hi = mid;
            }
        }
        let beta = match best {
            Some(beta) => beta,
            None => fit((alpha_max * 1e-6).max(f64::MIN_POSITIVE))?,
        };
        Ok(top_k(&beta.iter().map(|b| b.abs()).collect::<Vec<_>>(), k))
    }
}

/// The indices (ascending) of the `k` largest scores; ties go to the lower
/// index.
pub fn top_k(scores: &[f64], k: usize) -> Vec<u32> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut keep: Vec<u32> = order.into_iter().take(k).map(|i| i as u32).collect();
    keep.sort_unstable();
    keep
}

/// `k` of `c` channels (ascending), uniformly at random.
pub fn random(c: usize, k: usize, rng: &mut impl RandomExt) -> Vec<u32> {
    // A partial Fisher–Yates shuffle.
    let mut all: Vec<u32> = (0..c as u32).collect();
    for i in 0..k.min(c) {
        let j = i + rng.below((c - i) as u64) as usize;
        all.swap(i, j);
    }
    let mut keep = all[..k.min(c)].to_vec();
    keep.sort_unstable();
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LASSO problem from explicit contributions `z` (`c` columns of `n`).
    fn problem(z: &[Vec<f64>], y: &[f64]) -> Lasso {
        let c = z.len();
        let mut gram = vec![0.0; c * c];
        for i in 0..c {
            for j in 0..c {
                gram[i * c + j] = z[i].iter().zip(&z[j]).map(|(a, b)| a * b).sum();
            }
        }
        let zty = z
            .iter()
            .map(|zi| zi.iter().zip(y).map(|(a, b)| a * b).sum())
            .collect();
        Lasso { gram, zty }
    }

    #[test]
    fn the_lasso_keeps_the_channels_the_output_depends_on() {
        // y depends on channels 1 and 3 only; the others are noise-like.
        let n = 50;
        let mut s = SplitMix64::new(7);
        let z: Vec<Vec<f64>> = (0..6)
            .map(|_| (0..n).map(|_| s.normal()).collect())
            .collect();
        let y: Vec<f64> = (0..n).map(|r| 2.0 * z[1][r] - 1.5 * z[3][r]).collect();
        let p = problem(&z, &y);
        assert_eq!(p.select(2).unwrap(), vec![1, 3]);
        let three = p.select(3).unwrap();
        assert_eq!(three.len(), 3);
        assert!(three.contains(&1) && three.contains(&3));
        assert_eq!(p.select(6).unwrap(), (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn all_zero_contributions_are_a_clear_error() {
        let p = Lasso {
            gram: vec![0.0; 4],
            zty: vec![0.0; 2],
        };
        assert!(p.select(1).unwrap_err().message().contains("no signal"));
    }

    #[test]
    fn top_k_and_random_give_k_ascending_indices() {
        assert_eq!(top_k(&[0.1, 3.0, 2.0, 3.0], 2), vec![1, 3]);
        let mut s = SplitMix64::new(1);
        let mut seen = [0u32; 10];
        for _ in 0..200 {
            let k = random(10, 4, &mut s);
            assert_eq!(k.len(), 4);
            assert!(k.windows(2).all(|w| w[0] < w[1]));
            for i in k {
                seen[i as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 40), "{seen:?}");
    }
}
