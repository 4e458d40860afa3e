//! # pf-manifest: what a pf plugin is and what it asks for
//!
//! A plugin ships as a WebAssembly component plus a manifest: a small JSON
//! document that names the plugin, says which contract it speaks, pins the
//! component by its SHA-256 digest, and lists the resources it asks for. The
//! manifest is what a publisher signs and what an admission policy reads, so
//! this crate is deliberately small (serde only) and strict:
//!
//! - unknown fields are refused, so that nothing unsigned-in-spirit hides in a
//!   signed document;
//! - every string is bounded and names are restricted to `[a-z0-9_-]`;
//! - [`Manifest::from_json`] never panics, whatever the bytes (a property
//!   test feeds it arbitrary and mutated input).
//!
//! ```
//! use pf_manifest::{Manifest, PluginKind};
//! let json = r#"{
//!   "format": 1,
//!   "name": "l1_filter",
//!   "version": "0.1.0",
//!   "kind": "learner",
//!   "contract": "0.1.0",
//!   "component": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
//!   "description": "L1-norm filter pruning"
//! }"#;
//! let m = Manifest::from_json(json.as_bytes()).unwrap();
//! assert_eq!(m.kind, PluginKind::Learner);
//! assert_eq!(m.world(), "pocketflow:plugin/learner@0.1.0");
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The manifest format this crate reads and writes.
pub const FORMAT: u32 = 1;

/// The WIT package every pf plugin world belongs to.
pub const PACKAGE: &str = "pocketflow:plugin";

/// Largest manifest accepted, in bytes (the hyper-parameter schema is the
/// only sizeable part).
pub const MAX_BYTES: usize = 1 << 20;

/// Longest name accepted.
pub const MAX_NAME: usize = 64;

/// Longest free-text field (description, author, licence, URL) accepted.
pub const MAX_TEXT: usize = 4096;

/// Most authors listed.
pub const MAX_AUTHORS: usize = 64;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Larger than [`MAX_BYTES`].
    #[error("the manifest is {0} bytes; at most {MAX_BYTES} are accepted")]
    TooLarge(usize),
    /// Not JSON of the expected shape.
    #[error("the manifest is not valid: {0}")]
    Syntax(String),
    /// A format this crate does not know.
    #[error("manifest format {0} is not supported (this pf reads format {FORMAT}); upgrade pf")]
    Format(u32),
    /// A field has a value outside what is allowed.
    #[error("manifest field `{field}`: {reason}")]
    Field {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Learner (a compression algorithm) or optimizer (a hyper-parameter search).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Implements the `learner` world.
    Learner,
    /// Implements the `optimizer` world.
    Optimizer,
}

impl PluginKind {
    /// The world's name inside [`PACKAGE`].
    pub fn world_name(self) -> &'static str {
        match self {
            PluginKind::Learner => "learner",
            PluginKind::Optimizer => "optimizer",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world_name())
    }
}

impl FromStr for PluginKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "learner" => Ok(PluginKind::Learner),
            "optimizer" => Ok(PluginKind::Optimizer),
            _ => Err(format!("`{s}` is not a plugin kind (learner, optimizer)")),
        }
    }
}

/// A SHA-256 digest, written `sha256:` followed by 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest as 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parses 64 hex digits into 32 bytes.
pub fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl FromStr for Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            format!(
                "`{}` is not a digest: it must start with `sha256:`",
                clip(s)
            )
        })?;
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("digests are written in lowercase hex".into());
        }
        parse_hex32(hex)
            .map(Digest)
            .ok_or_else(|| format!("`{}` is not a digest: sha256: needs 64 hex digits", clip(s)))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the plugin's source lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Repository URL.
    pub url: String,
    /// Commit or tag the component was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Sandbox resources the plugin asks for. Absent values mean pf's defaults;
/// an admission policy refuses a request above its caps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    /// Linear memory of one instance, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Execution budget of one call, in millions of WebAssembly instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_millions: Option<u64>,
    /// Tensor handles held at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors: Option<u32>,
}

impl RequestedLimits {
    /// Whether nothing is asked for beyond the defaults.
    pub fn is_empty(&self) -> bool {
        *self == RequestedLimits::default()
    }
}

/// The manifest of one plugin version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format; [`FORMAT`].
    pub format: u32,
    /// Plugin name: `[a-z0-9_-]`, starting with a letter, at most
    /// [`MAX_NAME`] characters. Plugins are resolved by this name.
    pub name: String,
    /// Semantic version of the plugin.
    pub version: semver::Version,
    /// Learner or optimizer; with [`contract`](Self::contract) it names the
    /// world the component implements.
    pub kind: PluginKind,
    /// Version of the `pocketflow:plugin` contract the component speaks.
    pub contract: semver::Version,
    /// SHA-256 of the component's bytes.
    pub component: Digest,
    /// One-paragraph description.
    #[serde(default)]
    pub description: String,
    /// Authors, e.g. `Ada Lovelace <ada@example.org>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    /// SPDX licence expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Source repository and revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// JSON Schema of the hyper-parameters (a learner's) or options (an
    /// optimizer's), as the plugin's parameter struct generates it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params_schema: serde_json::Value,
    /// Sandbox resources asked for.
    #[serde(default, skip_serializing_if = "RequestedLimits::is_empty")]
    pub limits: RequestedLimits,
}

impl Manifest {
    /// Parses and validates a manifest. Never panics.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        // Read the format first, so that a newer manifest gets "upgrade pf"
        // rather than a complaint about a field this pf does not know.
        #[derive(Deserialize)]
        struct FormatOnly {
            format: Option<u32>,
        }
        let probe: FormatOnly =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        match probe.format {
            Some(FORMAT) => {}
            Some(other) => return Err(ManifestError::Format(other)),
            None => {
                return Err(ManifestError::Field {
                    field: "format",
                    reason: "missing".into(),
                })
            }
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The manifest as pretty JSON with a final newline: the bytes that get
    /// written, hashed and signed.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        out.push(b'\n');
        out
    }

    /// The fully qualified world, e.g. `pocketflow:plugin/learner@0.1.0`.
    pub fn world(&self) -> String {
        format!("{PACKAGE}/{}@{}", self.kind.world_name(), self.contract)
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Checks every field's value.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != FORMAT {
            return Err(ManifestError::Format(self.format));
        }
        validate_name(&self.name).map_err(|reason| ManifestError::Field {
            field: "name",
            reason,
        })?;
        text("description", &self.description)?;
        if self.authors.len() > MAX_AUTHORS {
            return Err(ManifestError::Field {
                field: "authors",
                reason: format!("{} listed; at most {MAX_AUTHORS}", self.authors.len()),
            });
        }
        for a in &self.authors {
            text("authors", a)?;
        }
        if let Some(l) = &self.license {
            text("license", l)?;
        }
        if let Some(s) = &self.source {
            text("source.url", &s.url)?;
            if let Some(r) = &s.revision {
                text("source.revision", r)?;
            }
        }
        if !(self.params_schema.is_null() || self.params_schema.is_object()) {
            return Err(ManifestError::Field {
                field: "params_schema",
                reason: "must be a JSON Schema object".into(),
            });
        }
        let l = &self.limits;
        if l.memory_mib == Some(0) || l.fuel_millions == Some(0) || l.tensors == Some(0) {
            return Err(ManifestError::Field {
                field: "limits",
                reason: "a requested limit of 0 leaves the plugin nothing to run with".into(),
            });
        }
        Ok(())
    }
}

/// Checks a plugin name: `[a-z0-9_-]`, starting with a letter, at most
/// [`MAX_NAME`] characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a name has 1 to {MAX_NAME} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "`{}` must start with a lowercase letter",
            clip(name)
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(format!(
            "`{}` may hold only lowercase letters, digits, `_` and `-`",
            clip(name)
        ));
    }
    Ok(())
}

fn text(field: &'static str, value: &str) -> Result<(), ManifestError> {
    if value.len() > MAX_TEXT {
        return Err(ManifestError::Field {
            field,
            reason: format!("{} bytes; at most {MAX_TEXT}", value.len()),
        });
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ManifestError::Field {
            field,
            reason: "control characters are not allowed".into(),
        });
    }
    Ok(())
}

/// The first 40 characters of `s`, for messages.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            name: "l1_filter".into(),
            version: "0.2.1".parse().unwrap(),
            kind: PluginKind::Learner,
            contract: "0.1.0".parse().unwrap(),
            component: Digest([7; 32]),
            description: "L1-norm filter pruning".into(),
            authors: vec!["Ada <ada@example.org>".into()],
            license: Some("Apache-2.0".into()),
            source: Some(Source {
                url: "https://example.org/l1".into(),
                revision: Some("abc123".into()),
            }),
            params_schema: serde_json::json!({"type": "object"}),
            limits: RequestedLimits {
                memory_mib: Some(64),
                ..Default::default()
            },
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = sample();
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        assert_eq!(m.world(), "pocketflow:plugin/learner@0.1.0");
        assert_eq!(m.id(), "l1_filter@0.2.1");
    }

    /// Numbers in a parameter schema read back exactly. The fuzzer found a
    /// manifest whose schema held a long decimal near 1e80: serde_json's
    /// default (fast, not correctly rounded) float parser read it one unit
    /// in the last place off, so writing the manifest and reading it back
    /// gave another number. Correctly rounded parsing (`float_roundtrip`)
    /// agrees with Rust's own `str::parse` on every input below.
    #[test]
    fn schema_numbers_survive_a_round_trip_bit_for_bit() {
        let mut m = sample();
        m.params_schema = serde_json::json!({
            "type": "object",
            "properties": {"ratio": {"type": "number", "maximum": 1.033_030_303_333_333_3e80}},
        });
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        let mut digits = String::from("1.");
        for i in 0..40 {
            digits.push(char::from(b'0' + (i * 7 % 10) as u8));
            for exponent in ["e+80", "e-300", "e+3", ""] {
                let text = format!("{digits}{exponent}");
                let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
                let exact: f64 = text.parse().unwrap();
                assert_eq!(
                    parsed.as_f64().unwrap().to_bits(),
                    exact.to_bits(),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn refuses_unknown_fields_bad_names_and_newer_formats() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["extra"] = serde_json::json!(1);
        let e = Manifest::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");

        let mut m = sample();
        m.name = "../evil".into();
        let e = Manifest::from_json(&m.to_json()).unwrap_err();
        assert!(
            matches!(e, ManifestError::Field { field: "name", .. }),
            "{e}"
        );

        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["format"] = serde_json::json!(2);
        v["new_thing"] = serde_json::json!(true);
        assert_eq!(
            Manifest::from_json(v.to_string().as_bytes()).unwrap_err(),
            ManifestError::Format(2)
        );
    }

    #[test]
    fn digests_parse_only_in_canonical_form() {
        let d = Digest([0xab; 32]);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("ab".repeat(32).parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "AB".repeat(32))
            .parse::<Digest>()
            .is_err());
        assert!("sha256:é".parse::<Digest>().is_err());
    }
}
