//! Finding a plugin by name.
//!
//! `--plugin` and `--optimizer` take a path to a `.wasm` component or a
//! name. A name `NAME` resolves to the first `NAME.wasm` found in:
//!
//! 1. each folder of `PF_PLUGIN_PATH` (separated like `PATH`);
//! 2. `plugins/` beside the `pf` executable's folder (`target/plugins` for a
//!    cargo build, `<prefix>/plugins` for an unpacked release);
//! 3. `$XDG_DATA_HOME/pf/plugins` (default `~/.local/share/pf/plugins`),
//!    where installed plugins live.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Folders searched for plugins by name, in order.
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(p) = std::env::var_os("PF_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if let Some(up) = exe_dir.parent() {
            dirs.push(up.join("plugins"));
        }
        dirs.push(exe_dir.join("plugins"));
    }
    if let Some(d) = data_dir() {
        dirs.push(d);
    }
    dirs
}

/// Where installed plugins live: `$XDG_DATA_HOME/pf/plugins`, else
/// `~/.local/share/pf/plugins`.
pub fn data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return Some(PathBuf::from(d).join("pf").join("plugins"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/pf/plugins"))
}

/// Whether `spec` names a file rather than a plugin.
pub fn is_path(spec: &str) -> bool {
    spec.ends_with(".wasm") || spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR)
}

/// The file a plugin argument refers to.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    if is_path(spec) {
        let p = PathBuf::from(spec);
        if !p.is_file() {
            bail!("plugin file {} does not exist", p.display());
        }
        return Ok(p);
    }
    if spec.is_empty()
        || !spec
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        bail!(
            "`{spec}` is not a plugin name (letters, digits, `_`, `-`) or a path to a .wasm file"
        );
    }
    let dirs = search_path();
    for d in &dirs {
        let f = d.join(format!("{spec}.wasm"));
        if f.is_file() {
            return Ok(f);
        }
    }
    bail!(
        "no plugin named `{spec}` in {}; build the built-in plugins with scripts/build-plugins.sh, or pass a path to a .wasm file",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}
