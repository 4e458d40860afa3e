//! The end of a study: the best candidate re-trained with the whole
//! training split (optionally distilled from the baseline), tested, and
//! recorded.

use super::{FinalRecord, SearchSetup, TrialRecord};
use crate::data::{Normalization, Splits};
use crate::model::Model;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

/// How the best candidate is re-trained.
#[derive(Clone, Copy, Debug)]
pub struct Retraining {
    /// Epochs over the whole training split (0: keep the trial's model).
    pub epochs: u64,
    /// With the uncompressed baseline as the teacher.
    pub distill: bool,
}

/// Re-trains the best candidate, tests it, and returns the final record.
/// A re-training that would break the target is undone.
pub fn finish(
    setup: &SearchSetup<'_>,
    splits: &Splits,
    norm: &Normalization,
    best: &TrialRecord,
    model: &mut Model,
    retraining: Retraining,
    output: &Path,
) -> Result<FinalRecord> {
    let base = setup.baseline;
    let baseline_test = crate::train::evaluate(base, &splits.test, norm, 256, false)?;
    let trial_test = crate::train::evaluate(model, &splits.test, norm, 256, false)?;
    let t = Instant::now();
    let mut test = trial_test;
    if retraining.epochs > 0 {
        let mut retrained = model.try_clone()?;
        let mut config = setup.finetune.config(0, setup.seed);
        config.epochs = retraining.epochs;
        config.max_steps = None;
        config.schedule = crate::train::Schedule {
            base: setup.finetune.lr,
            kind: crate::train::ScheduleKind::Cosine,
            warmup_steps: 0,
        };
        config.distill = retraining.distill.then(|| crate::train::DistillConfig {
            temperature: 4.0,
            weight: 0.5,
            teacher_sha256: base.weights_sha256().unwrap_or_default(),
        });
        if setup.progress {
            eprintln!(
                "re-training trial {} for {} epochs{}",
                best.number,
                retraining.epochs,
                if retraining.distill {
                    ", distilled from the baseline"
                } else {
                    ""
                }
            );
        }
        crate::train::Trainer {
            config,
            data: &splits.train,
            norm: norm.clone(),
            teacher: retraining.distill.then_some(base),
            checkpoint: None,
            progress: setup.progress,
            auxiliary: &[],
        }
        .run(&mut retrained, None)
        .context("re-training the best candidate")?;
        let fp = retrained.footprint()?;
        let after = crate::train::evaluate(&retrained, &splits.test, norm, 256, false)?;
        if !setup.target.is_met(&fp, &setup.baseline_footprint) {
            eprintln!(
                "warning: re-training moved the model off its target; keeping the trial's model"
            );
        } else if !after.loss.is_finite() {
            eprintln!("warning: re-training diverged; keeping the trial's model");
        } else {
            *model = retrained;
            test = after;
        }
    }
    let footprint = model.footprint()?;
    let latency_ms = match &setup.latency {
        Some(l) => Some(l.meter.median_ms(model).context("timing the final model")?),
        None => None,
    };
    Ok(FinalRecord {
        trial: best.number,
        retrain_epochs: retraining.epochs,
        distill: retraining.distill,
        baseline_test_accuracy: baseline_test.accuracy,
        trial_test_accuracy: trial_test.accuracy,
        test_accuracy: test.accuracy,
        footprint,
        target_ratio: setup.target.ratio_of(&footprint, &setup.baseline_footprint),
        latency_ms,
        output: Some(output.display().to_string()),
        retrain_seconds: t.elapsed().as_secs_f64(),
    })
}
