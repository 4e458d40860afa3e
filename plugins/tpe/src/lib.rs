//! Tree-structured Parzen Estimator (TPE): a pf optimizer plugin.
//!
//! # The algorithm
//!
//! TPE (Bergstra, Bardenet, Bengio & Kégl 2011, "Algorithms for
//! Hyper-Parameter Optimization") models `p(x | y)` instead of `p(y | x)`.
//! The observations are split by their reward into a small *good* group and
//! the *bad* rest, and a Parzen (kernel density) estimator is fitted to each:
//! `l(x)` to the good points, `g(x)` to the bad ones. Expected improvement
//! over the split's threshold is then a monotone function of `l(x) / g(x)`,
//! so each suggestion draws [`candidates`](TpeOptions::candidates) points
//! from `l` and keeps the one with the largest `log l(x) − log g(x)`.
//! Watanabe (2023, "Tree-structured Parzen Estimator: Understanding Its
//! Algorithm Components and Their Roles for Better Empirical Performance")
//! reviews each component and its effect on performance; the choices below
//! are discussed there.
//!
//! Everything happens in the unit cube of `ParamSpec::to_unit`: floats
//! linearly, log-scale floats and ints in logarithms, ints widened by ±½ so
//! every integer owns an equal *cell* of the line, choices and booleans as
//! categories. A candidate is drawn continuously and mapped back with
//! `from_unit`; an int candidate is then scored by the probability each
//! density gives its integer's cell (the discrete TPE of an int), a float by
//! the densities at the value it became.
//!
//! * **Startup.** The first [`startup_trials`](TpeOptions::startup_trials)
//!   suggestions (until that many observations arrived) are uniform draws in
//!   the unit cube: random search, which the density estimators need to
//!   start from. Unless the user sets `startup_trials`, a budget under 30
//!   trials scales the default 10 down to about a third of it (⌈budget/3⌉,
//!   at least 2: 2 of 6 trials), so a small search is not all random; the
//!   search logs it when it does.
//! * **The split.** With `n` finite rewards, the good group holds the best
//!   `min(⌈γ·n⌉, max_good)`, with γ = [`gamma`](TpeOptions::gamma) = 0.1
//!   and `max_good` = 25 by default: the linear rule, Optuna's default (the
//!   cap keeps `l` about the very best points in long studies). The `¼·√n`
//!   rule of the original hyperopt keeps only 2 good points out of 50, too
//!   few for `l` to say where the good region is: on pf's five benchmark
//!   problems its median regret at 50 trials was 1.2 to 2.1 times that of
//!   the linear rule in our runs. Ties keep the earlier observation.
//! * **Failures.** A failed trial, or one whose reward is NaN or infinite,
//!   joins the bad group and never the good one: `g` then grows where trials
//!   fail, so the region is avoided without inventing a reward for it. It
//!   does not count towards `n` in the split. With no finite reward at all,
//!   `l` is the prior alone and suggestions move away from the failures.
//! * **Pending suggestions.** Suggestions not yet observed (parallel jobs)
//!   count as bad points while they are pending (a "constant liar",
//!   Ginsbourger, Le Riche & Carraro 2010, whose lie is "no better than the
//!   bad group"), so concurrent suggestions spread out instead of piling
//!   onto one mode. An observation equal to a pending suggestion settles it;
//!   observations that were never suggested (a resumed study replaying its
//!   trials) are taken as they are.
//! * **Weights.** Each density is a mixture of one component per point plus
//!   a prior component (centre ½, bandwidth 1: the whole range; uniform over
//!   categories) of weight [`prior_weight`](TpeOptions::prior_weight). With
//!   [`linear_forgetting`](TpeOptions::linear_forgetting), a group of
//!   `m > 25` points weights its 25 newest points 1 and the older ones
//!   linearly from `1/m` up, oldest lowest (Bergstra et al. 2011), so the
//!   model follows the search as it moves.
//! * **Bandwidths.** Each observation's bandwidth along a dimension is the
//!   larger of the distances to its two neighbours there, the prior's
//!   centre counted among them (Bergstra et al. 2011), in both modes: in the
//!   multivariate mode that keeps dense regions sharp and sparse ones wide,
//!   where one Scott's-rule bandwidth for all points (Scott 1992,
//!   [`bandwidth`](TpeOptions::bandwidth) = `scott`) over-smoothed: with it
//!   the multivariate median regrets were 1.4 to 2.5 times larger on pf's
//!   five benchmark problems in our runs. Bandwidths are clipped into
//!   `[1/min(100, s·(1+n)), 1]` of the range for a group of `n` points: the
//!   "magic clip" of Bergstra et al. (their `s` is 1), which keeps a few
//!   clustered points from collapsing the density
//!   ([`magic_clip`](TpeOptions::magic_clip)). The default
//!   [`magic_clip_scale`](TpeOptions::magic_clip_scale) `s` = 2 halves the
//!   floor while the groups are small: with γ = 0.1 the good group has only
//!   ⌈n/10⌉ points, so at `s` = 1 its kernels cannot get narrower than a
//!   sixth of the range within 50 trials, and TPE kept re-exploring around
//!   good points instead of refining them. On pf's benchmark (50 trials, 500
//!   seeds) `s` = 2 lowered the median regret on all five problems, by 12 %
//!   (Hartmann-6, Ackley-5) to 55 % (Branin); the floor never drops below
//!   1/100 of the range either way.
//! * **Kernels.** Numeric dimensions: normals truncated to `[0, 1]`.
//!   Categorical dimensions: each observation puts weight 1 on its own
//!   category and a share `prior_weight/(m+1)` (for `m` points) on every
//!   category, so no kernel rules a category out; the prior is uniform. In
//!   univariate mode this is a weighted count of each category plus the
//!   prior's uniform part.
//! * **Multivariate or univariate.** By default all dimensions share one
//!   mixture ([`multivariate`](TpeOptions::multivariate)): a candidate takes
//!   every coordinate from the same point's kernel and is scored on the
//!   joint densities, so dimensions that were good together are proposed
//!   together (Falkner, Klein & Hutter 2018, BOHB; Watanabe 2023). This is
//!   also Optuna's default since 5.0 for one objective, and over 200 seeds of
//!   pf's five benchmark problems it had 1.4 to 2.8 times lower median
//!   regret at 50 trials than the univariate mode. `multivariate=false`
//!   models and chooses every dimension on its own (Bergstra et al.'s
//!   independent TPE, the original algorithm).
//!
//! The only source of randomness is the host's seeded stream ([`HostRng`]),
//! so a study is reproducible from its seed.

mod parzen;

use parzen::{Axis, Bandwidth, FitSettings, Parzen};
use pf_sdk::prelude::*;

/// The TPE optimizer's settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(crate = "pf_sdk::serde", default, deny_unknown_fields)]
#[schemars(crate = "pf_sdk::schemars")]
pub struct TpeOptions {
    /// Model all dimensions jointly (one kernel mixture over the whole space, as in BOHB and Optuna's default) instead of each dimension on its own (false: the original, independent TPE).
    ///
    /// Joint modelling keeps interactions between dimensions.
    pub multivariate: bool,
    /// Random trials before the model is used (observations, failed ones included); left unset, at most ⌈budget/3⌉ (at least 2).
    #[schemars(range(min = 0, max = 100000))]
    pub startup_trials: u32,
    /// Candidates drawn from the good density l(x) per suggestion; the one with the largest l(x)/g(x) is suggested.
    ///
    /// More candidates exploit the model more greedily.
    #[schemars(range(min = 1, max = 10000))]
    pub candidates: u32,
    /// Fraction γ of the finite rewards that form the good group (at least one, at most `max_good`).
    #[schemars(range(min = 0.001, max = 1.0))]
    pub gamma: f64,
    /// The largest the good group gets, however many rewards there are.
    #[schemars(range(min = 1, max = 100000))]
    pub max_good: u32,
    /// Weight of the prior component (uniform-ish over the space) in both densities, relative to one observation.
    #[schemars(range(min = 0.01, max = 1000.0))]
    pub prior_weight: f64,
    /// How the kernels' bandwidths are chosen: from the distances to neighbouring points (per dimension), or by Scott's rule.
    pub bandwidth: BandwidthRule,
    /// Let the outermost observations of a dimension count the bounds as neighbours when their bandwidth is chosen.
    pub consider_endpoints: bool,
    /// Clip bandwidths into [1/min(100, s·(1+n)), 1] of the range for n points (Bergstra et al.'s "magic clip"; s is `magic_clip_scale`).
    pub magic_clip: bool,
    /// The scale s of the magic clip's floor: 1 is Bergstra et al.'s; larger lets kernels narrow sooner around few good points.
    #[schemars(range(min = 0.1, max = 100.0))]
    pub magic_clip_scale: f64,
    /// Down-weight observations older than the newest 25 of a group linearly (Bergstra et al.'s forgetting).
    pub linear_forgetting: bool,
    /// Count suggestions still awaiting their outcome as bad points, so parallel suggestions spread out.
    pub constant_liar: bool,
}

impl Default for TpeOptions {
    fn default() -> Self {
        TpeOptions {
            multivariate: true,
            startup_trials: 10,
            candidates: 24,
            gamma: 0.1,
            max_good: 25,
            prior_weight: 1.0,
            bandwidth: BandwidthRule::Neighbours,
            consider_endpoints: false,
            magic_clip: true,
            magic_clip_scale: 2.0,
            linear_forgetting: true,
            constant_liar: true,
        }
    }
}

/// How the bandwidths of the numeric kernels are chosen.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(crate = "pf_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "pf_sdk::schemars")]
pub enum BandwidthRule {
    /// Per point and dimension: the larger distance to its two neighbours
    /// along the dimension, the prior's centre among them (Bergstra et al.
    /// 2011).
    Neighbours,
    /// One bandwidth for all points: `0.2 · n^(−1/(d+4))` of the range for
    /// `n` points in `d` dimensions (Scott 1992).
    Scott,
}

/// Groups larger than this weight their older points down under
/// [`TpeOptions::linear_forgetting`].
const FORGETTING_WINDOW: usize = 25;

/// One observation in the unit cube.
#[derive(Clone, Debug)]
struct Observation {
    /// The unit position of each dimension, in space order.
    unit: Vec<f64>,
    /// The reward, or `None` for a failed trial or a non-finite reward.
    reward: Option<f64>,
}

/// One TPE search.
pub struct Tpe {
    space: Vec<ParamSpec>,
    /// How each dimension is modelled, in space order.
    axes: Vec<Axis>,
    budget: u32,
    suggested: u32,
    options: TpeOptions,
    rng: HostRng,
    /// Every observation, in the order observed.
    observations: Vec<Observation>,
    /// The unit positions of suggestions not observed yet, oldest first.
    pending: Vec<Vec<f64>>,
}

impl Optimizer for Tpe {
    type Options = TpeOptions;

    fn info() -> Info {
        Info::new(
            "tpe",
            env!("CARGO_PKG_VERSION"),
            "Tree-structured Parzen Estimator (Bergstra et al. 2011): after a few random \
             trials, splits the observations into the best fraction γ and the rest, fits a \
             kernel density to each (l and g, with a wide prior component and adaptive \
             bandwidths), and suggests the best of several draws from l by the ratio l/g. \
             Handles float, log-scale, int, choice and boolean dimensions, failed trials \
             and parallel suggestions; models all dimensions jointly (multivariate) \
             unless multivariate=false.",
        )
    }

    fn create(space: Vec<ParamSpec>, budget: u32, options: TpeOptions) -> Result<Self> {
        let axes = space.iter().map(|spec| axis_of(&spec.kind)).collect();
        Ok(Tpe {
            space,
            axes,
            budget,
            suggested: 0,
            options,
            rng: HostRng::new(),
            observations: Vec::new(),
            pending: Vec::new(),
        })
    }

    fn create_given(
        space: Vec<ParamSpec>,
        budget: u32,
        mut options: TpeOptions,
        given: &[&str],
    ) -> Result<Self> {
        if !given.contains(&"startup_trials") {
            let (startup, note) = startup_for(options.startup_trials, budget);
            options.startup_trials = startup;
            if let Some(note) = note {
                pf_sdk::log::info(&note);
            }
        }
        Self::create(space, budget, options)
    }

    fn suggest(&mut self) -> Result<Vec<Param>> {
        pf_sdk::count_suggestion(&mut self.suggested, self.budget)?;
        let unit = if self.observations.len() < self.options.startup_trials as usize {
            self.random_point()
        } else {
            self.model_point()
        };
        let params: Vec<Param> = self
            .space
            .iter()
            .zip(&unit)
            .map(|(spec, &u)| Param::new(spec.name.clone(), spec.from_unit(u)))
            .collect();
        self.pending.push(self.encode(&params)?);
        Ok(params)
    }

    fn observe(&mut self, params: Vec<Param>, outcome: Outcome) -> Result<()> {
        let unit = self.encode(&params)?;
        if let Some(i) = self.pending.iter().position(|p| *p == unit) {
            self.pending.remove(i);
        }
        let reward = outcome.finite_reward();
        if let Some(r) = reward {
            if self.best().is_none_or(|best| r > best) {
                pf_sdk::log::debug(&format!(
                    "tpe: new best reward {r} at observation {}",
                    self.observations.len() + 1
                ));
            }
        }
        self.observations.push(Observation { unit, reward });
        Ok(())
    }
}

/// The random start-up trials of a search of `budget` trials when the user
/// left `startup_trials` at its default `configured`: about a third of a
/// small budget ([`pf_sdk::startup_for_budget`]), and the line that says so
/// when that is fewer than `configured`.
fn startup_for(configured: u32, budget: u32) -> (u32, Option<String>) {
    let startup = pf_sdk::startup_for_budget(configured, budget);
    let note = (startup < configured && budget > 0).then(|| {
        format!(
            "tpe: {startup} of {budget} trials are random start-up (startup_trials scaled \
             from {configured} to the budget; set startup_trials to override)"
        )
    });
    (startup, note)
}

/// How a dimension is modelled.
fn axis_of(kind: &ParamKind) -> Axis {
    match kind {
        ParamKind::Float(_) => Axis::Numeric,
        ParamKind::Int(r) => Axis::Integer {
            low: r.low,
            high: r.high,
            log: r.log,
        },
        ParamKind::Boolean => Axis::Categorical(2),
        ParamKind::Choice(choices) => Axis::Categorical(choices.len().max(1)),
    }
}

impl Tpe {
    /// The best finite reward observed so far.
    fn best(&self) -> Option<f64> {
        self.observations
            .iter()
            .filter_map(|o| o.reward)
            .reduce(f64::max)
    }

    /// The unit positions of `params`, in space order. Every dimension must
    /// have exactly one in-domain value and no other names may appear; the
    /// `invalid-argument` error names the offending parameter.
    fn encode(&self, params: &[Param]) -> Result<Vec<f64>> {
        let mut unit = vec![f64::NAN; self.space.len()];
        let mut seen = vec![false; self.space.len()];
        for param in params {
            let Some(d) = self.space.iter().position(|s| s.name == param.name) else {
                return Err(Error::invalid_argument(format!(
                    "parameter `{}` is not a dimension of the search space",
                    param.name
                )));
            };
            if std::mem::replace(&mut seen[d], true) {
                return Err(Error::invalid_argument(format!(
                    "parameter `{}` is given twice",
                    param.name
                )));
            }
            let spec = &self.space[d];
            spec.check(&param.value)?;
            unit[d] = spec.to_unit(&param.value).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "parameter `{}` = {} does not fit: it must be {}",
                    spec.name, param.value, spec.kind
                ))
            })?;
        }
        if let Some(d) = seen.iter().position(|s| !s) {
            return Err(Error::invalid_argument(format!(
                "parameter `{}` is missing",
                self.space[d].name
            )));
        }
        Ok(unit)
    }

    /// A uniform point of the unit cube (random search).
    fn random_point(&mut self) -> Vec<f64> {
        let rng = &mut self.rng;
        self.space.iter().map(|_| rng.f64()).collect()
    }

    /// Where the value at unit position `u` of dimension `d` really lies: the
    /// position of the int, choice or boolean that `u` maps to.
    fn snap(&self, d: usize, u: f64) -> f64 {
        let spec = &self.space[d];
        spec.to_unit(&spec.from_unit(u)).unwrap_or(u)
    }

    /// The settings the density estimators are fitted with.
    /// `dims` is the number of dimensions each estimator covers.
    fn fit_settings(&self, dims: usize) -> FitSettings {
        FitSettings {
            prior_weight: self.options.prior_weight,
            bandwidth: match self.options.bandwidth {
                BandwidthRule::Neighbours => Bandwidth::Neighbours {
                    consider_endpoints: self.options.consider_endpoints,
                },
                BandwidthRule::Scott => Bandwidth::Scott { dims },
            },
            magic_clip: self
                .options
                .magic_clip
                .then_some(self.options.magic_clip_scale),
        }
    }

    /// A point chosen by the model: the best of the candidates drawn from
    /// l(x) by log l(x) − log g(x), per dimension or jointly.
    fn model_point(&mut self) -> Vec<f64> {
        let split = self.split();
        let good = Group::gather(
            &split.good,
            self.space.len(),
            self.options.linear_forgetting,
        );
        let bad = Group::gather(&split.bad, self.space.len(), self.options.linear_forgetting);
        let candidates = self.options.candidates.max(1) as usize;
        // A handle on the host's stream (it holds no state of its own).
        let mut rng = self.rng;
        if self.options.multivariate {
            let settings = self.fit_settings(self.space.len());
            let l = Parzen::fit(&self.axes, &good.column_refs(), &good.weights, &settings);
            let g = Parzen::fit(&self.axes, &bad.column_refs(), &bad.weights, &settings);
            let mut best = (f64::NEG_INFINITY, Vec::new());
            let mut x = Vec::with_capacity(self.space.len());
            for _ in 0..candidates {
                l.sample_into(&mut rng, &mut x);
                for (d, u) in x.iter_mut().enumerate() {
                    *u = self.snap(d, *u);
                }
                let score = l.log_density(&x) - g.log_density(&x);
                if best.1.is_empty() || score > best.0 {
                    best = (score, x.clone());
                }
            }
            best.1
        } else {
            let settings = self.fit_settings(1);
            let mut point = Vec::with_capacity(self.space.len());
            let mut x = Vec::with_capacity(1);
            for (d, &axis) in self.axes.iter().enumerate() {
                let l = Parzen::fit(&[axis], &[&good.columns[d]], &good.weights, &settings);
                let g = Parzen::fit(&[axis], &[&bad.columns[d]], &bad.weights, &settings);
                let mut best = (f64::NEG_INFINITY, f64::NAN);
                for _ in 0..candidates {
                    l.sample_into(&mut rng, &mut x);
                    let u = self.snap(d, x[0]);
                    let score = l.log_density(&[u]) - g.log_density(&[u]);
                    if best.1.is_nan() || score > best.0 {
                        best = (score, u);
                    }
                }
                point.push(best.1);
            }
            point
        }
    }

    /// The good and bad groups, each in observation order (pending
    /// suggestions last, as the newest points).
    fn split(&self) -> Split<'_> {
        let mut ranked: Vec<(usize, f64)> = self
            .observations
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.reward.map(|r| (i, r)))
            .collect();
        // Best first; the sort is stable, so ties keep the earlier point.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let n_good = good_count(ranked.len(), self.options.gamma, self.options.max_good);
        let mut is_good = vec![false; self.observations.len()];
        for &(i, _) in &ranked[..n_good] {
            is_good[i] = true;
        }
        let mut split = Split {
            good: Vec::with_capacity(n_good),
            bad: Vec::with_capacity(self.observations.len() + self.pending.len() - n_good),
        };
        for (o, good) in self.observations.iter().zip(is_good) {
            if good {
                split.good.push(&o.unit);
            } else {
                split.bad.push(&o.unit);
            }
        }
        if self.options.constant_liar {
            split.bad.extend(self.pending.iter().map(Vec::as_slice));
        }
        split
    }
}

/// The size of the good group for `n` finite rewards: `min(⌈γ·n⌉, max_good)`,
/// and never more than `n`.
fn good_count(n: usize, gamma: f64, max_good: u32) -> usize {
    // The product may come out a rounding error above a whole number (e.g.
    // 0.14 · 50 = 7.000000000000001), which must not round up.
    let by_gamma = (gamma * n as f64 * (1.0 - 1e-12)).ceil() as usize;
    by_gamma.min(max_good as usize).min(n)
}

/// The observation weights of a group of `m` points in time order: all 1, or
/// with forgetting, for `m > 25`, the oldest `m − 25` rising linearly from
/// `1/m` towards 1 and the newest 25 at 1.
fn group_weights(m: usize, forgetting: bool) -> Vec<f64> {
    if !forgetting || m <= FORGETTING_WINDOW {
        return vec![1.0; m];
    }
    let old = m - FORGETTING_WINDOW;
    let first = 1.0 / m as f64;
    let ramp = (0..old).map(|i| {
        if old == 1 {
            first
        } else {
            first + (1.0 - first) * i as f64 / (old - 1) as f64
        }
    });
    ramp.chain(std::iter::repeat_n(1.0, FORGETTING_WINDOW))
        .collect()
}

/// The points of the good and the bad group, each oldest first.
struct Split<'a> {
    good: Vec<&'a [f64]>,
    bad: Vec<&'a [f64]>,
}

/// One group's points by dimension, with their weights.
struct Group {
    /// `columns[d][i]`: point `i`'s unit position on dimension `d`.
    columns: Vec<Vec<f64>>,
    weights: Vec<f64>,
}

impl Group {
    fn gather(points: &[&[f64]], dims: usize, forgetting: bool) -> Group {
        Group {
            columns: (0..dims)
                .map(|d| points.iter().map(|p| p[d]).collect())
                .collect(),
            weights: group_weights(points.len(), forgetting),
        }
    }

    fn column_refs(&self) -> Vec<&[f64]> {
        self.columns.iter().map(Vec::as_slice).collect()
    }
}

#[cfg(test)]
mod tests;

pf_sdk::export_optimizer!(Tpe);
