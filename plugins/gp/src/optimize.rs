//! Box-constrained minimisation by projected L-BFGS.
//!
//! A limited-memory BFGS direction (Nocedal 1980; Liu & Nocedal 1989, the
//! two-loop recursion) restricted to the *free* variables — those not held
//! at a bound by a gradient pointing outwards — followed by a backtracking
//! line search along the projected path `P(x + t·d)` with the Armijo
//! condition. This is a simplified L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995)
//! without the generalised Cauchy point; it is enough for the smooth,
//! low-dimensional problems here (kernel hyper-parameters, acquisition
//! refinement).

/// When to stop.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// At most this many iterations (line searches).
    pub max_iterations: usize,
    /// Stop when no free variable's gradient is larger than this.
    pub gradient_tolerance: f64,
    /// Stop when an iteration lowers the value by less than this fraction
    /// of `max(1, |value|)`.
    pub value_tolerance: f64,
    /// The number of correction pairs kept.
    pub memory: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_iterations: 100,
            gradient_tolerance: 1e-5,
            value_tolerance: 1e-9,
            memory: 8,
        }
    }
}

/// The result of [`minimize`].
#[derive(Clone, Debug)]
pub struct Minimum {
    /// The best point found (inside the box).
    pub x: Vec<f64>,
    /// The value there.
    pub value: f64,
    /// The number of function evaluations.
    pub evaluations: usize,
}

/// Minimises `f` over the box `[lower, upper]` from `start` (projected into
/// the box). `f(x, gradient)` returns the value at `x` and writes its
/// gradient; a non-finite value counts as "worse than anything" (the line
/// search backs off from it).
pub fn minimize<F>(
    mut f: F,
    start: &[f64],
    lower: &[f64],
    upper: &[f64],
    settings: &Settings,
) -> Minimum
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = start.len();
    let project = |x: &mut [f64]| {
        for ((v, lo), hi) in x.iter_mut().zip(lower).zip(upper) {
            *v = if v.is_nan() { *lo } else { v.clamp(*lo, *hi) };
        }
    };
    let mut x = start.to_vec();
    project(&mut x);
    let mut gradient = vec![0.0; n];
    let mut value = f(&x, &mut gradient);
    let mut evaluations = 1;
    if !value.is_finite() || n == 0 {
        return Minimum {
            x,
            value,
            evaluations,
        };
    }
    // Correction pairs (s, y, 1 / yᵀs), oldest first.
    let mut pairs: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    let mut trial = vec![0.0; n];
    let mut trial_gradient = vec![0.0; n];
    for _ in 0..settings.max_iterations {
        let free: Vec<bool> = (0..n)
            .map(|i| {
                !((x[i] <= lower[i] && gradient[i] > 0.0)
                    || (x[i] >= upper[i] && gradient[i] < 0.0))
            })
            .collect();
        let largest = (0..n)
            .filter(|&i| free[i])
            .map(|i| gradient[i].abs())
            .fold(0.0, f64::max);
        if largest <= settings.gradient_tolerance {
            break;
        }
        let mut direction = two_loop(&gradient, &free, &pairs);
        let mut slope: f64 = direction.iter().zip(&gradient).map(|(d, g)| d * g).sum();
        if slope.is_nan() || slope >= 0.0 || pairs.is_empty() {
            pairs.clear();
            // Steepest descent, scaled so the largest step is at most 1.
            let scale = 1.0 / largest.max(1.0);
            for i in 0..n {
                direction[i] = if free[i] { -gradient[i] * scale } else { 0.0 };
            }
            slope = direction.iter().zip(&gradient).map(|(d, g)| d * g).sum();
        }
        // Backtracking along the projected path.
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            for i in 0..n {
                trial[i] = x[i] + step * direction[i];
            }
            project(&mut trial);
            let moved: f64 = (0..n).map(|i| (trial[i] - x[i]) * gradient[i]).sum();
            let trial_value = f(&trial, &mut trial_gradient);
            evaluations += 1;
            if trial_value.is_finite() && trial_value <= value + 1e-4 * moved.min(0.0) {
                accepted = Some(trial_value);
                break;
            }
            step *= 0.5;
            if step * slope.abs() < 1e-16 * value.abs().max(1.0) {
                break;
            }
        }
        let Some(trial_value) = accepted else {
            if pairs.is_empty() {
                break;
            }
            // The quasi-Newton direction failed: retry along the gradient.
            pairs.clear();
            continue;
        };
        let s: Vec<f64> = (0..n).map(|i| trial[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| trial_gradient[i] - gradient[i]).collect();
        let ys: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        let improvement = value - trial_value;
        x.copy_from_slice(&trial);
        gradient.copy_from_slice(&trial_gradient);
        value = trial_value;
        if ys > 1e-12 * s.iter().map(|v| v * v).sum::<f64>().max(1e-300) {
            if pairs.len() == settings.memory {
                pairs.remove(0);
            }
            pairs.push((s, y, 1.0 / ys));
        }
        if improvement <= settings.value_tolerance * value.abs().max(1.0) {
            break;
        }
    }
    Minimum {
        x,
        value,
        evaluations,
    }
}

/// The L-BFGS direction `−H·g` over the free variables (the others get 0).
fn two_loop(gradient: &[f64], free: &[bool], pairs: &[(Vec<f64>, Vec<f64>, f64)]) -> Vec<f64> {
    let masked_dot = |a: &[f64], b: &[f64]| -> f64 {
        a.iter()
            .zip(b)
            .zip(free)
            .filter(|(_, f)| **f)
            .map(|((x, y), _)| x * y)
            .sum()
    };
    let mut q: Vec<f64> = gradient
        .iter()
        .zip(free)
        .map(|(g, f)| if *f { *g } else { 0.0 })
        .collect();
    let mut alphas = vec![0.0; pairs.len()];
    for (k, (s, y, rho)) in pairs.iter().enumerate().rev() {
        let a = rho * masked_dot(s, &q);
        alphas[k] = a;
        for i in 0..q.len() {
            q[i] -= a * y[i];
        }
    }
    if let Some((s, y, _)) = pairs.last() {
        let yy = masked_dot(y, y);
        if yy > 0.0 {
            let gamma = masked_dot(s, y) / yy;
            if gamma > 0.0 {
                q.iter_mut().for_each(|v| *v *= gamma);
            }
        }
    }
    for (k, (s, y, rho)) in pairs.iter().enumerate() {
        let b = rho * masked_dot(y, &q);
        for i in 0..q.len() {
            q[i] += s[i] * (alphas[k] - b);
        }
    }
    q.iter()
        .zip(free)
        .map(|(v, f)| if *f { -v } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_rosenbrock() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let settings = Settings {
            max_iterations: 500,
            value_tolerance: 0.0,
            gradient_tolerance: 1e-8,
            ..Settings::default()
        };
        let m = minimize(f, &[-1.2, 1.0], &[-5.0, -5.0], &[5.0, 5.0], &settings);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4,
            "{m:?}"
        );
    }

    #[test]
    fn stops_at_active_bounds() {
        // min (x − 3)² + (y + 2)² over [0, 1]²: the corner (1, 0).
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 3.0);
            g[1] = 2.0 * (x[1] + 2.0);
            (x[0] - 3.0).powi(2) + (x[1] + 2.0).powi(2)
        };
        let m = minimize(f, &[0.5, 0.5], &[0.0; 2], &[1.0; 2], &Settings::default());
        assert_eq!(m.x, vec![1.0, 0.0]);
    }

    #[test]
    fn survives_non_finite_values() {
        // Infinite for x > 0.5; minimum at the bound 0.5 from below.
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = -1.0;
            if x[0] > 0.5 {
                f64::INFINITY
            } else {
                -x[0]
            }
        };
        let m = minimize(f, &[0.0], &[0.0], &[1.0], &Settings::default());
        assert!(
            m.value.is_finite() && m.x[0] <= 0.5 && m.x[0] > 0.4,
            "{m:?}"
        );
    }
}
