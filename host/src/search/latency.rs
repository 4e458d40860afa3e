//! Measured deployment latency as a search constraint
//! (`pf compress --target latency=MS[@THREADS]`).
//!
//! Every candidate the search would accept is exported to TFLite and timed
//! in the official LiteRT interpreter on this machine; a candidate slower
//! than the bound fails its trial, whatever its accuracy. Latency is
//! measured, not predicted: no table of per-layer costs can drift from
//! what the interpreter really does with the file.
//!
//! A learner cannot see latency from inside its sandbox, so when latency is
//! the only target the learner is handed a FLOPs target whose ratio the
//! optimizer searches (the [`FLOPS_RATIO`] dimension): the optimizer learns
//! how far FLOPs must fall for the latency bound to hold, and accuracy
//! decides among the candidates that meet it.
//!
//! Timing is the one input of a search that is not a pure function of the
//! seed. Measurements are serialised (one at a time, whatever `--jobs`), and
//! the median of many runs is used; a candidate near the bound can still
//! fall on either side of it from one run to the next.

use crate::export::tflite::{self, litert};
use crate::model::Model;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

/// The optimizer's dimension that sets the learner's FLOPs target when
/// latency is the only target.
pub const FLOPS_RATIO: &str = "flops_ratio";

/// The smallest FLOPs ratio the [`FLOPS_RATIO`] dimension offers.
pub const MIN_FLOPS_RATIO: f64 = 0.1;

/// A bound on the median latency of the exported model in LiteRT.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyTarget {
    /// The bound, in milliseconds.
    pub ms: f64,
    /// Interpreter threads it is measured with.
    pub threads: usize,
}

impl fmt::Display for LatencyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "latency={}ms@{}", self.ms, self.threads)
    }
}

impl FromStr for LatencyTarget {
    type Err = String;

    /// `latency=MS[ms][@THREADS]`, e.g. `latency=2.5ms@1` (one thread if
    /// not given).
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "write it latency=MS[ms][@THREADS], e.g. latency=2.5ms@1";
        let v = s
            .strip_prefix("latency=")
            .ok_or_else(|| format!("`{s}` is not a latency target; {usage}"))?;
        let (ms, threads) = match v.split_once('@') {
            Some((m, t)) => (m, Some(t)),
            None => (v, None),
        };
        let ms = ms.strip_suffix("ms").unwrap_or(ms);
        let ms: f64 = ms
            .parse()
            .map_err(|_| format!("`{s}`: `{ms}` is not a number of milliseconds; {usage}"))?;
        if !(ms.is_finite() && ms > 0.0) {
            return Err(format!(
                "`{s}`: the bound must be a positive number of milliseconds"
            ));
        }
        let threads = match threads {
            Some(t) => t
                .parse::<usize>()
                .ok()
                .filter(|&n| (1..=256).contains(&n))
                .ok_or_else(|| format!("`{s}`: `{t}` is not a thread count from 1 to 256"))?,
            None => 1,
        };
        Ok(LatencyTarget { ms, threads })
    }
}

/// A latency bound with the meter that checks it, as a search uses it.
#[derive(Clone)]
pub struct LatencyConstraint {
    /// The bound.
    pub target: LatencyTarget,
    /// How candidates are timed.
    pub meter: std::sync::Arc<dyn LatencyMeter>,
    /// Whether each trial's FLOPs target is the optimizer's [`FLOPS_RATIO`]
    /// dimension (latency is the only target).
    pub flops_dimension: bool,
}

/// Measures a model's latency where it will run.
pub trait LatencyMeter: Send + Sync {
    /// The median latency of `model`, in milliseconds.
    fn median_ms(&self, model: &Model) -> Result<f64>;
    /// What is measured, for messages (`LiteRT 2.3.0, XNNPACK, 1 thread`).
    fn describe(&self) -> String;
}

/// Times the float32 TFLite export of a model in LiteRT (XNNPACK).
pub struct LiteRtMeter {
    /// The Python that has LiteRT.
    pub python: PathBuf,
    /// Interpreter threads.
    pub threads: usize,
    /// Timed runs (the median is taken).
    pub runs: usize,
    /// Untimed runs first.
    pub warmup: usize,
    /// One measurement at a time.
    lock: Mutex<()>,
}

impl LiteRtMeter {
    /// A meter with `threads` interpreter threads; fails early if LiteRT
    /// cannot be run.
    pub fn new(python: PathBuf, threads: usize, runs: usize, warmup: usize) -> Result<Self> {
        let out = std::process::Command::new(&python)
            .args(["-c", "import ai_edge_litert"])
            .output()
            .with_context(|| {
                format!(
                    "a latency target needs LiteRT, and {} cannot be run; install it with `pip install ai-edge-litert` (scripts/test.sh sets up target/litert-venv), or pass --python",
                    python.display()
                )
            })?;
        if !out.status.success() {
            bail!(
                "a latency target needs LiteRT, and {} has none: `{} -m pip install ai-edge-litert`, or pass --python / set PF_LITERT_PYTHON",
                python.display(),
                python.display()
            );
        }
        Ok(LiteRtMeter {
            python,
            threads,
            runs,
            warmup,
            lock: Mutex::new(()),
        })
    }
}

impl LatencyMeter for LiteRtMeter {
    fn median_ms(&self, model: &Model) -> Result<f64> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("candidate.tflite");
        tflite::export(model, &file).context("exporting the candidate to time it")?;
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let t = litert::bench(
            &self.python,
            &file,
            self.runs,
            self.warmup,
            self.threads,
            litert::Kernels::Xnnpack,
        )?;
        let ms = t.quantile_ms(0.5);
        if !ms.is_finite() {
            bail!("LiteRT reported no timing");
        }
        Ok(ms)
    }

    fn describe(&self) -> String {
        format!(
            "LiteRT (XNNPACK), {} thread{}, median of {} runs",
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.runs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_targets_parse_with_and_without_units_and_threads() {
        let t: LatencyTarget = "latency=2.5ms@2".parse().unwrap();
        assert_eq!((t.ms, t.threads), (2.5, 2));
        let t: LatencyTarget = "latency=4".parse().unwrap();
        assert_eq!((t.ms, t.threads), (4.0, 1));
        assert_eq!(t.to_string(), "latency=4ms@1");
        assert_eq!(t.to_string().parse::<LatencyTarget>().unwrap(), t);
        for bad in [
            "latency=",
            "latency=fast",
            "latency=-1ms",
            "latency=0",
            "latency=1ms@0",
            "latency=1ms@x",
            "flops=0.5",
        ] {
            let e = bad.parse::<LatencyTarget>().unwrap_err();
            assert!(e.contains(bad) || e.contains("latency="), "{bad}: {e}");
        }
    }
}
