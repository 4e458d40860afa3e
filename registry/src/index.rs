//! A registry that is a directory, and the store of installed plugins.
//!
//! ```text
//! REGISTRY/
//!   index.json              name → version → digests (component, manifest, signatures)
//!   blobs/sha256/<hex>      every file, named by its SHA-256
//! ```
//!
//! Everything is content-addressed: the index names blobs by digest and
//! [`Registry::fetch`] checks each blob against its name, so a registry
//! copied over any transport (a shared folder, a git repository) is verified
//! end to end. Versions are immutable: publishing `name@version` again with
//! other bytes is refused. The index is replaced atomically under a lock
//! file, so concurrent publishers do not lose each other's entries.
//!
//! Installed plugins live in `STORE/NAME/VERSION/` as `NAME.wasm` with its
//! manifest and signatures beside it, exactly as they were published; every
//! load checks them again against the policy.

use crate::keys::SignatureFile;
use crate::{read_capped, sha256, Digest, Manifest, PluginKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Index format.
pub const FORMAT: u32 = 1;

/// Largest index read.
pub const MAX_INDEX_BYTES: u64 = 16 << 20;

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// A registry or store problem.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Something is malformed, missing or inconsistent.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Learner or optimizer.
    pub kind: PluginKind,
    /// Digest of the component blob.
    pub component: Digest,
    /// Digest of the manifest blob.
    pub manifest: Digest,
    /// Digest of the signature-file blob.
    pub signatures: Digest,
    /// When it was published (UTC, RFC 3339).
    pub published: String,
}

/// The registry's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// [`FORMAT`].
    pub format: u32,
    /// Name → version → entry.
    pub plugins: BTreeMap<String, BTreeMap<String, Entry>>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            format: FORMAT,
            plugins: BTreeMap::new(),
        }
    }
}

impl Index {
    /// Parses and checks an index. Never panics.
    pub fn from_json(bytes: &[u8]) -> Result<Index, RegistryError> {
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(RegistryError::Invalid(format!(
                "the index is larger than {MAX_INDEX_BYTES} bytes"
            )));
        }
        let index: Index = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::Invalid(format!("the index is not valid: {e}")))?;
        if index.format != FORMAT {
            return Err(RegistryError::Invalid(format!(
                "index format {} is not supported (this pf reads {FORMAT}); upgrade pf",
                index.format
            )));
        }
        for (name, versions) in &index.plugins {
            pf_manifest::validate_name(name)
                .map_err(|e| RegistryError::Invalid(format!("the index lists a bad name: {e}")))?;
            for v in versions.keys() {
                semver::Version::parse(v).map_err(|e| {
                    RegistryError::Invalid(format!("the index lists `{name}` version `{v}`: {e}"))
                })?;
            }
        }
        Ok(index)
    }

    /// The highest version of `name` that `req` accepts (any, if `None`).
    pub fn find(
        &self,
        name: &str,
        req: Option<&semver::VersionReq>,
    ) -> Option<(semver::Version, &Entry)> {
        self.plugins
            .get(name)?
            .iter()
            .filter_map(|(v, e)| semver::Version::parse(v).ok().map(|v| (v, e)))
            .filter(|(v, _)| req.is_none_or(|r| r.matches(v)))
            .max_by(|a, b| a.0.cmp(&b.0))
    }
}

/// `NAME` or `NAME@REQ` (e.g. `channel_pruned@0.2`, `tpe@=0.1.3`).
pub fn parse_spec(spec: &str) -> Result<(String, Option<semver::VersionReq>), String> {
    let (name, req) = match spec.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (spec, None),
    };
    pf_manifest::validate_name(name).map_err(|e| format!("`{spec}`: {e}"))?;
    let req = req
        .map(|r| {
            semver::VersionReq::parse(r)
                .map_err(|e| format!("`{spec}`: `{r}` is not a version requirement ({e})"))
        })
        .transpose()?;
    Ok((name.to_string(), req))
}

/// The three files of one plugin version.
#[derive(Debug, Clone)]
pub struct Package {
    /// The component.
    pub component: Vec<u8>,
    /// The manifest's exact bytes.
    pub manifest_bytes: Vec<u8>,
    /// The manifest, parsed.
    pub manifest: Manifest,
    /// The signatures.
    pub signatures: SignatureFile,
}

impl Package {
    /// Checks that the parts belong together: the manifest pins the
    /// component, and every signature verifies.
    pub fn check(&self) -> Result<(), RegistryError> {
        let digest = sha256(&self.component);
        if digest != self.manifest.component {
            return Err(RegistryError::Invalid(format!(
                "the component is {digest}, but the manifest of {} pins {}",
                self.manifest.id(),
                self.manifest.component
            )));
        }
        for s in &self.signatures.signatures {
            s.verify(&self.manifest_bytes, &digest)
                .map_err(RegistryError::Invalid)?;
        }
        Ok(())
    }
}

/// A registry directory.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

impl Registry {
    /// Opens an existing registry.
    pub fn open(root: &Path) -> Result<Registry, RegistryError> {
        if !root.join("index.json").is_file() {
            return Err(RegistryError::Invalid(format!(
                "{} is not a pf registry (no index.json); `pf plugin publish --registry {}` creates one",
                root.display(),
                root.display()
            )));
        }
        Ok(Registry {
            root: root.to_path_buf(),
        })
    }

    /// Opens a registry, creating an empty one if the folder has none.
    pub fn open_or_create(root: &Path) -> Result<Registry, RegistryError> {
        std::fs::create_dir_all(root.join("blobs/sha256")).map_err(io(root))?;
        let index = root.join("index.json");
        if !index.is_file() {
            write_json(&index, &Index::default())?;
        }
        Ok(Registry {
            root: root.to_path_buf(),
        })
    }

    /// The registry's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads the index.
    pub fn index(&self) -> Result<Index, RegistryError> {
        let path = self.root.join("index.json");
        let bytes = read_capped(&path, MAX_INDEX_BYTES).map_err(io(&path))?;
        Index::from_json(&bytes)
            .map_err(|e| RegistryError::Invalid(format!("{}: {e}", path.display())))
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<Digest, RegistryError> {
        let d = sha256(bytes);
        let path = self.blob_path(&d);
        if !path.is_file() {
            crate::atomic_write(&path, bytes).map_err(io(&path))?;
        }
        Ok(d)
    }

    fn get_blob(&self, d: &Digest, max: u64) -> Result<Vec<u8>, RegistryError> {
        let path = self.blob_path(d);
        let bytes = read_capped(&path, max).map_err(io(&path))?;
        let actual = sha256(&bytes);
        if actual != *d {
            return Err(RegistryError::Invalid(format!(
                "blob {} is corrupt: its content is {actual}",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// Adds a checked package. Publishing the same bytes again only merges
    /// new signatures; other bytes under a published version are refused.
    pub fn publish(&self, pkg: &Package) -> Result<Entry, RegistryError> {
        pkg.check()?;
        if pkg.signatures.signatures.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "{} has no signature; a registry takes signed plugins only (`pf plugin publish --key KEY` signs)",
                pkg.manifest.id()
            )));
        }
        let _lock = DirLock::acquire(&self.root.join("index.lock"))?;
        let mut index = self.index()?;
        let name = pkg.manifest.name.clone();
        let version = pkg.manifest.version.to_string();
        let mut signatures = pkg.signatures.clone();
        if let Some(old) = index.plugins.get(&name).and_then(|v| v.get(&version)) {
            if old.component != pkg.manifest.component
                || old.manifest != sha256(&pkg.manifest_bytes)
            {
                return Err(RegistryError::Invalid(format!(
                    "{name}@{version} is already published with other content ({}); versions are immutable: bump the version",
                    old.component
                )));
            }
            let existing =
                SignatureFile::from_json(&self.get_blob(&old.signatures, crate::keys::MAX_BYTES)?)
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?;
            for s in existing.signatures {
                if !signatures.signatures.iter().any(|n| n.key == s.key) {
                    signatures.signatures.push(s);
                }
            }
        }
        let entry = Entry {
            kind: pkg.manifest.kind,
            component: self.put_blob(&pkg.component)?,
            manifest: self.put_blob(&pkg.manifest_bytes)?,
            signatures: self.put_blob(&signatures.to_json())?,
            published: crate::audit::now_rfc3339(),
        };
        index
            .plugins
            .entry(name)
            .or_default()
            .insert(version, entry.clone());
        write_json(&self.root.join("index.json"), &index)?;
        Ok(entry)
    }

    /// Reads and checks the package of an entry.
    pub fn fetch(&self, entry: &Entry) -> Result<Package, RegistryError> {
        let component = self.get_blob(&entry.component, MAX_COMPONENT_BYTES)?;
        let manifest_bytes = self.get_blob(&entry.manifest, pf_manifest::MAX_BYTES as u64)?;
        let manifest = Manifest::from_json(&manifest_bytes)
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let signatures =
            SignatureFile::from_json(&self.get_blob(&entry.signatures, crate::keys::MAX_BYTES)?)
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let pkg = Package {
            component,
            manifest_bytes,
            manifest,
            signatures,
        };
        pkg.check()?;
        Ok(pkg)
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RegistryError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| RegistryError::Invalid(e.to_string()))?;
    bytes.push(b'\n');
    crate::atomic_write(path, &bytes).map_err(io(path))
}

/// An exclusive lock held by creating a file; released on drop.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> Result<DirLock, RegistryError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return Ok(DirLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if std::time::Instant::now() > deadline {
                        return Err(RegistryError::Invalid(format!(
                            "{} has been locked for 30 s by another publisher; if no pf is publishing, delete it",
                            path.display()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(io(path)(e)),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One installed plugin version.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its manifest.
    pub manifest: Manifest,
    /// The component file.
    pub component: PathBuf,
}

/// The store of installed plugins (`$XDG_DATA_HOME/pf/plugins`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store at `root` (created on first install).
    pub fn at(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    /// Its folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Installs a checked package, replacing the same version.
    pub fn install(&self, pkg: &Package) -> Result<Installed, RegistryError> {
        pkg.check()?;
        let name = &pkg.manifest.name;
        let parent = self.root.join(name);
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".installing-")
            .tempdir_in(&parent)
            .map_err(io(&parent))?;
        let component = staging.path().join(format!("{name}.wasm"));
        let side = crate::SideFiles::of(&component);
        for (path, bytes) in [
            (&component, &pkg.component),
            (&side.manifest, &pkg.manifest_bytes),
            (&side.signatures, &pkg.signatures.to_json()),
        ] {
            std::fs::write(path, bytes).map_err(io(path))?;
        }
        let target = parent.join(pkg.manifest.version.to_string());
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(io(&target))?;
        }
        let staged = staging.keep();
        std::fs::rename(&staged, &target).map_err(io(&target))?;
        Ok(Installed {
            manifest: pkg.manifest.clone(),
            component: target.join(format!("{name}.wasm")),
        })
    }

    /// Every installed version, sorted by name then version.
    pub fn list(&self) -> Result<Vec<Installed>, RegistryError> {
        let mut out = Vec::new();
        let Ok(names) = std::fs::read_dir(&self.root) else {
            return Ok(out);
        };
        for n in names.flatten() {
            let name = n.file_name().to_string_lossy().into_owned();
            if pf_manifest::validate_name(&name).is_err() || !n.path().is_dir() {
                continue;
            }
            for v in std::fs::read_dir(n.path())
                .map_err(io(&n.path()))?
                .flatten()
            {
                let component = v.path().join(format!("{name}.wasm"));
                let side = crate::SideFiles::of(&component);
                if !component.is_file() {
                    continue;
                }
                let Ok(bytes) = read_capped(&side.manifest, pf_manifest::MAX_BYTES as u64) else {
                    continue;
                };
                if let Ok(manifest) = Manifest::from_json(&bytes) {
                    out.push(Installed {
                        manifest,
                        component,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (a.manifest.name.as_str(), &a.manifest.version)
                .cmp(&(b.manifest.name.as_str(), &b.manifest.version))
        });
        Ok(out)
    }

    /// The highest installed version of `name` that `req` accepts.
    pub fn find(
        &self,
        name: &str,
        req: Option<&semver::VersionReq>,
    ) -> Result<Option<Installed>, RegistryError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| {
                i.manifest.name == name && req.is_none_or(|r| r.matches(&i.manifest.version))
            })
            .max_by(|a, b| a.manifest.version.cmp(&b.manifest.version)))
    }

    /// Removes the installed versions of `name` that `req` accepts; returns
    /// what was removed.
    pub fn remove(
        &self,
        name: &str,
        req: Option<&semver::VersionReq>,
    ) -> Result<Vec<Installed>, RegistryError> {
        let mut removed = Vec::new();
        for i in self.list()? {
            if i.manifest.name == name && req.is_none_or(|r| r.matches(&i.manifest.version)) {
                let dir = i
                    .component
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
                removed.push(i);
            }
        }
        let parent = self.root.join(name);
        if parent.is_dir() {
            let _ = std::fs::remove_dir(&parent); // only if now empty
        }
        Ok(removed)
    }
}
