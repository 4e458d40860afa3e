//! Small numerical helpers that plugins commonly need: dense linear algebra
//! for small symmetric positive-definite systems (Gaussian processes,
//! least-squares reconstruction), quantiles and the normal distribution.
//!
//! Matrices are row-major slices of `n·n` `f64`s. Nothing here calls the host.

use crate::{Error, Result};

/// The lower-triangular Cholesky factor `L` of the symmetric positive-definite
/// `n×n` matrix `a` (`a = L·Lᵀ`), row-major. Only the lower triangle of `a` is
/// read. A matrix that is not positive definite (or has NaNs) is a
/// `numerical` error; add a small multiple of the identity (jitter) and retry.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    if a.len() != n * n {
        return Err(Error::invalid_argument(format!(
            "cholesky: {} entries for a {n}×{n} matrix",
            a.len()
        )));
    }
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 || !s.is_finite() {
                    return Err(Error::numerical(format!(
                        "cholesky: the matrix is not positive definite (pivot {i} is {s})"
                    )));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// Solves `L·Lᵀ·x = b` given the Cholesky factor `l` of [`cholesky`].
pub fn cholesky_solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    assert_eq!(l.len(), n * n, "cholesky_solve: factor is not {n}×{n}");
    assert_eq!(
        b.len(),
        n,
        "cholesky_solve: right-hand side is not of length {n}"
    );
    // Forward: L·y = b.
    let mut y = b.to_vec();
    for i in 0..n {
        let mut s = y[i];
        for k in 0..i {
            s -= l[i * n + k] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
    // Backward: Lᵀ·x = y.
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l[k * n + i] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
    y
}

/// Solves `a·x = b` for a symmetric positive-definite `n×n` matrix `a`.
pub fn solve_spd(a: &[f64], n: usize, b: &[f64]) -> Result<Vec<f64>> {
    if b.len() != n {
        return Err(Error::invalid_argument(format!(
            "solve_spd: right-hand side of length {} for a {n}×{n} matrix",
            b.len()
        )));
    }
    let l = cholesky(a, n)?;
    Ok(cholesky_solve(&l, n, b))
}

/// `ln det(a)` from the Cholesky factor `l` of `a`.
pub fn cholesky_log_det(l: &[f64], n: usize) -> f64 {
    (0..n).map(|i| l[i * n + i].ln()).sum::<f64>() * 2.0
}

/// The `q`-quantile (`0 ≤ q ≤ 1`) of `values` by linear interpolation between
/// order statistics (the same rule as the host's `tensor.quantile`); `None`
/// for an empty slice or a `q` outside `[0, 1]`. NaNs sort above everything.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(if lo == hi {
        sorted[lo]
    } else {
        sorted[lo] + (sorted[hi] - sorted[lo]) * frac
    })
}

/// The indices that sort `values` ascending (NaNs last).
pub fn argsort(values: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    idx
}

/// The arithmetic mean; NaN for an empty slice.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The population variance; NaN for an empty slice.
pub fn variance(values: &[f64]) -> f64 {
    let m = mean(values);
    values.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / values.len() as f64
}

/// The standard normal density φ(x).
pub fn normal_pdf(x: f64) -> f64 {
    const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
    INV_SQRT_2PI * (-0.5 * x * x).exp()
}

/// The standard normal distribution function Φ(x), accurate in the tails
/// (relative error about 1e-14 down to Φ ≈ 1e-300).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The error function.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() < 2.5 {
        erf_series(x)
    } else {
        x.signum() * (1.0 - erfc_fraction(x.abs()))
    }
}

/// The complementary error function `1 - erf(x)`, without cancellation for
/// large `x`.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        2.0 - erfc(-x)
    } else if x < 2.5 {
        1.0 - erf_series(x)
    } else {
        erfc_fraction(x)
    }
}

/// erf by its Maclaurin series `2/√π Σ (-1)ⁿ x²ⁿ⁺¹ / (n! (2n+1))`; used for
/// |x| < 2.5, where the terms stay below e^6.25 and about 1e-13 is kept.
fn erf_series(x: f64) -> f64 {
    const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    let x2 = x * x;
    let mut term = x; // (-1)ⁿ x²ⁿ⁺¹ / n!
    let mut sum = x;
    for n in 1..200 {
        term *= -x2 / n as f64;
        let add = term / (2 * n + 1) as f64;
        sum += add;
        if add.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    TWO_OVER_SQRT_PI * sum
}

/// erfc for x ≥ 2.5 by its continued fraction
/// `e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`, evaluated with
/// the modified Lentz method.
fn erfc_fraction(x: f64) -> f64 {
    const INV_SQRT_PI: f64 = 0.564_189_583_547_756_3;
    const TINY: f64 = 1e-300;
    // f = b0 + a1/(b1 + a2/(b2 + ...)) with b_k = x, a_k = k/2.
    let mut f = x;
    let mut c = f;
    let mut d = 0.0;
    for k in 1..500 {
        let a = k as f64 * 0.5;
        d = x + a * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = x + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    INV_SQRT_PI * (-x * x).exp() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn erf_matches_reference_values() {
        // Reference values to 16 digits.
        let cases = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.4, 0.999311486103355),
            (3.0, 0.9999779095030014),
        ];
        for (x, want) in cases {
            assert!(
                close(erf(x), want, 1e-13),
                "erf({x}) = {} not {want}",
                erf(x)
            );
            assert!(close(erf(-x), -want, 1e-13));
        }
    }

    #[test]
    fn erfc_is_accurate_in_the_tail() {
        let cases = [
            (0.5, 0.4795001221869535),
            (2.6, 2.360344165293492e-4),
            (3.0, 2.209049699858544e-5),
            (5.0, 1.537459794428035e-12),
            (10.0, 2.088487583762545e-45),
            (26.0, 5.663192408856143e-296),
        ];
        for (x, want) in cases {
            assert!(
                close(erfc(x), want, 1e-12),
                "erfc({x}) = {} not {want}",
                erfc(x)
            );
        }
        assert!(close(erfc(-1.0), 1.8427007929497148, 1e-14));
    }

    #[test]
    fn normal_distribution() {
        assert!(close(normal_cdf(0.0), 0.5, 1e-15));
        assert!(close(normal_cdf(1.96), 0.9750021048517795, 1e-13));
        assert!(close(normal_cdf(-1.96), 0.024997895148220435, 1e-12));
        assert!(close(normal_cdf(-10.0), 7.619853024160593e-24, 1e-12));
        assert!(close(normal_pdf(0.0), 0.3989422804014327, 1e-15));
        assert!(close(normal_pdf(1.0), 0.24197072451914337, 1e-15));
    }

    #[test]
    fn cholesky_solves_an_spd_system() {
        // a = m·mᵀ + I for a fixed m.
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let x_true = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x_true[j]).sum())
            .collect();
        let x = solve_spd(&a, 3, &b).unwrap();
        for (got, want) in x.iter().zip(x_true) {
            assert!((got - want).abs() < 1e-12, "{x:?}");
        }
        let l = cholesky(&a, 3).unwrap();
        // L·Lᵀ reproduces a, and the upper triangle of L is zero.
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((s - a[i * 3 + j]).abs() < 1e-12);
                if j > i {
                    assert_eq!(l[i * 3 + j], 0.0);
                }
            }
        }
        let det = 4.0 * (5.0 * 3.0 - 1.0) - 2.0 * (2.0 * 3.0 - 0.6) + 0.6 * (2.0 - 5.0 * 0.6);
        assert!((cholesky_log_det(&l, 3) - f64::ln(det)).abs() < 1e-12);
    }

    #[test]
    fn cholesky_rejects_indefinite_and_malformed_matrices() {
        let err = cholesky(&[1.0, 2.0, 2.0, 1.0], 2).unwrap_err();
        assert_eq!(err.kind(), "numerical");
        assert!(cholesky(&[1.0, f64::NAN, f64::NAN, 1.0], 2).is_err());
        assert_eq!(
            cholesky(&[1.0; 3], 2).unwrap_err().kind(),
            "invalid-argument"
        );
        assert_eq!(
            solve_spd(&[1.0], 1, &[1.0, 2.0]).unwrap_err().kind(),
            "invalid-argument"
        );
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [3.0, 1.0, 4.0, 1.0, 5.0];
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(5.0));
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert_eq!(quantile(&v, 0.625), Some(3.5));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&v, 1.5), None);
        assert_eq!(quantile(&[7.0], 0.3), Some(7.0));
    }

    #[test]
    fn small_statistics() {
        assert_eq!(argsort(&[3.0, f64::NAN, 1.0, 2.0]), vec![2, 3, 0, 1]);
        assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
        assert!((variance(&[1.0, 2.0, 3.0]) - 2.0 / 3.0).abs() < 1e-15);
        assert!(mean(&[]).is_nan());
    }
}
