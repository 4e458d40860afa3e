//! The Matérn 5/2 kernel with automatic relevance determination (ARD).
//!
//! ```text
//! k(x, x') = s² · m(r),   m(r) = (1 + √5·r + 5/3·r²) · e^(−√5·r),
//! r² = Σ_c w_c · (x_c − x'_c)² / ℓ_g(c)²
//! ```
//!
//! Each column `c` belongs to a group `g(c)` (one per modelled dimension)
//! with its own length scale `ℓ_g`, and carries a weight `w_c` (½ on the
//! one-hot columns of a choice, so two distinct choices are exactly one
//! length scale apart; 1 elsewhere). The Matérn 5/2 kernel is twice
//! differentiable, which Snoek, Larochelle & Adams (2012) recommend over the
//! squared exponential, whose smoothness is unrealistic for most objectives.
//!
//! The derivatives all go through `g(r) = −dm/d(r²) = 5/6 · (1 + √5·r) ·
//! e^(−√5·r)`, which is finite at `r = 0`.

/// Where each column belongs: the length scale it uses and its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The number of groups (length scales).
    pub groups: usize,
    /// The group of each column.
    pub column_group: Vec<usize>,
    /// The weight of each column's squared distance.
    pub column_weight: Vec<f64>,
}

impl Layout {
    /// The number of columns.
    pub fn width(&self) -> usize {
        self.column_group.len()
    }
}

/// `√5`.
const SQRT_5: f64 = 2.236_067_977_499_79;

/// The Matérn 5/2 correlation at scaled distance `r ≥ 0`.
pub fn matern52(r: f64) -> f64 {
    (1.0 + SQRT_5 * r + 5.0 / 3.0 * r * r) * (-SQRT_5 * r).exp()
}

/// `−dm/d(r²)` of [`matern52`] at scaled distance `r ≥ 0`.
pub fn matern52_slope(r: f64) -> f64 {
    5.0 / 6.0 * (1.0 + SQRT_5 * r) * (-SQRT_5 * r).exp()
}

/// The kernel's hyper-parameters, in natural units.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyperparameters {
    /// One length scale per group.
    pub lengths: Vec<f64>,
    /// The signal variance `s²`.
    pub signal: f64,
    /// The noise variance (added to the diagonal of the training covariance).
    pub noise: f64,
}

/// The Matérn 5/2 ARD kernel with fixed hyper-parameters.
#[derive(Clone, Debug)]
pub struct Matern52 {
    /// Per column: `w_c / ℓ_g(c)²`.
    column_scale: Vec<f64>,
    /// The signal variance `s²`.
    signal: f64,
}

impl Matern52 {
    /// The kernel of `hyper` over the columns of `layout`.
    pub fn new(layout: &Layout, hyper: &Hyperparameters) -> Self {
        let column_scale = layout
            .column_group
            .iter()
            .zip(&layout.column_weight)
            .map(|(&g, &w)| w / (hyper.lengths[g] * hyper.lengths[g]))
            .collect();
        Matern52 {
            column_scale,
            signal: hyper.signal,
        }
    }

    /// The signal variance: `k(x, x)`.
    pub fn signal(&self) -> f64 {
        self.signal
    }

    /// The squared scaled distance `r²` between `a` and `b`.
    pub fn scaled_distance_squared(&self, a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .zip(&self.column_scale)
            .map(|((x, y), s)| s * (x - y) * (x - y))
            .sum()
    }

    /// `k(a, b)`.
    pub fn covariance(&self, a: &[f64], b: &[f64]) -> f64 {
        self.signal * matern52(self.scaled_distance_squared(a, b).sqrt())
    }

    /// `k(a, b)`, and adds `∂k(a, b)/∂a` into `gradient` (one entry per
    /// column).
    pub fn covariance_with_gradient(&self, a: &[f64], b: &[f64], gradient: &mut [f64]) -> f64 {
        let r = self.scaled_distance_squared(a, b).sqrt();
        // ∂k/∂a_c = s² · (−g(r)) · 2 · scale_c · (a_c − b_c).
        let factor = -2.0 * self.signal * matern52_slope(r);
        for (((g, x), y), s) in gradient.iter_mut().zip(a).zip(b).zip(&self.column_scale) {
            *g += factor * s * (x - y);
        }
        self.signal * matern52(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_sdk::math;

    fn layout() -> Layout {
        Layout {
            groups: 3,
            column_group: vec![0, 1, 2, 2, 2],
            column_weight: vec![1.0, 1.0, 0.5, 0.5, 0.5],
        }
    }

    fn hyper() -> Hyperparameters {
        Hyperparameters {
            lengths: vec![0.3, 1.2, 0.7],
            signal: 1.7,
            noise: 1e-6,
        }
    }

    #[test]
    fn matern_values_by_hand() {
        assert_eq!(matern52(0.0), 1.0);
        // r = 1: (1 + √5 + 5/3) e^{−√5}.
        let want = (1.0 + 5f64.sqrt() + 5.0 / 3.0) * (-(5f64.sqrt())).exp();
        assert!((matern52(1.0) - want).abs() < 1e-15);
        // The slope is −dm/d(r²), checked by central differences in r².
        for r in [0.1, 0.5, 1.0, 2.5] {
            let h = 1e-6;
            let m = |r2: f64| matern52(f64::sqrt(r2));
            let numeric = -(m(r * r + h) - m(r * r - h)) / (2.0 * h);
            assert!((numeric - matern52_slope(r)).abs() < 1e-8, "r = {r}");
        }
    }

    #[test]
    fn distinct_choices_are_one_length_scale_apart() {
        let k = Matern52::new(&layout(), &hyper());
        let a = [0.0, 0.0, 1.0, 0.0, 0.0];
        let b = [0.0, 0.0, 0.0, 1.0, 0.0];
        let r2 = k.scaled_distance_squared(&a, &b);
        assert!((r2 - 1.0 / (0.7 * 0.7)).abs() < 1e-12);
    }

    #[test]
    fn covariance_matrices_are_symmetric_positive_definite() {
        let k = Matern52::new(&layout(), &hyper());
        let mut rng = pf_sdk::SplitMix64::new(4);
        use pf_sdk::RandomExt;
        let points: Vec<Vec<f64>> = (0..25)
            .map(|_| {
                let mut p: Vec<f64> = (0..2).map(|_| rng.f64()).collect();
                let c = rng.below(3) as usize;
                p.extend((0..3).map(|i| if i == c { 1.0 } else { 0.0 }));
                p
            })
            .collect();
        let n = points.len();
        let mut matrix = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                matrix[i * n + j] = k.covariance(&points[i], &points[j]);
            }
        }
        for i in 0..n {
            assert!((matrix[i * n + i] - 1.7).abs() < 1e-15);
            for j in 0..n {
                assert_eq!(matrix[i * n + j], matrix[j * n + i]);
            }
            // A small jitter for the repeated one-hot blocks' near-duplicates.
            matrix[i * n + i] += 1e-9;
        }
        math::cholesky(&matrix, n).expect("positive definite");
        // And vᵀ K v ≥ 0 for random v.
        for _ in 0..20 {
            let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let quad: f64 = (0..n)
                .map(|i| (0..n).map(|j| v[i] * matrix[i * n + j] * v[j]).sum::<f64>())
                .sum();
            assert!(quad > 0.0);
        }
    }

    #[test]
    fn input_gradient_matches_finite_differences() {
        let k = Matern52::new(&layout(), &hyper());
        let a = [0.2, 0.9, 0.0, 1.0, 0.0];
        let b = [0.6, 0.1, 1.0, 0.0, 0.0];
        let mut gradient = vec![0.0; 5];
        let value = k.covariance_with_gradient(&a, &b, &mut gradient);
        assert_eq!(value, k.covariance(&a, &b));
        for c in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (a, a);
            up[c] += h;
            down[c] -= h;
            let numeric = (k.covariance(&up, &b) - k.covariance(&down, &b)) / (2.0 * h);
            assert!((numeric - gradient[c]).abs() < 1e-7, "column {c}");
        }
    }
}
