//! `pf plugin manifest | keygen | sign | verify | publish | install | list |
//! remove`: the life of a plugin after it builds.

use super::common::print_json;
use super::plugin::LimitArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use pf::plugin::{inspect, Runtime};
use pf::registry::resolve;
use pf_manifest::{Manifest, RequestedLimits, Source};
use pf_registry::admission::{Candidate, Provenance};
use pf_registry::index::{parse_spec, Package, Registry};
use pf_registry::keys::{PublicKey, SecretKey, SignatureFile};
use pf_registry::lock::Lock;
use pf_registry::policy::Publisher;
use pf_registry::{sha256, SideFiles};
use std::path::{Path, PathBuf};

/// Arguments of `pf plugin manifest`.
#[derive(Args)]
pub struct ManifestArgs {
    /// The built component (`.wasm`).
    plugin: PathBuf,
    #[command(flatten)]
    meta: MetaArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print the manifest instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Where a manifest's descriptive fields come from.
#[derive(Args, Clone)]
pub struct MetaArgs {
    /// The plugin's crate, for authors, licence, repository and
    /// `[package.metadata.pf]` limits [default: the nearest folder above the
    /// component with a Cargo.toml].
    #[arg(long = "crate", value_name = "DIR")]
    crate_dir: Option<PathBuf>,
    /// Source repository URL [default: the crate's `repository`].
    #[arg(long, value_name = "URL")]
    source_url: Option<String>,
    /// Source revision [default: `git rev-parse HEAD` in the crate, if it is
    /// in a git repository].
    #[arg(long, value_name = "REV")]
    revision: Option<String>,
}

/// Arguments of `pf plugin keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// Secret key file to write; the public key goes beside it as
    /// `NAME.pub`.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: PathBuf,
    /// Overwrite an existing key (the old key is lost).
    #[arg(long)]
    force: bool,
}

/// Arguments of `pf plugin sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The component; its manifest must be beside it (`pf plugin manifest`).
    plugin: PathBuf,
    /// Secret key file (`pf plugin keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Name recorded with the signature [default: the key file's name].
    #[arg(long, value_name = "NAME")]
    signer: Option<String>,
}

/// Arguments of `pf plugin verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// A component, or the name of an installed plugin.
    plugin: String,
    /// Public key files to trust besides the policy's publishers.
    #[arg(long, value_name = "KEY.pub")]
    trust: Vec<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `pf plugin publish`.
#[derive(Args)]
pub struct PublishArgs {
    /// The component. Without a manifest beside it, one is made as
    /// `pf plugin manifest` would.
    plugin: PathBuf,
    /// Registry folder (created if empty).
    #[arg(long, value_name = "DIR")]
    registry: PathBuf,
    /// Secret key to sign with.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Name recorded with the signature [default: the key file's name].
    #[arg(long, value_name = "NAME")]
    signer: Option<String>,
    #[command(flatten)]
    meta: MetaArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Arguments of `pf plugin install`.
#[derive(Args)]
pub struct InstallArgs {
    /// `NAME` or `NAME@VERSION` (a semver requirement: `0.2` takes the
    /// highest 0.2.x).
    spec: String,
    /// Registry folder.
    #[arg(long, value_name = "DIR")]
    registry: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Arguments of `pf plugin list`.
#[derive(Args)]
pub struct ListArgs {
    /// List what a registry offers instead of what is installed.
    #[arg(long, value_name = "DIR")]
    registry: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `pf plugin remove`.
#[derive(Args)]
pub struct RemoveArgs {
    /// `NAME` (every installed version) or `NAME@VERSION`.
    spec: String,
}

/// Cargo metadata of a plugin crate.
#[derive(Default)]
struct CrateMeta {
    authors: Vec<String>,
    license: Option<String>,
    repository: Option<String>,
    limits: RequestedLimits,
    dir: Option<PathBuf>,
}

fn crate_meta(component: &Path, explicit: Option<&Path>) -> Result<CrateMeta> {
    let dir = match explicit {
        Some(d) => Some(d.to_path_buf()),
        None => component.canonicalize().ok().and_then(|c| {
            c.ancestors()
                .skip(1)
                .find(|d| d.join("Cargo.toml").is_file())
                .map(Path::to_path_buf)
        }),
    };
    let Some(dir) = dir else {
        return Ok(CrateMeta::default());
    };
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let Some(pkg) = doc.get("package").and_then(|p| p.as_table()) else {
        // A workspace manifest: nothing to take.
        return Ok(CrateMeta {
            dir: Some(dir),
            ..CrateMeta::default()
        });
    };
    let text_of = |k: &str| pkg.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let limits = pkg
        .get("metadata")
        .and_then(|m| m.get("pf"))
        .map(|pf| -> Result<RequestedLimits> {
            let num = |k: &str| -> Result<Option<u64>> {
                match pf.get(k) {
                    None => Ok(None),
                    Some(v) => v
                        .as_integer()
                        .and_then(|n| u64::try_from(n).ok())
                        .map(Some)
                        .with_context(|| {
                            format!(
                                "{}: [package.metadata.pf] {k} must be a positive integer",
                                path.display()
                            )
                        }),
                }
            };
            Ok(RequestedLimits {
                memory_mib: num("memory_mib")?,
                fuel_millions: num("fuel_millions")?,
                tensors: num("tensors")?.map(|t| t.min(u64::from(u32::MAX)) as u32),
            })
        })
        .transpose()?
        .unwrap_or_default();
    Ok(CrateMeta {
        authors: pkg
            .get("authors")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        license: text_of("license"),
        repository: text_of("repository"),
        limits,
        dir: Some(dir),
    })
}

fn git_head(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Makes the manifest of a component: what it says about itself (run in
/// the sandbox, judged without its side files, so that a stale manifest does
/// not stand in the way), its digest, and its crate's metadata.
fn make_manifest(component: &Path, meta: &MetaArgs, rt: &mut Runtime) -> Result<Manifest> {
    let bytes = std::fs::read(component)
        .with_context(|| format!("cannot read plugin {}", component.display()))?;
    rt.gate.ignore_side_files = true;
    let plugin = rt
        .load_bytes(&bytes, component)
        .with_context(|| format!("cannot load plugin {}", component.display()))?;
    let info = &plugin.info;
    let version = semver::Version::parse(&info.version).with_context(|| {
        format!(
            "plugin `{}` gives its version as `{}`, which is not semver; use env!(\"CARGO_PKG_VERSION\")",
            info.name, info.version
        )
    })?;
    let cm = crate_meta(component, meta.crate_dir.as_deref())?;
    let url = meta.source_url.clone().or(cm.repository.clone());
    let revision = meta
        .revision
        .clone()
        .or_else(|| cm.dir.as_deref().and_then(git_head));
    let manifest = Manifest {
        format: pf_manifest::FORMAT,
        name: info.name.clone(),
        version,
        kind: plugin.kind(),
        contract: semver::Version::parse(&plugin.inspection.contract)
            .context("the component's contract version is not semver")?,
        component: sha256(&bytes),
        description: info.summary.clone(),
        authors: cm.authors,
        license: cm.license,
        source: url.map(|url| Source { url, revision }),
        params_schema: serde_json::from_str(&info.params_schema).unwrap_or(serde_json::Value::Null),
        limits: cm.limits,
    };
    manifest
        .validate()
        .with_context(|| format!("the manifest of {} would be invalid", component.display()))?;
    Ok(manifest)
}

/// Runs `pf plugin manifest`.
pub fn run_manifest(a: ManifestArgs) -> Result<()> {
    let mut rt = a.limits.runtime("plugin manifest")?;
    let manifest = make_manifest(&a.plugin, &a.meta, &mut rt)?;
    let side = SideFiles::of(&a.plugin);
    pf::io::atomic_write(&side.manifest, &manifest.to_json())?;
    if a.json {
        return print_json(&manifest);
    }
    println!(
        "wrote {} for {} ({}, {})",
        side.manifest.display(),
        manifest.id(),
        manifest.world(),
        manifest.component
    );
    if side.signatures.is_file() {
        println!(
            "note: {} signed the old manifest; sign again (`pf plugin sign`)",
            side.signatures.display()
        );
    }
    Ok(())
}

/// Runs `pf plugin keygen`.
pub fn run_keygen(a: KeygenArgs) -> Result<()> {
    let public_path = a.out.with_extension("pub");
    if !a.force {
        for p in [&a.out, &public_path] {
            if p.exists() {
                bail!(
                    "{} exists; a key cannot be recovered once overwritten: choose another --out, or pass --force",
                    p.display()
                );
            }
        }
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = SecretKey::generate()?;
    write_secret(&a.out, key.to_file_text().as_bytes())?;
    let public = key.public();
    pf::io::atomic_write(&public_path, format!("{public}\n").as_bytes())?;
    let name = a
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!("secret key  {} (keep it secret)", a.out.display());
    println!("public key  {}  {public}", public_path.display());
    println!(
        "to trust it, add to a policy:\n\n[[publishers]]\nname = \"{name}\"\nkey = \"{public}\""
    );
    Ok(())
}

/// Writes a secret file readable by its owner only, atomically.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn signer_name(key: &Path, given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .or_else(|| key.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "publisher".into())
}

/// Adds a signature to a component's signature file; returns its package.
fn sign(component: &Path, key_path: &Path, signer: &str) -> Result<Package> {
    let key = SecretKey::read(key_path)?;
    let side = SideFiles::of(component);
    let bytes =
        std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let manifest_bytes = std::fs::read(&side.manifest).with_context(|| {
        format!(
            "cannot read the manifest {}; make it with `pf plugin manifest {}`",
            side.manifest.display(),
            component.display()
        )
    })?;
    let manifest = Manifest::from_json(&manifest_bytes)
        .with_context(|| format!("{} is not a valid manifest", side.manifest.display()))?;
    let digest = sha256(&bytes);
    if manifest.component != digest {
        bail!(
            "{} is {digest}, but its manifest pins {}: the component changed since the manifest was made; run `pf plugin manifest {}` first",
            component.display(),
            manifest.component,
            component.display()
        );
    }
    let mut file = if side.signatures.is_file() {
        let f = SignatureFile::from_json(&std::fs::read(&side.signatures)?)?;
        // Signatures over an older manifest no longer apply.
        SignatureFile {
            signatures: f
                .signatures
                .into_iter()
                .filter(|s| s.verify(&manifest_bytes, &digest).is_ok())
                .collect(),
            ..f
        }
    } else {
        SignatureFile::default()
    };
    file.add(key.sign(signer, &manifest_bytes, &digest));
    pf::io::atomic_write(&side.signatures, &file.to_json())?;
    Ok(Package {
        component: bytes,
        manifest_bytes,
        manifest,
        signatures: file,
    })
}

/// Runs `pf plugin sign`.
pub fn run_sign(a: SignArgs) -> Result<()> {
    let signer = signer_name(&a.key, a.signer.as_deref());
    let pkg = sign(&a.plugin, &a.key, &signer)?;
    println!(
        "signed {} as {signer} ({}); {} signature(s) in {}",
        pkg.manifest.id(),
        SecretKey::read(&a.key)?.public(),
        pkg.signatures.signatures.len(),
        SideFiles::of(&a.plugin).signatures.display()
    );
    Ok(())
}

/// Runs `pf plugin verify`.
pub fn run_verify(a: VerifyArgs) -> Result<()> {
    let path = resolve::resolve(&a.plugin)?;
    let mut gate = a.limits.gate("plugin verify")?;
    for t in &a.trust {
        let key = PublicKey::read(t)?;
        let name = t
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        gate.policy.publishers.push(Publisher { name, key });
    }
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read plugin {}", path.display()))?;
    let inspection =
        inspect::inspect(&bytes).with_context(|| format!("plugin {}", path.display()))?;
    let admitted = gate
        .admit(
            &Candidate {
                path: &path,
                bytes: &bytes,
                kind: inspection.kind,
                contract: &inspection.contract,
            },
            &a.limits.limits().grant(None),
        )
        .with_context(|| format!("plugin {}", path.display()))?;
    let trusted_any = !gate.policy.publishers.is_empty();
    let verdict = match &admitted.provenance {
        Provenance::Builtin { lock } => Ok(format!(
            "a built-in plugin, as built (pinned in {})",
            lock.display()
        )),
        Provenance::Signed {
            trusted: Some(t), ..
        } => Ok(format!("signed by trusted publisher {t}")),
        Provenance::Signed { trusted: None, .. } => {
            let who = admitted.provenance.signers();
            if trusted_any {
                Err(format!("signatures are valid, but by {who}, whom neither the policy nor --trust trusts"))
            } else {
                Ok(format!(
                    "validly signed by {who}; pass --trust KEY.pub or a policy to check the signer"
                ))
            }
        }
        Provenance::Unsigned => Err("not signed: sign it with `pf plugin sign`".to_string()),
    };
    if a.json {
        print_json(&serde_json::json!({
            "path": path,
            "digest": admitted.digest.to_string(),
            "manifest": admitted.manifest,
            "provenance": admitted.provenance.label(),
            "signer": admitted.provenance.signer(),
            "verified": verdict.is_ok(),
            "reason": verdict.as_ref().unwrap_or_else(|e| e),
        }))?;
    } else {
        let id = admitted
            .manifest
            .as_ref()
            .map(|m| m.id())
            .unwrap_or_else(|| path.display().to_string());
        match &verdict {
            Ok(v) => println!("{id}: ok: {v}"),
            Err(e) => println!("{id}: {e}"),
        }
    }
    verdict
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Runs `pf plugin publish`.
pub fn run_publish(a: PublishArgs) -> Result<()> {
    let side = SideFiles::of(&a.plugin);
    if !side.manifest.is_file() {
        let mut rt = a.limits.runtime("plugin publish")?;
        let manifest = make_manifest(&a.plugin, &a.meta, &mut rt)?;
        pf::io::atomic_write(&side.manifest, &manifest.to_json())?;
        println!("wrote {}", side.manifest.display());
    }
    let signer = signer_name(&a.key, a.signer.as_deref());
    let pkg = sign(&a.plugin, &a.key, &signer)?;
    let registry = Registry::open_or_create(&a.registry)?;
    let entry = registry.publish(&pkg)?;
    println!(
        "published {} ({}, {}) to {}, signed by {signer}",
        pkg.manifest.id(),
        pkg.manifest.kind,
        entry.component,
        a.registry.display()
    );
    Ok(())
}

/// Runs `pf plugin install`.
pub fn run_install(a: InstallArgs) -> Result<()> {
    let (name, req) = parse_spec(&a.spec).map_err(anyhow::Error::msg)?;
    let registry = Registry::open(&a.registry)?;
    let index = registry.index()?;
    let Some((version, entry)) = index.find(&name, req.as_ref()) else {
        let have = index
            .plugins
            .get(&name)
            .map(|v| v.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        bail!(
            "{} has no version of `{name}` matching `{}` (it has: {})",
            a.registry.display(),
            a.spec,
            if have.is_empty() { "none" } else { &have }
        );
    };
    let pkg = registry
        .fetch(entry)
        .with_context(|| format!("{name}@{version} in {}", a.registry.display()))?;
    // Stage it and put it through the policy before it reaches the store.
    let staging = tempfile::tempdir()?;
    let staged = pf_registry::index::Store::at(staging.path()).install(&pkg)?;
    let rt = a.limits.runtime("plugin install")?;
    let inspection = inspect::inspect(&pkg.component)?;
    rt.gate
        .admit(
            &Candidate {
                path: &staged.component,
                bytes: &pkg.component,
                kind: inspection.kind,
                contract: &inspection.contract,
            },
            &rt.limits.grant(None),
        )
        .with_context(|| format!("installing {name}@{version}"))?;
    let store =
        resolve::store().context("no data folder to install into: set XDG_DATA_HOME or HOME")?;
    let installed = store.install(&pkg)?;
    println!(
        "installed {name}@{version} ({}) in {}",
        entry.component,
        installed
            .component
            .parent()
            .unwrap_or(Path::new("."))
            .display()
    );
    Ok(())
}

/// Runs `pf plugin list`.
pub fn run_list(a: ListArgs) -> Result<()> {
    if let Some(dir) = &a.registry {
        let index = Registry::open(dir)?.index()?;
        if a.json {
            return print_json(&index);
        }
        for (name, versions) in &index.plugins {
            for (v, e) in versions {
                println!(
                    "{name:<20} {v:<10} {:<9} {}  published {}",
                    e.kind, e.component, e.published
                );
            }
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    if let Some(store) = resolve::store() {
        for i in store.list()? {
            let side = SideFiles::of(&i.component);
            let signers: Vec<String> = std::fs::read(&side.signatures)
                .ok()
                .and_then(|b| SignatureFile::from_json(&b).ok())
                .map(|f| f.signatures.into_iter().map(|s| s.signer).collect())
                .unwrap_or_default();
            rows.push(serde_json::json!({
                "name": i.manifest.name,
                "version": i.manifest.version.to_string(),
                "kind": i.manifest.kind,
                "source": "installed",
                "digest": i.manifest.component.to_string(),
                "signers": signers,
                "path": i.component,
            }));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for dir in resolve::builtin_dirs() {
        let lock = match Lock::read_in(&dir) {
            Ok(Some(lock)) => lock,
            Ok(None) => continue,
            // Not silence: an unreadable lock hides every built-in plugin.
            Err(e) => {
                eprintln!("warning: cannot read the built-in plugins' lock {e}; its plugins are not listed (make it readable: chmod a+r)");
                continue;
            }
        };
        let Ok(canonical) = dir.canonicalize() else {
            continue;
        };
        if !seen.insert(canonical) {
            continue;
        }
        for (name, digest) in &lock.plugins {
            let path = dir.join(format!("{name}.wasm"));
            if path.is_file() {
                rows.push(serde_json::json!({
                    "name": name,
                    "version": null,
                    "kind": null,
                    "source": "builtin",
                    "digest": digest.to_string(),
                    "signers": [],
                    "path": path,
                }));
            }
        }
    }
    if a.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!(
            "no plugins installed, and no built-in plugins in {}; build them with scripts/build-plugins.sh (or install pf with scripts/install.sh), or install one with `pf plugin install NAME --registry DIR`",
            resolve::search_path()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for r in &rows {
        let signers = r["signers"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "{:<20} {:<10} {:<10} {}  {}{}",
            r["name"].as_str().unwrap_or(""),
            r["version"].as_str().unwrap_or("-"),
            r["source"].as_str().unwrap_or(""),
            r["digest"].as_str().unwrap_or(""),
            r["path"].as_str().unwrap_or(""),
            if signers.is_empty() {
                String::new()
            } else {
                format!("  signed by {signers}")
            }
        );
    }
    Ok(())
}

/// Runs `pf plugin remove`.
pub fn run_remove(a: RemoveArgs) -> Result<()> {
    let (name, req) = parse_spec(&a.spec).map_err(anyhow::Error::msg)?;
    let store = resolve::store().context("no data folder: set XDG_DATA_HOME or HOME")?;
    let removed = store.remove(&name, req.as_ref())?;
    if removed.is_empty() {
        bail!(
            "no installed plugin matches `{}`; `pf plugin list` shows what is installed",
            a.spec
        );
    }
    for r in removed {
        println!("removed {}", r.manifest.id());
    }
    Ok(())
}
