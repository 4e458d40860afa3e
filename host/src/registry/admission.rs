//! The admission gate of a pf command: the policy from `--policy` or the
//! standard places (`$PF_POLICY`, `~/.config/pf/policy.toml`,
//! `/etc/pf/policy.toml`; none: unsigned plugins load with a warning), its
//! audit log, and the command doing the loading (for the log). The rules
//! themselves are `pf_registry::admission`; the sandbox runtime applies the
//! gate at every load ([`crate::plugin::Runtime::gate`]). Built-in plugins
//! are those pinned by the lock of pf's own install folders
//! ([`super::resolve::builtin_dirs`]), never by a lock beside a plugin.

use anyhow::{Context, Result};
use pf_registry::admission::Gate;
use pf_registry::audit;
use pf_registry::policy::{self, Policy};
use std::path::Path;

/// The admission gate for `command`: the policy read from `policy_file`
/// (else found in the standard places, else the default policy), the audit
/// log it names (else the default one), and whether `--allow-unsigned` was
/// given.
pub fn gate(policy_file: Option<&Path>, allow_unsigned: bool, command: &str) -> Result<Gate> {
    let file = policy_file
        .map(Path::to_path_buf)
        .or_else(policy::find_policy_file);
    let policy = match &file {
        Some(f) => Policy::read(f).with_context(|| {
            format!(
                "cannot use the admission policy {}; fix it, or pass --policy with another file",
                f.display()
            )
        })?,
        None => Policy::default(),
    };
    let audit_log = policy.audit_log.clone().or_else(audit::default_path);
    Ok(Gate {
        policy,
        audit_log,
        command: command.to_string(),
        allow_unsigned,
        ignore_side_files: false,
        builtin_dirs: super::resolve::builtin_dirs(),
    })
}
