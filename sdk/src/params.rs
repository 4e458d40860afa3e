//! Hyper-parameters as a Rust struct: one source of truth for the JSON Schema,
//! the search space and the decoding of the host's values.
//!
//! A learner declares its parameters as a struct deriving `Serialize`,
//! `Deserialize`, `JsonSchema` and implementing `Default`; the blanket
//! [`Params`] impl then derives everything else from it:
//!
//! | field | dimension |
//! |---|---|
//! | `f64`, `f32` with `#[schemars(range(min = a, max = b))]` | float in `[a, b]` |
//! | integers with `#[schemars(range(min = a, max = b))]` | int in `[a, b]` |
//! | `bool` | boolean |
//! | unit-only enum (`#[serde(rename_all = "snake_case")]`) | choice of the variant names |
//!
//! * The default is the field's value in `Default::default()`.
//! * The help is the field's doc comment (its first paragraph, on one line).
//! * `#[schemars(extend("x-log" = true))]` asks for a log scale (float or
//!   int, with a positive lower bound).
//! * `#[schemars(extend("x-fixed" = true))]` makes a field a *setting*: it is
//!   not a dimension of the search space, but the user may still set it by
//!   name (as a `float`, `int`, `boolean` or, for strings and enums, `choice`).
//! * Any other searched field (a float or int without both bounds, a string,
//!   an `Option`, a nested struct) is an error when the search space is
//!   derived, with a message saying which attribute to add.
//!
//! Decoding the host's `list<param>` ([`Params::decode`]): names missing take
//! their defaults; a value of the wrong type or out of range is an
//! `invalid-argument` error naming the parameter and its domain; a name that is
//! not a field goes to [`Extra`] if the learner's search space declares it
//! (e.g. per-layer ratios `sparsity.<layer>`) and is an error otherwise.
//!
//! Inside a plugin that depends on nothing but `pf-sdk`, point the derives at
//! the SDK's re-exports:
//!
//! ```ignore
//! use pf_sdk::prelude::*;
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! #[serde(crate = "pf_sdk::serde", default)]
//! #[schemars(crate = "pf_sdk::schemars")]
//! struct MyParams {
//!     /// Fraction of weights to remove.
//!     #[schemars(range(min = 0.0, max = 0.99))]
//!     sparsity: f64,
//! }
//! impl Default for MyParams { fn default() -> Self { MyParams { sparsity: 0.5 } } }
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;

use crate::space::{check_value, validate_strict};
use crate::{Error, FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue, Result};
use schemars::JsonSchema;

/// A hyper-parameter struct. Implemented for every type that is
/// `Serialize + DeserializeOwned + JsonSchema + Default` (including `()` for a
/// learner without parameters); see the [module docs](self) for the rules.
pub trait Params: Sized + 'static {
    /// The JSON Schema (draft 2020-12) of the parameters, with every field's
    /// default filled in and none required: what `plugin-info.params-schema`
    /// carries.
    fn schema_json() -> String;

    /// The search space: one dimension per field that is not `x-fixed`.
    fn search_space() -> Result<Vec<ParamSpec>>;

    /// Decodes the host's values. `space` is the learner's whole search space;
    /// names it declares beyond the struct's fields are returned in [`Extra`]
    /// (with their defaults when the host gave no value).
    fn decode(params: &[Param], space: &[ParamSpec]) -> Result<(Self, Extra)>;

    /// Decodes the values of struct fields among `params` and ignores every
    /// other name: the settings a learner shapes its search space with.
    fn decode_settings(params: &[Param]) -> Result<Self>;

    /// The values as the host would pass them (fields that have no
    /// [`ParamValue`] form are left out).
    fn to_params(&self) -> Vec<Param>;
}

impl<T> Params for T
where
    T: Serialize + DeserializeOwned + JsonSchema + Default + 'static,
{
    fn schema_json() -> String {
        match Described::of::<T>() {
            Ok(d) => d.published.to_string(),
            // Only a `Default` that does not serialize gets here; publish the
            // plain schema then, the error shows up in `search_space`.
            Err(_) => schemars::schema_for!(T).as_value().to_string(),
        }
    }

    fn search_space() -> Result<Vec<ParamSpec>> {
        let described = Described::of::<T>()?;
        let mut space = Vec::new();
        for field in described.fields.iter().filter(|f| !f.fixed) {
            space.push(field.spec()?);
        }
        validate_strict(&space)
            .map_err(|e| Error::invalid_argument(format!("parameter struct: {}", e.message())))?;
        Ok(space)
    }

    fn decode(params: &[Param], space: &[ParamSpec]) -> Result<(Self, Extra)> {
        let described = Described::of::<T>()?;
        let mut values = described.defaults.clone();
        let mut extra = Vec::new();
        let mut seen = HashSet::new();
        for param in params {
            let name = param.name.as_str();
            if !seen.insert(name) {
                return Err(Error::invalid_argument(format!(
                    "parameter `{name}` is given twice"
                )));
            }
            let spec = space.iter().find(|s| s.name == name);
            if let Some(field) = described.fields.iter().find(|f| f.name == name) {
                values.insert(name.to_string(), field.check(&param.value)?);
                if let Some(spec) = spec {
                    spec.check(&param.value)?;
                }
            } else if let Some(spec) = spec {
                spec.check(&param.value)?;
                extra.push(param.clone());
            } else {
                let known: Vec<&str> = described
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .chain(space.iter().map(|s| s.name.as_str()))
                    .collect::<Vec<_>>();
                let mut unique = Vec::new();
                for k in known {
                    if !unique.contains(&k) {
                        unique.push(k);
                    }
                }
                return Err(Error::invalid_argument(format!(
                    "unknown parameter `{name}`; this plugin takes: {}",
                    if unique.is_empty() {
                        "nothing".to_string()
                    } else {
                        unique.join(", ")
                    }
                )));
            }
        }
        // Dimensions the learner added that the host left out take their
        // defaults, so `Extra` always has a value for each.
        for spec in space {
            let is_field = described.fields.iter().any(|f| f.name == spec.name);
            if !is_field && !seen.contains(spec.name.as_str()) {
                extra.push(Param::new(spec.name.clone(), spec.default.clone()));
            }
        }
        let value = if described.unit {
            Value::Null
        } else {
            Value::Object(values)
        };
        let decoded = serde_json::from_value(value)
            .map_err(|e| Error::invalid_argument(format!("parameters do not decode: {e}")))?;
        Ok((decoded, Extra { params: extra }))
    }

    fn decode_settings(params: &[Param]) -> Result<Self> {
        let described = Described::of::<T>()?;
        let fields: Vec<Param> = params
            .iter()
            .filter(|p| described.fields.iter().any(|f| f.name == p.name))
            .cloned()
            .collect();
        Self::decode(&fields, &[]).map(|(settings, _)| settings)
    }

    fn to_params(&self) -> Vec<Param> {
        let (Ok(described), Ok(Value::Object(values))) =
            (Described::of::<T>(), serde_json::to_value(self))
        else {
            return Vec::new();
        };
        described
            .fields
            .iter()
            .filter_map(|f| {
                let v = values.get(&f.name)?;
                Some(Param::new(f.name.clone(), f.kind.param_value(v)?))
            })
            .collect()
    }
}

/// The values of search-space dimensions that a learner declared beyond its
/// parameter struct's fields (e.g. per-layer ratios `sparsity.<layer>`), as
/// the host chose them, or their defaults.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    params: Vec<Param>,
}

impl Extra {
    /// The value of the dimension `name`, if the space declared it.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// The value of a float (or int) dimension.
    pub fn float(&self, name: &str) -> Option<f64> {
        self.get(name)?.as_f64()
    }

    /// The value of an int dimension.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name)?.as_i64()
    }

    /// The value of a boolean dimension.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        self.get(name)?.as_bool()
    }

    /// The value of a choice dimension.
    pub fn choice(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    /// Every extra value.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.params.iter()
    }

    /// The number of extra values.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

/// A setting that a published `params-schema` declares, as [`settings`]
/// reads it.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The setting as a dimension: its domain (open ends as infinite
    /// bounds), its default (else the domain's first value) and its help.
    pub spec: ParamSpec,
    /// Marked `x-fixed`: set by name, never searched.
    pub fixed: bool,
}

/// The settings a plugin's `params-schema` (as [`Params::schema_json`]
/// publishes it, or as a plugin not built with the SDK writes it) declares,
/// read with the rules the SDK derives search spaces with: numbers,
/// integers, booleans and string enumerations (`enum`, `const`, or a
/// `oneOf`/`anyOf` of those, inline or through a `$ref` into `$defs`).
/// Other properties are skipped: the plugin still checks every value it is
/// given. pf parses `--set` and `--optimizer-set` against these.
pub fn settings(schema: &str) -> Result<Vec<Setting>> {
    let root: Value = serde_json::from_str(schema)
        .map_err(|e| Error::invalid_argument(format!("the params-schema is not JSON: {e}")))?;
    let Some(props) = root.get("properties").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut settings = Vec::new();
    for (name, prop) in props {
        let prop = resolve_ref(&root, prop);
        let Ok(field) = Field::parse(name, &prop, prop.get("default")) else {
            continue;
        };
        let Some(kind) = field.kind.as_param_kind() else {
            continue;
        };
        let default = field.default.clone().unwrap_or_else(|| match &kind {
            ParamKind::Float(r) => ParamValue::Float(r.low),
            ParamKind::Int(r) => ParamValue::Int(r.low),
            ParamKind::Boolean => ParamValue::Boolean(false),
            ParamKind::Choice(c) => ParamValue::Choice(c.first().cloned().unwrap_or_default()),
        });
        settings.push(Setting {
            spec: ParamSpec {
                name: name.clone(),
                kind,
                default,
                help: field.help,
                context: Vec::new(),
            },
            fixed: field.fixed,
        });
    }
    Ok(settings)
}

/// A property with its `$ref` into `$defs` resolved: the definition, with
/// the property's own keys (its default, its description) over it.
fn resolve_ref(root: &Value, prop: &Value) -> Value {
    let target = prop
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|n| root.get("$defs").and_then(|d| d.get(n)));
    match (target, prop.as_object()) {
        (Some(Value::Object(def)), Some(own)) => {
            let mut merged = def.clone();
            for (k, v) in own {
                if k != "$ref" {
                    merged.insert(k.clone(), v.clone());
                }
            }
            Value::Object(merged)
        }
        (Some(def), _) => def.clone(),
        (None, _) => prop.clone(),
    }
}

/// The struct's schema, fields and defaults.
struct Described {
    /// The schema as published: no `required`, defaults filled in.
    published: Value,
    fields: Vec<Field>,
    defaults: Map<String, Value>,
    /// The type serializes to `null` (`()`): decode from `null`.
    unit: bool,
}

impl Described {
    fn of<T: Serialize + JsonSchema + Default>() -> Result<Self> {
        let schema = schemars::generate::SchemaSettings::draft2020_12()
            .with(|s| s.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<T>();
        let mut root = schema.to_value();
        let (defaults, unit) = match serde_json::to_value(T::default()) {
            Ok(Value::Object(map)) => (map, false),
            Ok(Value::Null) => (Map::new(), true),
            Ok(other) => {
                return Err(Error::invalid_argument(format!(
                    "the parameter type must be a struct with named fields; its default serializes to {other}"
                )))
            }
            Err(e) => {
                return Err(Error::invalid_argument(format!(
                    "the parameters' default does not serialize: {e}"
                )))
            }
        };
        let mut fields = Vec::new();
        if let Some(Value::Object(props)) = root.get_mut("properties") {
            for (name, prop) in props.iter_mut() {
                fields.push(Field::parse(name, prop, defaults.get(name))?);
                if let (Value::Object(p), Some(d)) = (prop, defaults.get(name)) {
                    p.insert("default".into(), d.clone());
                }
            }
        }
        if let Value::Object(r) = &mut root {
            r.remove("required");
        }
        Ok(Described {
            published: root,
            fields,
            defaults,
            unit,
        })
    }
}

/// One field of the struct.
struct Field {
    name: String,
    kind: FieldKind,
    default: Option<ParamValue>,
    help: String,
    fixed: bool,
    log: bool,
}

/// What a field's schema says its values are.
enum FieldKind {
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Bool,
    Choice(Vec<String>),
    Text,
    /// Anything else, described in words.
    Other(String),
}

impl FieldKind {
    fn parse(schema: &Value) -> FieldKind {
        let ty = schema.get("type").and_then(Value::as_str);
        let num = |key: &str| schema.get(key).and_then(Value::as_f64);
        let int = |key: &str| {
            schema.get(key).and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_f64().filter(|x| x.fract() == 0.0).map(|x| x as i64))
            })
        };
        if let Some(choices) = string_choices(schema) {
            return FieldKind::Choice(choices);
        }
        match ty {
            Some("number") => FieldKind::Float {
                min: num("minimum"),
                max: num("maximum"),
            },
            Some("integer") => FieldKind::Int {
                min: int("minimum"),
                max: int("maximum"),
            },
            Some("boolean") => FieldKind::Bool,
            Some("string") => FieldKind::Text,
            Some(other) => FieldKind::Other(format!("a value of JSON type `{other}`")),
            None => match schema.get("type") {
                Some(Value::Array(types)) => FieldKind::Other(format!(
                    "a value of JSON types {} (an `Option`?)",
                    Value::Array(types.clone())
                )),
                _ => FieldKind::Other("a value of this type".to_string()),
            },
        }
    }

    /// The domain as a contract kind (open ends as infinite bounds), for
    /// checks and messages; `None` for strings and unsupported types.
    fn as_param_kind(&self) -> Option<ParamKind> {
        Some(match self {
            FieldKind::Float { min, max } => ParamKind::Float(FloatRange {
                low: min.unwrap_or(f64::NEG_INFINITY),
                high: max.unwrap_or(f64::INFINITY),
                log: false,
            }),
            FieldKind::Int { min, max } => ParamKind::Int(IntRange {
                low: min.unwrap_or(i64::MIN),
                high: max.unwrap_or(i64::MAX),
                log: false,
            }),
            FieldKind::Bool => ParamKind::Boolean,
            FieldKind::Choice(c) => ParamKind::Choice(c.clone()),
            FieldKind::Text | FieldKind::Other(_) => return None,
        })
    }

    /// The JSON value `v` of such a field as a parameter value.
    fn param_value(&self, v: &Value) -> Option<ParamValue> {
        match self {
            FieldKind::Float { .. } => v.as_f64().map(ParamValue::Float),
            FieldKind::Int { .. } => v.as_i64().map(ParamValue::Int),
            FieldKind::Bool => v.as_bool().map(ParamValue::Boolean),
            FieldKind::Choice(_) | FieldKind::Text => {
                v.as_str().map(|s| ParamValue::Choice(s.to_string()))
            }
            FieldKind::Other(_) => None,
        }
    }
}

/// The strings a unit-only enum's schema allows: `{"enum": [...]}`,
/// `{"const": ..}` or a `oneOf`/`anyOf` of those (schemars uses the latter
/// when variants have doc comments).
fn string_choices(schema: &Value) -> Option<Vec<String>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return values
            .iter()
            .map(|v| v.as_str().map(String::from))
            .collect();
    }
    if let Some(Value::String(s)) = schema.get("const") {
        return Some(vec![s.clone()]);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(alternatives)) = schema.get(key) {
            let mut all = Vec::new();
            for alt in alternatives {
                all.extend(string_choices(alt)?);
            }
            return Some(all);
        }
    }
    None
}

/// The first paragraph of a doc comment on one line.
fn one_line(text: &str) -> String {
    let paragraph = text.split("\n\n").next().unwrap_or("");
    paragraph.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Field {
    fn parse(name: &str, schema: &Value, default: Option<&Value>) -> Result<Field> {
        let flag = |key: &str| schema.get(key).and_then(Value::as_bool).unwrap_or(false);
        for key in ["exclusiveMinimum", "exclusiveMaximum"] {
            if schema.get(key).is_some() {
                return Err(Error::invalid_argument(format!(
                    "parameter `{name}` has an exclusive bound (`{key}`); use inclusive \
                     bounds: #[schemars(range(min = .., max = ..))]"
                )));
            }
        }
        let kind = FieldKind::parse(schema);
        let help = schema
            .get("title")
            .or_else(|| schema.get("description"))
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        Ok(Field {
            name: name.to_string(),
            default: default.and_then(|d| kind.param_value(d)),
            kind,
            help,
            fixed: flag("x-fixed"),
            log: flag("x-log"),
        })
    }

    /// The search-space dimension of a searched field.
    fn spec(&self) -> Result<ParamSpec> {
        let name = &self.name;
        let no_range = |what: &str| {
            Err(Error::invalid_argument(format!(
                "parameter `{name}` ({what}) needs both bounds to be searched: add \
                 #[schemars(range(min = .., max = ..))], or make it a fixed setting with \
                 #[schemars(extend(\"x-fixed\" = true))]"
            )))
        };
        let Some(default) = self.default.clone() else {
            return Err(Error::invalid_argument(format!(
                "parameter `{name}`: its default has no float, int, boolean or choice form"
            )));
        };
        let kind = match &self.kind {
            FieldKind::Float { min, max } => match (min, max) {
                (Some(low), Some(high)) => ParamKind::Float(FloatRange {
                    low: *low,
                    high: *high,
                    log: self.log,
                }),
                _ => return no_range("a float"),
            },
            FieldKind::Int { min, max } => match (min, max) {
                (Some(low), Some(high)) => ParamKind::Int(IntRange {
                    low: *low,
                    high: *high,
                    log: self.log,
                }),
                _ => return no_range("an integer"),
            },
            FieldKind::Bool => ParamKind::Boolean,
            FieldKind::Choice(c) => ParamKind::Choice(c.clone()),
            FieldKind::Text => {
                return Err(self.unsearchable("a free-form string"));
            }
            FieldKind::Other(what) => return Err(self.unsearchable(what)),
        };
        if self.log && !matches!(kind, ParamKind::Float(_) | ParamKind::Int(_)) {
            return Err(Error::invalid_argument(format!(
                "parameter `{name}`: `x-log` applies to floats and integers only"
            )));
        }
        Ok(ParamSpec {
            name: name.clone(),
            kind,
            default,
            help: self.help.clone(),
            context: Vec::new(),
        })
    }

    fn unsearchable(&self, what: &str) -> Error {
        Error::invalid_argument(format!(
            "parameter `{}` is {what}, which cannot be searched (only floats, integers, \
             booleans and unit-only enums can); make it a fixed setting with \
             #[schemars(extend(\"x-fixed\" = true))]",
            self.name
        ))
    }

    /// Checks a value given for this field and returns its JSON form.
    fn check(&self, value: &ParamValue) -> Result<Value> {
        // A float field takes an int too (ints are exact below 2^53).
        let value = match (&self.kind, value) {
            (FieldKind::Float { .. }, ParamValue::Int(i)) => ParamValue::Float(*i as f64),
            _ => value.clone(),
        };
        match self.kind.as_param_kind() {
            Some(kind) => check_value(&self.name, &kind, &value)?,
            None => match (&self.kind, &value) {
                (FieldKind::Text, ParamValue::Choice(_)) => {}
                (FieldKind::Text, v) => {
                    return Err(Error::invalid_argument(format!(
                        "parameter `{}` must be a string (a choice value), got the {} {v}",
                        self.name,
                        v.type_name()
                    )))
                }
                (kind, _) => {
                    let what = match kind {
                        FieldKind::Other(what) => what.as_str(),
                        _ => "of an unsupported type",
                    };
                    return Err(Error::invalid_argument(format!(
                        "parameter `{}` is {what} and cannot be set from a parameter value",
                        self.name
                    )));
                }
            },
        }
        Ok(match value {
            ParamValue::Float(x) => Value::from(x),
            ParamValue::Int(i) => Value::from(i),
            ParamValue::Boolean(b) => Value::from(b),
            ParamValue::Choice(s) => Value::from(s),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        /// Careful, slow.
        Careful,
    }

    #[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
    #[serde(default)]
    struct P {
        /// Final sparsity.
        ///
        /// More text that is not part of the help.
        #[schemars(range(min = 0.0, max = 0.99))]
        sparsity: f64,
        /// Steps between updates.
        #[schemars(range(min = 1, max = 1000), extend("x-log" = true))]
        interval: i64,
        /// One ratio per layer.
        per_layer: bool,
        /// How to go about it.
        mode: Mode,
        /// A setting, never searched.
        #[schemars(extend("x-fixed" = true))]
        label: String,
        /// A small float setting without bounds.
        #[schemars(extend("x-fixed" = true))]
        eps: f32,
    }

    impl Default for P {
        fn default() -> Self {
            P {
                sparsity: 0.8,
                interval: 10,
                per_layer: false,
                mode: Mode::Fast,
                label: "x".into(),
                eps: 1e-3,
            }
        }
    }

    fn p(name: &str, value: ParamValue) -> Param {
        Param::new(name, value)
    }

    #[test]
    fn the_search_space_follows_the_struct() {
        let space = P::search_space().unwrap();
        let names: Vec<&str> = space.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["sparsity", "interval", "per_layer", "mode"]);
        match &space[0].kind {
            ParamKind::Float(r) => assert_eq!((r.low, r.high, r.log), (0.0, 0.99, false)),
            k => panic!("{k}"),
        }
        assert_eq!(space[0].default, ParamValue::Float(0.8));
        assert_eq!(space[0].help, "Final sparsity.");
        match &space[1].kind {
            ParamKind::Int(r) => assert_eq!((r.low, r.high, r.log), (1, 1000, true)),
            k => panic!("{k}"),
        }
        assert_eq!(space[1].default, ParamValue::Int(10));
        assert!(matches!(space[2].kind, ParamKind::Boolean));
        match &space[3].kind {
            ParamKind::Choice(c) => assert_eq!(c, &["fast", "careful"]),
            k => panic!("{k}"),
        }
        assert_eq!(space[3].default, ParamValue::Choice("fast".into()));
        assert_eq!(space[3].help, "How to go about it.");
    }

    #[test]
    fn the_published_schema_has_defaults_and_requires_nothing() {
        let schema: Value = serde_json::from_str(&P::schema_json()).unwrap();
        assert!(schema.get("required").is_none());
        assert_eq!(schema["properties"]["sparsity"]["default"], 0.8);
        assert_eq!(schema["properties"]["mode"]["default"], "fast");
        assert_eq!(schema["properties"]["interval"]["x-log"], true);
    }

    #[test]
    fn decoding_takes_defaults_checks_types_and_ranges() {
        let space = P::search_space().unwrap();
        let (got, extra) = P::decode(&[], &space).unwrap();
        assert_eq!(got, P::default());
        assert!(extra.is_empty());

        let (got, _) = P::decode(
            &[
                p("sparsity", ParamValue::Float(0.5)),
                p("interval", ParamValue::Int(3)),
                p("mode", ParamValue::Choice("careful".into())),
                p("label", ParamValue::Choice("run 7".into())),
                p("eps", ParamValue::Int(1)),
            ],
            &space,
        )
        .unwrap();
        assert_eq!(got.sparsity, 0.5);
        assert_eq!(got.interval, 3);
        assert_eq!(got.mode, Mode::Careful);
        assert_eq!(got.label, "run 7");
        assert_eq!(got.eps, 1.0);

        let err = |params: &[Param]| P::decode(params, &space).unwrap_err();
        let e = err(&[p("sparsity", ParamValue::Float(1.5))]);
        assert_eq!(e.kind(), "invalid-argument");
        assert!(
            e.message().contains("`sparsity`") && e.message().contains("[0, 0.99]"),
            "{e:?}"
        );
        let e = err(&[p("sparsity", ParamValue::Boolean(true))]);
        assert!(e.message().contains("must be a float"), "{e:?}");
        let e = err(&[p("sparsity", ParamValue::Float(f64::NAN))]);
        assert_eq!(e.kind(), "invalid-argument");
        let e = err(&[p("interval", ParamValue::Float(3.0))]);
        assert!(e.message().contains("must be an int"), "{e:?}");
        let e = err(&[p("mode", ParamValue::Choice("reckless".into()))]);
        assert!(e.message().contains("fast"), "{e:?}");
        let e = err(&[p("nope", ParamValue::Int(1))]);
        assert!(e.message().contains("unknown parameter `nope`"), "{e:?}");
        let e = err(&[
            p("interval", ParamValue::Int(2)),
            p("interval", ParamValue::Int(3)),
        ]);
        assert!(e.message().contains("twice"), "{e:?}");
        let e = err(&[p("label", ParamValue::Int(3))]);
        assert!(e.message().contains("string"), "{e:?}");
    }

    #[test]
    fn dimensions_beyond_the_struct_go_to_extra() {
        let mut space = P::search_space().unwrap();
        space.push(ParamSpec::float("sparsity.conv1", 0.0, 0.99, 0.8));
        space.push(ParamSpec::float("sparsity.fc", 0.0, 0.99, 0.8));
        let (_, extra) = P::decode(&[p("sparsity.conv1", ParamValue::Float(0.3))], &space).unwrap();
        assert_eq!(extra.float("sparsity.conv1"), Some(0.3));
        assert_eq!(extra.float("sparsity.fc"), Some(0.8));
        assert_eq!(extra.len(), 2);
        let e = P::decode(&[p("sparsity.conv1", ParamValue::Float(2.0))], &space).unwrap_err();
        assert!(e.message().contains("sparsity.conv1"), "{e:?}");
    }

    #[test]
    fn to_params_round_trips() {
        let space = P::search_space().unwrap();
        let original = P {
            sparsity: 0.25,
            mode: Mode::Careful,
            ..P::default()
        };
        let params = original.to_params();
        assert_eq!(params.len(), 6);
        let (back, _) = P::decode(&params, &space).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn unsearchable_fields_are_explained() {
        #[derive(Serialize, Deserialize, JsonSchema, Default)]
        struct NoRange {
            rate: f64,
        }
        let e = NoRange::search_space().unwrap_err();
        assert!(
            e.message().contains("range(min") && e.message().contains("x-fixed"),
            "{e:?}"
        );

        #[derive(Serialize, Deserialize, JsonSchema, Default)]
        struct Opt {
            #[schemars(range(min = 0.0, max = 1.0))]
            rate: Option<f64>,
        }
        assert!(Opt::search_space().is_err());

        #[derive(Serialize, Deserialize, JsonSchema, Default)]
        struct BadLog {
            #[schemars(range(min = 0.0, max = 1.0), extend("x-log" = true))]
            rate: f64,
        }
        let e = BadLog::search_space().unwrap_err();
        assert!(e.message().contains("log"), "{e:?}");

        #[derive(Serialize, Deserialize, JsonSchema)]
        struct BadDefault {
            #[schemars(range(min = 0.0, max = 1.0))]
            rate: f64,
        }
        impl Default for BadDefault {
            fn default() -> Self {
                BadDefault { rate: 2.0 }
            }
        }
        let e = BadDefault::search_space().unwrap_err();
        assert!(e.message().contains("default"), "{e:?}");
    }

    #[test]
    fn settings_are_read_from_a_published_schema() {
        let all = settings(&P::schema_json()).unwrap();
        let names: Vec<&str> = all.iter().map(|s| s.spec.name.as_str()).collect();
        // The free-form string `label` has no parameter domain.
        assert_eq!(names, ["sparsity", "interval", "per_layer", "mode", "eps"]);
        let fixed: Vec<&str> = all
            .iter()
            .filter(|s| s.fixed)
            .map(|s| s.spec.name.as_str())
            .collect();
        assert_eq!(fixed, ["eps"]);
        assert_eq!(all[3].spec.default, ParamValue::Choice("fast".into()));
        assert_eq!(all[0].spec.help, "Final sparsity.");
        // A `$ref` into `$defs`, as a schema not written by the SDK has it.
        let schema = r##"{"properties": {"design": {"$ref": "#/$defs/D", "default": "sobol"}},
            "$defs": {"D": {"type": "string", "enum": ["random", "sobol"]}}}"##;
        let design = &settings(schema).unwrap()[0].spec;
        assert!(
            matches!(&design.kind, ParamKind::Choice(c) if c == &["random", "sobol"]),
            "{}",
            design.kind
        );
        assert_eq!(design.default, ParamValue::Choice("sobol".into()));
        assert!(settings("{").is_err());
    }

    #[test]
    fn unit_means_no_parameters() {
        assert!(<()>::search_space().unwrap().is_empty());
        let ((), extra) = <()>::decode(&[], &[]).unwrap();
        assert!(extra.is_empty());
        assert!(<()>::decode(&[p("x", ParamValue::Int(1))], &[]).is_err());
    }
}
