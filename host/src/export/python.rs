//! Running the small Python scripts embedded in pf that drive the official
//! runtimes (LiteRT for TFLite, ONNX Runtime for ONNX), with errors that
//! say what to install.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Output};

/// The Python package a script needs.
#[derive(Debug, Clone, Copy)]
pub struct Runtime {
    /// The runtime's name in messages (`LiteRT`).
    pub name: &'static str,
    /// The module the script imports (`ai_edge_litert`).
    pub module: &'static str,
    /// The pip package that provides it (`ai-edge-litert`).
    pub package: &'static str,
}

/// Writes `script` to a temporary file called `name` and runs it with
/// `python` and `args`. A missing Python or module, or a failure, becomes
/// an error that says what to do.
pub fn run_script(
    runtime: Runtime,
    python: &Path,
    script: &str,
    name: &str,
    args: &[&std::ffi::OsStr],
) -> Result<Output> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::write(&path, script)?;
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .with_context(|| {
            format!(
                "cannot run {}; install {} with `pip install {}` (scripts/test.sh sets up target/litert-venv) or pass --python",
                python.display(),
                runtime.name,
                runtime.package
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains(&format!("No module named '{}'", runtime.module)) {
            bail!(
                "{} has no {}: `{} -m pip install {}`, or pass --python / set PF_LITERT_PYTHON",
                python.display(),
                runtime.name,
                python.display(),
                runtime.package
            );
        }
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no message)");
        bail!("{} failed: {last}", runtime.name);
    }
    Ok(out)
}
