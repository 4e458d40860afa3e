//! `pf export`.

use super::common::{is_model_file, print_json};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pf::graph::InputSpec;
use pf::zoo::{self, ZooConfig};
use std::path::PathBuf;

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// TensorFlow Lite FlatBuffers (float32).
    Tflite,
}

/// Arguments of `pf export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A .pf model file, or a zoo architecture (exported with freshly
    /// initialised weights: for checking a deployment path, not for use).
    model: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "tflite")]
    format: Format,
    /// Where to write the file (written atomically).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Input side length for zoo architectures (default: 32, 224 for MobileNets).
    #[arg(long, value_name = "PX")]
    input_size: Option<usize>,
    /// Input channels for zoo architectures.
    #[arg(long, default_value_t = 3)]
    in_channels: usize,
    /// Classes for zoo architectures (default: 10, 1000 for MobileNets).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Width multiplier for zoo architectures.
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    /// Seed of a zoo architecture's initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `pf export`.
pub fn run(a: ExportArgs) -> Result<()> {
    let device = candle_core::Device::Cpu;
    let model = if is_model_file(&a.model) {
        pf::model::load(std::path::Path::new(&a.model), &device)?
    } else {
        let mobile = a.model.starts_with("mobilenet");
        let size = a.input_size.unwrap_or(if mobile { 224 } else { 32 });
        let cfg = ZooConfig {
            input: InputSpec {
                channels: a.in_channels,
                height: size,
                width: size,
            },
            num_classes: a.num_classes.unwrap_or(if mobile { 1000 } else { 10 }),
            width: a.width,
        };
        pf::model::Model::init(zoo::build(&a.model, &cfg)?, a.seed, &device)?
    };
    let bytes = match a.format {
        Format::Tflite => pf::export::tflite::export(&model, &a.output)
            .with_context(|| format!("exporting {} to {}", a.model, a.output.display()))?,
    };
    if a.json {
        return print_json(&serde_json::json!({
            "model": model.graph.name,
            "format": "tflite",
            "path": a.output,
            "bytes": bytes,
        }));
    }
    println!(
        "wrote {} ({} bytes, float32 TFLite)",
        a.output.display(),
        bytes
    );
    Ok(())
}
