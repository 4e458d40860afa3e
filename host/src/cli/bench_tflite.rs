//! `pf bench-tflite`: the latency of a `.tflite` file in the official
//! LiteRT interpreter.

use super::common::print_json;
use anyhow::{bail, Context, Result};
use clap::Args;
use pf::export::tflite::litert::{self, Kernels};
use std::path::PathBuf;

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
    let python = litert::python(a.python.as_deref());
    let bar = pf::progress::spinner(
        &format!("timing {} in LiteRT ({} runs)", a.file.display(), a.runs),
        !a.json,
    );
    let timing = litert::bench(&python, &a.file, a.runs, a.warmup, a.threads, a.kernels);
    bar.finish_and_clear();
    let timing = timing?;
    let (median, p10, p90) = (
        timing.quantile_ms(0.5),
        timing.quantile_ms(0.1),
        timing.quantile_ms(0.9),
    );
    let kernels = a.kernels.name();
    let mut v = serde_json::to_value(&timing)?;
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
        timing.litert
    );
    println!(
        "{} bytes, {} operators: {}",
        bytes.len(),
        summary.ops.len(),
        summary.ops.join(" ")
    );
    Ok(())
}
