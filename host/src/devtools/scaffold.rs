//! `pf plugin new`: the files of a new plugin crate.
//!
//! The crate lives outside pf's workspace (an empty `[workspace]` table
//! makes it its own root) and depends on nothing but `pf-sdk`, by path until
//! the SDK is on crates.io. As generated it builds with `pf plugin build`
//! and passes `pf plugin test`: a learner that prunes by magnitude under a
//! `params` target, or an optimizer that searches at random.

use anyhow::{bail, Context, Result};
use pf_manifest::PluginKind;
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("scaffold/Cargo.toml.tmpl");
const LEARNER: &str = include_str!("scaffold/learner.rs.tmpl");
const OPTIMIZER: &str = include_str!("scaffold/optimizer.rs.tmpl");
const README: &str = include_str!("scaffold/README.md.tmpl");
const GITIGNORE: &str = include_str!("scaffold/gitignore.tmpl");

/// Checks a new plugin's name: a Rust identifier in snake case, which is
/// also the crate, component and plugin name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.len() <= pf_manifest::MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!(
            "`{name}` cannot name a plugin: use lowercase letters, digits and `_`, starting with a letter (e.g. `l1_filter`)"
        );
    }
    Ok(())
}

/// The SDK that `pf plugin new` points a crate at when `--sdk` is not
/// given: `$PF_SDK_DIR`, else the `sdk/` of the pf checkout this binary was
/// built in, else `<prefix>/share/pf/sdk` of an installed pf.
pub fn default_sdk_dir() -> Option<PathBuf> {
    let is_sdk = |d: &Path| {
        std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("name = \"pf-sdk\""))
    };
    if let Some(d) = std::env::var_os("PF_SDK_DIR").map(PathBuf::from) {
        return is_sdk(&d).then_some(d);
    }
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    if let Some(root) = super::build::find_repo_root(&exe) {
        if is_sdk(&root.join("sdk")) {
            return Some(root.join("sdk"));
        }
    }
    let prefix = exe.parent()?.parent()?;
    let installed = prefix.join("share/pf/sdk");
    is_sdk(&installed).then_some(installed)
}

/// The SDK's version, read from its Cargo.toml.
fn sdk_version(sdk: &Path) -> Result<String> {
    let path = sdk.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} is not the pf-sdk crate (no Cargo.toml)", sdk.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let pkg = doc.get("package").and_then(|p| p.as_table());
    if pkg.and_then(|p| p.get("name")).and_then(|n| n.as_str()) != Some("pf-sdk") {
        bail!("{} is not the pf-sdk crate", sdk.display());
    }
    Ok(pkg
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .unwrap_or("0.1.0")
        .to_string())
}

/// The files of a new crate, as (relative path, contents).
pub fn render(kind: PluginKind, name: &str, sdk: &Path) -> Result<Vec<(PathBuf, String)>> {
    check_name(name)?;
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the SDK folder {} does not exist", sdk.display()))?;
    let version = sdk_version(&sdk)?;
    let type_name: String = name
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let (description, source, try_command) = match kind {
        PluginKind::Learner => (
            "Global magnitude pruning (a starter learner made by pf plugin new).",
            LEARNER,
            format!("   pf compress --plugin target/plugins/{name}.wasm --optimizer random --trials 4 --target params=0.5"),
        ),
        PluginKind::Optimizer => (
            "Random search (a starter optimizer made by pf plugin new).",
            OPTIMIZER,
            format!("   pf compress --plugin weight_sparse --optimizer target/plugins/{name}.wasm --trials 4"),
        ),
    };
    let sdk_path = sdk.display().to_string().replace('\\', "/");
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{type_name}}", &type_name)
            .replace("{{kind}}", kind.world_name())
            .replace("{{description}}", description)
            .replace("{{sdk_path}}", &sdk_path)
            .replace("{{sdk_version}}", &version)
            .replace("{{try_command}}", &try_command)
    };
    Ok(vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (PathBuf::from("src/lib.rs"), fill(source)),
        (PathBuf::from("README.md"), fill(README)),
        (PathBuf::from(".gitignore"), fill(GITIGNORE)),
    ])
}

/// Writes a new crate into `dir` (which must not exist or be empty).
pub fn create(dir: &Path, kind: PluginKind, name: &str, sdk: &Path) -> Result<()> {
    let files = render(kind, name, sdk)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose another name or --dir",
            dir.display()
        );
    }
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
        }
        crate::io::atomic_write(&path, text.as_bytes())?;
    }
    Ok(())
}
