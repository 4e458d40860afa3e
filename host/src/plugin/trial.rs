//! One learner trial: compress a fresh copy of the baseline with fixed
//! parameters, let the host fine-tune (driving the learner's schedule), and
//! finish. The search loop runs many of these; `pf plugin apply` runs one.

use super::bindings::types::Param;
use super::model_api::{FineTune, ModelContext, TrialData};
use super::runtime::{CompressReport, Plugin, Runtime, TrialError};
use super::state::LogLine;
use crate::model::{Model, Target};
use std::sync::Arc;
use std::time::Instant;

/// What a trial does.
#[derive(Debug, Clone)]
pub struct TrialSpec {
    /// The learner's parameters (one per dimension of its space).
    pub params: Vec<Param>,
    /// Host fine-tuning steps after `compress`.
    pub finetune_steps: u64,
    /// Fine-tuning settings.
    pub finetune: FineTune,
    /// Seed of the trial (plugin randomness, data order, samples).
    pub seed: u64,
    /// The budget the learner must meet, if any.
    pub target: Option<Target>,
}

/// What a trial produced.
pub struct TrialResult {
    /// The compressed, fine-tuned model.
    pub model: Model,
    /// What `compress` reported.
    pub compress: CompressReport,
    /// What `finish` reported.
    pub finish: CompressReport,
    /// What the plugin logged.
    pub log: Vec<LogLine>,
    /// Seconds in `compress`, fine-tuning and `finish`.
    pub seconds: [f64; 3],
    /// Seconds spent inside the plugin's export calls (`compress`,
    /// every `on-train-step`, `finish`), host calls they made included.
    pub plugin_seconds: f64,
    /// Export calls made.
    pub plugin_calls: u64,
}

/// Runs one trial.
pub fn run_learner(
    rt: &Runtime,
    plugin: &Plugin,
    base: &Model,
    data: Arc<TrialData>,
    spec: &TrialSpec,
) -> Result<TrialResult, TrialError> {
    let ctx = ModelContext::new(
        base.try_clone().map_err(TrialError::Host)?,
        data,
        spec.finetune.clone(),
        spec.seed,
    );
    let mut inst = rt
        .learner(plugin, Some(ctx), spec.seed)
        .map_err(TrialError::Host)?;
    let t0 = Instant::now();
    let compress = inst.compress(&spec.params, spec.target)?;
    let t1 = Instant::now();
    inst.fine_tune(spec.finetune_steps)?;
    let t2 = Instant::now();
    let finish = inst.finish()?;
    let t3 = Instant::now();
    let log = inst.state().log.clone();
    let (plugin_seconds, plugin_calls) = (inst.state().call_seconds, inst.state().calls);
    let ctx = inst
        .take_model()
        .ok_or_else(|| TrialError::Host(anyhow::anyhow!("the learner lost its model")))?;
    ctx.model
        .graph
        .validate()
        .map_err(|e| TrialError::Host(anyhow::anyhow!("the compressed graph is invalid: {e}")))?;
    Ok(TrialResult {
        model: ctx.model,
        compress,
        finish,
        log,
        seconds: [
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
        ],
        plugin_seconds,
        plugin_calls,
    })
}
