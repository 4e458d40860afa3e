//! Gaussian-process regression: fitting the kernel's hyper-parameters by
//! maximising the (penalised) log marginal likelihood, and the posterior.
//!
//! With training inputs `X`, standardised outputs `y` and `K = k(X, X) + σ²·I`,
//! the log marginal likelihood is (Rasmussen & Williams 2006, eq. 5.8)
//!
//! ```text
//! log p(y | θ) = −½·yᵀK⁻¹y − ½·log det K − n/2·log 2π
//! ```
//!
//! and its gradient `∂/∂θ_j = ½·tr((ααᵀ − K⁻¹)·∂K/∂θ_j)` with `α = K⁻¹y`
//! (eq. 5.9). The parameters are optimised in log space,
//! `θ = (log ℓ_1 … log ℓ_G, log s², log(σ² − floor))`, with independent
//! normal priors on each (log-normal priors in natural units) that keep the
//! fit sane on the few points a search has, as BoTorch and Optuna also put
//! weak priors on their kernels. The maximum a-posteriori point is found by
//! [projected L-BFGS](crate::optimize) from several starts.

use crate::kernel::{matern52, matern52_slope, Hyperparameters, Layout, Matern52};
use crate::optimize::{self, Settings};
use pf_sdk::math;
use pf_sdk::prelude::*;

/// The noise variance never goes below this (outputs are standardised, so
/// it is relative to their variance): it keeps the covariance well
/// conditioned when the objective is deterministic.
pub const NOISE_FLOOR: f64 = 1e-6;

/// The priors on the log hyper-parameters and their bounds.
#[derive(Clone, Debug)]
pub struct Prior {
    /// Mean of `log ℓ`.
    pub log_length_mean: f64,
    /// Standard deviation of `log ℓ`.
    pub log_length_sd: f64,
    /// Bounds of `log ℓ`.
    pub log_length_bounds: (f64, f64),
    /// Mean of `log s²`.
    pub log_signal_mean: f64,
    /// Standard deviation of `log s²`.
    pub log_signal_sd: f64,
    /// Bounds of `log s²`.
    pub log_signal_bounds: (f64, f64),
    /// Mean of `log(σ² − floor)`.
    pub log_noise_mean: f64,
    /// Standard deviation of `log(σ² − floor)`.
    pub log_noise_sd: f64,
    /// Bounds of `log(σ² − floor)`.
    pub log_noise_bounds: (f64, f64),
}

impl Default for Prior {
    /// The priors for inputs in `[0, 1]` and standardised outputs:
    ///
    /// * length scales: log-normal with median 1 (the width of the unit
    ///   cube) and a log-space spread of 1, so 0.14 and 7.4 are two spreads
    ///   away. Long length scales are the safer default on few points
    ///   (Hvarfner, Hellsten & Nardi 2024 argue the same for high
    ///   dimensions); median ½ did worse on the benchmark functions;
    /// * signal variance: log-normal with median 1 (the outputs' variance)
    ///   and spread 1;
    /// * noise (above the floor): log-normal with median 1e-6 and a spread
    ///   of 3, so a deterministic objective is interpolated while a noisy
    ///   one can still claim a good part of the variance (1e-2 costs about
    ///   5 nats).
    fn default() -> Self {
        Prior {
            log_length_mean: 0.0,
            log_length_sd: 1.0,
            log_length_bounds: (0.005f64.ln(), 50f64.ln()),
            log_signal_mean: 0.0,
            log_signal_sd: 1.0,
            log_signal_bounds: (0.01f64.ln(), 100f64.ln()),
            log_noise_mean: 1e-6f64.ln(),
            log_noise_sd: 3.0,
            log_noise_bounds: (1e-10f64.ln(), 2f64.ln()),
        }
    }
}

impl Prior {
    /// The lower and upper bounds of the parameter vector.
    fn bounds(&self, groups: usize) -> (Vec<f64>, Vec<f64>) {
        let mut lower = vec![self.log_length_bounds.0; groups];
        let mut upper = vec![self.log_length_bounds.1; groups];
        lower.push(self.log_signal_bounds.0);
        upper.push(self.log_signal_bounds.1);
        lower.push(self.log_noise_bounds.0);
        upper.push(self.log_noise_bounds.1);
        (lower, upper)
    }

    /// The prior's centre as a parameter vector.
    pub fn centre(&self, groups: usize) -> Vec<f64> {
        let mut theta = vec![self.log_length_mean; groups];
        theta.push(self.log_signal_mean);
        theta.push(self.log_noise_mean);
        theta
    }

    /// The prior's centre with a noise variance of 0.05 (in standardised
    /// units): a start from which the fit reaches the "noisy rewards" mode
    /// of the likelihood. From tiny noise the gradient with respect to the
    /// log noise vanishes and the fit may stay in the mode that
    /// interpolates the noise instead.
    pub fn noisy_start(&self, groups: usize) -> Vec<f64> {
        let mut theta = self.centre(groups);
        theta[groups + 1] = 0.05f64.ln();
        theta
    }

    /// A draw from the prior, clamped into the bounds.
    pub fn sample(&self, groups: usize, rng: &mut impl RandomExt) -> Vec<f64> {
        let (lower, upper) = self.bounds(groups);
        let mut theta = self.centre(groups);
        for (i, t) in theta.iter_mut().enumerate() {
            let sd = self.sd(i, groups);
            *t = (*t + sd * rng.normal()).clamp(lower[i], upper[i]);
        }
        theta
    }

    fn mean_sd(&self, i: usize, groups: usize) -> (f64, f64) {
        if i < groups {
            (self.log_length_mean, self.log_length_sd)
        } else if i == groups {
            (self.log_signal_mean, self.log_signal_sd)
        } else {
            (self.log_noise_mean, self.log_noise_sd)
        }
    }

    fn sd(&self, i: usize, groups: usize) -> f64 {
        self.mean_sd(i, groups).1
    }

    /// The log prior density of `theta` (up to a constant); adds its
    /// gradient into `gradient`.
    fn log_density(&self, theta: &[f64], gradient: &mut [f64]) -> f64 {
        let groups = theta.len() - 2;
        let mut total = 0.0;
        for (i, t) in theta.iter().enumerate() {
            let (mean, sd) = self.mean_sd(i, groups);
            let z = (t - mean) / sd;
            total -= 0.5 * z * z;
            gradient[i] -= z / sd;
        }
        total
    }
}

/// The hyper-parameters of a log-parameter vector.
pub fn hyperparameters(theta: &[f64]) -> Hyperparameters {
    let groups = theta.len() - 2;
    Hyperparameters {
        lengths: theta[..groups].iter().map(|t| t.exp()).collect(),
        signal: theta[groups].exp(),
        noise: NOISE_FLOOR + theta[groups + 1].exp(),
    }
}

/// Training points with their per-group squared distances precomputed.
pub struct TrainingSet<'a> {
    /// The inputs, one row per point.
    x: &'a [Vec<f64>],
    /// The standardised outputs.
    y: &'a [f64],
    groups: usize,
    /// For each pair `i < j` (row-major over `i`), the squared distance of
    /// each group: `Σ_{c in g} w_c (x_ic − x_jc)²`.
    pair_distances: Vec<f64>,
}

impl<'a> TrainingSet<'a> {
    /// The set of `x` (rows of `layout.width()` columns) and `y`.
    pub fn new(layout: &Layout, x: &'a [Vec<f64>], y: &'a [f64]) -> Self {
        let n = x.len();
        let groups = layout.groups;
        let mut pair_distances = Vec::with_capacity(n * n.saturating_sub(1) / 2 * groups);
        for i in 0..n {
            for j in i + 1..n {
                let start = pair_distances.len();
                pair_distances.extend(std::iter::repeat_n(0.0, groups));
                for c in 0..layout.width() {
                    let d = x[i][c] - x[j][c];
                    pair_distances[start + layout.column_group[c]] +=
                        layout.column_weight[c] * d * d;
                }
            }
        }
        TrainingSet {
            x,
            y,
            groups,
            pair_distances,
        }
    }

    /// The log marginal likelihood plus the log prior at `theta`, with its
    /// gradient written into `gradient`; `None` when the covariance cannot
    /// be factored even with jitter.
    pub fn log_posterior(&self, theta: &[f64], prior: &Prior, gradient: &mut [f64]) -> Option<f64> {
        let n = self.x.len();
        let groups = self.groups;
        let hyper = hyperparameters(theta);
        let inverse_squared: Vec<f64> = hyper.lengths.iter().map(|l| 1.0 / (l * l)).collect();
        let signal = hyper.signal;
        let mut k = vec![0.0; n * n];
        // g(r) per pair, for the length-scale gradient.
        let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        let mut pair = 0;
        for i in 0..n {
            k[i * n + i] = signal + hyper.noise;
            for j in i + 1..n {
                let d = &self.pair_distances[pair * groups..(pair + 1) * groups];
                let r2: f64 = d.iter().zip(&inverse_squared).map(|(a, b)| a * b).sum();
                let r = r2.sqrt();
                let v = signal * matern52(r);
                k[i * n + j] = v;
                k[j * n + i] = v;
                slopes.push(matern52_slope(r));
                pair += 1;
            }
        }
        let (l, _) = factor_with_jitter(&mut k, n, signal)?;
        let alpha = math::cholesky_solve(&l, n, self.y);
        let fit: f64 = self.y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
        let log_likelihood = -0.5 * fit
            - 0.5 * math::cholesky_log_det(&l, n)
            - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        // W = ααᵀ − K⁻¹.
        let mut w = inverse_from_cholesky(&l, n);
        for i in 0..n {
            for j in 0..n {
                w[i * n + j] = alpha[i] * alpha[j] - w[i * n + j];
            }
        }
        gradient.iter_mut().for_each(|g| *g = 0.0);
        let trace: f64 = (0..n).map(|i| w[i * n + i]).sum();
        let mut signal_term = 0.5 * trace * signal;
        let mut pair = 0;
        for i in 0..n {
            for j in i + 1..n {
                let wij = w[i * n + j];
                // Both (i, j) and (j, i) count: ½·2 = 1.
                signal_term += wij * k[i * n + j];
                let common = wij * signal * slopes[pair] * 2.0;
                let d = &self.pair_distances[pair * groups..(pair + 1) * groups];
                for g in 0..groups {
                    gradient[g] += common * d[g] * inverse_squared[g];
                }
                pair += 1;
            }
        }
        gradient[groups] = signal_term;
        gradient[groups + 1] = 0.5 * trace * (hyper.noise - NOISE_FLOOR);
        let log_prior = prior.log_density(theta, gradient);
        let total = log_likelihood + log_prior;
        total.is_finite().then_some(total)
    }

    /// The maximum a-posteriori log hyper-parameters and the log posterior
    /// there: projected L-BFGS from each of `starts`, the best end point
    /// kept (the prior's centre, at −∞, when every start fails).
    pub fn fit(&self, prior: &Prior, starts: &[Vec<f64>], settings: &Settings) -> (Vec<f64>, f64) {
        let (lower, upper) = prior.bounds(self.groups);
        let mut best: Option<(f64, Vec<f64>)> = None;
        for start in starts {
            let objective = |theta: &[f64], gradient: &mut [f64]| match self
                .log_posterior(theta, prior, gradient)
            {
                Some(v) => {
                    gradient.iter_mut().for_each(|g| *g = -*g);
                    -v
                }
                None => f64::INFINITY,
            };
            let m = optimize::minimize(objective, start, &lower, &upper, settings);
            if m.value.is_finite() && best.as_ref().is_none_or(|(v, _)| m.value < *v) {
                best = Some((m.value, m.x));
            }
        }
        match best {
            Some((value, theta)) => (theta, -value),
            None => (prior.centre(self.groups), f64::NEG_INFINITY),
        }
    }
}

/// Factors `k` (with `k[i,i]` holding the noiseless diagonal plus noise) by
/// Cholesky, adding jitter `10^-9·scale, 10^-8·scale, …, 10^-2·scale` to the
/// diagonal while it fails. Returns the factor and the jitter added.
fn factor_with_jitter(k: &mut [f64], n: usize, scale: f64) -> Option<(Vec<f64>, f64)> {
    if let Ok(l) = math::cholesky(k, n) {
        return Some((l, 0.0));
    }
    let mut added = 0.0;
    for exponent in -9..=-2 {
        let jitter = 10f64.powi(exponent) * scale;
        for i in 0..n {
            k[i * n + i] += jitter - added;
        }
        added = jitter;
        if let Ok(l) = math::cholesky(k, n) {
            return Some((l, jitter));
        }
    }
    None
}

/// `(L·Lᵀ)⁻¹` from the lower-triangular `l`.
fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
    // M = L⁻¹, lower triangular, column by column.
    let mut m = vec![0.0; n * n];
    for j in 0..n {
        m[j * n + j] = 1.0 / l[j * n + j];
        for i in j + 1..n {
            let mut s = 0.0;
            for k in j..i {
                s += l[i * n + k] * m[k * n + j];
            }
            m[i * n + j] = -s / l[i * n + i];
        }
    }
    // K⁻¹ = Mᵀ·M: (i, j) = Σ_{k ≥ max(i, j)} M[k, i]·M[k, j].
    let mut inverse = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (i..n).map(|k| m[k * n + i] * m[k * n + j]).sum();
            inverse[i * n + j] = s;
            inverse[j * n + i] = s;
        }
    }
    inverse
}

/// The posterior of a Gaussian process with fixed hyper-parameters.
#[derive(Clone, Debug)]
pub struct Posterior {
    kernel: Matern52,
    x: Vec<Vec<f64>>,
    alpha: Vec<f64>,
    /// `K⁻¹`, row-major.
    inverse: Vec<f64>,
}

impl Posterior {
    /// The posterior given observations `y` at `x`. A covariance that cannot
    /// be factored even with jitter (only with non-finite inputs) is a
    /// `numerical` error.
    pub fn new(
        layout: &Layout,
        hyper: &Hyperparameters,
        x: Vec<Vec<f64>>,
        y: &[f64],
    ) -> Result<Self> {
        let kernel = Matern52::new(layout, hyper);
        let n = x.len();
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            k[i * n + i] = kernel.signal() + hyper.noise;
            for j in 0..i {
                let v = kernel.covariance(&x[i], &x[j]);
                k[i * n + j] = v;
                k[j * n + i] = v;
            }
        }
        let (l, _) = factor_with_jitter(&mut k, n, kernel.signal()).ok_or_else(|| {
            Error::numerical("the GP covariance is not positive definite even with jitter")
        })?;
        let alpha = math::cholesky_solve(&l, n, y);
        Ok(Posterior {
            inverse: inverse_from_cholesky(&l, n),
            kernel,
            x,
            alpha,
        })
    }

    /// The posterior mean and variance of the latent function at `point`
    /// (the variance floored at a tiny positive value).
    pub fn predict(&self, point: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let k: Vec<f64> = self
            .x
            .iter()
            .map(|xi| self.kernel.covariance(point, xi))
            .collect();
        let mean = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let mut quadratic = 0.0;
        for i in 0..n {
            let row = &self.inverse[i * n..(i + 1) * n];
            let wi: f64 = row.iter().zip(&k).map(|(a, b)| a * b).sum();
            quadratic += k[i] * wi;
        }
        (mean, self.floor_variance(self.kernel.signal() - quadratic))
    }

    /// [`predict`](Self::predict), and the gradients of the mean and the
    /// variance with respect to `point`, written into `mean_gradient` and
    /// `variance_gradient` (one entry per column).
    pub fn predict_with_gradient(
        &self,
        point: &[f64],
        mean_gradient: &mut [f64],
        variance_gradient: &mut [f64],
    ) -> (f64, f64) {
        let n = self.x.len();
        let width = point.len();
        let mut k = vec![0.0; n];
        // ∂k_i/∂point, row i.
        let mut dk = vec![0.0; n * width];
        for i in 0..n {
            k[i] = self.kernel.covariance_with_gradient(
                point,
                &self.x[i],
                &mut dk[i * width..(i + 1) * width],
            );
        }
        mean_gradient.iter_mut().for_each(|g| *g = 0.0);
        variance_gradient.iter_mut().for_each(|g| *g = 0.0);
        let mut mean = 0.0;
        let mut quadratic = 0.0;
        for i in 0..n {
            mean += k[i] * self.alpha[i];
            let row = &self.inverse[i * n..(i + 1) * n];
            let wi: f64 = row.iter().zip(&k).map(|(a, b)| a * b).sum();
            quadratic += k[i] * wi;
            let dki = &dk[i * width..(i + 1) * width];
            for c in 0..width {
                mean_gradient[c] += self.alpha[i] * dki[c];
                variance_gradient[c] -= 2.0 * wi * dki[c];
            }
        }
        let raw = self.kernel.signal() - quadratic;
        let variance = self.floor_variance(raw);
        if variance > raw {
            variance_gradient.iter_mut().for_each(|g| *g = 0.0);
        }
        (mean, variance)
    }

    fn floor_variance(&self, variance: f64) -> f64 {
        variance.max(1e-12 * self.kernel.signal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(groups: usize) -> Layout {
        Layout {
            groups,
            column_group: (0..groups).collect(),
            column_weight: vec![1.0; groups],
        }
    }

    fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = SplitMix64::new(seed);
        let x: Vec<Vec<f64>> = (0..n).map(|_| vec![rng.f64(), rng.f64()]).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|p| (6.0 * p[0]).sin() + p[1] * p[1] + 0.01 * rng.normal())
            .collect();
        (x, y)
    }

    #[test]
    fn marginal_likelihood_gradient_matches_finite_differences() {
        let (x, y) = data(15, 1);
        let layout = layout(2);
        let set = TrainingSet::new(&layout, &x, &y);
        let prior = Prior::default();
        let theta = vec![-1.2, 0.3, 0.4, -5.0];
        let mut gradient = vec![0.0; 4];
        set.log_posterior(&theta, &prior, &mut gradient).unwrap();
        let mut scratch = vec![0.0; 4];
        for j in 0..4 {
            let h = 1e-5;
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (set.log_posterior(&up, &prior, &mut scratch).unwrap()
                - set.log_posterior(&down, &prior, &mut scratch).unwrap())
                / (2.0 * h);
            assert!(
                (numeric - gradient[j]).abs() < 1e-5 * numeric.abs().max(1.0),
                "parameter {j}: analytic {} numeric {numeric}",
                gradient[j]
            );
        }
    }

    #[test]
    fn fit_improves_on_its_start_and_finds_short_length_scales_where_needed() {
        let (x, y) = data(30, 2);
        let layout = layout(2);
        let set = TrainingSet::new(&layout, &x, &y);
        let prior = Prior::default();
        let start = prior.centre(2);
        let (theta, value) = set.fit(&prior, std::slice::from_ref(&start), &Settings::default());
        let mut g = vec![0.0; 4];
        let at_start = set.log_posterior(&start, &prior, &mut g).unwrap();
        let at_fit = set.log_posterior(&theta, &prior, &mut g).unwrap();
        assert_eq!(at_fit, value);
        assert!(at_fit > at_start, "{at_fit} vs {at_start}");
        // sin(6x) varies faster along x0 than x1² along x1.
        assert!(theta[0] < theta[1], "{theta:?}");
    }

    #[test]
    fn fit_finds_the_noise_of_noisy_data_and_none_in_clean_data() {
        let mut rng = SplitMix64::new(5);
        let x: Vec<Vec<f64>> = (0..40).map(|_| vec![rng.f64(), rng.f64()]).collect();
        let clean: Vec<f64> = x.iter().map(|p| (3.0 * p[0]).sin() + p[1]).collect();
        let noisy: Vec<f64> = clean.iter().map(|v| v + 0.3 * rng.normal()).collect();
        let layout = layout(2);
        let prior = Prior::default();
        let noise_of = |y: &[f64]| {
            let (y, _) = crate::warping::standardise(y);
            let set = TrainingSet::new(&layout, &x, &y);
            let starts = [prior.centre(2), prior.noisy_start(2)];
            let (theta, _) = set.fit(&prior, &starts, &Settings::default());
            hyperparameters(&theta).noise
        };
        let (noisy_fit, clean_fit) = (noise_of(&noisy), noise_of(&clean));
        // The standardised noise variance is about 0.09 / 0.35 ≈ 0.25.
        assert!(noisy_fit > 0.05, "noisy data fitted with noise {noisy_fit}");
        assert!(clean_fit < 1e-3, "clean data fitted with noise {clean_fit}");
    }

    #[test]
    fn prediction_interpolates_training_points_with_tiny_noise() {
        let (x, y) = data(12, 3);
        let hyper = Hyperparameters {
            lengths: vec![0.3, 0.4],
            signal: 1.0,
            noise: 1e-8,
        };
        let posterior = Posterior::new(&layout(2), &hyper, x.clone(), &y).unwrap();
        for (p, target) in x.iter().zip(&y) {
            let (mean, variance) = posterior.predict(p);
            assert!((mean - target).abs() < 1e-4, "{mean} vs {target}");
            assert!(variance < 1e-5, "{variance}");
        }
        // Far from the data the variance returns to the signal variance.
        let (_, far) = posterior.predict(&[30.0, -30.0]);
        assert!((far - 1.0).abs() < 1e-9);
    }

    #[test]
    fn prediction_gradients_match_finite_differences() {
        let (x, y) = data(10, 4);
        let hyper = Hyperparameters {
            lengths: vec![0.3, 0.5],
            signal: 1.3,
            noise: 1e-4,
        };
        let posterior = Posterior::new(&layout(2), &hyper, x, &y).unwrap();
        let point = [0.37, 0.61];
        let (mut dm, mut dv) = (vec![0.0; 2], vec![0.0; 2]);
        let (mean, variance) = posterior.predict_with_gradient(&point, &mut dm, &mut dv);
        let (m2, v2) = posterior.predict(&point);
        assert!((mean - m2).abs() < 1e-12 && (variance - v2).abs() < 1e-12);
        for c in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (point, point);
            up[c] += h;
            down[c] -= h;
            let (mu, vu) = posterior.predict(&up);
            let (md, vd) = posterior.predict(&down);
            assert!(((mu - md) / (2.0 * h) - dm[c]).abs() < 1e-6);
            assert!(((vu - vd) / (2.0 * h) - dv[c]).abs() < 1e-6);
        }
    }

    #[test]
    fn inverse_from_cholesky_inverts() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let l = math::cholesky(&a, 3).unwrap();
        let inv = inverse_from_cholesky(&l, 3);
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
}
