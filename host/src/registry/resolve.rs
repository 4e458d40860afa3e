//! Finding a plugin by name.
//!
//! `--plugin` and `--optimizer` take a path to a `.wasm` component or a
//! name. A name `NAME` resolves to the first `NAME.wasm` found in:
//!
//! 1. each folder of `PF_PLUGIN_PATH` (separated like `PATH`);
//! 2. the installed plugins (`pf plugin install`) in
//!    `$XDG_DATA_HOME/pf/plugins/NAME/VERSION/` (default
//!    `~/.local/share/pf/plugins`), highest version first;
//! 3. the built-in plugins beside the `pf` executable: `plugins/` beside
//!    its folder (`target/plugins` for a cargo build, `<prefix>/plugins` for
//!    an unpacked release), then `share/pf/plugins` beside its folder
//!    (`PREFIX/share/pf/plugins` for `PREFIX/bin/pf`, as
//!    `scripts/install.sh PREFIX` lays it out), then `plugins/` in its own
//!    folder.
//!
//! `NAME@VERSION` looks only among installed plugins; `VERSION` is a semver
//! requirement, so `channel_pruned@0.2` takes the highest 0.2.x.

use anyhow::{bail, Result};
use pf_registry::index::{parse_spec, Store};
use std::path::{Path, PathBuf};

/// Folders searched for plugins by name, in order: `PF_PLUGIN_PATH`, then
/// [`builtin_dirs`], then [`data_dir`].
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(p) = std::env::var_os("PF_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs.extend(builtin_dirs());
    if let Some(d) = data_dir() {
        dirs.push(d);
    }
    dirs
}

/// pf's own install folders, located from the running executable and from
/// nothing else (never a plugin's folder, `PF_PLUGIN_PATH` or the current
/// directory): `plugins/` beside the executable's folder (`target/plugins`
/// for a cargo build's `target/PROFILE/pf`), `share/pf/plugins` beside it
/// (`PREFIX/share/pf/plugins` for `PREFIX/bin/pf`), and `plugins/` in the
/// executable's own folder. Their `plugins.lock` pins the built-in plugins
/// ([`pf_registry::admission::Gate::builtin_dirs`]).
pub fn builtin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if let Some(up) = exe_dir.parent() {
            dirs.push(up.join("plugins"));
            dirs.push(up.join("share").join("pf").join("plugins"));
        }
        dirs.push(exe_dir.join("plugins"));
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

/// The store of installed plugins (`pf plugin install`): [`data_dir`].
pub fn store() -> Option<Store> {
    data_dir().map(|d| Store::at(&d))
}

/// The file a plugin argument refers to: a path, `NAME` or `NAME@VERSION`
/// (a semver requirement: `0.2` picks the highest installed 0.2.x).
pub fn resolve(spec: &str) -> Result<PathBuf> {
    if is_path(spec) {
        let p = PathBuf::from(spec);
        if !p.is_file() {
            bail!("plugin file {} does not exist", p.display());
        }
        return Ok(p);
    }
    let (name, req) = parse_spec(spec).map_err(|e| {
        anyhow::anyhow!("{e}; give a plugin name, NAME@VERSION, or a path to a .wasm file")
    })?;
    let dirs = search_path();
    let store = store();
    let installed = || -> Result<Option<PathBuf>> {
        match &store {
            Some(s) => Ok(s.find(&name, req.as_ref())?.map(|i| i.component)),
            None => Ok(None),
        }
    };
    if req.is_some() {
        if let Some(p) = installed()? {
            return Ok(p);
        }
        let have: Vec<String> = store
            .as_ref()
            .map(|s| s.list())
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.manifest.name == name)
            .map(|i| i.manifest.version.to_string())
            .collect();
        bail!(
            "no installed version of `{name}` matches `{spec}` (installed: {}); install one with `pf plugin install {spec} --registry DIR`",
            if have.is_empty() { "none".into() } else { have.join(", ") }
        );
    }
    // Explicit folders first, then installed plugins, then the built-ins
    // beside the executable.
    let (explicit, rest): (Vec<_>, Vec<_>) =
        dirs.iter().enumerate().partition(|(i, _)| *i < env_dirs());
    for (_, d) in explicit {
        let f = d.join(format!("{name}.wasm"));
        if f.is_file() {
            return Ok(f);
        }
    }
    if let Some(p) = installed()? {
        return Ok(p);
    }
    for (_, d) in rest {
        let f = d.join(format!("{name}.wasm"));
        if f.is_file() {
            return Ok(f);
        }
    }
    bail!(
        "no plugin named `{name}` in {} or among installed plugins; build the built-in plugins with scripts/build-plugins.sh, install one with `pf plugin install {name} --registry DIR`, or pass a path to a .wasm file",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// How many leading entries of [`search_path`] come from `PF_PLUGIN_PATH`.
fn env_dirs() -> usize {
    std::env::var_os("PF_PLUGIN_PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .filter(|d| !d.as_os_str().is_empty())
                .count()
        })
        .unwrap_or(0)
}

/// Finds a plugin by path or name, loads it through admission and checks
/// that it is of `kind`; errors name the flag it came from.
pub fn load(
    rt: &crate::plugin::Runtime,
    name: &str,
    kind: crate::plugin::PluginKind,
    flag: &str,
) -> Result<std::sync::Arc<crate::plugin::Plugin>> {
    use anyhow::Context;
    let path = resolve(name).with_context(|| format!("{flag} {name}"))?;
    let plugin = rt
        .load(&path)
        .with_context(|| format!("{flag} {name}: loading {}", path.display()))?;
    if plugin.kind() != kind {
        bail!(
            "{flag} {name}: `{}` is {}, not {}",
            plugin.name(),
            kind_with_article(plugin.kind()),
            kind_with_article(kind)
        );
    }
    Ok(plugin)
}

/// "a learner" or "an optimizer".
fn kind_with_article(k: crate::plugin::PluginKind) -> &'static str {
    match k {
        crate::plugin::PluginKind::Learner => "a learner",
        crate::plugin::PluginKind::Optimizer => "an optimizer",
    }
}
