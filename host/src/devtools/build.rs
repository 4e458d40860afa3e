//! `pf plugin build`: compiles plugin crates to `wasm32-unknown-unknown`,
//! encodes each core module as a component (`wit-component`), checks that it
//! imports nothing but pf's interfaces, and writes `NAME.wasm` atomically.
//! pf's own plugins (the crates under the repository's `plugins/`) are also
//! pinned by digest in `plugins.lock` beside them, which makes them built-in
//! plugins: they load without a signature, and a swapped file is refused.
//!
//! Toolchain: rustup's `wasm32-unknown-unknown` target when
//! `rustup target list --installed` shows it; otherwise Debian's `rustc-web`
//! with its std sources, building std with `-Zbuild-std` (see
//! `scripts/build-plugins.sh`, which installs it). Every crate builds into one
//! shared target directory, so std is compiled once.

use crate::plugin::inspect::{self, Inspection};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The compiler used for plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toolchain {
    /// rustup with the `wasm32-unknown-unknown` target installed.
    Rustup,
    /// Debian's `rustc-web` and `rust-web-src`, std built from source.
    Debian {
        /// Folder holding `wasm-ld` (LLVM's).
        lld_dir: PathBuf,
    },
}

impl std::fmt::Display for Toolchain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Toolchain::Rustup => write!(f, "rustup target wasm32-unknown-unknown"),
            Toolchain::Debian { .. } => write!(f, "Debian rustc-web with -Zbuild-std"),
        }
    }
}

/// The WebAssembly target plugins are built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Finds a toolchain that can build plugins.
pub fn detect_toolchain() -> Result<Toolchain> {
    if let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
    {
        if out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        {
            return Ok(Toolchain::Rustup);
        }
    }
    let std_src = Path::new("/usr/lib/rustlib/src/rust/library");
    if Path::new("/usr/bin/cargo").exists()
        && Path::new("/usr/bin/rustc").exists()
        && std_src.exists()
    {
        for v in (14..=30).rev() {
            let dir = PathBuf::from(format!("/usr/lib/llvm-{v}/bin"));
            if dir.join("wasm-ld").exists() {
                return Ok(Toolchain::Debian { lld_dir: dir });
            }
        }
    }
    bail!(
        "no toolchain can build plugins for {TARGET}: run `rustup target add {TARGET}`, or on Debian run scripts/build-plugins.sh (it installs rustc-web, cargo-web, rust-web-src and lld)"
    )
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `Cargo.toml` of the crate or workspace to build.
    pub manifest: PathBuf,
    /// Build every workspace member (test fixtures too), not just the
    /// default members.
    pub all: bool,
    /// Shared cargo target directory.
    pub target_dir: PathBuf,
    /// Where `NAME.wasm` components go.
    pub out_dir: PathBuf,
    /// Encode components even if they import foreign interfaces (only for
    /// building the test fixtures that prove the loader refuses them).
    pub allow_foreign_imports: bool,
    /// Show cargo's progress.
    pub verbose: bool,
}

/// One built component.
#[derive(Debug, Clone)]
pub struct Built {
    /// Plugin name (the crate's library name).
    pub name: String,
    /// The component file written.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: usize,
    /// What it declares, or why it was refused.
    pub inspection: Result<Inspection, String>,
}

/// Encodes a core module (with the component-type section wit-bindgen
/// embeds) as a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?
        .validate(true)
        .encode()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// The repository root (a checkout of pf), where `pf plugin build` puts built-ins.
pub use crate::io::find_repo_root;

/// Builds the crates and writes their components.
pub fn build(opts: &BuildOptions) -> Result<Vec<Built>> {
    if !opts.manifest.is_file() {
        bail!(
            "{} does not exist; pass the folder of a plugin crate (with a Cargo.toml)",
            opts.manifest.display()
        );
    }
    let toolchain = detect_toolchain()?;
    let mut cmd = match &toolchain {
        Toolchain::Rustup => Command::new("cargo"),
        Toolchain::Debian { lld_dir } => {
            let mut c = Command::new("/usr/bin/cargo");
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![lld_dir.clone()];
            dirs.extend(std::env::split_paths(&path));
            c.env("PATH", std::env::join_paths(dirs)?)
                .env("RUSTC", "/usr/bin/rustc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("CARGO")
                .env_remove("RUSTDOC");
            c
        }
    };
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(&opts.manifest)
        .arg("--target-dir")
        .arg(&opts.target_dir)
        .arg("--message-format=json-render-diagnostics")
        // getrandom 0.3 inside plugins uses the SDK's host-fed backend.
        .env("RUSTFLAGS", "--cfg getrandom_backend=\"custom\"")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdout(Stdio::piped())
        .stderr(if opts.verbose {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
    if matches!(toolchain, Toolchain::Debian { .. }) {
        cmd.arg("-Zbuild-std=std,panic_abort");
    }
    if opts.all {
        cmd.arg("--workspace");
    }
    if opts
        .manifest
        .parent()
        .is_some_and(|d| d.join("Cargo.lock").is_file())
    {
        cmd.arg("--locked");
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot run cargo ({toolchain})"))?;
    let out = child.wait_with_output()?;
    let mut artifacts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        let crate_dir = msg["manifest_path"]
            .as_str()
            .and_then(|m| Path::new(m).parent())
            .map(Path::to_path_buf);
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                artifacts.push((PathBuf::from(f), crate_dir.clone()));
            }
        }
    }
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        bail!(
            "cargo failed building {} ({toolchain}):\n{}",
            opts.manifest.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    if artifacts.is_empty() {
        bail!(
            "{} built no cdylib; a plugin crate needs `[lib] crate-type = [\"cdylib\"]`",
            opts.manifest.display()
        );
    }
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create {}", opts.out_dir.display()))?;
    let builtin_dir = opts
        .manifest
        .canonicalize()
        .ok()
        .and_then(|m| find_repo_root(&m))
        .and_then(|r| r.join("plugins").canonicalize().ok());
    let mut built = Vec::new();
    let mut pinned = Vec::new();
    for (core_path, crate_dir) in artifacts {
        let name = core_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let core = std::fs::read(&core_path)?;
        let component =
            componentize(&core).with_context(|| format!("encoding `{name}` as a component"))?;
        let inspection = inspect::inspect(&component).map_err(|e| format!("{e:#}"));
        if let Err(e) = &inspection {
            if !opts.allow_foreign_imports {
                bail!("plugin `{name}` is refused: {e}");
            }
        }
        let path = opts.out_dir.join(format!("{name}.wasm"));
        crate::io::atomic_write(&path, &component)?;
        // pf's own plugins (crates under the repository's plugins/) are
        // pinned in plugins.lock: they load unsigned, but only as built.
        let is_builtin = match (&builtin_dir, crate_dir.and_then(|d| d.canonicalize().ok())) {
            (Some(b), Some(d)) => d.starts_with(b),
            _ => false,
        };
        if is_builtin {
            pinned.push((name.clone(), pf_registry::sha256(&component)));
        }
        built.push(Built {
            name,
            path,
            bytes: component.len(),
            inspection,
        });
    }
    if !pinned.is_empty() {
        pf_registry::lock::Lock::record(&opts.out_dir, &pinned).map_err(anyhow::Error::msg)?;
    }
    Ok(built)
}
