//! Monotone warps of the rewards, chosen by marginal likelihood.
//!
//! A Gaussian process fits the standardised rewards badly when their range
//! is dominated by a few terrible points (Rosenbrock's values span six
//! orders of magnitude): the length scales shrink to fit the cliffs and the
//! good region looks flat. Following warped Gaussian processes (Snelson,
//! Rasmussen & Ghahramani 2004) and the Box–Cox idea of picking a
//! transformation by likelihood (Box & Cox 1964), each fit tries a few
//! monotone warps `w` of the rewards and keeps the one under which the raw
//! rewards are most likely: the GP's log marginal likelihood of the warped,
//! standardised values plus the log Jacobian `Σ log w'(y_i) − n·log sd`.
//!
//! The warps are the identity and the *log gap*
//!
//! ```text
//! w(y) = −log(1 + (y* − y)/s)
//! ```
//!
//! where `y*` is the best reward and `s` a quantile of the gaps `y* − y`:
//! increasing, almost linear within `s` of the best, logarithmic far below
//! it. Since every warp is increasing, the best point stays the best and
//! expected improvement is computed on the warped scale.

/// A monotone increasing warp of the rewards.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Warp {
    /// The rewards themselves.
    Identity,
    /// `−log(1 + (y* − y)/s)` with `s` the given quantile of the gaps
    /// `y* − y` (1 when that quantile is 0).
    LogGap {
        /// Which quantile of the gaps is the scale `s`.
        scale_quantile: f64,
    },
}

/// The warps tried at every fit.
pub const CANDIDATES: [Warp; 3] = [
    Warp::Identity,
    Warp::LogGap {
        scale_quantile: 0.9,
    },
    Warp::LogGap {
        scale_quantile: 0.5,
    },
];

/// Warped, standardised rewards.
#[derive(Clone, Debug)]
pub struct Warped {
    /// The values: mean 0, standard deviation 1 (or all 0).
    pub values: Vec<f64>,
    /// `log |d values / d rewards|`, summed over the points: what turns a
    /// likelihood of `values` into one of the rewards.
    pub log_jacobian: f64,
}

impl Warp {
    /// The warped and standardised `rewards` (finite, at least one).
    pub fn apply(&self, rewards: &[f64]) -> Warped {
        let (warped, log_jacobian) = match *self {
            Warp::Identity => (rewards.to_vec(), 0.0),
            Warp::LogGap { scale_quantile } => {
                let best = rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let gaps: Vec<f64> = rewards.iter().map(|r| best - r).collect();
                let scale = pf_sdk::math::quantile(&gaps, scale_quantile)
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .unwrap_or(1.0);
                // w'(y) = 1/(s + gap).
                (
                    gaps.iter().map(|g| -(g / scale).ln_1p()).collect(),
                    gaps.iter().map(|g| -(scale + g).ln()).sum::<f64>(),
                )
            }
        };
        let (values, scale) = standardise(&warped);
        Warped {
            values,
            log_jacobian: log_jacobian - rewards.len() as f64 * scale.ln(),
        }
    }
}

/// `values` shifted and scaled to mean 0 and standard deviation 1 (only
/// shifted when they are all equal), and the scale divided by.
pub fn standardise(values: &[f64]) -> (Vec<f64>, f64) {
    let mean = pf_sdk::math::mean(values);
    let sd = pf_sdk::math::variance(values).sqrt();
    let scale = if sd.is_finite() && sd > 1e-12 * mean.abs() && sd > 0.0 {
        sd
    } else {
        1.0
    };
    (values.iter().map(|v| (v - mean) / scale).collect(), scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardising_gives_mean_zero_and_unit_spread() {
        let (v, scale) = standardise(&[1.0, 2.0, 3.0, 6.0]);
        assert!(pf_sdk::math::mean(&v).abs() < 1e-15);
        assert!((pf_sdk::math::variance(&v) - 1.0).abs() < 1e-12);
        assert!((scale - 1.870_828_693_386_970_7).abs() < 1e-12);
        // All equal: only shifted.
        assert_eq!(standardise(&[5.0, 5.0]), (vec![0.0, 0.0], 1.0));
        // Huge but finite values survive.
        let (v, _) = standardise(&[-1e300, 1e300]);
        assert!(v.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn warps_keep_the_order_and_compress_the_bad_tail() {
        let rewards = [0.0, -1.0, -2.0, -10.0, -1000.0];
        for warp in CANDIDATES {
            let w = warp.apply(&rewards).values;
            for pair in w.windows(2) {
                assert!(pair[0] > pair[1], "{warp:?}: {w:?}");
            }
        }
        let log = CANDIDATES[2].apply(&rewards).values;
        let identity = CANDIDATES[0].apply(&rewards).values;
        // The gap between the two best points, relative to the whole range,
        // is much larger after the log warp.
        let spread = |w: &[f64]| (w[0] - w[1]) / (w[0] - w[4]);
        assert!(spread(&log) > 20.0 * spread(&identity));
    }

    #[test]
    fn log_jacobians_by_hand() {
        let rewards = [0.0, -1.0, -3.0];
        // Identity: the Jacobian of standardising is 1/sd per point.
        let sd = pf_sdk::math::variance(&rewards).sqrt();
        let w = Warp::Identity.apply(&rewards);
        assert!((w.log_jacobian + 3.0 * sd.ln()).abs() < 1e-12);
        // Log gap with the median gap s = 1: w = −ln(1 + gap), w' = 1/(1 + gap).
        let warp = Warp::LogGap {
            scale_quantile: 0.5,
        };
        let raw = [0.0, -(2f64.ln()), -(4f64.ln())];
        let sd = pf_sdk::math::variance(&raw).sqrt();
        let want = -(1f64.ln() + 2f64.ln() + 4f64.ln()) - 3.0 * sd.ln();
        let w = warp.apply(&rewards);
        assert!(
            (w.log_jacobian - want).abs() < 1e-12,
            "{} vs {want}",
            w.log_jacobian
        );
    }
}
