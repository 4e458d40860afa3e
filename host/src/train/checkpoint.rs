//! Training checkpoints: the model, the optimizer state and the step, in one
//! safetensors file written atomically. Together with pf's named random
//! streams this is everything needed to resume bit-identically.

use super::{optim::Optimizer, TrainConfig};
use crate::model::Model;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const FORMAT: &str = "pf-checkpoint";

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
    let mut meta = HashMap::new();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("step".into(), step.to_string());
    meta.insert("optimizer_steps".into(), optim.steps.to_string());
    meta.insert("config".into(), serde_json::to_string(config)?);
    meta.insert("graph".into(), serde_json::to_string(&model.graph)?);
    let bytes = crate::model::format_tensors_to_bytes(&tensors, meta)?;
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
    let (tensors, meta) = crate::model::format_tensors_from_bytes(&bytes, device, &source)?;
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        bail!("{source} is not a pf training checkpoint");
    }
    let saved: TrainConfig =
        serde_json::from_str(meta.get("config").context("checkpoint has no config")?)
            .with_context(|| format!("{source}: unreadable training configuration"))?;
    if &saved != config {
        bail!(
            "{source} was written by a run with different settings; resume with the same flags or delete the checkpoint folder.\n  checkpoint: {}\n  this run:   {}",
            serde_json::to_string(&saved)?,
            serde_json::to_string(config)?
        );
    }
    let graph_json = meta.get("graph").context("checkpoint has no graph")?;
    if *graph_json != serde_json::to_string(&model.graph)? {
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
    optim.steps = meta
        .get("optimizer_steps")
        .and_then(|s| s.parse().ok())
        .context("checkpoint has no optimizer step count")?;
    meta.get("step")
        .and_then(|s| s.parse().ok())
        .context("checkpoint has no step")
}
