//! Training checkpoints: the model, the optimizer state and the step, in one
//! safetensors file written atomically. Together with pf's named random
//! streams this is everything needed to resume bit-identically.

use super::{optim::Optimizer, TrainConfig};
use crate::graph::Graph;
use crate::model::Model;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const FORMAT: &str = "pf-checkpoint";

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    step: u64,
    optimizer_steps: u64,
    config: TrainConfig,
    graph: Graph,
}

/// File name of the checkpoint inside its folder.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// Saves the state after `step` completed steps.
pub fn save(
    dir: &Path,
    step: u64,
    config: &TrainConfig,
    model: &Model,
    optim: &Optimizer,
) -> Result<()> {
    let mut tensors: BTreeMap<String, Tensor> = model
        .named_tensors()
        .into_iter()
        .map(|(k, v)| (format!("model/{k}"), v))
        .collect();
    for (name, state) in &optim.state {
        for (i, t) in state.iter().enumerate() {
            tensors.insert(format!("optim/{name}/{i}"), t.clone());
        }
    }
    let header = Header {
        format: FORMAT.into(),
        step,
        optimizer_steps: optim.steps,
        config: config.clone(),
        graph: model.graph.clone(),
    };
    let bytes = crate::model::format_tensors_to_bytes(&tensors, &header)?;
    crate::io::atomic_write(&path_in(dir), &bytes)
}

/// Restores a checkpoint into `model` and `optim`, returning the number of
/// completed steps. The checkpoint must come from the same configuration and
/// graph.
pub fn load(
    dir: &Path,
    config: &TrainConfig,
    model: &mut Model,
    optim: &mut Optimizer,
    device: &Device,
) -> Result<u64> {
    let path = path_in(dir);
    let source = path.display().to_string();
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read checkpoint {source}"))?;
    let (tensors, header) = crate::model::format_tensors_from_bytes(&bytes, device, &source)?;
    let header: Header = serde_json::from_value(header)
        .with_context(|| format!("{source} is not a pf training checkpoint of this version"))?;
    if header.format != FORMAT {
        bail!("{source} is not a pf training checkpoint");
    }
    let saved = &header.config;
    if saved != config {
        bail!(
            "{source} was written by a run with different settings; resume with the same flags or delete the checkpoint folder.\n  checkpoint: {}\n  this run:   {}",
            serde_json::to_string(&saved)?,
            serde_json::to_string(config)?
        );
    }
    if header.graph != model.graph {
        bail!("{source} belongs to a different model graph; delete it or resume the run that wrote it");
    }
    let mut model_tensors = HashMap::new();
    let mut optim_state: BTreeMap<String, Vec<(usize, Tensor)>> = BTreeMap::new();
    for (key, t) in tensors {
        if let Some(k) = key.strip_prefix("model/") {
            model_tensors.insert(k.to_string(), t);
        } else if let Some(rest) = key.strip_prefix("optim/") {
            let (name, idx) = rest
                .rsplit_once('/')
                .with_context(|| format!("{source}: bad key `{key}`"))?;
            let idx: usize = idx
                .parse()
                .with_context(|| format!("{source}: bad key `{key}`"))?;
            optim_state
                .entry(name.to_string())
                .or_default()
                .push((idx, t));
        } else {
            bail!("{source}: unexpected tensor `{key}`");
        }
    }
    *model = Model::from_tensors(model.graph.clone(), model_tensors, device, &source)?;
    optim.state = optim_state
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|(i, _)| *i);
            (k, v.into_iter().map(|(_, t)| t).collect())
        })
        .collect();
    optim.steps = header.optimizer_steps;
    Ok(header.step)
}
