//! Search spaces: building [`ParamSpec`]s, checking values against them and
//! validating whole spaces.

use std::collections::HashSet;
use std::fmt;

pub use crate::bindings::types::{FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue};
use crate::{Error, Result};

impl ParamValue {
    /// The value as a float: a `float`, or an `int` converted.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ParamValue::Float(x) => Some(x),
            ParamValue::Int(i) => Some(i as f64),
            _ => None,
        }
    }

    /// The value of an `int`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            ParamValue::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The value of a `boolean`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            ParamValue::Boolean(b) => Some(b),
            _ => None,
        }
    }

    /// The value of a `choice`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Choice(s) => Some(s),
            _ => None,
        }
    }

    /// `float`, `int`, `boolean` or `choice`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamValue::Float(_) => "float",
            ParamValue::Int(_) => "int",
            ParamValue::Boolean(_) => "boolean",
            ParamValue::Choice(_) => "choice",
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Boolean(b) => write!(f, "{b}"),
            ParamValue::Choice(s) => write!(f, "{s:?}"),
        }
    }
}

impl PartialEq for ParamValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ParamValue::Float(a), ParamValue::Float(b)) => a == b,
            (ParamValue::Int(a), ParamValue::Int(b)) => a == b,
            (ParamValue::Boolean(a), ParamValue::Boolean(b)) => a == b,
            (ParamValue::Choice(a), ParamValue::Choice(b)) => a == b,
            _ => false,
        }
    }
}

impl Param {
    /// A named value.
    pub fn new(name: impl Into<String>, value: ParamValue) -> Self {
        Param {
            name: name.into(),
            value,
        }
    }
}

impl fmt::Display for ParamKind {
    /// The domain in words, e.g. `a float in [0, 0.99]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = |log: bool| if log { " (log scale)" } else { "" };
        match self {
            ParamKind::Float(r) => write!(f, "a float in [{}, {}]{}", r.low, r.high, scale(r.log)),
            ParamKind::Int(r) => write!(f, "an int in [{}, {}]{}", r.low, r.high, scale(r.log)),
            ParamKind::Boolean => write!(f, "a boolean"),
            ParamKind::Choice(c) => write!(f, "one of {c:?}"),
        }
    }
}

impl ParamSpec {
    /// A float dimension in `[low, high]`.
    pub fn float(name: impl Into<String>, low: f64, high: f64, default: f64) -> Self {
        Self::new(
            name,
            ParamKind::Float(FloatRange {
                low,
                high,
                log: false,
            }),
            ParamValue::Float(default),
        )
    }

    /// An integer dimension in `[low, high]` (both included).
    pub fn int(name: impl Into<String>, low: i64, high: i64, default: i64) -> Self {
        Self::new(
            name,
            ParamKind::Int(IntRange {
                low,
                high,
                log: false,
            }),
            ParamValue::Int(default),
        )
    }

    /// A boolean dimension.
    pub fn boolean(name: impl Into<String>, default: bool) -> Self {
        Self::new(name, ParamKind::Boolean, ParamValue::Boolean(default))
    }

    /// A dimension taking one of `choices`.
    pub fn choice(name: impl Into<String>, choices: &[&str], default: &str) -> Self {
        Self::new(
            name,
            ParamKind::Choice(choices.iter().map(|c| c.to_string()).collect()),
            ParamValue::Choice(default.to_string()),
        )
    }

    fn new(name: impl Into<String>, kind: ParamKind, default: ParamValue) -> Self {
        ParamSpec {
            name: name.into(),
            kind,
            default,
            help: String::new(),
            context: Vec::new(),
        }
    }

    /// The same dimension searched in log space (float and int only).
    pub fn with_log(mut self) -> Self {
        match &mut self.kind {
            ParamKind::Float(r) => r.log = true,
            ParamKind::Int(r) => r.log = true,
            _ => {}
        }
        self
    }

    /// The same dimension with a one-line help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = help.into();
        self
    }

    /// The same dimension with a context (feature) vector.
    pub fn with_context(mut self, context: Vec<f64>) -> Self {
        self.context = context;
        self
    }

    /// Checks that `value` has this dimension's type and lies in its domain;
    /// the `invalid-argument` error names the parameter and the domain.
    pub fn check(&self, value: &ParamValue) -> Result<()> {
        check_value(&self.name, &self.kind, value)
    }
}

impl ParamSpec {
    /// Where `value` lies along this dimension, in `[0, 1]`, on the scale an
    /// optimizer should search: floats linearly (logarithmically on a log
    /// scale); ints the same over `[low − ½, high + ½]`, so every integer
    /// owns an equal share; the `i`-th of `n` choices at the middle of its
    /// share, `(i + ½) / n`; booleans as the choices `[false, true]`. `None`
    /// when the value does not fit the dimension (wrong type, out of range,
    /// unknown choice). A dimension of one point maps to ½.
    pub fn to_unit(&self, value: &ParamValue) -> Option<f64> {
        self.check(value).ok()?;
        let u = match (&self.kind, value) {
            (ParamKind::Float(r), ParamValue::Float(x)) => {
                let (lo, hi, x) = if r.log {
                    (r.low.ln(), r.high.ln(), x.ln())
                } else {
                    (r.low, r.high, *x)
                };
                if hi > lo {
                    (x - lo) / (hi - lo)
                } else {
                    0.5
                }
            }
            (ParamKind::Int(r), ParamValue::Int(i)) => {
                let (lo, hi) = int_scale(r);
                let x = if r.log { (*i as f64).ln() } else { *i as f64 };
                (x - lo) / (hi - lo)
            }
            (ParamKind::Boolean, ParamValue::Boolean(b)) => {
                if *b {
                    0.75
                } else {
                    0.25
                }
            }
            (ParamKind::Choice(c), ParamValue::Choice(s)) => {
                let i = c.iter().position(|x| x == s)?;
                (i as f64 + 0.5) / c.len() as f64
            }
            _ => return None,
        };
        Some(u.clamp(0.0, 1.0))
    }

    /// The value at position `u` along this dimension (the inverse of
    /// [`to_unit`](Self::to_unit)): `u` is clamped into `[0, 1]` (NaN counts
    /// as ½), ints are rounded to the integer owning that position, choices
    /// and booleans take the share `u` falls in. The result always lies in
    /// the domain of a [validated](validate) dimension.
    pub fn from_unit(&self, u: f64) -> ParamValue {
        let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
        match &self.kind {
            ParamKind::Float(r) => {
                let x = if r.log {
                    (r.low.ln() + u * (r.high.ln() - r.low.ln())).exp()
                } else {
                    r.low + u * (r.high - r.low)
                };
                ParamValue::Float(x.clamp(r.low, r.high))
            }
            ParamKind::Int(r) => {
                let (lo, hi) = int_scale(r);
                let x = lo + u * (hi - lo);
                let x = if r.log { x.exp() } else { x };
                // Casting saturates and the clamp keeps rounding inside.
                ParamValue::Int((x.round() as i64).clamp(r.low, r.high))
            }
            ParamKind::Boolean => ParamValue::Boolean(u >= 0.5),
            ParamKind::Choice(c) => {
                let i = ((u * c.len() as f64) as usize).min(c.len().saturating_sub(1));
                ParamValue::Choice(c.get(i).cloned().unwrap_or_default())
            }
        }
    }
}

/// The ends of an int dimension's search scale: `[low − ½, high + ½]`, in
/// logarithms on a log scale (where `low ≥ 1`, so `low − ½ > 0`).
fn int_scale(r: &IntRange) -> (f64, f64) {
    let (lo, hi) = (r.low as f64 - 0.5, r.high as f64 + 0.5);
    if r.log {
        (lo.ln(), hi.ln())
    } else {
        (lo, hi)
    }
}

/// Checks `value` against `kind` for the parameter `name`.
pub(crate) fn check_value(name: &str, kind: &ParamKind, value: &ParamValue) -> Result<()> {
    let ok = match (kind, value) {
        (ParamKind::Float(r), ParamValue::Float(x)) => x.is_finite() && r.low <= *x && *x <= r.high,
        (ParamKind::Int(r), ParamValue::Int(i)) => r.low <= *i && *i <= r.high,
        (ParamKind::Boolean, ParamValue::Boolean(_)) => true,
        (ParamKind::Choice(c), ParamValue::Choice(s)) => c.iter().any(|x| x == s),
        _ => {
            return Err(Error::invalid_argument(format!(
                "parameter `{name}` must be {kind}, got the {} {value}",
                value.type_name()
            )))
        }
    };
    if ok {
        Ok(())
    } else if matches!(value, ParamValue::Float(x) if !x.is_finite()) {
        Err(Error::invalid_argument(format!(
            "parameter `{name}` = {value} is not a finite number: it must be {kind}"
        )))
    } else {
        Err(Error::invalid_argument(format!(
            "parameter `{name}` = {value} is out of range: it must be {kind}"
        )))
    }
}

/// Validates a search space: names are non-empty and unique; float bounds are
/// finite with `low ≤ high`; int bounds have `low ≤ high`; log scales have
/// `low > 0`; choices are non-empty and unique. Defaults and context vectors
/// are not checked here (see [`validate_strict`]).
pub fn validate(space: &[ParamSpec]) -> Result<()> {
    let mut names = HashSet::new();
    for spec in space {
        let name = &spec.name;
        if name.is_empty() {
            return Err(Error::invalid_argument(
                "a search-space dimension has an empty name",
            ));
        }
        if !names.insert(name.as_str()) {
            return Err(Error::invalid_argument(format!(
                "the search space names `{name}` twice"
            )));
        }
        let bad = |why: String| {
            Err(Error::invalid_argument(format!(
                "dimension `{name}`: {why}"
            )))
        };
        match &spec.kind {
            ParamKind::Float(r) => {
                if !(r.low.is_finite() && r.high.is_finite()) {
                    return bad(format!("bounds [{}, {}] are not finite", r.low, r.high));
                }
                if r.low > r.high {
                    return bad(format!("low {} is above high {}", r.low, r.high));
                }
                if r.log && r.low <= 0.0 {
                    return bad(format!("a log scale needs low > 0, got {}", r.low));
                }
            }
            ParamKind::Int(r) => {
                if r.low > r.high {
                    return bad(format!("low {} is above high {}", r.low, r.high));
                }
                if r.log && r.low <= 0 {
                    return bad(format!("a log scale needs low > 0, got {}", r.low));
                }
            }
            ParamKind::Boolean => {}
            ParamKind::Choice(choices) => {
                if choices.is_empty() {
                    return bad("has no choices".to_string());
                }
                let mut seen = HashSet::new();
                if let Some(dup) = choices.iter().find(|c| !seen.insert(c.as_str())) {
                    return bad(format!("lists the choice {dup:?} twice"));
                }
            }
        }
    }
    Ok(())
}

/// [`validate`], and also: every default lies in its dimension's domain, and
/// the non-empty context vectors hold finite features and all have the same
/// length. The SDK applies this to every learner's search space, and pf to
/// every space a learner declares.
pub fn validate_strict(space: &[ParamSpec]) -> Result<()> {
    validate(space)?;
    let mut context_len = None;
    for spec in space {
        spec.check(&spec.default).map_err(|e| {
            Error::invalid_argument(format!("default of `{}`: {}", spec.name, e.message()))
        })?;
        if spec.context.is_empty() {
            continue;
        }
        if spec.context.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid_argument(format!(
                "context of `{}` has a non-finite feature",
                spec.name
            )));
        }
        match context_len {
            None => context_len = Some((spec.context.len(), &spec.name)),
            Some((len, first)) if len != spec.context.len() => {
                return Err(Error::invalid_argument(format!(
                    "context of `{}` has {} features but that of `{first}` has {len}",
                    spec.name,
                    spec.context.len()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a parameter set against a space: exactly one value per dimension,
/// each inside its domain (what pf checks of every suggestion, and what an
/// optimizer may check of what it observes). The `invalid-argument` error
/// names the offending parameter.
pub fn check_params(space: &[ParamSpec], params: &[Param]) -> Result<()> {
    let mut seen = HashSet::new();
    for p in params {
        let Some(spec) = space.iter().find(|s| s.name == p.name) else {
            return Err(Error::invalid_argument(format!(
                "parameter `{}` is not a dimension of the search space",
                p.name
            )));
        };
        if !seen.insert(p.name.as_str()) {
            return Err(Error::invalid_argument(format!(
                "parameter `{}` is given twice",
                p.name
            )));
        }
        spec.check(&p.value)?;
    }
    if let Some(missing) = space.iter().find(|s| !seen.contains(s.name.as_str())) {
        return Err(Error::invalid_argument(format!(
            "no value for parameter `{}`",
            missing.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_catches_malformed_spaces() {
        let ok = vec![
            ParamSpec::float("lr", 1e-4, 1.0, 0.1).with_log(),
            ParamSpec::int("n", 1, 10, 3),
            ParamSpec::boolean("b", true),
            ParamSpec::choice("c", &["x", "y"], "y"),
        ];
        validate_strict(&ok).unwrap();
        let bad = |spaces: Vec<ParamSpec>, needle: &str| {
            let e = validate(&spaces).unwrap_err();
            assert_eq!(e.kind(), "invalid-argument");
            assert!(e.message().contains(needle), "{e:?}");
        };
        bad(vec![ParamSpec::float("a", 1.0, 0.0, 0.5)], "above");
        bad(vec![ParamSpec::float("a", 0.0, 1.0, 0.5).with_log()], "log");
        bad(vec![ParamSpec::int("a", 0, 5, 1).with_log()], "log");
        bad(vec![ParamSpec::float("a", f64::NAN, 1.0, 0.5)], "finite");
        bad(vec![ParamSpec::choice("a", &[], "")], "no choices");
        bad(vec![ParamSpec::choice("a", &["x", "x"], "x")], "twice");
        bad(
            vec![ParamSpec::boolean("a", true), ParamSpec::boolean("a", true)],
            "twice",
        );
        bad(vec![ParamSpec::boolean("", true)], "empty");
    }

    #[test]
    fn strict_validation_checks_defaults_and_contexts() {
        assert!(validate(&[ParamSpec::float("a", 0.0, 1.0, 2.0)]).is_ok());
        assert!(validate_strict(&[ParamSpec::float("a", 0.0, 1.0, 2.0)]).is_err());
        assert!(
            validate_strict(&[ParamSpec::float("a", 0.0, 1.0, 0.5).with_context(vec![1.0])])
                .is_ok()
        );
        let e = validate_strict(&[
            ParamSpec::float("a", 0.0, 1.0, 0.5).with_context(vec![1.0]),
            ParamSpec::float("b", 0.0, 1.0, 0.5),
            ParamSpec::float("c", 0.0, 1.0, 0.5).with_context(vec![1.0, 2.0]),
        ])
        .unwrap_err();
        assert!(e.message().contains("context"), "{e:?}");
        let e =
            validate_strict(&[ParamSpec::float("a", 0.0, 1.0, 0.5).with_context(vec![f64::NAN])])
                .unwrap_err();
        assert!(e.message().contains("non-finite"), "{e:?}");
    }

    #[test]
    fn params_hold_one_value_per_dimension() {
        let space = [ParamSpec::int("n", 1, 10, 3), ParamSpec::boolean("b", true)];
        let n = |i| Param::new("n", ParamValue::Int(i));
        let b = Param::new("b", ParamValue::Boolean(false));
        check_params(&space, &[b.clone(), n(4)]).unwrap();
        let e = |params: &[Param]| {
            check_params(&space, params)
                .unwrap_err()
                .message()
                .to_string()
        };
        assert!(e(&[n(4)]).contains("no value for parameter `b`"));
        assert!(e(&[n(4), b.clone(), n(5)]).contains("given twice"));
        assert!(e(&[n(11), b.clone()]).contains("out of range"));
        let extra = Param::new("x", ParamValue::Int(1));
        assert!(e(&[n(4), b, extra]).contains("not a dimension"));
    }

    #[test]
    fn unit_positions_round_trip_on_every_kind() {
        let specs = [
            ParamSpec::float("f", -2.0, 6.0, 0.0),
            ParamSpec::float("l", 1e-4, 1.0, 0.1).with_log(),
            ParamSpec::int("i", 1, 5, 3),
            ParamSpec::int("k", 1, 1000, 10).with_log(),
            ParamSpec::boolean("b", true),
            ParamSpec::choice("c", &["x", "y", "z"], "y"),
            ParamSpec::float("p", 3.0, 3.0, 3.0),
        ];
        for spec in &specs {
            for step in 0..=100 {
                let u = step as f64 / 100.0;
                let v = spec.from_unit(u);
                spec.check(&v).unwrap();
                let back = spec.to_unit(&v).unwrap();
                assert_eq!(spec.from_unit(back), v, "{} at {u}", spec.name);
            }
        }
        assert_eq!(specs[0].to_unit(&ParamValue::Float(2.0)), Some(0.5));
        assert!((specs[1].to_unit(&ParamValue::Float(1e-2)).unwrap() - 0.5).abs() < 1e-12);
        // Every integer of [1, 5] owns a fifth of the line.
        let ints: Vec<_> = (0..5)
            .map(|k| specs[2].from_unit(0.1 + 0.2 * k as f64))
            .collect();
        assert_eq!(ints, (1..=5).map(ParamValue::Int).collect::<Vec<_>>());
        assert_eq!(specs[5].from_unit(1.0), ParamValue::Choice("z".into()));
        assert_eq!(specs[4].from_unit(f64::NAN), ParamValue::Boolean(true));
        assert_eq!(specs[2].to_unit(&ParamValue::Int(9)), None);
        assert_eq!(specs[5].to_unit(&ParamValue::Choice("w".into())), None);
    }

    #[test]
    fn checks_name_the_parameter_and_domain() {
        let spec = ParamSpec::int("n", 1, 10, 3);
        assert!(spec.check(&ParamValue::Int(10)).is_ok());
        let e = spec.check(&ParamValue::Int(11)).unwrap_err();
        assert_eq!(
            e.message(),
            "parameter `n` = 11 is out of range: it must be an int in [1, 10]"
        );
        let e = spec.check(&ParamValue::Boolean(true)).unwrap_err();
        assert_eq!(
            e.message(),
            "parameter `n` must be an int in [1, 10], got the boolean true"
        );
    }
}
