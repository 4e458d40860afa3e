//! Rewards: what the optimizer maximises. Every reward is computed from the
//! validation accuracy and the footprint the host measured; a candidate that
//! misses the target gets no reward at all (it fails), whatever its accuracy.

use crate::model::{Footprint, Target};
use serde::{Deserialize, Serialize};

/// A reward function (see `docs/search.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Reward {
    /// The validation accuracy: with a hard target, the search maximises
    /// accuracy among the models that meet it.
    Accuracy,
    /// AMC's FLOPs-aware reward `-(1 - acc) · ln(MACs)`: at equal error the
    /// cheaper model wins, at equal MACs the more accurate one.
    AccuracyFlops,
    /// PocketFlow's multi-objective reward `acc · ln(1 + c)`, with `c` the
    /// compression factor of the target's measure (baseline ÷ compressed).
    AccLogRatio,
}

impl Reward {
    /// The name used on the command line and in studies.
    pub fn name(self) -> &'static str {
        match self {
            Reward::Accuracy => "accuracy",
            Reward::AccuracyFlops => "accuracy-flops",
            Reward::AccLogRatio => "acc-log-ratio",
        }
    }

    /// The reward of a model with validation accuracy `accuracy` and
    /// footprint `now`, compressed from `baseline` under `target`.
    pub fn of(self, accuracy: f64, now: &Footprint, baseline: &Footprint, target: &Target) -> f64 {
        match self {
            Reward::Accuracy => accuracy,
            Reward::AccuracyFlops => -(1.0 - accuracy) * (now.macs.max(1) as f64).ln(),
            Reward::AccLogRatio => {
                let ratio = target.ratio_of(now, baseline).max(f64::MIN_POSITIVE);
                accuracy * (1.0 + 1.0 / ratio).ln()
            }
        }
    }
}

impl std::fmt::Display for Reward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Measure;

    fn fp(macs: u64, params: u64) -> Footprint {
        Footprint {
            macs,
            params: 1000,
            nonzero_params: params,
            bytes: 4 * params,
        }
    }

    #[test]
    fn rewards_order_candidates_as_documented() {
        let base = fp(1_000_000, 1000);
        let t = Target {
            measure: Measure::Params,
            ratio: 0.5,
        };
        // Accuracy: only accuracy counts.
        assert!(
            Reward::Accuracy.of(0.9, &fp(10, 500), &base, &t)
                > Reward::Accuracy.of(0.8, &fp(1, 100), &base, &t)
        );
        // FLOPs penalty: equal error, fewer MACs wins; equal MACs, less error wins.
        let r = Reward::AccuracyFlops;
        assert!(r.of(0.9, &fp(1000, 500), &base, &t) > r.of(0.9, &fp(100_000, 500), &base, &t));
        assert!(r.of(0.95, &fp(1000, 500), &base, &t) > r.of(0.9, &fp(1000, 500), &base, &t));
        // acc·ln(1 + c): compressing further is worth some accuracy.
        let r = Reward::AccLogRatio;
        let a = r.of(0.9, &fp(10, 250), &base, &t);
        assert!((a - 0.9 * 5f64.ln()).abs() < 1e-12, "{a}");
        assert!(a > r.of(0.92, &fp(10, 500), &base, &t));
    }
}
