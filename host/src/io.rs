//! File output that never leaves a half-written file behind.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: into a temporary file in the same
/// folder, flushed to disk, then renamed over the target. A crash at any point
/// leaves either the old file or the new one, never a torn one.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create folder {} for {}",
            dir.display(),
            path.display()
        )
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".pf-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot write in {}; check that it exists and is writable",
                dir.display()
            )
        })?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    // Temporary files are private (0600); the result should read like any
    // file the user writes: keep an existing file's mode, else 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o644);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting permissions of {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("flushing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Hex-encoded SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    hex(&digest)
}

/// Lower-case hex of some bytes (a digest).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The root of pf's caches: `$PF_CACHE_DIR`, else `$XDG_CACHE_HOME/pf`,
/// else `~/.cache/pf`.
pub fn cache_root() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(d) = std::env::var_os("PF_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("pf"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("pf"))
}

/// Fails early, before any training and without creating anything, if the
/// output cannot be written.
pub fn check_writable(path: &std::path::Path) -> Result<()> {
    if path.is_dir() {
        anyhow::bail!(
            "output {} is a folder; give a file name such as model.pf",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(std::path::Path::new("."));
    if !existing.is_dir() {
        anyhow::bail!(
            "cannot create output folder {}: {} is a file",
            dir.display(),
            existing.display()
        );
    }
    tempfile::tempfile_in(existing)
        .with_context(|| format!("output folder {} is not writable", existing.display()))?;
    Ok(())
}

/// The repository root: the nearest folder above `start` that has
/// `plugins/Cargo.toml` and the SDK's contract folder `sdk/wit`.
pub fn find_repo_root(start: &Path) -> Option<std::path::PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("plugins/Cargo.toml").is_file() && d.join("sdk/wit").is_dir())
        .map(Path::to_path_buf)
}
