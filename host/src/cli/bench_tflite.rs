//! `pf bench-tflite`: the latency of a `.tflite` file in the official
//! LiteRT interpreter.

use super::common::print_json;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::Command;

const BENCH_SCRIPT: &str = include_str!("../export/tflite/bench.py");

/// Which LiteRT kernels run the model.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kernels {
    /// The optimised CPU kernels (XNNPACK), as deployed.
    Xnnpack,
    /// The reference kernels (slow; for checking, not timing deployments).
    Reference,
}

/// Arguments of `pf bench-tflite`.
#[derive(Args, Debug)]
pub struct BenchTfliteArgs {
    /// The `.tflite` file.
    file: PathBuf,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 100, value_name = "N")]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 10, value_name = "N")]
    warmup: usize,
    /// Interpreter threads.
    #[arg(long, default_value_t = 1, value_name = "N")]
    threads: usize,
    /// Kernels to run with.
    #[arg(long, value_enum, default_value = "xnnpack")]
    kernels: Kernels,
    /// Python with the `ai-edge-litert` package [default: $PF_LITERT_PYTHON,
    /// else target/litert-venv of this pf's checkout, else python3].
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The Python that has LiteRT.
fn python(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("PF_LITERT_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(venv) = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok())
        .and_then(|e| pf::plugin::build::find_repo_root(&e))
        .map(|r| r.join("target/litert-venv/bin/python"))
        .filter(|p| p.is_file())
    {
        return venv;
    }
    PathBuf::from("python3")
}

/// Runs `pf bench-tflite`.
pub fn run(a: BenchTfliteArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if a.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let summary = pf::export::tflite::check::read(&bytes)
        .with_context(|| format!("{} cannot be benchmarked", a.file.display()))?;
    let python = python(a.python.as_deref());
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("bench.py");
    std::fs::write(&script, BENCH_SCRIPT)?;
    let kernels = match a.kernels {
        Kernels::Xnnpack => "xnnpack",
        Kernels::Reference => "reference",
    };
    let bar = pf::progress::spinner(
        &format!("timing {} in LiteRT ({} runs)", a.file.display(), a.runs),
        !a.json,
    );
    let out = Command::new(&python)
        .arg(&script)
        .arg(&a.file)
        .arg(a.runs.to_string())
        .arg(a.warmup.to_string())
        .arg(a.threads.to_string())
        .arg(kernels)
        .output()
        .with_context(|| {
            format!(
                "cannot run {}; install LiteRT with `pip install ai-edge-litert` (scripts/test.sh sets up target/litert-venv) or pass --python",
                python.display()
            )
        })?;
    bar.finish_and_clear();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("No module named 'ai_edge_litert'") {
            bail!(
                "{} has no LiteRT: `{} -m pip install ai-edge-litert`, or pass --python / set PF_LITERT_PYTHON",
                python.display(),
                python.display()
            );
        }
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("LiteRT cannot run {}: {last}", a.file.display());
    }
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "unexpected output from the LiteRT script: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let mut times: Vec<f64> = v["runs_ms"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    times.sort_by(|x, y| x.total_cmp(y));
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let (median, p10, p90) = (pick(0.5), pick(0.1), pick(0.9));
    v["median_ms"] = median.into();
    v["p10_ms"] = p10.into();
    v["p90_ms"] = p90.into();
    v["file"] = a.file.display().to_string().into();
    v["bytes"] = bytes.len().into();
    if a.json {
        return print_json(&v);
    }
    println!(
        "{}: median {:.3} ms (p10 {:.3}, p90 {:.3}) over {} runs after {} warm-up, {} thread{}, {} kernels, LiteRT {}",
        a.file.display(),
        median,
        p10,
        p90,
        a.runs,
        a.warmup,
        a.threads,
        if a.threads == 1 { "" } else { "s" },
        kernels,
        v["litert"].as_str().unwrap_or("?")
    );
    println!(
        "{} bytes, {} operators: {}",
        bytes.len(),
        summary.ops.len(),
        summary.ops.join(" ")
    );
    Ok(())
}
