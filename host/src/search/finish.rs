//! The end of a study: the best trial re-trained, tested, saved, exported
//! and reported, and the result stored in the study. `pf compress` does it
//! after its trials; `pf compress --finish --study URL` does only this, for
//! a shared study whose trials workers ran.

use super::job::{CompressJob, Outputs};
use super::prepare::{Plugins, Prepared};
use super::{best_of, retrain, FinalRecord, SearchSetup, StudyStore, TrialRecord};
use crate::data::{Normalization, Splits};
use crate::deploy;
use crate::model::Model;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Re-trains, saves, exports and reports the best of `trials` (its model
/// is `best_model` when this process ran it, else it is run again), and
/// stores the result in `study`. Fails, after writing the report, when no
/// trial met the target.
#[allow(clippy::too_many_arguments)]
pub fn finish_study(
    job: &CompressJob,
    plugins: &Plugins,
    prepared: &Prepared,
    setup: &SearchSetup<'_>,
    study: &mut dyn StudyStore,
    trials: &[TrialRecord],
    best_model: Option<(u32, Model)>,
    out: &Outputs,
) -> Result<(TrialRecord, FinalRecord)> {
    let meta = study.meta().clone();
    let targets = &plugins.targets;
    let Some(best) = best_of(trials).cloned() else {
        write_report(out, study)?;
        bail!(
            "no trial met the target {} ({} trials); the study is kept in {}. First failures:\n  {}\nloosen the target, fine-tune longer, or run more trials with --resume --trials N",
            match targets.latency {
                Some(l) if targets.flops_dimension => l.to_string(),
                Some(l) => format!("{} and {l}", meta.target),
                None => meta.target.to_string(),
            },
            trials.len(),
            study.location(),
            first_failures(trials).join("\n  ")
        );
    };
    let mut model = match best_model {
        Some((n, m)) if n == best.number => m,
        _ => {
            if job.progress {
                eprintln!(
                    "rebuilding trial {} from its parameters and seed (its model was not kept)",
                    best.number
                );
            }
            setup.rerun(&best)?
        }
    };
    let (splits, norm) = (&prepared.splits, &prepared.norm);
    let result = retrain::finish(
        setup,
        splits,
        norm,
        &best,
        &mut model,
        job.retraining,
        &out.export,
    )?;
    crate::model::save(&model, &out.model)
        .with_context(|| format!("saving {}", out.model.display()))?;
    if out.model != out.export {
        export_deployment(job, &out.export, &model, splits, norm).with_context(|| {
            format!(
                "exporting the compressed model to {} (it is saved as {})",
                out.export.display(),
                out.model.display()
            )
        })?;
    }
    study.set_final(&result)?;
    write_report(out, study)?;
    Ok((best, result))
}

/// The first three failed trials, `trial N: why`.
fn first_failures(trials: &[TrialRecord]) -> Vec<String> {
    trials
        .iter()
        .filter_map(|t| {
            t.error.as_ref().map(|e| {
                let e = crate::plugin::bounds::printable(e, crate::plugin::bounds::MAX_LINE_CHARS);
                format!("trial {}: {e}", t.number)
            })
        })
        .take(3)
        .collect()
}

/// Writes the deployment file (`.tflite` or `.onnx`, by its extension):
/// float32, or int8 calibrated on 512 training images, through the same
/// path as `pf export`.
fn export_deployment(
    job: &CompressJob,
    path: &Path,
    model: &Model,
    splits: &Splits,
    norm: &Normalization,
) -> Result<()> {
    let calibration = match job.export_int8 {
        true => Some(deploy::calibration(
            &splits.train,
            norm,
            512,
            job.seed,
            model.device(),
        )?),
        false => None,
    };
    let format = deploy::Format::of_path(path).context("a .tflite or .onnx export")?;
    let opts = deploy::Options {
        format,
        calibration: calibration.as_deref(),
        int8_io: false,
        reduce_range: false,
        sparse: false,
    };
    deploy::write(model, path, &opts)?;
    Ok(())
}

/// Writes the study's report, unless it has none.
pub fn write_report(out: &Outputs, study: &dyn StudyStore) -> Result<()> {
    let Some(report) = &out.report else {
        return Ok(());
    };
    crate::search::report::write_file(study.meta(), &study.trials()?, report)
        .with_context(|| format!("writing report {}", report.display()))
}
