//! # pf-registry: who may load what
//!
//! Everything pf decides about a plugin before running a single instruction
//! of it:
//!
//! - [`keys`]: ed25519 publisher keys and the signatures over a manifest and
//!   its component digest ([`keys::SignatureFile`], kept beside the
//!   component as `NAME.sig.json`).
//! - [`policy`]: the admission policy, a TOML file that says which publishers
//!   are trusted, whether unsigned plugins may load, which worlds and
//!   contract versions are allowed and what the sandbox may be given.
//! - [`admission`]: applies a policy to one component and its side files, and
//!   names the rule behind every refusal.
//! - [`audit`]: the append-only JSON-lines log of every decision.
//! - [`lock`]: the digests of the built-in plugins (`plugins.lock`), which
//!   load unsigned but are refused once swapped on disk.
//! - [`index`]: a registry that is a directory of content-addressed blobs
//!   and an index (name → versions → digests), and the store of installed
//!   plugins.
//!
//! The manifest itself is its own small crate, [`pf_manifest`].

pub mod admission;
pub mod audit;
pub mod index;
pub mod keys;
pub mod lock;
pub mod policy;

pub use pf_manifest::{Digest, Manifest, ManifestError, PluginKind};

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

/// The side files kept beside a component `DIR/NAME.wasm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideFiles {
    /// `DIR/NAME.manifest.json`.
    pub manifest: PathBuf,
    /// `DIR/NAME.sig.json`.
    pub signatures: PathBuf,
}

impl SideFiles {
    /// The side files of `component`.
    pub fn of(component: &Path) -> SideFiles {
        let stem = component
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = component.parent().unwrap_or(Path::new("."));
        SideFiles {
            manifest: dir.join(format!("{stem}.manifest.json")),
            signatures: dir.join(format!("{stem}.sig.json")),
        }
    }
}

/// Writes a file atomically: a temporary file in the same folder, synced,
/// then renamed over `path`. A crash leaves the old file or the new one.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    // Temporary files are private (0600), but what is written here (the
    // built-in lock, installed components and their side files) must be
    // readable by every user who runs pf: keep an existing file's mode,
    // else 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o644);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Reads a file of at most `max` bytes, so that a hostile side file cannot
/// exhaust memory.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {max} bytes", path.display()),
        ));
    }
    Ok(bytes)
}
