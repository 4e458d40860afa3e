//! `pf plugin new`: start a plugin crate.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pf::devtools::scaffold;
use pf_manifest::PluginKind;
use std::path::PathBuf;

/// Which world the new plugin implements.
#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// A compression algorithm.
    Learner,
    /// A hyper-parameter search.
    Optimizer,
}

/// Arguments of `pf plugin new`.
#[derive(Args)]
pub struct NewArgs {
    /// Plugin (and crate) name: lowercase letters, digits and `_`.
    name: String,
    /// Learner or optimizer.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Folder to create the crate in [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The pf-sdk crate to depend on, by path [default: $PF_SDK_DIR, else
    /// the SDK of this pf's checkout or installation].
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// Runs `pf plugin new`.
pub fn run(a: NewArgs) -> Result<()> {
    scaffold::check_name(&a.name)?;
    let kind = match a.kind {
        Kind::Learner => PluginKind::Learner,
        Kind::Optimizer => PluginKind::Optimizer,
    };
    let sdk = match a.sdk {
        Some(s) => s,
        None => scaffold::default_sdk_dir().context(
            "cannot find pf-sdk beside this pf; pass --sdk PATH (the sdk/ folder of a pf checkout) or set PF_SDK_DIR",
        )?,
    };
    let dir = a.dir.unwrap_or_else(|| PathBuf::from(&a.name));
    scaffold::create(&dir, kind, &a.name, &sdk)?;
    println!(
        "created {} {} in {} (pf-sdk from {})",
        kind,
        a.name,
        dir.display(),
        sdk.display()
    );
    println!(
        "next: cd {} && pf plugin build . && pf plugin test target/plugins/{}.wasm",
        dir.display(),
        a.name
    );
    Ok(())
}
