//! The baseline a search compresses: a model file as it is, or a zoo
//! architecture trained once and cached by everything that decides its
//! weights, so that `pf compress` and `pf plugin apply` share it.

use crate::data::{Normalization, Splits};
use crate::model::Model;
use crate::source::{input_of, ModelSource};
use crate::train::{OptimizerKind, Schedule, ScheduleKind, TrainConfig, Trainer};
use anyhow::{Context, Result};
use candle_core::Device;

/// How a zoo baseline is trained before it is compressed: SGD with momentum
/// and a cosine schedule from 0.05, batch 32.
pub fn training_config(epochs: u64, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        max_steps: None,
        batch_size: 32,
        optimizer: OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
        },
        weight_decay: 5e-4,
        schedule: Schedule {
            base: 0.05,
            kind: ScheduleKind::Cosine,
            warmup_steps: 0,
        },
        label_smoothing: 0.0,
        augment: crate::data::Augment::None,
        seed,
        distill: None,
    }
}

/// The baseline of a search or a plugin run: a model file as it is, or a
/// zoo architecture trained for `epochs` on the training split, cached (in
/// pf's cache folder, `baselines/`) by architecture, width, data, training
/// settings and seed. `quiet` hides the progress and the notes on standard
/// error.
pub fn cached(
    source: &ModelSource,
    splits: &Splits,
    epochs: u64,
    seed: u64,
    device: &Device,
    quiet: bool,
) -> Result<Model> {
    let input = input_of(splits);
    if source.is_file() || epochs == 0 {
        return source.build(input, splits.train.classes, seed, device);
    }
    let config = training_config(epochs, seed);
    let key = crate::io::sha256_hex(
        serde_json::json!({
            "model": source.name,
            "width": source.width,
            "data": splits.sha256(),
            "config": config,
            // Baselines are plain (version 1) model files.
            "format": "1",
        })
        .to_string()
        .as_bytes(),
    );
    let cached = crate::io::cache_root().map(|d| {
        d.join("baselines")
            .join(format!("{}-{}.pf", source.name, &key[..16]))
    });
    if let Some(path) = &cached {
        if path.is_file() {
            match crate::model::load(path, device) {
                Ok(m) => {
                    if !quiet {
                        eprintln!("baseline: cached {}", path.display());
                    }
                    return Ok(m);
                }
                Err(e) => eprintln!("warning: ignoring a damaged cached baseline: {e:#}"),
            }
        }
    }
    let mut model = source.build(input, splits.train.classes, seed, device)?;
    if !quiet {
        eprintln!(
            "baseline: training {} for {epochs} epochs (cached afterwards)",
            source.name
        );
    }
    Trainer {
        config,
        data: &splits.train,
        norm: Normalization::for_model(&model.graph, &splits.train),
        teacher: None,
        checkpoint: None,
        progress: !quiet,
        auxiliary: &[],
    }
    .run(&mut model, None)
    .context("training the baseline")?;
    if let Some(path) = &cached {
        if let Err(e) = crate::model::save(&model, path) {
            eprintln!("warning: could not cache the baseline: {e:#}");
        }
    }
    Ok(model)
}
