//! Running `.onnx` files in ONNX Runtime (pip `onnxruntime`), through a
//! small Python script embedded in pf, and comparing them with pf.
//!
//! pf never interprets ONNX itself; ONNX Runtime is the judge of every
//! exported file. The Python is found as for LiteRT
//! ([`crate::export::tflite::litert::python`]): `scripts/test.sh` installs
//! both runtimes into `target/litert-venv`.

use crate::export::compare::{compare, correct};
use crate::export::python;
use crate::export::tflite::lower::Lowered;
use crate::export::tflite::simulate;
use crate::model::Model;
use anyhow::{bail, Result};
use candle_core::Tensor;
use serde::Serialize;
use std::path::Path;

const INFER_SCRIPT: &str = include_str!("infer.py");

/// The runtime [`python::run_script`] checks for (the version is the one
/// scripts/test.sh installs).
pub const ONNX_RUNTIME: python::Runtime = python::Runtime {
    name: "ONNX Runtime",
    module: "onnxruntime",
    package: "onnxruntime",
    version: "1.32.0",
};

/// Runs `file` in ONNX Runtime on a batch of `dims` (N×C×H×W) whose values
/// are `samples` and returns the outputs, one vector per sample.
pub fn infer(python: &Path, file: &Path, samples: &[f32], dims: &[usize]) -> Result<Vec<Vec<f32>>> {
    let n = dims.first().copied().unwrap_or(0);
    if n == 0 {
        return Ok(Vec::new());
    }
    if dims.iter().product::<usize>() != samples.len() {
        bail!("{} values do not make a batch of {dims:?}", samples.len());
    }
    let shape: Vec<String> = dims[1..].iter().map(|d| d.to_string()).collect();
    python::infer_rows(
        ONNX_RUNTIME,
        python,
        INFER_SCRIPT,
        file,
        samples,
        n,
        &shape.join("x"),
    )
}

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Images compared.
    pub images: usize,
    /// Top-1 accuracy of the float model in pf.
    pub float_accuracy: f64,
    /// Top-1 accuracy of pf's evaluation of the file's arithmetic: the
    /// float model, or for an int8 file pf's simulated-quantization forward
    /// pass over the same integers.
    pub pf_accuracy: f64,
    /// Top-1 accuracy of the file in ONNX Runtime.
    pub onnxruntime_accuracy: f64,
    /// Fraction of images where ONNX Runtime's and pf's (as in
    /// `pf_accuracy`) top-1 predictions agree.
    pub agreement: f64,
    /// Largest difference between an ONNX Runtime output and pf's.
    pub max_abs_diff: f64,
    /// Largest magnitude of pf's outputs (to judge `max_abs_diff` by).
    pub max_abs_output: f64,
}

/// Runs `file` in ONNX Runtime on `batches` of images and compares it with
/// pf: with `model`'s float forward pass for a float file, or for an int8
/// file written from the int8 lowering `int8`, with pf's simulation of that
/// lowering.
pub fn verify(
    python: &Path,
    file: &Path,
    model: &Model,
    int8: Option<&Lowered>,
    batches: &[(Tensor, Vec<u32>)],
) -> Result<Verification> {
    let mut pf_rows: Vec<Vec<f32>> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut nchw: Vec<f32> = Vec::new();
    let mut float_correct = 0usize;
    for (x, y) in batches {
        let float = model
            .forward_inference(x)?
            .flatten_from(1)?
            .to_vec2::<f32>()?;
        float_correct += correct(&float, y);
        match int8 {
            Some(g) => pf_rows.extend(
                simulate::evaluate(g, x, false)?
                    .output
                    .flatten_from(1)?
                    .to_vec2::<f32>()?,
            ),
            None => pf_rows.extend(float),
        }
        labels.extend(y);
        nchw.extend(x.flatten_all()?.to_vec1::<f32>()?);
    }
    let n = labels.len();
    let i = model.graph.input;
    let ort = infer(python, file, &nchw, &[n, i.channels, i.height, i.width])?;
    let a = compare(&pf_rows, &ort, &labels, "ONNX Runtime")?;
    Ok(Verification {
        images: n,
        float_accuracy: a.fraction(float_correct),
        pf_accuracy: a.fraction(a.pf_correct),
        onnxruntime_accuracy: a.fraction(a.runtime_correct),
        agreement: a.fraction(a.agree),
        max_abs_diff: a.max_abs_diff,
        max_abs_output: a.max_abs_output,
    })
}
