//! Parzen (kernel density) estimators on the unit cube: the l(x) and g(x)
//! densities of TPE.
//!
//! An estimator is a weighted mixture of *components*: one per observation,
//! plus one *prior* component. A component is a product of one kernel per
//! axis:
//!
//! * a numeric axis (float or int, on a linear or log scale, already mapped
//!   into `[0, 1]` by `ParamSpec::to_unit`) has a normal kernel truncated to
//!   `[0, 1]`, centred on the observation, or on ½ with a bandwidth of the
//!   whole range for the prior; a point is scored by the density there on a
//!   float axis, and by the probability of its integer's cell on an int axis;
//! * a categorical axis (choice, boolean) with `K` categories has a
//!   categorical kernel: the observation's own category with weight 1, and
//!   every category (its own included) with a smoothing share
//!   `prior_weight / (n + 1)` for `n` observations, normalised; the prior's
//!   kernel is uniform.
//!
//! With one axis (univariate TPE) a categorical estimator is the classic
//! weighted count of each category plus a uniform prior; with all axes at once
//! (multivariate TPE) one component is drawn, and then every axis from that
//! component's kernel, so the dimensions that were good together are proposed
//! together.

use pf_sdk::math::normal_cdf;
use pf_sdk::RandomExt;

/// `ln √(2π)`.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// The smallest bandwidth any numeric kernel gets, whatever the options: keeps
/// densities finite when observations coincide and the magic clip is off.
const MIN_BANDWIDTH: f64 = 1e-6;

/// How many draws a truncated-normal sample may reject before it falls back
/// to clamping (each draw lands in `[0, 1]` with probability above ⅓, so the
/// fallback practically never happens).
const MAX_REJECTIONS: usize = 64;

/// How many kernels this thread has fitted and evaluated: the work a
/// suggestion does, counted for the tests (test builds only).
#[cfg(test)]
pub(crate) mod work {
    use std::cell::Cell;

    thread_local! {
        static FITTED: Cell<u64> = const { Cell::new(0) };
        static EVALUATED: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn fitted(kernels: usize) {
        FITTED.with(|c| c.set(c.get() + kernels as u64));
    }

    pub(super) fn evaluated(kernels: usize) {
        EVALUATED.with(|c| c.set(c.get() + kernels as u64));
    }

    /// The kernels fitted and evaluated on this thread since the last call.
    pub(crate) fn take() -> (u64, u64) {
        (
            FITTED.with(|c| c.replace(0)),
            EVALUATED.with(|c| c.replace(0)),
        )
    }
}

/// What kind of values an axis of the unit cube holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// A position in `[0, 1]` (a float dimension).
    Numeric,
    /// An int dimension of `low..=high`, mapped as `ParamSpec::to_unit` maps
    /// it: `[low − ½, high + ½]` (in logarithms on a log scale) stretched
    /// onto `[0, 1]`, so each integer owns a *cell* of the unit interval.
    /// Its kernels are those of a numeric axis, and a point is scored by the
    /// probability of its integer's cell.
    Integer {
        /// The smallest integer.
        low: i64,
        /// The largest integer.
        high: i64,
        /// Whether the axis is logarithmic (`low ≥ 1`).
        log: bool,
    },
    /// One of `n` categories, the `k`-th at position `(k + ½) / n` (a choice
    /// or boolean dimension).
    Categorical(usize),
}

impl Axis {
    /// The category of the unit position `u` on a categorical axis of `n`
    /// categories (the share of `[0, 1]` that `u` falls in).
    pub fn category(n: usize, u: f64) -> usize {
        ((u * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// The unit position of the `k`-th of `n` categories (the middle of its
    /// share, as `ParamSpec::to_unit` places it).
    pub fn position(n: usize, k: usize) -> f64 {
        (k as f64 + 0.5) / n as f64
    }

    /// How a kernel reads the unit position `u` on this axis.
    fn probe(&self, u: f64) -> Probe {
        match *self {
            Axis::Numeric | Axis::Categorical(_) => Probe::Point(u),
            Axis::Integer { low, high, log } => {
                let scale = |x: f64| if log { x.ln() } else { x };
                let (lo, hi) = (scale(low as f64 - 0.5), scale(high as f64 + 0.5));
                let x = lo + u.clamp(0.0, 1.0) * (hi - lo);
                let x = if log { x.exp() } else { x };
                // Casting saturates, and the clamp keeps rounding inside.
                let i = (x.round() as i64).clamp(low, high) as f64;
                let at = |x: f64| ((scale(x) - lo) / (hi - lo)).clamp(0.0, 1.0);
                Probe::Cell(at(i - 0.5), at(i + 0.5))
            }
        }
    }
}

/// Where a point lies along one axis, as its kernels read it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Probe {
    /// A position, scored by the density there.
    Point(f64),
    /// The cell `[a, b]` of an integer, scored by its probability.
    Cell(f64, f64),
}

/// How the bandwidths of the observations' numeric kernels are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bandwidth {
    /// Each observation's bandwidth is the larger of the distances to its two
    /// neighbours along the axis, the prior's centre (½) counted among them
    /// (Bergstra et al. 2011, §4.1). The outermost observations take the
    /// distance to their one neighbour, or, with `consider_endpoints`, the
    /// larger of that and the distance to the bound.
    Neighbours {
        /// Count the bounds 0 and 1 as neighbours of the outermost points.
        consider_endpoints: bool,
    },
    /// One bandwidth for every observation, `0.2 · n^(−1/(d+4))` of the range
    /// for `n` observations in `d` dimensions: Scott's rule of thumb for a
    /// product kernel (Scott 1992), as a multivariate estimator needs one
    /// scale for all components.
    Scott {
        /// The number of dimensions `d` of the joint estimator.
        dims: usize,
    },
}

/// The settings an estimator is fitted with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitSettings {
    /// The weight of the prior component, relative to an observation's
    /// weight of (at most) 1.
    pub prior_weight: f64,
    /// The rule for the observations' numeric bandwidths.
    pub bandwidth: Bandwidth,
    /// Clip numeric bandwidths into `[1 / min(100, scale · (1 + n)), 1]`
    /// for `n` observations, with `Some(scale)`: Bergstra et al.'s "magic
    /// clip" (at scale 1), which keeps kernels from collapsing onto clustered
    /// observations while there are few of them. `None`: no clip.
    pub magic_clip: Option<f64>,
}

/// One component's kernel along one axis.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kernel {
    /// A normal density of centre `mu` and bandwidth `sigma`, truncated to
    /// `[0, 1]`; `log_mass` is `ln Z` for the mass `Z` that the untruncated
    /// normal puts on `[0, 1]`, and `log_scale` is `ln(σ · √(2π) · Z)`.
    Normal {
        mu: f64,
        sigma: f64,
        log_mass: f64,
        log_scale: f64,
    },
    /// A categorical distribution over `n` categories: `category` (none for
    /// the prior, which is uniform) with weight 1, and every category with
    /// weight `share` (normalised by `1 + n · share`).
    Categorical {
        n: usize,
        category: Option<usize>,
        share: f64,
    },
}

impl Kernel {
    fn normal(mu: f64, sigma: f64) -> Kernel {
        let sigma = sigma.max(MIN_BANDWIDTH);
        let mass = normal_cdf((1.0 - mu) / sigma) - normal_cdf(-mu / sigma);
        // Centres lie in [0, 1], so at least about a third of the mass is
        // inside; the floor only guards against rounding.
        let log_mass = mass.max(f64::MIN_POSITIVE).ln();
        Kernel::Normal {
            mu,
            sigma,
            log_mass,
            log_scale: sigma.ln() + LN_SQRT_2PI + log_mass,
        }
    }

    /// `ln k(u)` at a point, or the log of the probability `k` gives a cell.
    fn log_density(&self, probe: Probe) -> f64 {
        match (*self, probe) {
            (
                Kernel::Normal {
                    mu,
                    sigma,
                    log_scale,
                    ..
                },
                Probe::Point(u),
            ) => {
                let z = (u - mu) / sigma;
                -0.5 * z * z - log_scale
            }
            (
                Kernel::Normal {
                    mu,
                    sigma,
                    log_mass,
                    log_scale,
                },
                Probe::Cell(a, b),
            ) => {
                let (za, zb) = ((a - mu) / sigma, (b - mu) / sigma);
                // Differences of Φ taken in the lower tail, where Φ is accurate.
                let mass = if za > 0.0 {
                    normal_cdf(-za) - normal_cdf(-zb)
                } else {
                    normal_cdf(zb) - normal_cdf(za)
                };
                if mass > 1e-12 * (zb - za) {
                    mass.ln() - log_mass
                } else {
                    // A cell too narrow (or too far out) for the difference:
                    // the density at its middle times its width.
                    let z = 0.5 * (za + zb);
                    -0.5 * z * z - log_scale + (b - a).max(f64::MIN_POSITIVE).ln()
                }
            }
            (Kernel::Categorical { n, category, share }, Probe::Point(u) | Probe::Cell(u, _)) => {
                match category {
                    None => -(n as f64).ln(),
                    Some(c) => {
                        let own = if Axis::category(n, u) == c { 1.0 } else { 0.0 };
                        ((own + share) / (1.0 + n as f64 * share)).ln()
                    }
                }
            }
        }
    }

    /// One unit position drawn from the kernel.
    fn sample(&self, rng: &mut impl RandomExt) -> f64 {
        match *self {
            Kernel::Normal { mu, sigma, .. } => {
                for _ in 0..MAX_REJECTIONS {
                    let u = mu + sigma * rng.normal();
                    if (0.0..=1.0).contains(&u) {
                        return u;
                    }
                }
                mu.clamp(0.0, 1.0)
            }
            Kernel::Categorical { n, category, share } => {
                // The own category's weight 1 first, then the shares (which
                // spread evenly, the own category's included).
                let k = match category {
                    Some(c) if rng.f64() * (1.0 + n as f64 * share) < 1.0 => c,
                    _ => rng.below(n as u64) as usize,
                };
                Axis::position(n, k)
            }
        }
    }
}

/// A weighted mixture of product kernels over some axes of the unit cube.
#[derive(Clone, Debug)]
pub struct Parzen {
    /// The axes.
    axes: Vec<Axis>,
    /// The number of axes.
    dims: usize,
    /// Each component's log weight (the weights sum to 1).
    log_weights: Vec<f64>,
    /// The running sums of the weights, for drawing a component.
    cumulative: Vec<f64>,
    /// The kernels, component-major: component `c`'s kernel on axis `a` is
    /// `kernels[c * dims + a]`.
    kernels: Vec<Kernel>,
}

impl Parzen {
    /// Fits an estimator to observations: `columns[a][i]` is observation
    /// `i`'s unit position on `axes[a]`, and `weights[i]` its weight (in
    /// `(0, 1]`). The prior component comes first, with weight
    /// `settings.prior_weight`; without observations it is the whole
    /// estimator (whatever its weight).
    ///
    /// # Panics
    /// When `columns` or `weights` do not match `axes` and each other.
    pub fn fit(
        axes: &[Axis],
        columns: &[&[f64]],
        weights: &[f64],
        settings: &FitSettings,
    ) -> Parzen {
        assert_eq!(axes.len(), columns.len(), "one column per axis");
        let n = weights.len();
        assert!(
            columns.iter().all(|c| c.len() == n),
            "one weight per observation"
        );
        let dims = axes.len();

        let prior_weight = if n == 0 {
            1.0
        } else {
            settings.prior_weight.max(0.0)
        };
        let total = prior_weight + weights.iter().sum::<f64>();
        let mut log_weights = Vec::with_capacity(n + 1);
        let mut cumulative = Vec::with_capacity(n + 1);
        let mut running = 0.0;
        for w in std::iter::once(prior_weight).chain(weights.iter().copied()) {
            let w = w / total;
            log_weights.push(w.ln());
            running += w;
            cumulative.push(running);
        }

        // Component-major kernels, filled axis by axis.
        let mut kernels = vec![Kernel::normal(0.5, 1.0); (n + 1) * dims];
        for (a, (axis, column)) in axes.iter().zip(columns).enumerate() {
            match *axis {
                Axis::Numeric | Axis::Integer { .. } => {
                    let sigmas = bandwidths(column, settings);
                    kernels[a] = Kernel::normal(0.5, 1.0);
                    for (i, (&mu, sigma)) in column.iter().zip(sigmas).enumerate() {
                        kernels[(i + 1) * dims + a] = Kernel::normal(mu, sigma);
                    }
                }
                Axis::Categorical(k) => {
                    // Each observation smooths its kernel with the weight the
                    // prior has among n + 1 components, on every category: a
                    // kernel never rules a category out, and the smoothing
                    // fades as observations accumulate.
                    let share = settings.prior_weight.max(0.0) / (n as f64 + 1.0);
                    kernels[a] = Kernel::Categorical {
                        n: k,
                        category: None,
                        share: 0.0,
                    };
                    for (i, &u) in column.iter().enumerate() {
                        kernels[(i + 1) * dims + a] = Kernel::Categorical {
                            n: k,
                            category: Some(Axis::category(k, u)),
                            share,
                        };
                    }
                }
            }
        }
        #[cfg(test)]
        work::fitted(kernels.len());
        Parzen {
            axes: axes.to_vec(),
            dims,
            log_weights,
            cumulative,
            kernels,
        }
    }

    /// The number of components (the prior included).
    pub fn components(&self) -> usize {
        self.log_weights.len()
    }

    /// The log density at `x` (one unit position per axis; a categorical
    /// axis reads the category whose share holds the position, an integer
    /// axis the probability of the cell that holds it).
    pub fn log_density(&self, x: &[f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dims);
        #[cfg(test)]
        work::evaluated(self.kernels.len());
        let probes: Vec<Probe> = self.axes.iter().zip(x).map(|(a, &u)| a.probe(u)).collect();
        let mut terms = Vec::with_capacity(self.components());
        let mut largest = f64::NEG_INFINITY;
        for (c, log_w) in self.log_weights.iter().enumerate() {
            let kernels = &self.kernels[c * self.dims..(c + 1) * self.dims];
            let term = log_w
                + kernels
                    .iter()
                    .zip(&probes)
                    .map(|(k, &p)| k.log_density(p))
                    .sum::<f64>();
            largest = largest.max(term);
            terms.push(term);
        }
        if largest == f64::NEG_INFINITY {
            return largest;
        }
        largest + terms.iter().map(|t| (t - largest).exp()).sum::<f64>().ln()
    }

    /// A point drawn from the estimator into `out` (one unit position per
    /// axis): a component by weight, then each axis from its kernel.
    pub fn sample_into(&self, rng: &mut impl RandomExt, out: &mut Vec<f64>) {
        let r = rng.f64() * self.cumulative.last().copied().unwrap_or(1.0);
        let c = self
            .cumulative
            .iter()
            .position(|&s| r < s)
            .unwrap_or(self.components() - 1);
        out.clear();
        out.extend(
            self.kernels[c * self.dims..(c + 1) * self.dims]
                .iter()
                .map(|k| k.sample(rng)),
        );
    }
}

/// The bandwidths of the kernels centred on `centres` (unit positions).
fn bandwidths(centres: &[f64], settings: &FitSettings) -> Vec<f64> {
    let n = centres.len();
    let mut sigmas = match settings.bandwidth {
        Bandwidth::Scott { dims } => {
            let sigma = 0.2 * (n.max(1) as f64).powf(-1.0 / (dims as f64 + 4.0));
            vec![sigma; n]
        }
        Bandwidth::Neighbours { consider_endpoints } => {
            neighbour_bandwidths(centres, consider_endpoints)
        }
    };
    if let Some(scale) = settings.magic_clip {
        let low = 1.0 / (scale * (1.0 + n as f64)).min(100.0);
        for s in &mut sigmas {
            *s = s.clamp(low, 1.0);
        }
    }
    sigmas
}

/// Each centre's bandwidth by the neighbour rule of [`Bandwidth::Neighbours`],
/// with the prior's centre ½ among the neighbours.
fn neighbour_bandwidths(centres: &[f64], consider_endpoints: bool) -> Vec<f64> {
    // Sort the centres with the prior's (marked by index `None`).
    let mut sorted: Vec<(f64, Option<usize>)> = centres
        .iter()
        .enumerate()
        .map(|(i, &u)| (u, Some(i)))
        .chain(std::iter::once((0.5, None)))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let last = sorted.len() - 1;
    let mut sigmas = vec![1.0; centres.len()];
    for (rank, &(u, index)) in sorted.iter().enumerate() {
        let Some(i) = index else { continue };
        let left = if rank > 0 {
            Some(u - sorted[rank - 1].0)
        } else if consider_endpoints {
            Some(u)
        } else {
            None
        };
        let right = if rank < last {
            Some(sorted[rank + 1].0 - u)
        } else if consider_endpoints {
            Some(1.0 - u)
        } else {
            None
        };
        sigmas[i] = match (left, right) {
            (Some(l), Some(r)) => l.max(r),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => 1.0,
        };
    }
    sigmas
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_sdk::SplitMix64;

    const SETTINGS: FitSettings = FitSettings {
        prior_weight: 1.0,
        bandwidth: Bandwidth::Neighbours {
            consider_endpoints: false,
        },
        magic_clip: Some(1.0),
    };

    #[test]
    fn neighbour_bandwidths_take_the_larger_gap_prior_included() {
        // Sorted with the prior: 0.1, 0.2, 0.5 (prior), 0.9.
        let s = neighbour_bandwidths(&[0.9, 0.1, 0.2], false);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(s[0], 0.4), "{s:?}"); // last: its one neighbour, the prior
        assert!(close(s[1], 0.1), "{s:?}"); // first: its one neighbour
        assert!(close(s[2], 0.3), "{s:?}"); // max(0.1, 0.3)
        let s = neighbour_bandwidths(&[0.9, 0.1, 0.2], true);
        assert!(close(s[1], 0.1) && close(s[0], 0.4), "{s:?}");
        let s = neighbour_bandwidths(&[0.02], true);
        assert!(close(s[0], 0.48), "{s:?}");
    }

    #[test]
    fn the_magic_clip_bounds_bandwidths() {
        let centres = [0.3, 0.3, 0.3];
        let s = bandwidths(&centres, &SETTINGS);
        assert!(s.iter().all(|&x| (x - 0.25).abs() < 1e-12), "{s:?}");
        let unclipped = FitSettings {
            magic_clip: None,
            ..SETTINGS
        };
        assert!(bandwidths(&centres, &unclipped).iter().any(|&x| x < 0.25));
        let many: Vec<f64> = (0..500).map(|i| i as f64 / 500.0).collect();
        let s = bandwidths(&many, &SETTINGS);
        assert!(s.iter().all(|&x| x >= 0.01 - 1e-15), "floor is 1/100");
        let scott = FitSettings {
            bandwidth: Bandwidth::Scott { dims: 2 },
            ..SETTINGS
        };
        let s = bandwidths(&[0.5; 64], &scott);
        assert!((s[0] - 0.2 * 64f64.powf(-1.0 / 6.0)).abs() < 1e-12);
    }

    /// ∫₀¹ exp(log_density) by the midpoint rule.
    fn mass(p: &Parzen) -> f64 {
        let steps = 20_000;
        (0..steps)
            .map(|i| p.log_density(&[(i as f64 + 0.5) / steps as f64]).exp())
            .sum::<f64>()
            / steps as f64
    }

    #[test]
    fn numeric_densities_integrate_to_one_on_the_unit_interval() {
        let column = [0.0, 0.05, 0.4, 0.41, 1.0];
        let p = Parzen::fit(
            &[Axis::Numeric],
            &[&column],
            &[1.0, 0.5, 1.0, 1.0, 0.2],
            &SETTINGS,
        );
        assert_eq!(p.components(), 6);
        assert!((mass(&p) - 1.0).abs() < 1e-3, "{}", mass(&p));
        let prior_only = Parzen::fit(&[Axis::Numeric], &[&[]], &[], &SETTINGS);
        assert!((mass(&prior_only) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn categorical_densities_sum_to_one_and_favour_observed_categories() {
        let column = [
            Axis::position(4, 2),
            Axis::position(4, 2),
            Axis::position(4, 0),
        ];
        let axes = [Axis::Categorical(4)];
        let p = Parzen::fit(&axes, &[&column], &[1.0; 3], &SETTINGS);
        let probs: Vec<f64> = (0..4)
            .map(|k| p.log_density(&[Axis::position(4, k)]).exp())
            .collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{probs:?}");
        assert!(probs[2] > probs[0] && probs[0] > probs[1], "{probs:?}");
        assert!(probs[1] > 0.0 && (probs[1] - probs[3]).abs() < 1e-15);
    }

    #[test]
    fn samples_stay_in_the_unit_cube_and_follow_the_density() {
        let axes = [Axis::Numeric, Axis::Categorical(3)];
        let xs = [0.9, 0.92, 0.95];
        let cs = [Axis::position(3, 1); 3];
        let p = Parzen::fit(&axes, &[&xs, &cs], &[1.0; 3], &SETTINGS);
        let mut rng = SplitMix64::new(5);
        let mut x = Vec::new();
        let (mut high, mut middle) = (0, 0);
        for _ in 0..2000 {
            p.sample_into(&mut rng, &mut x);
            assert!((0.0..=1.0).contains(&x[0]) && (0.0..=1.0).contains(&x[1]));
            high += usize::from(x[0] > 0.5);
            middle += usize::from(Axis::category(3, x[1]) == 1);
            assert!(p.log_density(&x).is_finite());
        }
        // Three of the four components sit near 0.9 and in category 1, where
        // an observation's kernel puts (1 + ¼) / (1 + 3·¼) of its mass; the
        // prior a third: 2000 · (¾ · 5/7 + ¼ · ⅓) ≈ 1238 in category 1.
        assert!(high > 1300, "{high}");
        assert!((1138..1338).contains(&middle), "{middle}");
    }

    #[test]
    fn integer_cells_get_probabilities_that_sum_to_one() {
        for (low, high, log) in [(0i64, 4i64, false), (1, 100, true), (7, 7, false)] {
            let axis = Axis::Integer { low, high, log };
            let scale = |x: f64| if log { x.ln() } else { x };
            let (lo, hi) = (scale(low as f64 - 0.5), scale(high as f64 + 0.5));
            let centre = |i: i64| (scale(i as f64) - lo) / (hi - lo);
            let column = [centre(low), centre(high), centre((low + high) / 2)];
            let p = Parzen::fit(&[axis], &[&column], &[1.0; 3], &SETTINGS);
            let total: f64 = (low..=high)
                .map(|i| p.log_density(&[centre(i)]).exp())
                .sum();
            assert!(
                (total - 1.0).abs() < 1e-9,
                "[{low}, {high}] log {log}: {total}"
            );
            // Any position inside a cell reads that cell.
            let width = (scale(high as f64 + 0.5) - scale(high as f64 - 0.5)) / (hi - lo);
            let inside = p.log_density(&[centre(high) - 0.4 * width]);
            assert_eq!(inside, p.log_density(&[centre(high)]));
        }
    }

    #[test]
    fn a_zero_prior_weight_without_observations_still_gives_a_density() {
        let settings = FitSettings {
            prior_weight: 0.0,
            ..SETTINGS
        };
        let p = Parzen::fit(&[Axis::Numeric], &[&[]], &[], &settings);
        assert!(p.log_density(&[0.3]).is_finite());
        let p = Parzen::fit(&[Axis::Numeric], &[&[0.3]], &[1.0], &settings);
        assert!(p.log_density(&[0.3]).is_finite());
        assert_eq!(p.log_density(&[0.3]), p.log_density(&[0.3]));
    }
}
