//! The admission policy: a TOML file that decides which plugins may load and
//! with what.
//!
//! ```toml
//! # Append every decision here (default: $XDG_STATE_HOME/pf/audit.jsonl).
//! audit_log = "/var/log/pf/plugins.jsonl"
//!
//! [signatures]
//! required = true              # unsigned plugins are refused ...
//! allow_unsigned_flag = false  # ... and --allow-unsigned cannot override that
//!
//! [[publishers]]
//! name = "pf-team"
//! key = "ed25519:d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
//!
//! [worlds]                     # worlds allowed, each with a contract requirement
//! learner = "^0.1"
//! optimizer = "^0.1"
//!
//! [limits]                     # caps on what a plugin may be given or ask for
//! max_memory_mib = 512
//! max_fuel_millions = 50000
//! max_tensors = 8192
//! max_trials = 200
//! trial_timeout_seconds = 900  # each trial's wall-clock budget (default 600)
//! ```
//!
//! Every section is optional. No policy at all means: any supported world,
//! no caps beyond pf's own, unsigned plugins load with a warning.

use crate::keys::PublicKey;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest policy file read.
pub const MAX_BYTES: u64 = 1 << 20;

/// A policy problem: the file cannot be read or is not a valid policy.
#[derive(Debug, thiserror::Error)]
#[error("policy {path}: {reason}")]
pub struct PolicyError {
    /// The policy file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Signature rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    /// Refuse plugins that are neither built in nor signed by a trusted
    /// publisher.
    #[serde(default)]
    pub required: bool,
    /// Whether `--allow-unsigned` may override `required`.
    #[serde(default = "yes")]
    pub allow_unsigned_flag: bool,
}

fn yes() -> bool {
    true
}

impl Default for Signatures {
    fn default() -> Self {
        Signatures {
            required: false,
            allow_unsigned_flag: true,
        }
    }
}

/// A trusted publisher.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publisher {
    /// A name for messages and the audit log.
    pub name: String,
    /// The publisher's public key.
    pub key: PublicKey,
}

/// Caps on sandbox resources and search budgets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    /// Most linear memory per instance, in MiB.
    pub max_memory_mib: Option<u64>,
    /// Most fuel per call, in millions of instructions.
    pub max_fuel_millions: Option<u64>,
    /// Most tensor handles per instance.
    pub max_tensors: Option<u32>,
    /// Most trials in one search.
    pub max_trials: Option<u32>,
    /// Wall-clock seconds each trial (and each optimizer call, each load)
    /// may take, host work included: what `--trial-timeout` defaults to,
    /// and the most it may ask for. Unset: [`DEFAULT_TRIAL_TIMEOUT_SECONDS`]
    /// by default, and no cap.
    pub trial_timeout_seconds: Option<u64>,
}

/// The per-trial wall-clock budget when neither the policy nor
/// `--trial-timeout` sets one: ten minutes.
pub const DEFAULT_TRIAL_TIMEOUT_SECONDS: u64 = 600;

impl Caps {
    /// The per-trial wall-clock budget: `requested` (from
    /// `--trial-timeout`) if the policy allows it, else the policy's, else
    /// [`DEFAULT_TRIAL_TIMEOUT_SECONDS`]. A request above the policy's cap
    /// is refused with a message that names both.
    pub fn trial_timeout(&self, requested: Option<u64>) -> Result<u64, String> {
        match (requested, self.trial_timeout_seconds) {
            (Some(r), Some(cap)) if r > cap => Err(format!(
                "--trial-timeout {r} is above the policy's limits.trial_timeout_seconds of {cap}; \
                 ask for at most {cap} seconds, or have the policy raised"
            )),
            (Some(r), _) => Ok(r),
            (None, Some(cap)) => Ok(cap),
            (None, None) => Ok(DEFAULT_TRIAL_TIMEOUT_SECONDS),
        }
    }
}

/// An admission policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Where decisions are logged; relative paths are relative to the
    /// policy file.
    pub audit_log: Option<PathBuf>,
    /// Signature rules.
    #[serde(default)]
    pub signatures: Signatures,
    /// Trusted publishers.
    #[serde(default)]
    pub publishers: Vec<Publisher>,
    /// Allowed worlds (`learner`, `optimizer`) with a semver requirement on
    /// the contract version; `None` allows every world pf supports.
    pub worlds: Option<BTreeMap<String, semver::VersionReq>>,
    /// Resource caps.
    #[serde(default)]
    pub limits: Caps,
    /// The file this policy came from (`None` for the built-in default).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Policy {
    /// Parses a policy. Never panics.
    pub fn from_toml(text: &str, source: Option<&Path>) -> Result<Policy, PolicyError> {
        let shown = source
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(inline)".into());
        let mut p: Policy = toml::from_str(text).map_err(|e| PolicyError {
            path: shown.clone(),
            reason: e.to_string().trim().to_string(),
        })?;
        if let Some(worlds) = &p.worlds {
            for w in worlds.keys() {
                if w != "learner" && w != "optimizer" {
                    return Err(PolicyError {
                        path: shown,
                        reason: format!(
                            "[worlds] names `{w}`; the worlds are `learner` and `optimizer`"
                        ),
                    });
                }
            }
        }
        if let (Some(log), Some(src)) = (&p.audit_log, source) {
            if log.is_relative() {
                p.audit_log = Some(src.parent().unwrap_or(Path::new(".")).join(log));
            }
        }
        p.source = source.map(Path::to_path_buf);
        Ok(p)
    }

    /// Reads a policy file.
    pub fn read(path: &Path) -> Result<Policy, PolicyError> {
        let bytes = crate::read_capped(path, MAX_BYTES).map_err(|e| PolicyError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| PolicyError {
            path: path.display().to_string(),
            reason: "not UTF-8 text".into(),
        })?;
        Policy::from_toml(&text, Some(path))
    }

    /// The trusted publisher with this key.
    pub fn publisher(&self, key: &PublicKey) -> Option<&Publisher> {
        self.publishers.iter().find(|p| &p.key == key)
    }

    /// Where the policy came from, for messages.
    pub fn describe_source(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None => "the default policy".into(),
        }
    }
}

/// Where pf looks for a policy when `--policy` is not given, in order:
/// `$PF_POLICY` (the value `none` means no policy),
/// `$XDG_CONFIG_HOME/pf/policy.toml` (default `~/.config/pf/policy.toml`),
/// then `/etc/pf/policy.toml`. Returns the first file that exists.
pub fn find_policy_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PF_POLICY") {
        if p == "none" || p.is_empty() {
            return None;
        }
        return Some(PathBuf::from(p));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    let mut candidates = Vec::new();
    if let Some(c) = config {
        candidates.push(c.join("pf/policy.toml"));
    }
    candidates.push(PathBuf::from("/etc/pf/policy.toml"));
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let doc = include_str!("policy.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let p = Policy::from_toml(&example, Some(Path::new("/etc/pf/policy.toml"))).unwrap();
        assert!(p.signatures.required && !p.signatures.allow_unsigned_flag);
        assert_eq!(p.publishers.len(), 1);
        assert_eq!(p.limits.max_trials, Some(200));
        assert_eq!(p.limits.trial_timeout_seconds, Some(900));
        assert!(p.worlds.unwrap()["learner"].matches(&"0.1.3".parse().unwrap()));
    }

    #[test]
    fn refuses_unknown_keys_and_worlds() {
        let e = Policy::from_toml("[signatures]\nrequird = true\n", None).unwrap_err();
        assert!(e.reason.contains("requird"), "{e}");
        let e = Policy::from_toml("[worlds]\nlearnr = \"^0.1\"\n", None).unwrap_err();
        assert!(e.reason.contains("learnr"), "{e}");
        let p = Policy::from_toml("", None).unwrap();
        assert_eq!(p, Policy::default());
    }

    #[test]
    fn the_trial_timeout_defaults_from_the_policy_and_is_capped_by_it() {
        let none = Caps::default();
        assert_eq!(none.trial_timeout(None), Ok(DEFAULT_TRIAL_TIMEOUT_SECONDS));
        assert_eq!(none.trial_timeout(Some(86_400)), Ok(86_400));
        let p = Policy::from_toml("[limits]\ntrial_timeout_seconds = 120\n", None).unwrap();
        assert_eq!(p.limits.trial_timeout(None), Ok(120));
        assert_eq!(p.limits.trial_timeout(Some(30)), Ok(30));
        let e = p.limits.trial_timeout(Some(121)).unwrap_err();
        assert!(
            e.contains("--trial-timeout 121") && e.contains("120"),
            "{e}"
        );
    }
}
