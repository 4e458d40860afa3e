//! `plugins.lock`: the digests of the built-in plugins.
//!
//! `pf plugin build` writes it beside the components it builds (merging with
//! what is there), and it installs with pf (`scripts/install.sh` copies it to
//! `PREFIX/share/pf/plugins`). Only the lock of one of pf's own install
//! folders counts ([`crate::admission::Gate::builtin_dirs`]): a component in
//! that folder whose name the lock lists is a built-in plugin; it loads
//! without a signature, but only with exactly the bytes the build produced,
//! and a file swapped on disk is refused. A lock anywhere else (beside a
//! third-party plugin, in a `PF_PLUGIN_PATH` folder) is ignored by admission.

use crate::{read_capped, Digest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lock's file name.
pub const FILE_NAME: &str = "plugins.lock";

/// Lock file format.
pub const FORMAT: u32 = 1;

/// Largest lock file read.
pub const MAX_BYTES: u64 = 1 << 20;

/// The digests of the built-in plugins in one folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// [`FORMAT`].
    pub format: u32,
    /// Component file stem → digest.
    pub plugins: BTreeMap<String, Digest>,
}

impl Default for Lock {
    fn default() -> Self {
        Lock {
            format: FORMAT,
            plugins: BTreeMap::new(),
        }
    }
}

impl Lock {
    /// The lock file of a folder.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Parses a lock. Never panics.
    pub fn from_json(bytes: &[u8]) -> Result<Lock, String> {
        let l: Lock = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if l.format != FORMAT {
            return Err(format!("lock format {} is not supported", l.format));
        }
        Ok(l)
    }

    /// Reads the lock of `dir`; `Ok(None)` when there is none.
    pub fn read_in(dir: &Path) -> Result<Option<Lock>, String> {
        let path = Lock::path_in(dir);
        match read_capped(&path, MAX_BYTES) {
            Ok(bytes) => Lock::from_json(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Records components and writes the lock of `dir` atomically.
    pub fn record(dir: &Path, entries: &[(String, Digest)]) -> Result<(), String> {
        let mut lock = Lock::read_in(dir)?.unwrap_or_default();
        for (name, digest) in entries {
            lock.plugins.insert(name.clone(), *digest);
        }
        let mut bytes = serde_json::to_vec_pretty(&lock).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        crate::atomic_write(&Lock::path_in(dir), &bytes)
            .map_err(|e| format!("cannot write {}: {e}", Lock::path_in(dir).display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock installs with pf and is read by every user who runs it, so
    /// it must not keep the temporary file's private mode.
    #[cfg(unix)]
    #[test]
    fn the_lock_is_readable_by_every_user() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Lock::record(dir.path(), &[("a".into(), crate::sha256(b"a"))]).unwrap();
        let mode = std::fs::metadata(Lock::path_in(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        // A rewrite keeps the mode the file has.
        std::fs::set_permissions(
            Lock::path_in(dir.path()),
            std::fs::Permissions::from_mode(0o664),
        )
        .unwrap();
        Lock::record(dir.path(), &[("b".into(), crate::sha256(b"b"))]).unwrap();
        let lock = Lock::read_in(dir.path()).unwrap().unwrap();
        assert_eq!(lock.plugins.len(), 2);
        let mode = std::fs::metadata(Lock::path_in(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o664);
    }
}
