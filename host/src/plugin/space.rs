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

/// The settings a plugin's `params-schema` declares, as dimensions: what
/// `--optimizer-set NAME=VALUE` is parsed against. Booleans, integers and
/// numbers (with their `minimum`/`maximum`, else unbounded) and string
/// enumerations (inline or through a `$ref` into `$defs`) are read; other
/// properties are skipped (the plugin still checks every value it is given).
pub fn settings_from_schema(schema: &str) -> Result<Vec<ParamSpec>, String> {
    use super::bindings::types::{FloatRange, IntRange};
    use serde_json::Value;
    let root: Value =
        serde_json::from_str(schema).map_err(|e| format!("the params-schema is not JSON: {e}"))?;
    let resolve = |v: &Value| -> Value {
        let target = v
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|n| root.get("$defs").and_then(|d| d.get(n)));
        // The property's own keys (its default, its description) over the
        // definition it refers to.
        match (target.cloned(), v.as_object()) {
            (Some(Value::Object(mut def)), Some(own)) => {
                for (k, val) in own {
                    if k != "$ref" {
                        def.insert(k.clone(), val.clone());
                    }
                }
                Value::Object(def)
            }
            (Some(def), _) => def,
            (None, _) => v.clone(),
        }
    };
    let mut specs = Vec::new();
    let Some(props) = root.get("properties").and_then(Value::as_object) else {
        return Ok(specs);
    };
    for (name, prop) in props {
        let prop = resolve(prop);
        let num = |key: &str| prop.get(key).and_then(Value::as_f64);
        let ty = prop.get("type").and_then(Value::as_str).unwrap_or_default();
        // A string enumeration: `enum`, or (when its variants carry doc
        // comments) `oneOf` string constants.
        let listed = prop.get("enum").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect::<Vec<_>>()
        });
        let constants = prop.get("oneOf").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.get("const").and_then(Value::as_str).map(String::from))
                .collect::<Vec<_>>()
        });
        let choices: Vec<String> = listed.or(constants).unwrap_or_default();
        let (kind, default) = match ty {
            _ if !choices.is_empty() => {
                let d = prop.get("default").and_then(Value::as_str);
                let d = d.unwrap_or(&choices[0]).to_string();
                (ParamKind::Choice(choices), ParamValue::Choice(d))
            }
            "boolean" => {
                let d = prop.get("default").and_then(Value::as_bool);
                (ParamKind::Boolean, ParamValue::Boolean(d.unwrap_or(false)))
            }
            "integer" => {
                let low = num("minimum").map_or(i64::MIN, |x| x.ceil() as i64);
                let high = num("maximum").map_or(i64::MAX, |x| x.floor() as i64);
                let d = prop.get("default").and_then(Value::as_i64).unwrap_or(low);
                let range = IntRange {
                    low,
                    high,
                    log: false,
                };
                (ParamKind::Int(range), ParamValue::Int(d))
            }
            "number" => {
                let low = num("minimum").unwrap_or(f64::MIN);
                let high = num("maximum").unwrap_or(f64::MAX);
                let range = FloatRange {
                    low,
                    high,
                    log: false,
                };
                (
                    ParamKind::Float(range),
                    ParamValue::Float(num("default").unwrap_or(low)),
                )
            }
            _ => continue,
        };
        // The first paragraph, on one line (as the SDK's help texts are).
        let description = prop.get("description").and_then(Value::as_str);
        let help = description.unwrap_or_default().split("\n\n").next();
        let help = help.unwrap_or_default().split_whitespace();
        specs.push(ParamSpec {
            name: name.clone(),
            kind,
            default,
            help: help.collect::<Vec<_>>().join(" "),
            context: Vec::new(),
        });
    }
    Ok(specs)
}

/// An optimizer's `--optimizer-set NAME=VALUE` assignments, parsed against
/// the settings its `params-schema` declares. A name given twice keeps its
/// last value.
pub fn parse_options(schema: &str, assignments: &[String]) -> Result<Vec<Param>, String> {
    if assignments.is_empty() {
        return Ok(Vec::new());
    }
    let settings = settings_from_schema(schema)?;
    if settings.is_empty() {
        return Err("this optimizer takes no options".into());
    }
    let mut options: Vec<Param> = Vec::new();
    for text in assignments {
        let p = parse_assignment(&settings, text)?;
        options.retain(|q| q.name != p.name);
        options.push(p);
    }
    Ok(options)
}

/// The settings a learner's `params-schema` marks `"x-fixed": true`: values
/// a user sets with `--set` that no optimizer searches (a sampling size, a
/// selection method). They are not dimensions of the search space, so they
/// reach the learner only as fixed values.
pub fn fixed_settings(schema: &str) -> Result<Vec<ParamSpec>, String> {
    let root: serde_json::Value =
        serde_json::from_str(schema).map_err(|e| format!("the params-schema is not JSON: {e}"))?;
    let fixed = |name: &str| {
        root.get("properties")
            .and_then(|p| p.get(name))
            .and_then(|f| f.get("x-fixed"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    };
    Ok(settings_from_schema(schema)?
        .into_iter()
        .filter(|s| fixed(&s.name))
        .collect())
}

/// A learner's space as the user's `NAME=VALUE` assignments shape it, and
/// those assignments parsed. The space may depend on the settings (e.g.
/// per-layer dimensions appear with `per_layer=true`), so `space_for` is
/// asked first with the assignments that fit the default space or the
/// learner's fixed `settings` (see [`fixed_settings`]), then every
/// assignment is parsed against the space they shaped, or else against the
/// settings. A name given twice keeps its last value.
pub fn shape_space(
    assignments: &[String],
    settings: &[ParamSpec],
    space_for: impl Fn(&[Param]) -> anyhow::Result<Vec<ParamSpec>>,
) -> anyhow::Result<(Vec<ParamSpec>, Vec<Param>)> {
    let default_space = space_for(&[])?;
    let parse = |space: &[ParamSpec], text: &str| {
        let name = text.split_once('=').map_or(text, |(n, _)| n);
        if !space.iter().any(|s| s.name == name) {
            if settings.iter().any(|s| s.name == name) {
                return parse_assignment(settings, text);
            }
            let known: Vec<ParamSpec> = space.iter().chain(settings).cloned().collect();
            return parse_assignment(&known, text);
        }
        parse_assignment(space, text)
    };
    let given: Vec<Param> = assignments
        .iter()
        .filter_map(|s| parse(&default_space, s).ok())
        .collect();
    let space = space_for(&given)?;
    let mut fixed: Vec<Param> = Vec::new();
    for s in assignments {
        let p = parse(&space, s).map_err(|e| anyhow::anyhow!("--set {e}"))?;
        fixed.retain(|q| q.name != p.name);
        fixed.push(p);
    }
    Ok((space, fixed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema as the SDK publishes one: a boolean, a bounded integer, a
    /// number and an enumeration behind a `$ref`.
    const SCHEMA: &str = r##"{
        "type": "object",
        "properties": {
            "multivariate": {"type": "boolean", "default": false,
                "description": "Joint\nmodelling.\n\nMore detail."},
            "startup_trials": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
            "gamma": {"type": "number", "minimum": 0.01, "maximum": 0.5, "default": 0.1},
            "design": {"$ref": "#/$defs/Design", "default": "sobol"}
        },
        "$defs": {"Design": {"type": "string", "enum": ["random", "sobol"]}}
    }"##;

    #[test]
    fn options_parse_against_the_schema() {
        let specs = settings_from_schema(SCHEMA).unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["multivariate", "startup_trials", "gamma", "design"]);
        assert_eq!(specs[0].help, "Joint modelling.");
        let opts = parse_options(
            SCHEMA,
            &[
                "multivariate=true".into(),
                "startup_trials=5".into(),
                "design=random".into(),
                "startup_trials=7".into(),
            ],
        )
        .unwrap();
        assert_eq!(opts.len(), 3);
        assert_eq!(opts[2].name, "startup_trials");
        assert!(matches!(opts[2].value, ParamValue::Int(7)));
        let bad = |a: &str| parse_options(SCHEMA, &[a.to_string()]).unwrap_err();
        assert!(bad("startup_trials=0").contains("startup_trials"));
        assert!(bad("gamma=fast").contains("gamma"));
        assert!(bad("design=grid").contains("design"));
        assert!(bad("momentum=1").contains("not a parameter"));
        let none = r#"{"type":"object","properties":{}}"#;
        assert!(parse_options(none, &["a=1".into()])
            .unwrap_err()
            .contains("no options"));
        assert!(parse_options(none, &[]).unwrap().is_empty());
    }

    #[test]
    fn fixed_settings_are_set_but_never_searched() {
        // As the SDK writes a learner's schema: a searched ratio, and fixed
        // settings, one an enumeration whose variants carry doc comments.
        let schema = r#"{"type": "object", "properties": {
            "ratio": {"type": "number", "minimum": 0.05, "maximum": 1.0, "default": 0.5},
            "images": {"type": "integer", "minimum": 1, "maximum": 512, "default": 128,
                "x-fixed": true},
            "selection": {"default": "lasso", "x-fixed": true, "oneOf": [
                {"const": "lasso", "type": "string", "description": "LASSO."},
                {"const": "random", "type": "string", "description": "Random."}]}
        }}"#;
        let settings = fixed_settings(schema).unwrap();
        let names: Vec<_> = settings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["images", "selection"]);
        assert!(
            matches!(&settings[1].kind, ParamKind::Choice(c) if c == &["lasso", "random"]),
            "{:?}",
            settings[1].kind
        );
        let space = || {
            vec![ParamSpec {
                name: "ratio".into(),
                kind: ParamKind::Float(super::super::bindings::types::FloatRange {
                    low: 0.05,
                    high: 1.0,
                    log: false,
                }),
                default: ParamValue::Float(0.5),
                help: String::new(),
                context: Vec::new(),
            }]
        };
        let shape = |a: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            shape_space(&a, &settings, |_| Ok(space()))
        };
        let (full, fixed) = shape(&["selection=random", "ratio=0.3", "images=64"]).unwrap();
        assert_eq!(full.len(), 1, "settings are not dimensions");
        let names: Vec<_> = fixed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["selection", "ratio", "images"]);
        let err = |a: &str| shape(&[a]).unwrap_err().to_string();
        assert!(err("selection=greedy").contains("selection"));
        assert!(err("images=0").contains("images"));
        let unknown = err("momentum=1");
        assert!(
            unknown.contains("not a parameter") && unknown.contains("images"),
            "{unknown}"
        );
    }
}
