//! `pf import`.

use super::common::{parse_input_shape, print_json, si};
use anyhow::{Context, Result};
use clap::Args;
use pf::graph::InputSpec;
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
    pf::io::check_writable(&a.output)?;
    let opts = pf::onnx::ImportOptions {
        input_shape: a.input_shape,
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
    println!("wrote {}", a.output.display());
    Ok(())
}
