//! `pf export`.

use super::common::{print_json, ZooArgs};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
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
    #[command(flatten)]
    zoo: ZooArgs,
    /// Seed of a zoo architecture's initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `pf export`.
pub fn run(a: ExportArgs) -> Result<()> {
    let model = a.zoo.load_or_init(&a.model, a.seed)?;
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
