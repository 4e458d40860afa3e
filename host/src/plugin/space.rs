//! Search spaces and parameter sets: the checks the host applies to what a
//! learner declares and to what an optimizer suggests.

use super::bindings::types::{FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue};
use pf_sdk::space as sdk;

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

/// The SDK's form of a dimension: the rules are the SDK's, so a plugin and
/// pf judge a space and its values by the same code.
fn to_sdk(spec: &ParamSpec) -> sdk::ParamSpec {
    sdk::ParamSpec {
        name: spec.name.clone(),
        kind: match &spec.kind {
            ParamKind::Float(r) => sdk::ParamKind::Float(sdk::FloatRange {
                low: r.low,
                high: r.high,
                log: r.log,
            }),
            ParamKind::Int(r) => sdk::ParamKind::Int(sdk::IntRange {
                low: r.low,
                high: r.high,
                log: r.log,
            }),
            ParamKind::Boolean => sdk::ParamKind::Boolean,
            ParamKind::Choice(c) => sdk::ParamKind::Choice(c.clone()),
        },
        default: to_sdk_value(&spec.default),
        help: spec.help.clone(),
        context: spec.context.clone(),
    }
}

fn to_sdk_value(v: &ParamValue) -> sdk::ParamValue {
    match v {
        ParamValue::Float(x) => sdk::ParamValue::Float(*x),
        ParamValue::Int(x) => sdk::ParamValue::Int(*x),
        ParamValue::Boolean(x) => sdk::ParamValue::Boolean(*x),
        ParamValue::Choice(x) => sdk::ParamValue::Choice(x.clone()),
    }
}

/// The host's form of a dimension the SDK read.
fn from_sdk(spec: sdk::ParamSpec) -> ParamSpec {
    ParamSpec {
        name: spec.name,
        kind: match spec.kind {
            sdk::ParamKind::Float(r) => ParamKind::Float(FloatRange {
                low: r.low,
                high: r.high,
                log: r.log,
            }),
            sdk::ParamKind::Int(r) => ParamKind::Int(IntRange {
                low: r.low,
                high: r.high,
                log: r.log,
            }),
            sdk::ParamKind::Boolean => ParamKind::Boolean,
            sdk::ParamKind::Choice(c) => ParamKind::Choice(c),
        },
        default: match spec.default {
            sdk::ParamValue::Float(x) => ParamValue::Float(x),
            sdk::ParamValue::Int(x) => ParamValue::Int(x),
            sdk::ParamValue::Boolean(x) => ParamValue::Boolean(x),
            sdk::ParamValue::Choice(x) => ParamValue::Choice(x),
        },
        help: spec.help,
        context: spec.context,
    }
}

fn message(e: pf_sdk::Error) -> String {
    e.message().to_string()
}

/// Checks that `value` is of `spec`'s type and inside its domain
/// ([`pf_sdk::ParamSpec::check`]).
pub fn check_value(spec: &ParamSpec, value: &ParamValue) -> Result<(), String> {
    to_sdk(spec).check(&to_sdk_value(value)).map_err(message)
}

/// Checks a declared search space: unique names, sound domains, defaults
/// inside them, finite context vectors of one length
/// ([`pf_sdk::space::validate_strict`]).
pub fn validate_space(space: &[ParamSpec]) -> Result<(), String> {
    let space: Vec<_> = space.iter().map(to_sdk).collect();
    sdk::validate_strict(&space).map_err(message)
}

/// Checks a parameter set against a space: exactly one value per dimension,
/// each inside its domain ([`pf_sdk::space::check_params`]).
pub fn check_params(space: &[ParamSpec], params: &[Param]) -> Result<(), String> {
    let space: Vec<_> = space.iter().map(to_sdk).collect();
    let params: Vec<_> = params
        .iter()
        .map(|p| sdk::Param::new(p.name.clone(), to_sdk_value(&p.value)))
        .collect();
    sdk::check_params(&space, &params).map_err(message)
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
    .map_err(|_| {
        format!(
            "`{name}` has the wrong type: expected {}, got the string \"{}\"",
            match &spec.kind {
                ParamKind::Float(_) => format!("a number ({})", format_kind(&spec.kind)),
                ParamKind::Int(_) => format!("an integer ({})", format_kind(&spec.kind)),
                kind => format_kind(kind),
            },
            super::bounds::quote(raw)
        )
    })?;
    check_value(spec, &value)?;
    Ok(Param {
        name: name.to_string(),
        value,
    })
}

/// The settings a plugin's `params-schema` declares, as dimensions: what
/// `--optimizer-set NAME=VALUE` is parsed against. The schema is read by the
/// SDK's own rules ([`pf_sdk::params::settings`]): booleans, integers and
/// numbers (with their `minimum`/`maximum`, else unbounded) and string
/// enumerations (inline or through a `$ref` into `$defs`); other properties
/// are skipped (the plugin still checks every value it is given).
pub fn settings_from_schema(schema: &str) -> Result<Vec<ParamSpec>, String> {
    let settings = pf_sdk::params::settings(schema).map_err(message)?;
    Ok(settings.into_iter().map(|s| from_sdk(s.spec)).collect())
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
    let settings = pf_sdk::params::settings(schema).map_err(message)?;
    Ok(settings
        .into_iter()
        .filter(|s| s.fixed)
        .map(|s| from_sdk(s.spec))
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
    fn a_string_for_a_number_is_the_wrong_type_not_out_of_range() {
        let space = settings_from_schema(SCHEMA).unwrap();
        let e = parse_assignment(&space, "gamma=fast").unwrap_err();
        assert!(
            e.contains("`gamma` has the wrong type: expected a number (float in")
                && e.contains("got the string \"fast\""),
            "{e}"
        );
        assert!(!e.contains("out of range"), "{e}");
        let e = parse_assignment(&space, "gamma=nan").unwrap_err();
        assert!(e.contains("is not a finite number"), "{e}");
        let e = parse_assignment(&space, "gamma=\u{1b}[2J").unwrap_err();
        assert!(e.contains("\\u{1b}[2J") && !e.contains('\u{1b}'), "{e}");
    }

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
                kind: ParamKind::Float(FloatRange {
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
