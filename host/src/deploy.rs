//! Writing a model as a deployment file: the one path from a pf model to a
//! `.tflite` or `.onnx` file, float32 or int8, that `pf export` and
//! `pf compress --export` both take, over [`crate::export::tflite`] and
//! [`crate::onnx`].

use crate::data::{Dataset, Normalization};
use crate::export::tflite::{self, lower::Lowered, quantize, verify};
use crate::model::Model;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::path::Path;

/// A deployment format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// TensorFlow Lite FlatBuffers (float32, or int8 with --int8).
    Tflite,
    /// ONNX, opset 13 (float32, or int8 QDQ with --int8), for ONNX Runtime.
    Onnx,
}

impl Format {
    /// The format a file name's extension names, if any.
    pub fn of_path(p: &Path) -> Option<Format> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "tflite" => Some(Format::Tflite),
            "onnx" => Some(Format::Onnx),
            _ => None,
        }
    }

    /// The format's name, as `--format` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Tflite => "tflite",
            Format::Onnx => "onnx",
        }
    }
}

/// How to write a deployment file.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// The file's format.
    pub format: Format,
    /// Int8 weights and activations, with activation ranges from the model's
    /// trained quantizers or calibrated on these batches; `None` writes
    /// float32.
    pub calibration: Option<&'a [Tensor]>,
    /// TFLite int8: int8 input and output instead of float32.
    pub int8_io: bool,
    /// ONNX int8: 7-bit weights, for ONNX Runtime on x86 without VNNI.
    pub reduce_range: bool,
    /// TFLite float32: store sparse weights in TFLite's sparse encoding.
    pub sparse: bool,
}

impl Options<'_> {
    /// Refuses the combinations a format cannot write, naming the flag.
    pub fn check(&self) -> Result<()> {
        match self.format {
            Format::Tflite if self.reduce_range => bail!(
                "--reduce-range applies to ONNX (for ONNX Runtime on x86 without VNNI); LiteRT's int8 kernels take full-range weights"
            ),
            Format::Onnx if self.sparse => bail!(
                "--sparse stores TFLite's sparse encoding; ONNX has no sparse weight format that ONNX Runtime computes with, so leave it out with --format onnx"
            ),
            Format::Onnx if self.int8_io => bail!(
                "--int8-io applies to TFLite; an int8 ONNX file keeps float32 input and output around its QDQ graph"
            ),
            _ => Ok(()),
        }
    }
}

/// What [`write`] wrote.
pub struct Written {
    /// The file's size in bytes.
    pub bytes: usize,
    /// TFLite operators or ONNX nodes.
    pub operators: usize,
    /// TFLite: weights stored in the sparse encoding.
    pub sparse_weights: usize,
    /// The TFLite lowering the file holds (TFLite), or the int8 lowering
    /// whose quantization an int8 ONNX file carries; what a runtime's output
    /// is compared with.
    pub lowered: Option<Lowered>,
}

/// Writes `model` to `path` (atomically) as `opts` says.
pub fn write(model: &Model, path: &Path, opts: &Options<'_>) -> Result<Written> {
    opts.check()?;
    let int8 = match opts.calibration {
        Some(batches) => {
            let io = quantize::Int8Options {
                int8_io: opts.int8_io,
            };
            Some(
                quantize::lower_int8(model, batches, &io)
                    .with_context(|| format!("quantizing {}", model.graph.name))?,
            )
        }
        None => None,
    };
    match opts.format {
        Format::Onnx => {
            let onnx_opts = crate::onnx::ExportOptions {
                int8: int8.as_ref(),
                reduce_range: opts.reduce_range,
            };
            let proto = crate::onnx::export::to_proto(model, &onnx_opts)
                .with_context(|| format!("exporting {} to {}", model.graph.name, path.display()))?;
            let operators = proto.graph.as_ref().map_or(0, |g| g.node.len());
            let bytes = prost::Message::encode_to_vec(&proto);
            crate::io::atomic_write(path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(Written {
                bytes: bytes.len(),
                operators,
                sparse_weights: 0,
                lowered: int8,
            })
        }
        Format::Tflite => {
            let graph = match int8 {
                Some(g) => g,
                None => tflite::lower::lower(model).with_context(|| {
                    format!("exporting {} to {}", model.graph.name, path.display())
                })?,
            };
            let (graph, sparse_weights) = if opts.sparse {
                tflite::sparse::sparsify(&graph)
            } else {
                (graph, 0)
            };
            let bytes = tflite::write::serialize(&graph, &model.graph);
            tflite::write_file(&bytes, path)?;
            Ok(Written {
                bytes: bytes.len(),
                operators: graph.ops.len(),
                sparse_weights,
                lowered: Some(graph),
            })
        }
    }
}

/// Int8 calibration batches: `images` normalised training images of a
/// seeded shuffle, in batches of 64.
pub fn calibration(
    train: &Dataset,
    norm: &Normalization,
    images: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<Tensor>> {
    Ok(
        verify::image_batches(train, norm, Some(images), seed, 64, device)?
            .into_iter()
            .map(|(x, _)| x)
            .collect(),
    )
}
