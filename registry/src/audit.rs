//! The audit log: one JSON line per load decision, appended.
//!
//! Each line holds the time (UTC, RFC 3339), the command, the plugin's name,
//! version, digest and path, where it came from (built in, signed, unsigned),
//! the signer, the decision (`allowed` or `refused`), the rule that decided
//! and the reason. Lines are written with one `write` call on a file opened
//! for appending, so concurrent pf processes do not interleave them.

use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// UTC time, RFC 3339.
    pub time: String,
    /// The pf command that asked (`compress`, `plugin test`, ...).
    pub command: String,
    /// Plugin name (from its manifest, else the file name).
    pub plugin: String,
    /// Plugin version, when a manifest says.
    pub version: Option<String>,
    /// SHA-256 of the component.
    pub digest: String,
    /// The component file.
    pub path: String,
    /// `builtin`, `signed` or `unsigned`.
    pub provenance: String,
    /// The trusted publisher (or untrusted key) that signed, if any.
    pub signer: Option<String>,
    /// `allowed` or `refused`.
    pub decision: String,
    /// The policy rule that decided.
    pub rule: String,
    /// Why, in words.
    pub reason: String,
    /// The policy file in force, if any.
    pub policy: Option<String>,
}

/// The default log: `$PF_AUDIT_LOG`, else `$XDG_STATE_HOME/pf/audit.jsonl`,
/// else `~/.local/state/pf/audit.jsonl`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PF_AUDIT_LOG") {
        return Some(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return Some(PathBuf::from(d).join("pf/audit.jsonl"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/pf/audit.jsonl"))
}

/// Appends one entry.
pub fn append(path: &Path, entry: &Entry) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)?;
    f.sync_data()
}

/// Reads every entry of a log (for tests and `pf plugin audit`-style tools).
pub fn read(path: &Path) -> std::io::Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The current UTC time in RFC 3339, to the second.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Seconds since the Unix epoch as RFC 3339 UTC.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_083_199), "2026-11-30T23:59:59Z");
    }
}
