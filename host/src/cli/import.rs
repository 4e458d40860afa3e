//! `pf import`.

use super::common::{parse_input_shape, print_json, si};
use anyhow::{bail, Context, Result};
use clap::Args;
use pf::graph::{InputSpec, Preprocessing};
use std::path::PathBuf;

/// Arguments of `pf import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The ONNX model (from PyTorch's torch.onnx.export, tf2onnx, the onnx
    /// helper API, ...).
    model: PathBuf,
    /// Where to write the pf model file (written atomically).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
    /// Shape of one input sample, as CxHxW, for a model whose input is
    /// dynamic (symbolic channels, height or width). The batch dimension
    /// may always be dynamic.
    #[arg(long, value_name = "CxHxW", value_parser = parse_input_shape)]
    input_shape: Option<InputSpec>,
    /// The mean of each input channel the model was trained with, in
    /// torchvision's convention (pixels scaled to [0, 1], then
    /// `(x - mean) / std`), e.g. 0.485,0.456,0.406 for ImageNet models; one
    /// value serves every channel. Stored in the model, and used instead of
    /// the data set's own statistics wherever pf feeds it images (eval,
    /// train, compress, export --verify). Needs --std.
    #[arg(long, value_name = "M[,M,M]", value_delimiter = ',', requires = "std")]
    mean: Vec<f32>,
    /// The standard deviation of each input channel, with --mean (e.g.
    /// 0.229,0.224,0.225).
    #[arg(long, value_name = "S[,S,S]", value_delimiter = ',', requires = "mean")]
    std: Vec<f32>,
    /// The largest pixel value the model saw in training, before --mean and
    /// --std: 1 (torchvision's ToTensor, the default) or, for a model fed
    /// raw 0-255 values, 255.
    #[arg(long, value_name = "MAX", default_value_t = 1.0, requires = "mean")]
    pixel_scale: f32,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `pf import`.
pub fn run(a: ImportArgs) -> Result<()> {
    if pf::onnx::is_onnx_path(&a.output) {
        anyhow::bail!(
            "-o {}: pf import writes a pf model file; give it a .pf name (pf export --format onnx writes ONNX)",
            a.output.display()
        );
    }
    let preprocessing = preprocessing(&a)?;
    pf::io::check_writable(&a.output)?;
    let opts = pf::onnx::ImportOptions {
        input_shape: a.input_shape,
        preprocessing,
    };
    let imported = pf::onnx::import_file(&a.model, &opts, &candle_core::Device::Cpu)?;
    let model = &imported.model;
    let cost = model.graph.cost()?;
    pf::model::save(model, &a.output)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let input = model.graph.input;
    if a.json {
        return print_json(&serde_json::json!({
            "source": a.model,
            "path": a.output,
            "model": model.graph.name,
            "producer": imported.producer,
            "opset": imported.opset,
            "input": input,
            "preprocessing": model.graph.preprocessing,
            "layers": model.graph.layers.len(),
            "folded_nodes": imported.folded,
            "macs": cost.macs,
            "params": cost.params,
        }));
    }
    println!(
        "imported {} ({}, opset {}) as `{}`: input {}×{}×{}, {} layers ({} nodes folded), {} MACs, {} parameters",
        a.model.display(),
        if imported.producer.is_empty() {
            "unknown producer"
        } else {
            imported.producer.as_str()
        },
        imported.opset,
        model.graph.name,
        input.channels,
        input.height,
        input.width,
        model.graph.layers.len(),
        imported.folded,
        si(cost.macs),
        si(cost.params)
    );
    if let Some(p) = &model.graph.preprocessing {
        println!(
            "inputs are normalised with the model's own mean {:?} and std {:?} (pixels scaled to [0, 1])",
            p.mean, p.std
        );
    }
    println!("wrote {}", a.output.display());
    Ok(())
}

/// The preprocessing `--mean`, `--std` and `--pixel-scale` give, in pf's
/// convention (pixels scaled to [0, 1]).
fn preprocessing(a: &ImportArgs) -> Result<Option<Preprocessing>> {
    if a.mean.is_empty() {
        return Ok(None);
    }
    if !(a.pixel_scale.is_finite() && a.pixel_scale > 0.0) {
        bail!(
            "--pixel-scale {}: give the largest pixel value the model was trained on, such as 1 or 255",
            a.pixel_scale
        );
    }
    if a.mean.len() != a.std.len() && a.mean.len() != 1 && a.std.len() != 1 {
        bail!(
            "--mean has {} values and --std {}; give one per input channel (or one for all)",
            a.mean.len(),
            a.std.len()
        );
    }
    let scale = a.pixel_scale;
    Ok(Some(Preprocessing {
        mean: a.mean.iter().map(|m| m / scale).collect(),
        std: a.std.iter().map(|s| s / scale).collect(),
    }))
}
