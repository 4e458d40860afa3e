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
/// the non-empty context vectors all have the same length. The SDK applies
/// this to every learner's search space.
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
