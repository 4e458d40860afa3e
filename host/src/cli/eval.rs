//! `pf eval`.

use super::common::{print_json, DataArgs, DeviceArgs};
use anyhow::{bail, Result};
use clap::Args;
use pf::data::Normalization;
use pf::source::input_of;
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `pf eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model file (.pf, or .onnx imported on the fly).
    model: PathBuf,
    /// Shape of one input sample of an ONNX model whose input is dynamic,
    /// as CxHxW.
    #[arg(long, value_name = "CxHxW", value_parser = super::common::parse_input_shape)]
    input_shape: Option<pf::graph::InputSpec>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Which split: train, val or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// Samples per batch.
    #[arg(long, short = 'b', default_value_t = 256)]
    batch_size: usize,
    /// Re-estimate the batch-norm statistics on this many training images
    /// first (forward passes, no weight updates; the file is not changed):
    /// what a pruned or quantized model scores with statistics of its own.
    #[arg(long, value_name = "N")]
    bn_images: Option<usize>,
    /// Seed of the sample --bn-images draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct EvalSummary {
    model: String,
    data: String,
    split: String,
    metrics: pf::train::Metrics,
    seconds: f64,
    images_per_second: f64,
    /// Training images the batch-norm statistics were re-estimated on (0:
    /// the file's own statistics).
    bn_reestimated_on: usize,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let device = a.device.device.open()?;
    let mut model = pf::source::load_model_file(&a.model, &device, a.input_shape)?;
    let splits = a.data.load()?;
    let input = input_of(&splits);
    if model.graph.input != input {
        let m = model.graph.input;
        bail!(
            "{} expects {}×{}×{} inputs but {} is {}×{}×{}; pass --input-size or other data",
            a.model.display(),
            m.channels,
            m.height,
            m.width,
            splits.name,
            input.channels,
            input.height,
            input.width
        );
    }
    let data = splits.get(&a.split)?;
    let norm = Normalization::for_model(&model.graph, &splits.train);
    let reestimated = match a.bn_images {
        Some(n) => {
            pf::train::batchnorm::reestimate(&mut model, &splits.train, &norm, n, 64, a.seed)?
        }
        None => 0,
    };
    let t = std::time::Instant::now();
    let metrics = pf::train::evaluate(&model, data, &norm, a.batch_size, !a.json)?;
    let seconds = t.elapsed().as_secs_f64();
    let s = EvalSummary {
        model: a.model.display().to_string(),
        data: splits.name.clone(),
        split: a.split.clone(),
        metrics,
        seconds,
        images_per_second: metrics.samples as f64 / seconds.max(1e-9),
        bn_reestimated_on: reestimated,
    };
    if a.json {
        return print_json(&s);
    }
    println!(
        "{} on {} ({}): accuracy {:.2}%  loss {:.4}  ({} images, {:.0} images/s)",
        s.model,
        s.data,
        s.split,
        metrics.accuracy * 100.0,
        metrics.loss,
        metrics.samples,
        s.images_per_second
    );
    if reestimated > 0 {
        println!("(batch-norm statistics re-estimated on {reestimated} training images; the file is unchanged)");
    }
    Ok(())
}
