//! Helpers shared by the test modules.

use std::path::Path;
use std::process::{Command, Output};

/// The `pf` binary under test.
pub fn pf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pf"))
}

/// Runs `pf` with arguments in `dir` and returns its output.
pub fn run_pf(dir: &Path, args: &[&str]) -> Output {
    pf().current_dir(dir).args(args).output().expect("pf runs")
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output parsed as JSON.
pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "pf failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// A fresh temporary folder.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    pf::io::sha256_hex(&std::fs::read(path).expect("file readable"))
}

/// `dir/name` as a string.
pub fn path_str(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// The built component of a plugin (built-in or test fixture), as
/// `scripts/build-plugins.sh` leaves it in `target/plugins`.
pub fn plugin_file(name: &str) -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/build-plugins.sh --fixtures first (scripts/test.sh does)",
        p.display()
    );
    p
}
