//! TensorFlow Lite export.
//!
//! [`lower`] turns pf's graph into TFLite operators (NHWC, folded batch
//! norms, fused activations); [`quantize`] makes a full-integer (int8)
//! graph of them; [`simulate`] evaluates either kind as an interpreter
//! would (calibration, and pf's simulated-quantization forward pass);
//! [`sparse`] stores sparse weights in TFLite's sparse encoding;
//! [`write`] serialises them with planus, from pf's own schema file
//! (`schema.fbs`, the official field layout), and [`export`] writes the
//! file atomically. [`check`] reads a file back and refuses a damaged one
//! before an interpreter sees it; [`litert`] runs files in the official
//! interpreter.

pub mod check;
pub mod litert;
pub mod lower;
pub mod quantize;
pub mod simulate;
pub mod sparse;
pub mod verify;
pub mod write;

/// The FlatBuffers types planus generates from `schema.fbs`.
#[allow(missing_docs, clippy::all, unused)]
pub mod schema {
    include!(concat!(env!("OUT_DIR"), "/tflite.rs"));
}

use crate::model::Model;
use anyhow::{Context, Result};
use std::path::Path;

/// Converts a model to the bytes of a float32 `.tflite` file.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    let lowered = lower::lower(model)?;
    Ok(write::serialize(&lowered, &model.graph))
}

/// Writes a model as a float32 `.tflite` file, atomically.
pub fn export(model: &Model, path: &Path) -> Result<usize> {
    let bytes = to_bytes(model)?;
    write_file(&bytes, path)
}

/// Writes the bytes of a `.tflite` file atomically; returns its size.
pub fn write_file(bytes: &[u8], path: &Path) -> Result<usize> {
    crate::io::atomic_write(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes.len())
}
