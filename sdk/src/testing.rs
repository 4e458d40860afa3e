//! Native test support for optimizer plugins (not compiled into WebAssembly).
//!
//! An optimizer's unit tests run it as the host would, without the host:
//! [`seed`] seeds the stand-in for the host's random stream, [`minimize`]
//! drives `create`/`suggest`/`observe` over a [`Problem`] and checks every
//! suggestion against the space, and [`problems`] are the standard test
//! functions pf's optimizer benchmark uses (Branin, Hartmann-6,
//! Rosenbrock-4, Ackley-5 and a mixed int/categorical function), so a plugin
//! can be tuned natively on the same problems it is measured on.

use crate::optimizer::Outcome;
use crate::space::validate;
use crate::{Error, Optimizer, Param, ParamSpec, ParamValue, Result};

/// Reseeds this thread's stand-in for the host's random stream: what
/// [`HostRng`](crate::HostRng) and the SDK's `getrandom` backends draw from
/// outside WebAssembly.
pub fn seed(seed: u64) {
    crate::rng::imports::reseed(seed);
}

/// A function to minimise over a search space, with its known minimum.
#[derive(Clone)]
pub struct Problem {
    /// Short name, e.g. `branin`.
    pub name: &'static str,
    /// The dimensions.
    pub space: Vec<ParamSpec>,
    /// The global minimum of [`value`](Self::value).
    pub minimum: f64,
    function: fn(&Values) -> f64,
}

impl std::fmt::Debug for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Problem")
            .field("name", &self.name)
            .field("dimensions", &self.space.len())
            .field("minimum", &self.minimum)
            .finish()
    }
}

/// The values of one point, by name.
struct Values<'a>(&'a [Param]);

impl Values<'_> {
    fn get(&self, name: &str) -> &ParamValue {
        &self
            .0
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no value for `{name}`"))
            .value
    }
    fn float(&self, name: &str) -> f64 {
        self.get(name).as_f64().expect("a number")
    }
    fn floats(&self, n: usize) -> Vec<f64> {
        (0..n).map(|i| self.float(&format!("x{i}"))).collect()
    }
}

impl Problem {
    /// The function at `params` (one value per dimension, by name).
    ///
    /// # Panics
    /// When a dimension has no value or a value of the wrong type.
    pub fn value(&self, params: &[Param]) -> f64 {
        (self.function)(&Values(params))
    }

    /// How far `value` is above the minimum.
    pub fn regret(&self, value: f64) -> f64 {
        value - self.minimum
    }
}

fn floats(n: usize, low: f64, high: f64) -> Vec<ParamSpec> {
    (0..n)
        .map(|i| ParamSpec::float(format!("x{i}"), low, high, (low + high) / 2.0))
        .collect()
}

/// Branin–Hoo on `[-5, 10] × [0, 15]`: three global minima of 0.397887.
pub fn branin() -> Problem {
    Problem {
        name: "branin",
        space: vec![
            ParamSpec::float("x0", -5.0, 10.0, 2.5),
            ParamSpec::float("x1", 0.0, 15.0, 7.5),
        ],
        minimum: 0.397_887_357_729_738,
        function: |v| {
            let (x, y) = (v.float("x0"), v.float("x1"));
            let pi = std::f64::consts::PI;
            let b = 5.1 / (4.0 * pi * pi);
            let c = 5.0 / pi;
            let t = 1.0 / (8.0 * pi);
            (y - b * x * x + c * x - 6.0).powi(2) + 10.0 * (1.0 - t) * x.cos() + 10.0
        },
    }
}

/// Hartmann-6 on `[0, 1]⁶`: minimum −3.32237.
pub fn hartmann6() -> Problem {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    Problem {
        name: "hartmann6",
        space: floats(6, 0.0, 1.0),
        minimum: -3.322_368_011_391_339,
        function: |v| {
            let x = v.floats(6);
            -(0..4)
                .map(|i| {
                    let inner: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
                    ALPHA[i] * (-inner).exp()
                })
                .sum::<f64>()
        },
    }
}

/// Rosenbrock in 4 dimensions on `[-5, 10]⁴`: minimum 0 at (1, 1, 1, 1).
pub fn rosenbrock4() -> Problem {
    Problem {
        name: "rosenbrock4",
        space: floats(4, -5.0, 10.0),
        minimum: 0.0,
        function: |v| {
            let x = v.floats(4);
            x.windows(2)
                .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                .sum()
        },
    }
}

/// Ackley in 5 dimensions on `[-32.768, 32.768]⁵`: minimum 0 at the origin.
pub fn ackley5() -> Problem {
    Problem {
        name: "ackley5",
        space: floats(5, -32.768, 32.768),
        minimum: 0.0,
        function: |v| {
            let x = v.floats(5);
            let n = x.len() as f64;
            let sq = x.iter().map(|a| a * a).sum::<f64>() / n;
            let cos = x
                .iter()
                .map(|a| (2.0 * std::f64::consts::PI * a).cos())
                .sum::<f64>()
                / n;
            -20.0 * (-0.2 * sq.sqrt()).exp() - cos.exp() + 20.0 + std::f64::consts::E
        },
    }
}

/// A mixed space: a float, a log-scale float, an int and a choice.
/// `(x − 1)² + (log₁₀ lr + 2)² + ((n − 13)/4)² + cost(act)`, with
/// `act` costing 0 (`gelu`), 0.25 (`swish`), 0.5 (`relu`) or 1 (`tanh`):
/// minimum 0 at x = 1, lr = 0.01, n = 13, `gelu`.
pub fn mixed() -> Problem {
    Problem {
        name: "mixed",
        space: vec![
            ParamSpec::float("x", -5.0, 5.0, 0.0),
            ParamSpec::float("lr", 1e-5, 1.0, 1e-3).with_log(),
            ParamSpec::int("n", 0, 20, 10),
            ParamSpec::choice("act", &["relu", "tanh", "gelu", "swish"], "relu"),
        ],
        minimum: 0.0,
        function: |v| {
            let act = match v.get("act").as_str() {
                Some("gelu") => 0.0,
                Some("swish") => 0.25,
                Some("relu") => 0.5,
                _ => 1.0,
            };
            let n = v.get("n").as_i64().expect("an int") as f64;
            (v.float("x") - 1.0).powi(2)
                + (v.float("lr").log10() + 2.0).powi(2)
                + ((n - 13.0) / 4.0).powi(2)
                + act
        },
    }
}

/// The five standard problems, in the benchmark's order.
pub fn problems() -> Vec<Problem> {
    vec![branin(), hartmann6(), rosenbrock4(), ackley5(), mixed()]
}

/// Runs `O` on `problem` for `trials` trials as the host would (reward =
/// −value, one suggestion observed before the next), with the stand-in host
/// stream seeded by `seed`. Returns the best regret after each trial.
/// A suggestion that is missing a dimension, has an extra one, or holds a
/// value outside its domain is an `invalid-argument` error.
pub fn minimize<O: Optimizer>(
    problem: &Problem,
    trials: u32,
    seed: u64,
    options: O::Options,
) -> Result<Vec<f64>> {
    self::seed(seed);
    validate(&problem.space)?;
    let mut search = O::create(problem.space.clone(), trials, options)?;
    let mut best = f64::INFINITY;
    let mut curve = Vec::with_capacity(trials as usize);
    for trial in 0..trials {
        let params = search.suggest()?;
        check_suggestion(&problem.space, &params)
            .map_err(|e| Error::invalid_argument(format!("trial {trial}: {}", e.message())))?;
        let value = problem.value(&params);
        best = best.min(problem.regret(value));
        curve.push(best);
        search.observe(params, Outcome::Reward(-value))?;
    }
    Ok(curve)
}

/// The best regret of `trials` trials of uniform random search on
/// `problem` (every dimension `from_unit` of a uniform draw, from a stream
/// seeded by `seed`): the baseline an optimizer's tests compare it with.
pub fn random_search(problem: &Problem, trials: u32, seed: u64) -> f64 {
    use crate::rng::{RandomExt, SplitMix64};
    let mut rng = SplitMix64::new(seed ^ 0x5EED_F0BA);
    (0..trials)
        .map(|_| {
            let params: Vec<Param> = problem
                .space
                .iter()
                .map(|s| Param::new(s.name.clone(), s.from_unit(rng.f64())))
                .collect();
            problem.regret(problem.value(&params))
        })
        .fold(f64::INFINITY, f64::min)
}

/// Checks that `params` holds exactly one in-domain value per dimension of
/// `space`: [`space::check_params`](crate::space::check_params), the check
/// pf applies to every suggestion.
pub fn check_suggestion(space: &[ParamSpec], params: &[Param]) -> Result<()> {
    crate::space::check_params(space, params)
}

/// The median of `values` (the mean of the middle two for an even count);
/// NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(problem: &Problem, xs: &[f64]) -> f64 {
        let params: Vec<Param> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| Param::new(format!("x{i}"), ParamValue::Float(*x)))
            .collect();
        problem.value(&params)
    }

    #[test]
    fn problems_reach_their_minimum_at_their_known_optimum() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
        let b = branin();
        assert!(close(at(&b, &[-std::f64::consts::PI, 12.275]), b.minimum));
        assert!(close(at(&b, &[9.42478, 2.475]), b.minimum));
        let h = hartmann6();
        let x = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!(close(at(&h, &x), h.minimum), "{}", at(&h, &x));
        assert_eq!(at(&rosenbrock4(), &[1.0; 4]), 0.0);
        assert!(at(&ackley5(), &[0.0; 5]).abs() < 1e-12);
        let m = mixed();
        let best = vec![
            Param::new("x", ParamValue::Float(1.0)),
            Param::new("lr", ParamValue::Float(0.01)),
            Param::new("n", ParamValue::Int(13)),
            Param::new("act", ParamValue::Choice("gelu".into())),
        ];
        assert!(m.value(&best).abs() < 1e-12);
        for p in problems() {
            validate(&p.space).unwrap();
            let defaults: Vec<Param> = p
                .space
                .iter()
                .map(|s| Param::new(s.name.clone(), s.default.clone()))
                .collect();
            assert!(p.regret(p.value(&defaults)) > 0.0, "{}", p.name);
        }
    }

    #[test]
    fn suggestions_are_checked_against_the_space() {
        let space = mixed().space;
        let e = check_suggestion(&space, &[]).unwrap_err();
        assert!(e.message().contains("no value for"), "{e:?}");
        let mut ok: Vec<Param> = space
            .iter()
            .map(|s| Param::new(s.name.clone(), s.default.clone()))
            .collect();
        check_suggestion(&space, &ok).unwrap();
        ok[2].value = ParamValue::Int(21);
        assert!(check_suggestion(&space, &ok).is_err());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
