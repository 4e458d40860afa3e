//! Where a run's model and data come from: a zoo architecture or a model
//! file (pf's own, or ONNX imported on the fly), and a data source loaded
//! and resized. Every command that takes `--model` and `--data` reads them
//! through here, the search included.

use crate::data::{self, DataSource, LoadOptions, Splits};
use crate::graph::InputSpec;
use crate::model::Model;
use crate::zoo::{self, ZooConfig};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use std::path::Path;

/// A model named on the command line.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// A zoo architecture (`digits_cnn`, `resnet20`, ...), a `.pf` file or
    /// an `.onnx` file.
    pub name: String,
    /// Width multiplier of a zoo architecture.
    pub width: f64,
    /// The input shape of an ONNX model whose input is dynamic.
    pub input_shape: Option<InputSpec>,
}

impl ModelSource {
    /// Whether this names a model file rather than a zoo architecture.
    pub fn is_file(&self) -> bool {
        is_model_file(&self.name)
    }

    /// The model file as it is, checked against the data's input shape, or
    /// the zoo architecture for that input and class count with fresh
    /// weights from `seed`.
    pub fn build(
        &self,
        input: InputSpec,
        classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Model> {
        if self.is_file() {
            let model = load_model_file(Path::new(&self.name), device, self.input_shape)?;
            let want = model.graph.input;
            if want != input {
                bail!(
                    "model {} expects {}×{}×{} inputs but the data is {}×{}×{}; pass --input-size or other data",
                    self.name,
                    want.channels,
                    want.height,
                    want.width,
                    input.channels,
                    input.height,
                    input.width
                );
            }
            return Ok(model);
        }
        let graph = zoo::build(
            &self.name,
            &ZooConfig {
                input,
                num_classes: classes,
                width: self.width,
            },
        )?;
        Model::init(graph, seed, device)
    }
}

/// Whether `s` names a model file (pf or ONNX) rather than a zoo
/// architecture.
pub fn is_model_file(s: &str) -> bool {
    s.ends_with(".pf") || s.ends_with(".onnx") || Path::new(s).is_file()
}

/// Loads a model file: a pf model, or an ONNX model imported on the fly
/// (`input_shape` fills in a dynamic input shape).
pub fn load_model_file(
    path: &Path,
    device: &Device,
    input_shape: Option<InputSpec>,
) -> Result<Model> {
    if crate::onnx::is_onnx_path(path) {
        let opts = crate::onnx::ImportOptions {
            input_shape,
            ..Default::default()
        };
        return Ok(crate::onnx::import_file(path, &opts, device)?.model);
    }
    if input_shape.is_some() {
        bail!(
            "--input-shape applies to ONNX models; {} is a pf model file, whose input shape is fixed",
            path.display()
        );
    }
    crate::model::load(path, device)
}

/// A data set named on the command line.
#[derive(Debug, Clone)]
pub struct DataSpec {
    /// Where the data comes from.
    pub source: DataSource,
    /// How it is split and sized.
    pub options: LoadOptions,
    /// A side length every image is resized to.
    pub resize: Option<usize>,
}

impl DataSpec {
    /// Loads and (if asked) resizes the splits.
    pub fn load(&self) -> Result<Splits> {
        let splits = data::load(&self.source, &self.options)
            .with_context(|| format!("loading data `{}`", self.source))?;
        Ok(match self.resize {
            Some(s) => splits.resized(s, s),
            None => splits,
        })
    }
}

/// The input shape of a data set's samples.
pub fn input_of(splits: &Splits) -> InputSpec {
    let [c, h, w] = splits.train.shape;
    InputSpec {
        channels: c,
        height: h,
        width: w,
    }
}
