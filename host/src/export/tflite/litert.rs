//! Running `.tflite` files in the official LiteRT interpreter (pip
//! `ai-edge-litert`), through small Python scripts embedded in pf: timing a
//! file ([`bench`]) and computing its outputs on samples ([`infer`]).
//!
//! pf never interprets TFLite itself; LiteRT is the judge of every file.

use crate::export::python;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Output;

const BENCH_SCRIPT: &str = include_str!("bench.py");
const INFER_SCRIPT: &str = include_str!("infer.py");

/// Which LiteRT kernels run a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Kernels {
    /// The optimised CPU kernels (XNNPACK), as deployed.
    Xnnpack,
    /// The reference kernels (slow; for checking, not timing deployments).
    Reference,
}

impl Kernels {
    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Xnnpack => "xnnpack",
            Kernels::Reference => "reference",
        }
    }
}

/// The Python that has LiteRT: `explicit`, else `$PF_LITERT_PYTHON`, else
/// `target/litert-venv` of the pf checkout this binary was built in (which
/// `scripts/test.sh` sets up), else `python3`.
pub fn python(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("PF_LITERT_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(venv) = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok())
        .and_then(|e| crate::io::find_repo_root(&e))
        .map(|r| r.join("target/litert-venv/bin/python"))
        .filter(|p| p.is_file())
    {
        return venv;
    }
    PathBuf::from("python3")
}

/// The runtime [`python::run_script`] checks for (the version is the one
/// scripts/test.sh installs).
pub const LITERT: python::Runtime = python::Runtime {
    name: "LiteRT",
    module: "ai_edge_litert",
    package: "ai-edge-litert",
    version: "2.3.0",
};

/// Runs an embedded script with `args`.
fn run_script(
    python: &Path,
    script: &str,
    name: &str,
    args: &[&std::ffi::OsStr],
) -> Result<Output> {
    python::run_script(LITERT, python, script, name, args)
}

/// What [`bench`] measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    /// The `ai-edge-litert` version.
    pub litert: String,
    /// Operators LiteRT built, in execution order.
    pub ops: Vec<String>,
    /// The input's shape.
    pub input_shape: Vec<i64>,
    /// The input's element type (`float32`, `int8`).
    pub input_type: String,
    /// Interpreter threads.
    pub threads: usize,
    /// Untimed runs first.
    pub warmup: usize,
    /// Kernels used.
    pub kernels: Kernels,
    /// Every timed run, in milliseconds, in order.
    pub runs_ms: Vec<f64>,
}

impl Timing {
    /// The `q`-quantile of the runs (0.5: the median), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut t = self.runs_ms.clone();
        t.sort_by(|a, b| a.total_cmp(b));
        if t.is_empty() {
            return f64::NAN;
        }
        t[((t.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
    }
}

/// Times `file` in LiteRT: `warmup` untimed runs, then `runs` timed ones,
/// with `threads` interpreter threads. Inputs are zeros (latency does not
/// depend on their values).
pub fn bench(
    python: &Path,
    file: &Path,
    runs: usize,
    warmup: usize,
    threads: usize,
    kernels: Kernels,
) -> Result<Timing> {
    if runs == 0 || threads == 0 {
        bail!("LiteRT timing needs at least one run and one thread");
    }
    let out = run_script(
        python,
        BENCH_SCRIPT,
        "bench.py",
        &[
            file.as_os_str(),
            runs.to_string().as_ref(),
            warmup.to_string().as_ref(),
            threads.to_string().as_ref(),
            kernels.name().as_ref(),
        ],
    )
    .with_context(|| format!("timing {} in LiteRT", file.display()))?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "unexpected output from the LiteRT timing script: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `file` in LiteRT on `n` samples (`samples` holds them NHWC, float32,
/// one after another) and returns the float outputs, one vector per sample.
/// An int8 input is quantized, and an int8 output dequantized, with the
/// file's own parameters.
pub fn infer(
    python: &Path,
    file: &Path,
    samples: &[f32],
    n: usize,
    kernels: Kernels,
) -> Result<Vec<Vec<f32>>> {
    python::infer_rows(
        LITERT,
        python,
        INFER_SCRIPT,
        file,
        samples,
        n,
        kernels.name(),
    )
}
