//! Parameters as Gaussian-process inputs, and back.
//!
//! Every dimension of the search space becomes zero or more *columns* of a
//! point in `[0, 1]^width`:
//!
//! * a float: one column, its [`ParamSpec::to_unit`] position (so a log scale
//!   is searched in log space);
//! * an int: one column, its `to_unit` position, always at the centre of the
//!   integer's share of the line (see [`Encoding::snap`]);
//! * a boolean: one column, 0 or 1;
//! * a choice of `k`: `k` one-hot columns;
//! * a dimension with a single value (`low == high`, one choice): no column;
//!   it is not modelled and always decodes to that value.
//!
//! Each modelled dimension is one *group* with one length scale in the
//! kernel (see [`Layout`]), whatever its number of columns.

use crate::kernel::Layout;
use pf_sdk::prelude::*;

/// How one dimension is laid out among the columns.
#[derive(Clone, Debug, PartialEq)]
pub enum DimensionCoding {
    /// A single value: no column.
    Constant,
    /// A float at column `column`.
    Float {
        /// The column.
        column: usize,
    },
    /// An int at column `column` (its `to_unit` position).
    Int {
        /// The column.
        column: usize,
    },
    /// A boolean at column `column` (0 or 1).
    Boolean {
        /// The column.
        column: usize,
    },
    /// A choice one-hot encoded over columns `first..first + count`.
    Choice {
        /// The first column of the block.
        first: usize,
        /// The number of choices (and columns).
        count: usize,
    },
}

/// The encoding of one search space.
#[derive(Clone, Debug)]
pub struct Encoding {
    space: Vec<ParamSpec>,
    codings: Vec<DimensionCoding>,
    width: usize,
    layout: Layout,
}

impl Encoding {
    /// The encoding of a (validated) search space.
    pub fn new(space: &[ParamSpec]) -> Self {
        let mut codings = Vec::with_capacity(space.len());
        let mut column_group = Vec::new();
        let mut column_weight = Vec::new();
        let mut groups = 0;
        for spec in space {
            let column = column_group.len();
            let coding = match &spec.kind {
                ParamKind::Float(r) if r.low < r.high => DimensionCoding::Float { column },
                ParamKind::Int(r) if r.low < r.high => DimensionCoding::Int { column },
                ParamKind::Boolean => DimensionCoding::Boolean { column },
                ParamKind::Choice(c) if c.len() > 1 => DimensionCoding::Choice {
                    first: column,
                    count: c.len(),
                },
                _ => DimensionCoding::Constant,
            };
            match coding {
                DimensionCoding::Constant => {}
                DimensionCoding::Choice { count, .. } => {
                    // Two different one-hot vectors are √2 apart; the weight ½
                    // makes every pair of distinct choices one length scale
                    // apart, like a boolean flip or a full-range float step.
                    column_group.extend(std::iter::repeat_n(groups, count));
                    column_weight.extend(std::iter::repeat_n(0.5, count));
                    groups += 1;
                }
                _ => {
                    column_group.push(groups);
                    column_weight.push(1.0);
                    groups += 1;
                }
            }
            codings.push(coding);
        }
        Encoding {
            space: space.to_vec(),
            codings,
            width: column_group.len(),
            layout: Layout {
                groups,
                column_group,
                column_weight,
            },
        }
    }

    /// The number of columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The kernel's view of the columns.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// How each dimension of the space is coded, in space order.
    pub fn codings(&self) -> &[DimensionCoding] {
        &self.codings
    }

    /// The columns of float dimensions: the ones moved by gradient steps.
    pub fn float_columns(&self) -> Vec<usize> {
        self.codings
            .iter()
            .filter_map(|c| match c {
                DimensionCoding::Float { column } => Some(*column),
                _ => None,
            })
            .collect()
    }

    /// The point of `params`: one value per dimension, by name, in any order.
    /// A dimension without a value, a value out of its domain, a name given
    /// twice or one that is not a dimension is an `invalid-argument` error
    /// naming the parameter.
    pub fn encode(&self, params: &[Param]) -> Result<Vec<f64>> {
        for (i, p) in params.iter().enumerate() {
            if !self.space.iter().any(|s| s.name == p.name) {
                return Err(Error::invalid_argument(format!(
                    "parameter `{}` is not a dimension of the search space",
                    p.name
                )));
            }
            if params[..i].iter().any(|q| q.name == p.name) {
                return Err(Error::invalid_argument(format!(
                    "parameter `{}` is given twice",
                    p.name
                )));
            }
        }
        let mut x = vec![0.0; self.width];
        for (spec, coding) in self.space.iter().zip(&self.codings) {
            let value = &params
                .iter()
                .find(|p| p.name == spec.name)
                .ok_or_else(|| {
                    Error::invalid_argument(format!("parameter `{}` has no value", spec.name))
                })?
                .value;
            spec.check(value)?;
            match (coding, value) {
                (DimensionCoding::Constant, _) => {}
                (DimensionCoding::Float { column } | DimensionCoding::Int { column }, _) => {
                    // `check` passed, so the position exists.
                    x[*column] = spec.to_unit(value).unwrap_or(0.5);
                }
                (DimensionCoding::Boolean { column }, ParamValue::Boolean(b)) => {
                    x[*column] = if *b { 1.0 } else { 0.0 };
                }
                (DimensionCoding::Choice { first, .. }, ParamValue::Choice(s)) => {
                    if let ParamKind::Choice(choices) = &spec.kind {
                        let index = choices.iter().position(|c| c == s).unwrap_or(0);
                        x[first + index] = 1.0;
                    }
                }
                // `check` rejects a value of another type.
                _ => unreachable!("a checked value matches its dimension"),
            }
        }
        Ok(x)
    }

    /// The parameters at point `x` (one value per dimension, in space order,
    /// always in the domain): floats and ints through
    /// [`ParamSpec::from_unit`], booleans by `x ≥ ½`, choices by the largest
    /// column of their block.
    pub fn decode(&self, x: &[f64]) -> Vec<Param> {
        self.space
            .iter()
            .zip(&self.codings)
            .map(|(spec, coding)| {
                let value = match coding {
                    DimensionCoding::Constant => spec.from_unit(0.5),
                    DimensionCoding::Float { column } | DimensionCoding::Int { column } => {
                        spec.from_unit(x[*column])
                    }
                    DimensionCoding::Boolean { column } => ParamValue::Boolean(x[*column] >= 0.5),
                    DimensionCoding::Choice { first, count } => {
                        let index = argmax(&x[*first..first + count]);
                        spec.from_unit((index as f64 + 0.5) / *count as f64)
                    }
                };
                Param::new(spec.name.clone(), value)
            })
            .collect()
    }

    /// Moves `x` to the point that encodes the parameters it decodes to:
    /// floats clamped into `[0, 1]`, ints to the centre of their integer's
    /// share, booleans to 0 or 1, choice blocks to one-hot. The acquisition
    /// is only ever evaluated at such points, which makes it constant over
    /// every integer's share: the rounding inside the kernel of
    /// Garrido-Merchán & Hernández-Lobato (2020).
    pub fn snap(&self, x: &mut [f64]) {
        for (spec, coding) in self.space.iter().zip(&self.codings) {
            match coding {
                DimensionCoding::Constant => {}
                DimensionCoding::Float { column } => {
                    let u = x[*column];
                    x[*column] = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
                }
                DimensionCoding::Int { column } => {
                    let value = spec.from_unit(x[*column]);
                    x[*column] = spec.to_unit(&value).unwrap_or(0.5);
                }
                DimensionCoding::Boolean { column } => {
                    x[*column] = if x[*column] >= 0.5 { 1.0 } else { 0.0 };
                }
                DimensionCoding::Choice { first, count } => {
                    set_one_hot(x, *first, *count, argmax(&x[*first..first + count]));
                }
            }
        }
    }

    /// Sets dimension `dimension` of the snapped point `x` from a position
    /// `u ∈ [0, 1]` along it: floats and ints at `u` (ints snapped),
    /// booleans `u ≥ ½`, the choice whose share of `[0, 1]` holds `u`. A
    /// uniform `u` gives a uniform value of every kind.
    pub fn set_from_unit(&self, x: &mut [f64], dimension: usize, u: f64) {
        let u = u.clamp(0.0, 1.0);
        let spec = &self.space[dimension];
        match &self.codings[dimension] {
            DimensionCoding::Constant => {}
            DimensionCoding::Float { column } => x[*column] = u,
            DimensionCoding::Int { column } => {
                x[*column] = spec.to_unit(&spec.from_unit(u)).unwrap_or(0.5);
            }
            DimensionCoding::Boolean { column } => x[*column] = if u >= 0.5 { 1.0 } else { 0.0 },
            DimensionCoding::Choice { first, count } => {
                let index = ((u * *count as f64) as usize).min(count - 1);
                set_one_hot(x, *first, *count, index);
            }
        }
    }

    /// A uniformly random snapped point: every dimension drawn independently
    /// and uniformly along its position.
    pub fn random_point(&self, rng: &mut impl RandomExt) -> Vec<f64> {
        let mut x = vec![0.0; self.width];
        for dimension in 0..self.space.len() {
            let u = rng.f64();
            self.set_from_unit(&mut x, dimension, u);
        }
        x
    }

    /// `count` snapped points of a Latin hypercube (McKay, Beckman & Conover
    /// 1979): along every dimension the `i`-th point lies in the `π(i)`-th of
    /// `count` equal strata, for an independent random permutation `π` per
    /// dimension, at a uniform position inside it. Choices and booleans are
    /// therefore as balanced as `count` allows.
    pub fn latin_hypercube(&self, count: usize, rng: &mut impl RandomExt) -> Vec<Vec<f64>> {
        let mut points = vec![vec![0.0; self.width]; count];
        let mut strata: Vec<usize> = (0..count).collect();
        for dimension in 0..self.space.len() {
            rng.shuffle(&mut strata);
            for (point, stratum) in points.iter_mut().zip(&strata) {
                let u = (*stratum as f64 + rng.f64()) / count as f64;
                self.set_from_unit(point, dimension, u);
            }
        }
        points
    }

    /// The snapped points one discrete step away from `x` along dimension
    /// `dimension`: for an int the integers ±1, ±2, ±4, … away (all of them
    /// when there are at most 16), for a boolean its flip, for a choice every
    /// other choice. Empty for floats and constants.
    pub fn discrete_neighbours(&self, x: &[f64], dimension: usize) -> Vec<Vec<f64>> {
        let spec = &self.space[dimension];
        let mut out = Vec::new();
        match (&self.codings[dimension], &spec.kind) {
            (DimensionCoding::Int { column }, ParamKind::Int(range)) => {
                let current = match spec.from_unit(x[*column]) {
                    ParamValue::Int(i) => i,
                    _ => return out,
                };
                let span = range.high.saturating_sub(range.low);
                let mut targets = Vec::new();
                if span <= 16 {
                    targets.extend((range.low..=range.high).filter(|&i| i != current));
                } else {
                    let mut step: i64 = 1;
                    while step <= span {
                        for t in [current.saturating_sub(step), current.saturating_add(step)] {
                            if (range.low..=range.high).contains(&t) {
                                targets.push(t);
                            }
                        }
                        step = step.saturating_mul(2);
                    }
                }
                for t in targets {
                    if let Some(u) = spec.to_unit(&ParamValue::Int(t)) {
                        let mut y = x.to_vec();
                        y[*column] = u;
                        // A log scale may map two integers to one position.
                        if y[*column] != x[*column] {
                            out.push(y);
                        }
                    }
                }
            }
            (DimensionCoding::Boolean { column }, _) => {
                let mut y = x.to_vec();
                y[*column] = 1.0 - y[*column];
                out.push(y);
            }
            (DimensionCoding::Choice { first, count }, _) => {
                let current = argmax(&x[*first..first + count]);
                for index in (0..*count).filter(|&i| i != current) {
                    let mut y = x.to_vec();
                    set_one_hot(&mut y, *first, *count, index);
                    out.push(y);
                }
            }
            _ => {}
        }
        out
    }

    /// The number of dimensions (columns or not).
    pub fn dimensions(&self) -> usize {
        self.space.len()
    }
}

/// Sets the one-hot block `first..first + count` of `x` to choice `index`.
fn set_one_hot(x: &mut [f64], first: usize, count: usize, index: usize) {
    for (i, v) in x[first..first + count].iter_mut().enumerate() {
        *v = if i == index { 1.0 } else { 0.0 };
    }
}

/// The index of the largest value (the first on ties; NaN never wins).
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use pf_sdk::testing;

    fn mixed_space() -> Vec<ParamSpec> {
        vec![
            ParamSpec::float("x", -5.0, 5.0, 0.0),
            ParamSpec::float("lr", 1e-5, 1.0, 1e-3).with_log(),
            ParamSpec::int("n", 0, 20, 10),
            ParamSpec::int("w", 1, 1024, 8).with_log(),
            ParamSpec::boolean("b", true),
            ParamSpec::choice("act", &["relu", "tanh", "gelu"], "relu"),
            ParamSpec::float("fixed", 2.0, 2.0, 2.0),
            ParamSpec::choice("only", &["one"], "one"),
        ]
    }

    #[test]
    fn layout_has_one_group_per_modelled_dimension() {
        let e = Encoding::new(&mixed_space());
        assert_eq!(e.width(), 8);
        assert_eq!(e.layout().groups, 6);
        assert_eq!(e.layout().column_group, vec![0, 1, 2, 3, 4, 5, 5, 5]);
        assert_eq!(e.layout().column_weight[5..], [0.5; 3]);
        assert_eq!(e.float_columns(), vec![0, 1]);
        assert_eq!(e.codings()[6], DimensionCoding::Constant);
    }

    #[test]
    fn random_points_round_trip_through_parameters() {
        let space = mixed_space();
        let e = Encoding::new(&space);
        let mut rng = SplitMix64::new(1);
        for _ in 0..200 {
            let x = e.random_point(&mut rng);
            let params = e.decode(&x);
            testing::check_suggestion(&space, &params).unwrap();
            let back = e.encode(&params).unwrap();
            for (a, b) in x.iter().zip(&back) {
                assert!((a - b).abs() < 1e-12, "{x:?} vs {back:?}");
            }
            let mut snapped = x.clone();
            e.snap(&mut snapped);
            assert_eq!(snapped, x, "random points are snapped");
        }
    }

    #[test]
    fn encode_names_missing_unknown_and_out_of_range_parameters() {
        let space = mixed_space();
        let e = Encoding::new(&space);
        let mut params = e.decode(&e.random_point(&mut SplitMix64::new(2)));
        params.reverse(); // any order is accepted
        e.encode(&params).unwrap();
        let missing: Vec<Param> = params.iter().filter(|p| p.name != "n").cloned().collect();
        let err = e.encode(&missing).unwrap_err();
        assert_eq!(err.kind(), "invalid-argument");
        assert!(err.message().contains("`n`"), "{err:?}");
        let mut out = params.clone();
        out.iter_mut().find(|p| p.name == "lr").unwrap().value = ParamValue::Float(2.0);
        let err = e.encode(&out).unwrap_err();
        assert!(err.message().contains("`lr`"), "{err:?}");
        let mut extra = params.clone();
        extra.push(Param::new("zzz", ParamValue::Int(1)));
        assert!(e.encode(&extra).unwrap_err().message().contains("`zzz`"));
        let mut twice = params.clone();
        twice.push(params[0].clone());
        assert!(e.encode(&twice).unwrap_err().message().contains("twice"));
    }

    #[test]
    fn latin_hypercube_stratifies_every_dimension() {
        let space = vec![
            ParamSpec::float("a", 0.0, 1.0, 0.5),
            ParamSpec::choice("c", &["p", "q"], "p"),
        ];
        let e = Encoding::new(&space);
        let points = e.latin_hypercube(10, &mut SplitMix64::new(3));
        let mut strata: Vec<usize> = points.iter().map(|p| (p[0] * 10.0) as usize).collect();
        strata.sort();
        assert_eq!(strata, (0..10).collect::<Vec<_>>());
        let firsts = points.iter().filter(|p| p[1] == 1.0).count();
        assert_eq!(firsts, 5);
    }

    #[test]
    fn discrete_neighbours_step_ints_flip_booleans_and_swap_choices() {
        let space = mixed_space();
        let e = Encoding::new(&space);
        let x = e.encode(&e.decode(&vec![0.5; e.width()])).unwrap();
        // n in [0, 20]: more than 16 values, so exponential steps from 10.
        let ns: Vec<i64> = e
            .discrete_neighbours(&x, 2)
            .iter()
            .map(|y| e.decode(y)[2].value.as_i64().unwrap())
            .collect();
        assert_eq!(ns, vec![9, 11, 8, 12, 6, 14, 2, 18]);
        assert_eq!(e.discrete_neighbours(&x, 4).len(), 1);
        assert_eq!(e.discrete_neighbours(&x, 5).len(), 2);
        assert!(e.discrete_neighbours(&x, 0).is_empty());
        assert!(e.discrete_neighbours(&x, 6).is_empty());
    }
}
