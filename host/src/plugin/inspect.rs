//! Reading a component's interface without running it: which world it
//! targets, which contract version, what it imports and exports.
//!
//! This is the first gate every plugin passes, at build time (`pf plugin
//! build`) and at load time: a component that imports anything but pf's own
//! interfaces (WASI included) is refused before it is compiled.

use anyhow::{bail, Result};
use serde::Serialize;
use wit_parser::decoding::DecodedWasm;
use wit_parser::{WorldItem, WorldKey};

/// The WIT package every plugin interface belongs to.
pub use pf_manifest::PACKAGE;

/// Interfaces a plugin may import.
pub const IMPORTABLE: &[&str] = &["types", "host", "model"];

/// Learner or optimizer (the manifest crate's type, so that manifests,
/// policies and the loader agree on it).
pub use pf_manifest::PluginKind;

/// What a component declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// Learner or optimizer.
    pub kind: PluginKind,
    /// Contract version (the `@x.y.z` of `pocketflow:plugin`).
    pub contract: String,
    /// Imported interfaces, fully qualified.
    pub imports: Vec<String>,
    /// Exported interfaces, fully qualified.
    pub exports: Vec<String>,
}

/// Splits `pocketflow:plugin/name@version` into name and version.
fn pf_interface(qualified: &str) -> Option<(&str, &str)> {
    let rest = qualified.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    let (name, version) = rest.split_once('@')?;
    Some((name, version))
}

/// Inspects component bytes, refusing anything that is not a pf plugin.
pub fn inspect(bytes: &[u8]) -> Result<Inspection> {
    if wasmparser::Parser::is_core_wasm(bytes) {
        bail!(
            "it is a core WebAssembly module, not a component; build plugins with `pf plugin build`, which encodes the component"
        );
    }
    if !wasmparser::Parser::is_component(bytes) {
        bail!(
            "it is not a WebAssembly component (wrong magic bytes; a truncated or foreign file?)"
        );
    }
    let decoded = wit_parser::decoding::decode(bytes)
        .map_err(|e| anyhow::anyhow!("it is not a valid WebAssembly component: {e:#}"))?;
    let DecodedWasm::Component(resolve, world) = decoded else {
        bail!("it is a WIT package, not a component");
    };
    let w = &resolve.worlds[world];
    let name = |key: &WorldKey| resolve.name_world_key(key);
    let mut imports = Vec::new();
    let mut foreign = Vec::new();
    for (key, item) in &w.imports {
        let n = name(key);
        // Type-only imports (e.g. `use`d types) are not capabilities.
        if matches!(item, WorldItem::Type { .. }) {
            continue;
        }
        match pf_interface(&n) {
            Some((iface, _)) if IMPORTABLE.contains(&iface) => imports.push(n),
            _ => foreign.push(n),
        }
    }
    if !foreign.is_empty() {
        bail!(
            "it imports {}, which pf does not provide: plugins may import only the {PACKAGE} interfaces {} (no WASI: no files, sockets, clocks or environment)",
            foreign
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", "),
            IMPORTABLE.join(", ")
        );
    }
    let exports: Vec<String> = w.exports.keys().map(name).collect();
    let mut found = Vec::new();
    for e in &exports {
        match pf_interface(e) {
            Some(("learner-plugin", v)) => found.push((PluginKind::Learner, v.to_string())),
            Some(("optimizer-plugin", v)) => found.push((PluginKind::Optimizer, v.to_string())),
            _ => {}
        }
    }
    let (kind, contract) = match found.as_slice() {
        [one] => one.clone(),
        [] => bail!(
            "it exports neither {PACKAGE}/learner-plugin nor {PACKAGE}/optimizer-plugin (it exports {}); is it a pf plugin?",
            if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
        ),
        _ => bail!("it exports more than one plugin interface ({}); a plugin is one learner or one optimizer", exports.join(", ")),
    };
    for i in &imports {
        if let Some((iface, v)) = pf_interface(i) {
            if v != contract {
                bail!(
                    "it imports `{i}` but exports contract @{contract}; the versions of {PACKAGE} must agree (interface {iface})"
                );
            }
        }
    }
    Ok(Inspection {
        kind,
        contract,
        imports,
        exports,
    })
}
