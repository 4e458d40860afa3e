//! Expected improvement (Jones, Schonlau & Welch 1998), in log space, and
//! its maximisation over the encoded search space.
//!
//! For a posterior `N(μ, σ²)` at a point and the best standardised reward
//! `f*` seen so far, the expected improvement of maximising is
//!
//! ```text
//! EI = σ·h(z),   z = (μ − f*)/σ,   h(z) = z·Φ(z) + φ(z).
//! ```
//!
//! Far from promising regions `h(z)` underflows (at `z ≈ −38`) and its
//! direct evaluation cancels much earlier, leaving a flat zero that no
//! optimiser can climb. We therefore maximise `log EI = log σ + log h(z)`,
//! computed for `z < −1` as `log φ(z) + log(1 − t·R(t))` with `t = −z` and
//! Mills' ratio `R(t) = Φ(−t)/φ(t)`, and by its asymptotic series for very
//! negative `z`: the same remedy as the LogEI of Ament et al. (2023), derived
//! here from the textbook expansions.
//!
//! The gradient uses `h'(z) = Φ(z)`: `∂ log EI/∂μ = Φ(z)/(σ·h(z))` and
//! `∂ log EI/∂σ = φ(z)/(σ·h(z))`.

use crate::encoding::{DimensionCoding, Encoding};
use crate::gp::Posterior;
use crate::optimize::{self, Settings};
use pf_sdk::math::{normal_cdf, normal_pdf};
use pf_sdk::prelude::*;

/// Beyond this `t = −z`, `1 − t·R(t)` is taken from its asymptotic series.
const ASYMPTOTIC_FROM: f64 = 25.0;

/// `log φ(z)`.
fn log_normal_pdf(z: f64) -> f64 {
    -0.5 * z * z - 0.918_938_533_204_672_8 // ln √(2π)
}

/// For `t ≥ 1`: Mills' ratio `R(t)` and `1 − t·R(t)`.
fn mills(t: f64) -> (f64, f64) {
    if t < ASYMPTOTIC_FROM {
        let ratio = normal_cdf(-t) / normal_pdf(t);
        (ratio, 1.0 - t * ratio)
    } else {
        // R(t) ~ 1/t − 1/t³ + 3/t⁵ − 15/t⁷, so 1 − t·R(t) ~ 1/t² − 3/t⁴ + 15/t⁶ − 105/t⁸.
        let u = 1.0 / (t * t);
        let ratio = (1.0 - u * (1.0 - u * (3.0 - 15.0 * u))) / t;
        let rest = u * (1.0 - u * (3.0 - u * (15.0 - 105.0 * u)));
        (ratio, rest)
    }
}

/// `log h(z)` with `h(z) = z·Φ(z) + φ(z)`, accurate for every finite `z`.
pub fn log_h(z: f64) -> f64 {
    if z > -1.0 {
        (z * normal_cdf(z) + normal_pdf(z)).ln()
    } else {
        log_normal_pdf(z) + mills(-z).1.ln()
    }
}

/// `Φ(z)/h(z)` and `φ(z)/h(z)`: the derivatives of `log h` and the factor
/// of `∂ log EI/∂σ`.
fn log_h_ratios(z: f64) -> (f64, f64) {
    if z > -1.0 {
        let h = z * normal_cdf(z) + normal_pdf(z);
        (normal_cdf(z) / h, normal_pdf(z) / h)
    } else {
        let (ratio, rest) = mills(-z);
        (ratio / rest, 1.0 / rest)
    }
}

/// `log EI` of a `N(mean, sd²)` posterior over the incumbent `best`.
pub fn log_expected_improvement(mean: f64, sd: f64, best: f64) -> f64 {
    sd.ln() + log_h((mean - best) / sd)
}

/// The acquisition function: `log EI` under a posterior.
pub struct Acquisition<'a> {
    posterior: &'a Posterior,
    best: f64,
}

impl<'a> Acquisition<'a> {
    /// `log EI` over the incumbent `best` (a standardised reward).
    pub fn new(posterior: &'a Posterior, best: f64) -> Self {
        Acquisition { posterior, best }
    }

    /// `log EI` at `point` (−∞ where it is not a number).
    pub fn value(&self, point: &[f64]) -> f64 {
        let (mean, variance) = self.posterior.predict(point);
        finite_or_minus_infinity(log_expected_improvement(mean, variance.sqrt(), self.best))
    }

    /// `log EI` at `point`, with its gradient written into `gradient`.
    pub fn value_and_gradient(&self, point: &[f64], gradient: &mut [f64]) -> f64 {
        let mut variance_gradient = vec![0.0; point.len()];
        let (mean, variance) =
            self.posterior
                .predict_with_gradient(point, gradient, &mut variance_gradient);
        let sd = variance.sqrt();
        let z = (mean - self.best) / sd;
        let (d_mean, d_sd) = log_h_ratios(z);
        for (g, dv) in gradient.iter_mut().zip(&variance_gradient) {
            // ∂σ = ∂σ²/(2σ).
            *g = (d_mean * *g + d_sd * dv / (2.0 * sd)) / sd;
        }
        finite_or_minus_infinity(sd.ln() + log_h(z))
    }
}

fn finite_or_minus_infinity(v: f64) -> f64 {
    if v.is_nan() {
        f64::NEG_INFINITY
    } else {
        v
    }
}

/// How hard to search for the acquisition's maximum.
#[derive(Clone, Copy, Debug)]
pub struct SearchEffort {
    /// Uniformly random candidates.
    pub candidates: usize,
    /// Best candidates refined by local search.
    pub local_searches: usize,
}

/// The snapped point with the largest acquisition found: `effort.candidates`
/// uniform points plus perturbations of `anchors` (the best observed
/// points), the best few of them refined by alternating L-BFGS ascent over
/// the float columns and greedy moves along discrete dimensions.
pub fn maximize(
    acquisition: &Acquisition<'_>,
    encoding: &Encoding,
    anchors: &[Vec<f64>],
    effort: &SearchEffort,
    rng: &mut impl RandomExt,
) -> (Vec<f64>, f64) {
    let mut candidates: Vec<Vec<f64>> = (0..effort.candidates)
        .map(|_| encoding.random_point(rng))
        .collect();
    for anchor in anchors {
        for k in 0..PERTURBATIONS_PER_ANCHOR {
            let scale = if k % 2 == 0 { 0.02 } else { 0.1 };
            candidates.push(perturb(encoding, anchor, scale, rng));
        }
    }
    let mut scored: Vec<(f64, Vec<f64>)> = candidates
        .into_iter()
        .map(|c| (acquisition.value(&c), c))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut starts: Vec<(f64, Vec<f64>)> = Vec::new();
    for (v, c) in scored {
        if starts.len() >= effort.local_searches.max(1) {
            break;
        }
        if !starts.iter().any(|(_, s)| *s == c) {
            starts.push((v, c));
        }
    }
    let mut best: Option<(f64, Vec<f64>)> = None;
    for (value, start) in starts {
        let (point, value) = local_search(acquisition, encoding, start, value);
        if best.as_ref().is_none_or(|(b, _)| value > *b) {
            best = Some((value, point));
        }
    }
    match best {
        Some((value, point)) => (point, value),
        None => {
            let point = encoding.random_point(rng);
            let value = acquisition.value(&point);
            (point, value)
        }
    }
}

/// Perturbations of each anchor among the candidates.
const PERTURBATIONS_PER_ANCHOR: usize = 20;

/// `anchor` with normal noise of standard deviation `scale` on its float and
/// int columns, and each discrete dimension moved to a random neighbour with
/// probability `1/dimensions`; snapped.
fn perturb(encoding: &Encoding, anchor: &[f64], scale: f64, rng: &mut impl RandomExt) -> Vec<f64> {
    let mut x = anchor.to_vec();
    let dimensions = encoding.dimensions().max(1) as f64;
    for (d, coding) in encoding.codings().iter().enumerate() {
        match coding {
            DimensionCoding::Float { column } | DimensionCoding::Int { column } => {
                x[*column] += scale * rng.normal();
            }
            DimensionCoding::Boolean { .. } | DimensionCoding::Choice { .. } => {
                if rng.bernoulli(1.0 / dimensions) {
                    let neighbours = encoding.discrete_neighbours(&x, d);
                    if !neighbours.is_empty() {
                        x = neighbours[rng.below(neighbours.len() as u64) as usize].clone();
                    }
                }
            }
            DimensionCoding::Constant => {}
        }
    }
    encoding.snap(&mut x);
    x
}

/// Climbs the acquisition from `start` (value `value`): L-BFGS over the float
/// columns, then a sweep of the best single discrete moves, until a round
/// improves nothing (at most a few rounds).
fn local_search(
    acquisition: &Acquisition<'_>,
    encoding: &Encoding,
    start: Vec<f64>,
    value: f64,
) -> (Vec<f64>, f64) {
    let floats = encoding.float_columns();
    let mut x = start;
    let mut value = value;
    let settings = Settings {
        max_iterations: 50,
        gradient_tolerance: 1e-6,
        value_tolerance: 1e-10,
        memory: 6,
    };
    for _ in 0..4 {
        let before = value;
        if !floats.is_empty() && value.is_finite() {
            let mut full_gradient = vec![0.0; x.len()];
            let mut point = x.clone();
            let objective = |z: &[f64], gradient: &mut [f64]| {
                for (c, v) in floats.iter().zip(z) {
                    point[*c] = *v;
                }
                let v = acquisition.value_and_gradient(&point, &mut full_gradient);
                for (g, c) in gradient.iter_mut().zip(&floats) {
                    *g = -full_gradient[*c];
                }
                -v
            };
            let z0: Vec<f64> = floats.iter().map(|c| x[*c]).collect();
            let lower = vec![0.0; floats.len()];
            let upper = vec![1.0; floats.len()];
            let m = optimize::minimize(objective, &z0, &lower, &upper, &settings);
            if -m.value > value {
                for (c, v) in floats.iter().zip(&m.x) {
                    x[*c] = *v;
                }
                value = -m.value;
            }
        }
        let mut moved = false;
        for d in 0..encoding.dimensions() {
            let mut best_move: Option<(f64, Vec<f64>)> = None;
            for y in encoding.discrete_neighbours(&x, d) {
                let v = acquisition.value(&y);
                if v > value && best_move.as_ref().is_none_or(|(b, _)| v > *b) {
                    best_move = Some((v, y));
                }
            }
            if let Some((v, y)) = best_move {
                x = y;
                value = v;
                moved = true;
            }
        }
        if !moved || value <= before {
            break;
        }
    }
    (x, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_improvement_by_hand() {
        // μ = f*, σ = 1: EI = φ(0) = 0.398942…
        let ei = log_expected_improvement(0.0, 1.0, 0.0).exp();
        assert!((ei - 0.398_942_280_401_432_7).abs() < 1e-14);
        // μ − f* = 1, σ = 2: z = ½, EI = 2·(½·Φ(½) + φ(½))
        //   = 2·(0.5·0.6914624612740131 + 0.3520653267642995) = 1.3955931148…
        let ei = log_expected_improvement(1.0, 2.0, 0.0).exp();
        assert!((ei - 1.395_593_114_802_612).abs() < 1e-12, "{ei}");
        // Far below the incumbent, EI is tiny but log EI stays finite and
        // close to log φ(z) − 2·log|z|.
        let z: f64 = -60.0;
        let want = log_normal_pdf(z) - 2.0 * z.abs().ln();
        assert!((log_h(z) - want).abs() < 1e-3);
        assert!(log_h(-1e6).is_finite());
    }

    #[test]
    fn log_h_is_continuous_across_its_branches() {
        for z0 in [-1.0, -ASYMPTOTIC_FROM] {
            let (a, b) = (log_h(z0 - 1e-9), log_h(z0 + 1e-9));
            assert!((a - b).abs() < 1e-6 * a.abs().max(1.0), "{z0}: {a} vs {b}");
        }
        // And increasing.
        let mut previous = f64::NEG_INFINITY;
        for i in 0..400 {
            let z = -40.0 + 0.11 * i as f64;
            let v = log_h(z);
            assert!(v > previous, "at {z}");
            previous = v;
        }
    }

    #[test]
    fn log_h_derivative_matches_finite_differences() {
        for z in [-30.0, -8.0, -2.0, -0.5, 0.0, 1.5, 4.0] {
            let h = 1e-6;
            let numeric = (log_h(z + h) - log_h(z - h)) / (2.0 * h);
            let (d_mean, _) = log_h_ratios(z);
            assert!((numeric - d_mean).abs() < 1e-5 * d_mean.max(1.0), "z = {z}");
        }
    }
}
