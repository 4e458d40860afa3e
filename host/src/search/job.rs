//! A compression study run end to end, as `pf compress` asks for it: the
//! baseline, the study (new or resumed), the search space (the learner's
//! and the host's), the trials, the best candidate re-trained, and the
//! outputs (model, deployment file, report). The command line only turns
//! its flags into a [`CompressJob`] and prints the [`Finished`] result.

use super::finish::finish_study;
use super::host_space::FinetuneSearch;
use super::prepare::{prepare, threads_per_trial, Plugins, Prepared};
use super::retrain::Retraining;
use super::target::TargetArg;
pub use super::worker::SharedEnd;
use super::{
    resume, run_search, BaselineRecord, FinalRecord, Reward, SqliteStudy, StudyLocation, StudyMeta,
    StudyStore, TrialRecord,
};
use crate::device::DeviceSpec;
use crate::plugin::Runtime;
use crate::plugin::{space, Param};
use crate::source::{DataSpec, ModelSource};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Trials of a new study when none are asked for.
pub const DEFAULT_TRIALS: u32 = 12;

/// The most trials run at once.
pub const MAX_JOBS: u32 = 256;

/// The fine-tuning learning rate when none is given: the centre of the
/// searched range, and re-training's peak rate.
pub const DEFAULT_LR: f64 = 0.01;

/// The fine-tuning steps when none are given: the top of the searched
/// range.
pub const DEFAULT_FINETUNE_STEPS: u64 = 300;

/// Everything a compression study is asked to do (the flags of
/// `pf compress`, which document each field).
#[derive(Debug, Clone)]
pub struct CompressJob {
    /// The model to compress.
    pub model: ModelSource,
    /// The data it is trained and judged on.
    pub data: DataSpec,
    /// Where it computes.
    pub device: DeviceSpec,
    /// The learner: a `.wasm` component or a built-in's name.
    pub learner: String,
    /// The optimizer: a `.wasm` component or a built-in's name.
    pub optimizer: String,
    /// Trials (default [`DEFAULT_TRIALS`]; a resumed study's own number).
    pub trials: Option<u32>,
    /// The budgets every result must meet (default: the learner's own).
    pub targets: Vec<TargetArg>,
    /// Python with LiteRT, for a latency target.
    pub python: Option<PathBuf>,
    /// What the optimizer maximises (default: accuracy).
    pub reward: Option<Reward>,
    /// Learner parameters fixed instead of searched, `NAME=VALUE`.
    pub set: Vec<String>,
    /// Options of the optimizer itself, `NAME=VALUE`.
    pub optimizer_set: Vec<String>,
    /// Fine-tuning steps of every trial (default: searched).
    pub finetune_steps: Option<u64>,
    /// Training images for each trial's batch-norm re-estimation.
    pub bn_images: usize,
    /// Fine-tuning batch size.
    pub batch_size: usize,
    /// Fine-tuning learning rate (default: searched).
    pub lr: Option<f64>,
    /// How the best candidate is re-trained.
    pub retraining: Retraining,
    /// Trials run at once.
    pub jobs: u32,
    /// Threads per trial (default: the cores divided by `jobs`).
    pub threads_per_trial: Option<usize>,
    /// Epochs of training a zoo baseline (cached).
    pub baseline_epochs: u64,
    /// The study: a SQLite file, or a shared study in PostgreSQL.
    pub study: StudyLocation,
    /// Continue the study instead of starting one.
    pub resume: bool,
    /// How this process works on a shared study (PostgreSQL only).
    pub worker: super::worker::WorkerOptions,
    /// Only re-train, export and report the best trial of a shared study
    /// whose trials are all finished (`--finish`).
    pub finish: bool,
    /// The study's seed.
    pub seed: u64,
    /// The deployment file (default: the study's name with `.tflite`).
    pub export: Option<PathBuf>,
    /// Write the deployment file int8.
    pub export_int8: bool,
    /// The report (default: the study's name with `.html`).
    pub report: Option<PathBuf>,
    /// Replace existing outputs.
    pub force: bool,
    /// Write no report.
    pub no_report: bool,
    /// The sandbox limits, as the study records them (memory bytes, fuel
    /// per call, tensors).
    pub limits: [u64; 3],
    /// Progress bars and notes on standard error.
    pub progress: bool,
}

/// The files a study writes besides its database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outputs {
    /// The compressed model as asked for (`.pf`, `.tflite`, `.onnx`).
    pub export: PathBuf,
    /// The compressed model in pf's format: `export` itself, or beside a
    /// `.tflite` or `.onnx` export.
    pub model: PathBuf,
    /// The report, unless there is none.
    pub report: Option<PathBuf>,
}

/// What a finished study holds.
pub struct Finished {
    /// The study (a path, or a URL without its password).
    pub study: String,
    /// Where its outputs are.
    pub outputs: Outputs,
    /// Its settings.
    pub meta: StudyMeta,
    /// Every finished trial.
    pub trials: Vec<TrialRecord>,
    /// The best trial.
    pub best: TrialRecord,
    /// The re-trained, tested result.
    pub result: FinalRecord,
    /// Trials this run ran (the rest were in the study already).
    pub ran: u32,
    /// The baseline's latency, with a latency target.
    pub baseline_latency_ms: Option<f64>,
    /// Seconds the trials took.
    pub search_seconds: f64,
    /// Seconds the whole run took.
    pub total_seconds: f64,
}

impl Finished {
    /// Trials that completed (the rest failed).
    pub fn complete(&self) -> usize {
        let done = |t: &&TrialRecord| t.status == super::TrialStatus::Complete;
        self.trials.iter().filter(done).count()
    }

    /// The result as `pf compress --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        let (meta, fin) = (&self.meta, &self.result);
        serde_json::json!({
            "study": self.study,
            "report": self.outputs.report,
            "export": self.outputs.export,
            "model": self.outputs.model,
            "learner": meta.learner,
            "optimizer": meta.optimizer,
            "target": meta.target,
            "reward": meta.reward,
            "trials": self.trials.len(),
            "complete": self.complete(),
            "ran": self.ran,
            "best": self.best,
            "final": fin,
            "baseline": meta.baseline,
            "latency": meta.latency.map(|bound| serde_json::json!({
                "bound_ms": bound.ms,
                "threads": bound.threads,
                "baseline_ms": self.baseline_latency_ms,
                "final_ms": fin.latency_ms,
            })),
            "seconds": {"search": self.search_seconds, "total": self.total_seconds},
        })
    }
}

impl CompressJob {
    /// The outputs: by default beside the study, named after it
    /// (`runs/a.db` → `runs/a.tflite`, `runs/a.pf`, `runs/a.html`).
    pub fn outputs(&self) -> Outputs {
        let export = self
            .export
            .clone()
            .unwrap_or_else(|| self.study.output_base().with_extension("tflite"));
        let model = match export.extension().and_then(|e| e.to_str()) {
            Some("tflite") | Some("onnx") => export.with_extension("pf"),
            _ => export.clone(),
        };
        let report = (!self.no_report).then(|| {
            self.report
                .clone()
                .unwrap_or_else(|| self.study.output_base().with_extension("html"))
        });
        Outputs {
            export,
            model,
            report,
        }
    }

    /// Checks every setting and output before anything is loaded, trained
    /// or written, and returns the outputs.
    pub fn check(&self) -> Result<Outputs> {
        if !matches!(self.study, StudyLocation::Postgres(_))
            && (self.finish || self.worker.max_trials.is_some())
        {
            bail!(
                "--finish and --max-trials work on a shared study: give --study a postgres:// URL"
            );
        }
        match &self.study {
            StudyLocation::Sqlite(study) => self.check_study_file(study)?,
            StudyLocation::Postgres(_) => {
                if self.finish && self.resume {
                    bail!("--finish works on the study as it is: drop --resume");
                }
                if self.worker.heartbeat_seconds.is_nan() || self.worker.heartbeat_seconds < 0.1 {
                    bail!("--heartbeat must be at least 0.1 seconds");
                }
            }
        }
        let out = self.outputs();
        match out.export.extension().and_then(|e| e.to_str()) {
            Some("pf") | Some("tflite") | Some("onnx") => {}
            _ => bail!(
                "--export {}: give a .pf file name (pf's model format), a .tflite file name (TensorFlow Lite) or an .onnx file name (ONNX)",
                out.export.display()
            ),
        }
        if self.export_int8 && out.model == out.export {
            bail!(
                "--export-int8 writes a TensorFlow Lite or ONNX file: give --export a .tflite or .onnx name (not {})",
                out.export.display()
            );
        }
        if let Some(report) = &out.report {
            crate::search::report::Format::from_path(report).context("--report")?;
        }
        let files = [
            ("--export", Some(&out.export)),
            ("--export", Some(&out.model)),
            ("--report", out.report.as_ref()),
        ];
        for (flag, path) in files {
            let Some(path) = path else { continue };
            if matches!(&self.study, StudyLocation::Sqlite(p) if p == path) {
                bail!(
                    "{flag} {} is the study itself: give the output another name",
                    path.display()
                );
            }
            crate::io::check_writable(path)
                .with_context(|| format!("{flag} {}", path.display()))?;
            // A resumed study replaces the outputs it wrote before.
            if path.exists() && !self.force && !self.resume {
                bail!(
                    "{flag}: {} already exists and pf overwrites nothing; choose another --study (the outputs are named after it), another {flag}, or pass --force to replace it",
                    path.display()
                );
            }
        }
        self.check_numbers()?;
        Ok(out)
    }

    /// Checks a SQLite study: it exists to resume, else it does not and its
    /// folder is writable.
    fn check_study_file(&self, study: &std::path::Path) -> Result<()> {
        if self.resume {
            if !study.is_file() {
                bail!(
                    "--resume: study {} does not exist; start it without --resume",
                    study.display()
                );
            }
        } else {
            if study.exists() {
                bail!(
                    "study {} already exists: pass --resume to continue it, or choose another --study",
                    study.display()
                );
            }
            crate::io::check_writable(study)
                .with_context(|| format!("--study {}", study.display()))?;
        }
        Ok(())
    }

    /// Refuses counts and rates that cannot work.
    fn check_numbers(&self) -> Result<()> {
        if !(1..=MAX_JOBS).contains(&self.jobs) {
            bail!("--jobs must be between 1 and {MAX_JOBS}");
        }
        if self.trials == Some(0) {
            bail!("--trials must be at least 1");
        }
        if self.threads_per_trial == Some(0) {
            bail!("--threads-per-trial must be at least 1");
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.finetune_steps == Some(0) {
            bail!("--finetune-steps must be at least 1");
        }
        if let Some(lr) = self.lr {
            if !(lr.is_finite() && lr > 0.0) {
                bail!("--lr must be a positive number, not {lr}");
            }
        }
        Ok(())
    }

    /// The study's settings, with the baseline, the data's digest and the
    /// fixed parameters, which only loading the data and the model decides.
    pub(super) fn meta(
        &self,
        plugins: &Plugins,
        baseline: BaselineRecord,
        data_sha256: String,
        fixed: &[Param],
    ) -> StudyMeta {
        let to_records = |p: &[Param]| p.iter().map(super::run::to_record).collect();
        StudyMeta {
            format: super::study::STUDY_FORMAT,
            baseline,
            data: self.data.source.to_string(),
            data_sha256,
            learner: plugins.learner.name().to_string(),
            learner_sha256: plugins.learner.sha256.clone(),
            optimizer: plugins.optimizer.name().to_string(),
            optimizer_sha256: plugins.optimizer.sha256.clone(),
            optimizer_options: to_records(&plugins.optimizer_options),
            target: plugins.targets.footprint,
            no_target: !plugins.targets.for_learner,
            latency: plugins.targets.latency,
            reward: plugins.reward,
            seed: self.seed,
            fixed: to_records(fixed),
            trials: self.trials.unwrap_or(DEFAULT_TRIALS),
            finetune_steps: self.finetune_steps.unwrap_or(DEFAULT_FINETUNE_STEPS),
            bn_images: self.bn_images as u64,
            batch_size: self.batch_size as u64,
            lr: self.lr.unwrap_or(DEFAULT_LR),
            finetune_search: FinetuneSearch {
                lr: self.lr.is_none(),
                steps: self.finetune_steps.is_none(),
            },
            limits: self.limits,
            jobs: self.jobs,
            created: now_unix(),
        }
    }
}

pub(super) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the study `job` describes with the plugin runtime `rt`, writing the
/// `outputs` that [`CompressJob::check`] returned. A study in PostgreSQL is
/// run as a shared one ([`super::worker::compress_shared`]).
pub fn run(job: &CompressJob, rt: Runtime, out: Outputs) -> Result<SharedEnd> {
    match &job.study {
        StudyLocation::Sqlite(p) => {
            run_sqlite(job, rt, out, p).map(|f| SharedEnd::Finished(Box::new(f)))
        }
        StudyLocation::Postgres(pg) => super::worker::compress_shared(job, rt, out, pg),
    }
}

/// Runs a study kept in the SQLite file `path`.
fn run_sqlite(
    job: &CompressJob,
    mut rt: Runtime,
    out: Outputs,
    path: &std::path::Path,
) -> Result<Finished> {
    let start = Instant::now();
    // The policy caps the search budget at every load; a resumed study's
    // own budget is checked again once it is known.
    rt.search_budget = Some(job.trials.unwrap_or(DEFAULT_TRIALS));
    let plugins = Plugins::load(job, &rt)?;
    // A resumed study is checked against everything the job decides before
    // any data is loaded or any baseline trained.
    let resumed = if job.resume {
        let s = SqliteStudy::open(path)?;
        let old = s.meta();
        let mut wanted = job.meta(&plugins, old.baseline.clone(), old.data_sha256.clone(), &[]);
        wanted.fixed = old.fixed.clone();
        resume::check(old, &wanted, &path.display().to_string())?;
        Some(s)
    } else {
        None
    };
    let prepared = prepare(job, &rt, &plugins, resumed.is_some())?;
    let mut study = match resumed {
        Some(mut s) => {
            let mut wanted = prepared.meta.clone();
            wanted.trials = s.meta().trials;
            wanted.created = s.meta().created;
            resume::check(s.meta(), &wanted, &path.display().to_string())?;
            if let Some(n) = job.trials.filter(|&n| n > s.meta().trials) {
                // Extending the study: the optimizer sees the larger budget.
                wanted.trials = n;
                s.update_meta(&wanted)?;
            }
            s
        }
        None => SqliteStudy::create(path, &prepared.meta)?,
    };
    let meta = study.meta().clone();
    rt.gate
        .check_trials(meta.trials)
        .map_err(anyhow::Error::from)?;
    let threads_per_trial = threads_per_trial(job.threads_per_trial, job.jobs);
    if job.progress {
        announce(job, &plugins, &meta, &prepared, threads_per_trial);
    }
    let setup = prepared.setup(job, &rt, &plugins, &meta, threads_per_trial);
    let search_start = Instant::now();
    let outcome = run_search(&setup, &mut study)?;
    let search_seconds = search_start.elapsed().as_secs_f64();
    let (best, result) = finish_study(
        job,
        &plugins,
        &prepared,
        &setup,
        &mut study,
        &outcome.trials,
        outcome.best_model,
        &out,
    )?;
    Ok(Finished {
        study: job.study.display(),
        outputs: out,
        meta,
        trials: outcome.trials,
        best,
        result,
        ran: outcome.ran,
        baseline_latency_ms: prepared.latency.as_ref().map(|(_, ms)| *ms),
        search_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
    })
}

/// The line that opens a search: who searches what under which target.
pub(super) fn announce(
    job: &CompressJob,
    plugins: &Plugins,
    meta: &StudyMeta,
    prepared: &Prepared,
    threads_per_trial: usize,
) {
    let targets = &plugins.targets;
    let (latency, fixed) = (&prepared.latency, &prepared.fixed);
    let (dimensions, learner_dims) = (prepared.searched.len(), prepared.learner_dims);
    eprintln!(
        "search: {} × {} on {} ({} trials, {} at once × {} threads), target {}{}, reward {}; {} dimensions searched ({} of the learner's, {} of the host's){}",
        plugins.learner.name(),
        plugins.optimizer.name(),
        job.model.name,
        meta.trials,
        job.jobs,
        threads_per_trial,
        match (latency, targets.flops_dimension, targets.for_learner) {
            (Some((l, _)), true, _) => format!("{} (FLOPs ratio searched)", l.target),
            (Some((l, _)), false, _) => format!("{} ≤ {} × baseline, {}", meta.target.measure, meta.target.ratio, l.target),
            (None, _, true) => format!("{} ≤ {} × baseline", meta.target.measure, meta.target.ratio),
            (None, _, false) => "none (a control run)".to_string(),
        },
        if targets.from_learner && targets.for_learner {
            format!(" (what `{}` is made for; --target changes it)", plugins.learner.name())
        } else {
            String::new()
        },
        meta.reward,
        dimensions,
        learner_dims,
        dimensions - learner_dims,
        if fixed.is_empty() {
            String::new()
        } else {
            format!(", fixed {}", space::format_params(fixed))
        }
    );
}
