//! Arguments and helpers shared by several commands.

use anyhow::Result;
use clap::Args;
use pf::data::{DataSource, LoadOptions, Splits};
use pf::device::DeviceSpec;
use pf::graph::InputSpec;
use pf::model::Model;
use pf::source::{is_model_file, load_model_file, DataSpec, ModelSource};
use pf::zoo::{self, ZooConfig};
use std::path::Path;

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Data set: `digits` (embedded), or a folder: `cifar10:DIR`,
    /// `mnist:DIR`, `folder:DIR` (the kind is detected if omitted).
    #[arg(long, default_value = "digits", value_name = "SOURCE")]
    pub data: DataSource,
    /// Fraction of the training files held out for validation (sources
    /// without a validation split of their own).
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    pub val_fraction: f64,
    /// Side length images of an image folder are resized to.
    #[arg(long, default_value_t = 32, value_name = "PX")]
    pub image_size: usize,
    /// Resize every image to this side length before use (for example to run
    /// a 32×32 architecture on 8×8 digits).
    #[arg(long, value_name = "PX")]
    pub input_size: Option<usize>,
}

impl DataArgs {
    /// The data set these arguments name.
    pub fn spec(&self) -> DataSpec {
        DataSpec {
            source: self.data.clone(),
            options: LoadOptions {
                val_fraction: self.val_fraction,
                image_size: self.image_size,
            },
            resize: self.input_size,
        }
    }

    /// Loads and (if asked) resizes the splits.
    pub fn load(&self) -> Result<Splits> {
        self.spec().load()
    }
}

/// Which model.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A zoo architecture (digits_cnn, lenet, resnet20/32/44/56,
    /// mobilenet_v1, mobilenet_v2), a .pf model file, or an .onnx model
    /// (imported on the fly).
    #[arg(
        long,
        short = 'm',
        default_value = "digits_cnn",
        value_name = "NAME|FILE"
    )]
    pub model: String,
    /// Width multiplier for zoo architectures.
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    pub width: f64,
    /// Shape of one input sample of an ONNX model whose input is dynamic
    /// (symbolic channels, height or width), as CxHxW.
    #[arg(long, value_name = "CxHxW", value_parser = parse_input_shape)]
    pub input_shape: Option<InputSpec>,
}

impl ModelArgs {
    /// The model these arguments name.
    pub fn source(&self) -> ModelSource {
        ModelSource {
            name: self.model.clone(),
            width: self.width,
            input_shape: self.input_shape,
        }
    }
}

/// The device flag.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Compute device: cpu or cuda:N (CUDA needs the `cuda` build feature).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: DeviceSpec,
}

/// How a zoo architecture named on the command line is instantiated.
#[derive(Args, Debug, Clone)]
pub struct ZooArgs {
    /// Input side length for zoo architectures (default: 32, 224 for MobileNets).
    #[arg(long, value_name = "PX")]
    pub input_size: Option<usize>,
    /// Input channels for zoo architectures.
    #[arg(long, default_value_t = 3)]
    pub in_channels: usize,
    /// Classes for zoo architectures (default: 10, 1000 for MobileNets).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Width multiplier for zoo architectures.
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Shape of one input sample of an ONNX model whose input is dynamic
    /// (symbolic channels, height or width), as CxHxW.
    #[arg(long, value_name = "CxHxW", value_parser = parse_input_shape)]
    pub input_shape: Option<InputSpec>,
}

impl ZooArgs {
    /// The configuration of zoo architecture `name`.
    pub fn config(&self, name: &str) -> ZooConfig {
        let mobile = name.starts_with("mobilenet");
        let size = self.input_size.unwrap_or(if mobile { 224 } else { 32 });
        ZooConfig {
            input: InputSpec {
                channels: self.in_channels,
                height: size,
                width: size,
            },
            num_classes: self.num_classes.unwrap_or(if mobile { 1000 } else { 10 }),
            width: self.width,
        }
    }

    /// A model file, or zoo architecture `spec` with fresh weights from
    /// `seed`.
    pub fn load_or_init(&self, spec: &str, seed: u64) -> Result<Model> {
        let device = candle_core::Device::Cpu;
        if is_model_file(spec) {
            return load_model_file(Path::new(spec), &device, self.input_shape);
        }
        Model::init(zoo::build(spec, &self.config(spec))?, seed, &device)
    }
}

/// Parses `--input-shape CxHxW`.
pub fn parse_input_shape(s: &str) -> std::result::Result<InputSpec, String> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    let dims: Vec<usize> = parts
        .iter()
        .map(|p| p.trim().parse::<usize>().ok().filter(|&v| v > 0))
        .collect::<Option<_>>()
        .filter(|d: &Vec<usize>| d.len() == 3)
        .ok_or_else(|| {
            format!("`{s}` is not CxHxW with three positive sizes (for example 3x32x32)")
        })?;
    Ok(InputSpec {
        channels: dims[0],
        height: dims[1],
        width: dims[2],
    })
}

/// Prints a value as pretty JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Formats a count with SI suffixes (`40.55M`).
pub fn si(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.2}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}
