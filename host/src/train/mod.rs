//! Training: fine-tuning, full re-training and distillation share one loop,
//! with checkpoints that resume bit-identically.

pub mod auxiliary;
pub mod batchnorm;
pub mod checkpoint;
pub mod optim;
pub mod schedule;

pub use optim::{Optimizer, OptimizerKind};
pub use schedule::{Schedule, ScheduleKind};

use crate::data::{Augment, Batcher, Dataset, Normalization};
use crate::model::Model;
use crate::nn::loss;
use crate::rng;
use anyhow::{bail, Context, Result};
use candle_core::DType;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Environment variable for deterministic fault injection in tests: the
/// process aborts right after completing this many steps.
pub const FAULT_ENV: &str = "PF_FAULT_ABORT_AFTER_STEP";

/// Everything that determines a training run's result. A checkpoint can only
/// be resumed by a run with an equal configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: u64,
    /// Stop after this many steps even if epochs remain.
    pub max_steps: Option<u64>,
    /// Samples per step.
    pub batch_size: usize,
    /// Update rule.
    pub optimizer: OptimizerKind,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Label-smoothing ε of the cross-entropy.
    pub label_smoothing: f64,
    /// Training augmentation.
    pub augment: Augment,
    /// Seed of every random stream of the run.
    pub seed: u64,
    /// Distillation from a teacher, if any.
    pub distill: Option<DistillConfig>,
}

/// Distillation settings: the loss is `(1 − weight)·CE + weight·KD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Softmax temperature T.
    pub temperature: f64,
    /// Weight of the distillation term, in [0, 1].
    pub weight: f64,
    /// SHA-256 of the teacher's weights.
    pub teacher_sha256: String,
}

impl TrainConfig {
    /// Steps in one epoch over `n` samples (the last incomplete batch is
    /// dropped, unless it is the only one).
    pub fn steps_per_epoch(&self, n: usize) -> u64 {
        (n / self.batch_size).max(1) as u64
    }

    /// Total steps over `n` samples.
    pub fn total_steps(&self, n: usize) -> u64 {
        let full = self.epochs.saturating_mul(self.steps_per_epoch(n));
        self.max_steps.map_or(full, |m| m.min(full))
    }

    /// Checks the settings, naming the flag that is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if !(self.schedule.base.is_finite() && self.schedule.base > 0.0) {
            bail!("--lr must be a positive number");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            bail!("--label-smoothing must be in [0, 1)");
        }
        if let Some(d) = &self.distill {
            if !(0.0..=1.0).contains(&d.weight) || d.temperature <= 0.0 {
                bail!("--distill-weight must be in [0, 1] and --temperature positive");
            }
        }
        Ok(())
    }
}

/// Called after every optimizer step; learners use it to drive schedules
/// (for example gradual pruning).
pub trait StepHook {
    /// `step` steps of `total` are done.
    fn after_step(&mut self, model: &mut Model, step: u64, total: u64) -> Result<()>;
}

/// Where and how often to checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// Folder of the checkpoint file.
    pub dir: PathBuf,
    /// Save after every this many steps.
    pub every: u64,
    /// Continue from the checkpoint in `dir` if there is one.
    pub resume: bool,
}

/// Loss and accuracy over a data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Samples evaluated.
    pub samples: usize,
}

/// Summary of a training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Steps completed in total (including before a resume).
    pub steps: u64,
    /// Step the run resumed from (0 if it started fresh).
    pub resumed_from: u64,
    /// Mean training loss over the last 50 steps.
    pub final_train_loss: f64,
    /// Wall-clock seconds of this process's training.
    pub seconds: f64,
    /// Training images per second in this process.
    pub images_per_second: f64,
}

/// A training run over one data set.
pub struct Trainer<'a> {
    /// The configuration.
    pub config: TrainConfig,
    /// Training split.
    pub data: &'a Dataset,
    /// Normalisation of the inputs.
    pub norm: Normalization,
    /// Teacher for distillation (must match `config.distill`).
    pub teacher: Option<&'a Model>,
    /// Checkpointing, if any.
    pub checkpoint: Option<CheckpointOptions>,
    /// Show a progress bar.
    pub progress: bool,
    /// Auxiliary classifiers trained with the network, each adding its
    /// cross-entropy to the loss (none for ordinary training).
    pub auxiliary: &'a [auxiliary::AuxHead],
}

impl Trainer<'_> {
    /// Trains `model` in place and reports.
    pub fn run(
        &self,
        model: &mut Model,
        mut hook: Option<&mut dyn StepHook>,
    ) -> Result<TrainReport> {
        self.config.validate()?;
        if self.config.distill.is_some() != self.teacher.is_some() {
            bail!("distillation needs both a teacher model and distillation settings");
        }
        let cfg = &self.config;
        let n = self.data.len();
        let spe = cfg.steps_per_epoch(n);
        let total = cfg.total_steps(n);
        let batch = cfg.batch_size.min(n);
        let mut optim = Optimizer::new(cfg.optimizer.clone(), cfg.weight_decay);
        let device = model.device().clone();
        let mut start = 0;
        if let Some(ck) = &self.checkpoint {
            if ck.every == 0 {
                bail!("--checkpoint-every must be at least 1");
            }
            if ck.resume && checkpoint::path_in(&ck.dir).exists() {
                start = checkpoint::load(&ck.dir, cfg, model, &mut optim, &device)?;
            }
        }
        let fault_after: Option<u64> = std::env::var(FAULT_ENV).ok().and_then(|v| v.parse().ok());
        let batcher = Batcher::new(self.data, self.norm.clone(), &device);
        let bar = crate::progress::bar(total, "train", self.progress);
        bar.set_position(start);
        let began = Instant::now();
        let mut recent: Vec<f64> = Vec::new();
        let mut order: Option<(u64, Vec<usize>)> = None;
        for step in start..total {
            let epoch = step / spe;
            if order.as_ref().map(|(e, _)| *e) != Some(epoch) {
                let mut r = rng::stream(cfg.seed, &["shuffle", &epoch.to_string()]);
                order = Some((epoch, rng::permutation(&mut r, n)));
            }
            let pos = (step % spe) as usize;
            let idx = &order.as_ref().expect("order set").1[pos * batch..(pos + 1) * batch];
            let mut aug = rng::stream(cfg.seed, &["augment", &step.to_string()]);
            let b = batcher.batch(idx, cfg.augment, &mut aug)?;
            let out = model.forward(&b.images, true, &auxiliary::captures(self.auxiliary))?;
            let mut loss = loss::cross_entropy(&out.output, &b.labels, cfg.label_smoothing)?;
            for head in self.auxiliary {
                loss = (loss + head.loss(&out, &b.labels)?)?;
            }
            if let (Some(teacher), Some(d)) = (self.teacher, &cfg.distill) {
                let t = teacher.forward_logits(&b.images)?;
                let kd = loss::distillation(&out.output, &t, d.temperature)?;
                loss = ((loss * (1.0 - d.weight))? + (kd * d.weight)?)?;
            }
            let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !loss_value.is_finite() {
                bail!("training diverged at step {step} (loss is {loss_value}); lower --lr");
            }
            let grads = loss.backward()?;
            optim.step(&model.params, &grads, cfg.schedule.lr(step, total))?;
            if !self.auxiliary.is_empty() {
                let heads = auxiliary::parameters(self.auxiliary);
                optim.step(&heads, &grads, cfg.schedule.lr(step, total))?;
            }
            model.apply_updates(out.updates);
            model.apply_masks()?;
            if let Some(h) = hook.as_deref_mut() {
                h.after_step(model, step + 1, total)?;
            }
            recent.push(loss_value);
            if recent.len() > 50 {
                recent.remove(0);
            }
            bar.inc(1);
            if step % 10 == 0 {
                bar.set_message(format!("epoch {} loss {:.4}", epoch + 1, loss_value));
            }
            if let Some(ck) = &self.checkpoint {
                if (step + 1) % ck.every == 0 || step + 1 == total {
                    checkpoint::save(&ck.dir, step + 1, cfg, model, &optim)
                        .with_context(|| format!("saving checkpoint in {}", ck.dir.display()))?;
                }
            }
            if fault_after == Some(step + 1) {
                eprintln!("{FAULT_ENV}: aborting after step {}", step + 1);
                std::process::abort();
            }
        }
        bar.finish_and_clear();
        let seconds = began.elapsed().as_secs_f64();
        Ok(TrainReport {
            steps: total,
            resumed_from: start,
            final_train_loss: if recent.is_empty() {
                f64::NAN
            } else {
                recent.iter().sum::<f64>() / recent.len() as f64
            },
            seconds,
            images_per_second: ((total - start) as f64 * batch as f64) / seconds.max(1e-9),
        })
    }
}

/// Evaluates a model (inference mode) on a data set.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    norm: &Normalization,
    batch_size: usize,
    progress: bool,
) -> Result<Metrics> {
    if data.is_empty() {
        bail!("cannot evaluate on an empty split");
    }
    let batcher = Batcher::new(data, norm.clone(), model.device());
    let n = data.len();
    let batch_size = batch_size.max(1);
    let bar = crate::progress::bar(n.div_ceil(batch_size) as u64, "eval", progress);
    let (mut loss_sum, mut correct) = (0f64, 0usize);
    let mut no_rng = rng::stream(0, &["unused"]);
    for start in (0..n).step_by(batch_size) {
        let idx: Vec<usize> = (start..(start + batch_size).min(n)).collect();
        let b = batcher.batch(&idx, Augment::None, &mut no_rng)?;
        let logits = model.forward_logits(&b.images)?;
        let l = loss::cross_entropy(&logits, &b.labels, 0.0)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        loss_sum += l * idx.len() as f64;
        correct += loss::correct(&logits, &b.labels)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Metrics {
        loss: loss_sum / n as f64,
        accuracy: correct as f64 / n as f64,
        samples: n,
    })
}
