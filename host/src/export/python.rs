//! Running the small Python scripts embedded in pf that drive the official
//! runtimes (LiteRT for TFLite, ONNX Runtime for ONNX), with errors that
//! say what to install.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Output};

/// The Python package a script needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    /// The runtime's name in messages (`LiteRT`).
    pub name: &'static str,
    /// The module the script imports (`ai_edge_litert`).
    pub module: &'static str,
    /// The pip package that provides it (`ai-edge-litert`).
    pub package: &'static str,
    /// The version pf is tested with (`2.3.0`), pinned in the install hint.
    pub version: &'static str,
}

impl Runtime {
    /// The pip requirement pf is tested with: `ai-edge-litert==2.3.0`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// What to do when `python` lacks this runtime: install it there, or
    /// in a venv that pf is then pointed at.
    pub fn install_hint(&self, python: &Path) -> String {
        let r = self.requirement();
        format!(
            "`{} -m pip install {r}`, or in a venv of its own: `python3 -m venv DIR && DIR/bin/pip install {r}`, then pass --python DIR/bin/python or set PF_LITERT_PYTHON=DIR/bin/python",
            python.display(),
        )
    }
}

/// The module a Python error says is missing: `numpy` from
/// `ModuleNotFoundError: No module named 'numpy'` (or `'numpy.core'`).
pub fn missing_module(stderr: &str) -> Option<String> {
    let rest = stderr.split("No module named ").nth(1)?;
    let name: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    (!name.is_empty()).then_some(name)
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
                "cannot run Python `{}` for {}: install Python 3 and {} (`pip install {}`), or give pf a Python that has it with --python or PF_LITERT_PYTHON; `pf doctor` checks every runtime",
                python.display(),
                runtime.name,
                runtime.name,
                runtime.requirement()
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(module) = missing_module(&stderr) {
            // numpy is missing as often as the runtime itself; either way
            // the runtime's pip package brings what is needed.
            bail!(
                "{} is not available: the Python module `{module}` is missing from {} (the Python pf used); install {}: {} (`pf doctor` checks every runtime)",
                runtime.name,
                python.display(),
                runtime.name,
                runtime.install_hint(python)
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

/// Runs an inference script: writes the `n` samples in `samples` (float32,
/// little-endian, one after another) to a file, runs `script` with the
/// model `file`, that file, the output file and `extra`, and reads the
/// float32 outputs back, one vector per sample.
pub fn infer_rows(
    runtime: Runtime,
    python: &Path,
    script: &str,
    file: &Path,
    samples: &[f32],
    n: usize,
    extra: &str,
) -> Result<Vec<Vec<f32>>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let dir = tempfile::tempdir()?;
    let (inputs, outputs) = (
        dir.path().join("inputs.f32"),
        dir.path().join("outputs.f32"),
    );
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&inputs, bytes)?;
    run_script(
        runtime,
        python,
        script,
        "infer.py",
        &[
            file.as_os_str(),
            inputs.as_os_str(),
            outputs.as_os_str(),
            extra.as_ref(),
        ],
    )
    .with_context(|| format!("running {} in {}", file.display(), runtime.name))?;
    let raw = std::fs::read(&outputs)?;
    let values: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if values.is_empty() || values.len() % n != 0 {
        bail!(
            "{} returned {} values for {n} samples",
            runtime.name,
            values.len()
        );
    }
    Ok(values
        .chunks(values.len() / n)
        .map(<[f32]>::to_vec)
        .collect())
}
