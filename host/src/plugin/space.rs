//! Search spaces and parameter sets: the checks the host applies to what a
//! learner declares and to what an optimizer suggests.

use super::bindings::types::{Param, ParamKind, ParamSpec, ParamValue};
use std::collections::HashSet;

/// A value as the user reads it.
pub fn format_value(v: &ParamValue) -> String {
    match v {
        ParamValue::Float(x) => format!("{x}"),
        ParamValue::Int(x) => format!("{x}"),
        ParamValue::Boolean(x) => format!("{x}"),
        ParamValue::Choice(x) => x.clone(),
    }
}

/// A domain as the user reads it.
pub fn format_kind(k: &ParamKind) -> String {
    match k {
        ParamKind::Float(r) => format!(
            "float in [{}, {}]{}",
            r.low,
            r.high,
            if r.log { ", log scale" } else { "" }
        ),
        ParamKind::Int(r) => format!(
            "int in [{}, {}]{}",
            r.low,
            r.high,
            if r.log { ", log scale" } else { "" }
        ),
        ParamKind::Boolean => "bool".into(),
        ParamKind::Choice(c) => format!("one of {}", c.join(", ")),
    }
}

/// Checks that `value` is of `spec`'s type and inside its domain.
pub fn check_value(spec: &ParamSpec, value: &ParamValue) -> Result<(), String> {
    let bad = || {
        format!(
            "`{}` = {} is not a {}",
            spec.name,
            format_value(value),
            format_kind(&spec.kind)
        )
    };
    match (&spec.kind, value) {
        (ParamKind::Float(r), ParamValue::Float(x)) => {
            if x.is_finite() && *x >= r.low && *x <= r.high {
                Ok(())
            } else {
                Err(bad())
            }
        }
        (ParamKind::Int(r), ParamValue::Int(x)) => {
            if *x >= r.low && *x <= r.high {
                Ok(())
            } else {
                Err(bad())
            }
        }
        (ParamKind::Boolean, ParamValue::Boolean(_)) => Ok(()),
        (ParamKind::Choice(c), ParamValue::Choice(x)) if c.contains(x) => Ok(()),
        _ => Err(bad()),
    }
}

/// Checks a declared search space: unique names, sound domains, defaults
/// inside them, context vectors of one length.
pub fn validate_space(space: &[ParamSpec]) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut context_len = None;
    for s in space {
        if s.name.is_empty() {
            return Err("a dimension has an empty name".into());
        }
        if !names.insert(s.name.as_str()) {
            return Err(format!("dimension `{}` is declared twice", s.name));
        }
        match &s.kind {
            ParamKind::Float(r) => {
                if !(r.low.is_finite() && r.high.is_finite() && r.low <= r.high) {
                    return Err(format!(
                        "`{}` has the bad range [{}, {}]",
                        s.name, r.low, r.high
                    ));
                }
                if r.log && r.low <= 0.0 {
                    return Err(format!(
                        "`{}` is on a log scale but its range starts at {}",
                        s.name, r.low
                    ));
                }
            }
            ParamKind::Int(r) => {
                if r.low > r.high {
                    return Err(format!(
                        "`{}` has the bad range [{}, {}]",
                        s.name, r.low, r.high
                    ));
                }
                if r.log && r.low <= 0 {
                    return Err(format!(
                        "`{}` is on a log scale but its range starts at {}",
                        s.name, r.low
                    ));
                }
            }
            ParamKind::Boolean => {}
            ParamKind::Choice(c) => {
                if c.is_empty() {
                    return Err(format!("`{}` offers no choices", s.name));
                }
                let unique: HashSet<_> = c.iter().collect();
                if unique.len() != c.len() {
                    return Err(format!("`{}` lists a choice twice", s.name));
                }
            }
        }
        check_value(s, &s.default).map_err(|e| format!("default {e}"))?;
        if s.context.iter().any(|x| !x.is_finite()) {
            return Err(format!("`{}` has a non-finite context feature", s.name));
        }
        if !s.context.is_empty() {
            match context_len {
                None => context_len = Some(s.context.len()),
                Some(n) if n != s.context.len() => {
                    return Err(format!(
                        "`{}` has {} context features but earlier dimensions have {n}",
                        s.name,
                        s.context.len()
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Checks a parameter set against a space: exactly one value per dimension,
/// each inside its domain.
pub fn check_params(space: &[ParamSpec], params: &[Param]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for p in params {
        let Some(spec) = space.iter().find(|s| s.name == p.name) else {
            return Err(format!(
                "`{}` is not a dimension of the search space",
                p.name
            ));
        };
        if !seen.insert(p.name.as_str()) {
            return Err(format!("`{}` is given twice", p.name));
        }
        check_value(spec, &p.value)?;
    }
    if let Some(missing) = space.iter().find(|s| !seen.contains(s.name.as_str())) {
        return Err(format!("no value for `{}`", missing.name));
    }
    Ok(())
}

/// Every dimension at its default.
pub fn defaults(space: &[ParamSpec]) -> Vec<Param> {
    space
        .iter()
        .map(|s| Param {
            name: s.name.clone(),
            value: s.default.clone(),
        })
        .collect()
}

/// `name=value, ...` for logs and reports.
pub fn format_params(params: &[Param]) -> String {
    params
        .iter()
        .map(|p| format!("{}={}", p.name, format_value(&p.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `name=value` for a dimension of `space` (as given to `--set`).
pub fn parse_assignment(space: &[ParamSpec], text: &str) -> Result<Param, String> {
    let (name, raw) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let spec = space.iter().find(|s| s.name == name).ok_or_else(|| {
        format!(
            "`{name}` is not a parameter of this plugin; it has {}",
            space
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let value = match &spec.kind {
        ParamKind::Float(_) => raw
            .parse()
            .map(ParamValue::Float)
            .map_err(|e| e.to_string()),
        ParamKind::Int(_) => raw.parse().map(ParamValue::Int).map_err(|e| e.to_string()),
        ParamKind::Boolean => raw
            .parse()
            .map(ParamValue::Boolean)
            .map_err(|e| e.to_string()),
        ParamKind::Choice(_) => Ok(ParamValue::Choice(raw.to_string())),
    }
    .map_err(|e| format!("`{text}`: {e}; expected a {}", format_kind(&spec.kind)))?;
    check_value(spec, &value)?;
    Ok(Param {
        name: name.to_string(),
        value,
    })
}

/// A learner's space as the user's `NAME=VALUE` assignments shape it, and
/// those assignments parsed. The space may depend on the settings (e.g.
/// per-layer dimensions appear with `per_layer=true`), so `space_for` is
/// asked first with the assignments that fit the default space, then every
/// assignment is parsed against the space they shaped. A name given twice
/// keeps its last value.
pub fn shape_space(
    assignments: &[String],
    space_for: impl Fn(&[Param]) -> anyhow::Result<Vec<ParamSpec>>,
) -> anyhow::Result<(Vec<ParamSpec>, Vec<Param>)> {
    let default_space = space_for(&[])?;
    let settings: Vec<Param> = assignments
        .iter()
        .filter_map(|s| parse_assignment(&default_space, s).ok())
        .collect();
    let space = space_for(&settings)?;
    let mut fixed: Vec<Param> = Vec::new();
    for s in assignments {
        let p = parse_assignment(&space, s).map_err(|e| anyhow::anyhow!("--set {e}"))?;
        fixed.retain(|q| q.name != p.name);
        fixed.push(p);
    }
    Ok((space, fixed))
}
