//! A compression study run end to end, as `pf compress` asks for it: the
//! baseline, the study (new or resumed), the search space (the learner's
//! and the host's), the trials, the best candidate re-trained, and the
//! outputs (model, deployment file, report). The command line only turns
//! its flags into a [`CompressJob`] and prints the [`Finished`] result.

use super::host_space::{self, FinetuneSearch};
use super::latency::{LatencyConstraint, LatencyMeter, LiteRtMeter};
use super::retrain::{self, Retraining};
use super::target::{self, TargetArg, Targets};
use super::{
    best_of, learner_space, resume, run_search, BaselineRecord, FinalRecord, Reward, SearchSetup,
    SqliteStudy, StudyMeta, StudyStore, TrialRecord,
};
use crate::data::{Normalization, Splits};
use crate::deploy;
use crate::device::DeviceSpec;
use crate::model::Model;
use crate::plugin::Param;
use crate::plugin::Plugin;
use crate::plugin::{space, FineTune, PluginKind, Runtime, TrialData};
use crate::registry::resolve;
use crate::source::{DataSpec, ModelSource};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// The study database.
    pub study: PathBuf,
    /// Continue the study instead of starting one.
    pub resume: bool,
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
    /// The study database.
    pub study: PathBuf,
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
            .unwrap_or_else(|| self.study.with_extension("tflite"));
        let model = match export.extension().and_then(|e| e.to_str()) {
            Some("tflite") | Some("onnx") => export.with_extension("pf"),
            _ => export.clone(),
        };
        let report = (!self.no_report).then(|| {
            self.report
                .clone()
                .unwrap_or_else(|| self.study.with_extension("html"))
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
        let study = &self.study;
        if let super::StudyLocation::Postgres(pg) =
            super::StudyLocation::parse(&study.to_string_lossy())?
        {
            bail!(
                "--study {}: pf compress runs its search into a SQLite file; run it into one \
                 (--study runs/a.db) and copy the study into PostgreSQL with `pf study copy \
                 runs/a.db URL`",
                pg.display()
            );
        }
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
            if path == study {
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
    fn meta(
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

/// The plugins of a study and what they decide: the optimizer's options,
/// the targets and the reward.
struct Plugins {
    learner: Arc<Plugin>,
    optimizer: Arc<Plugin>,
    optimizer_options: Vec<Param>,
    targets: Targets,
    reward: Reward,
}

impl Plugins {
    /// Loads both plugins (through admission) and resolves the targets and
    /// the reward.
    fn load(job: &CompressJob, rt: &Runtime) -> Result<Plugins> {
        let learner = resolve::load(rt, &job.learner, PluginKind::Learner, "--plugin")?;
        let optimizer = resolve::load(rt, &job.optimizer, PluginKind::Optimizer, "--optimizer")?;
        let optimizer_options =
            space::parse_options(&optimizer.info.params_schema, &job.optimizer_set).map_err(
                |e| anyhow::anyhow!("--optimizer-set: optimizer `{}`: {e}", optimizer.name()),
            )?;
        let targets = target::resolve(&job.targets, &learner)?;
        let reward = match job.reward {
            Some(r) if !targets.for_learner && r != Reward::Accuracy => bail!(
                "--reward {r}: a run without a target (a control) is rewarded for accuracy alone; drop --reward or give a --target"
            ),
            r => r.unwrap_or(Reward::Accuracy),
        };
        Ok(Plugins {
            learner,
            optimizer,
            optimizer_options,
            targets,
            reward,
        })
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the study `job` describes with the plugin runtime `rt`, writing the
/// `outputs` that [`CompressJob::check`] returned.
pub fn run(job: &CompressJob, mut rt: Runtime, out: Outputs) -> Result<Finished> {
    let start = Instant::now();
    // The policy caps the search budget at every load; a resumed study's
    // own budget is checked again once it is known.
    rt.search_budget = Some(job.trials.unwrap_or(DEFAULT_TRIALS));
    let plugins = Plugins::load(job, &rt)?;
    let (learner, targets) = (&plugins.learner, &plugins.targets);
    // A resumed study is checked against everything the job decides before
    // any data is loaded or any baseline trained.
    let resumed = if job.resume {
        let s = SqliteStudy::open(&job.study)?;
        let old = s.meta();
        let mut wanted = job.meta(&plugins, old.baseline.clone(), old.data_sha256.clone(), &[]);
        wanted.fixed = old.fixed.clone();
        resume::check(old, &wanted, &job.study)?;
        Some(s)
    } else {
        None
    };
    let splits = job.data.load()?;
    let device = job.device.open()?;
    let base = super::baseline::cached(
        &job.model,
        &splits,
        job.baseline_epochs,
        job.seed,
        &device,
        !job.progress,
    )?;
    let norm = Normalization::of(&splits.train);
    let data = Arc::new(TrialData {
        train: splits.train.clone(),
        val: splits.val.clone(),
        norm: norm.clone(),
    });
    let baseline_footprint = base.footprint()?;
    let base_val = crate::train::evaluate(&base, &splits.val, &norm, 256, false)?;
    let learner_target = targets.for_learner.then_some(targets.footprint);
    let (mut searched, fixed) = learner_space::searched(
        &rt,
        learner,
        &base,
        &data,
        &job.set,
        job.seed,
        learner_target,
    )?;
    let meta = job.meta(
        &plugins,
        BaselineRecord {
            model: job.model.name.clone(),
            weights_sha256: base.weights_sha256()?,
            accuracy: base_val.accuracy,
            loss: base_val.loss,
            footprint: baseline_footprint,
        },
        splits.sha256(),
        &fixed,
    );
    let host_dims = host_space::dimensions(
        meta.finetune_search,
        meta.lr,
        meta.finetune_steps,
        targets.flops_dimension,
    );
    host_space::check_names(learner.name(), &searched, &host_dims)?;
    let learner_dims = searched.len();
    searched.extend(host_dims);
    if searched.is_empty() && resumed.is_none() && meta.trials > 1 {
        bail!(
            "nothing to search: learner `{}` has no dimension left to vary{}, and --lr and --finetune-steps fix the host's; every trial would differ only by its seed. Give --trials 1 for a single run, drop --lr or --finetune-steps to search them, or set fewer parameters with --set",
            learner.name(),
            if fixed.is_empty() {
                String::new()
            } else {
                format!(" (fixed: {})", space::format_params(&fixed))
            }
        );
    }
    let latency = latency_constraint(job, targets, &base)?;
    let mut study = match resumed {
        Some(mut s) => {
            let mut wanted = meta.clone();
            wanted.trials = s.meta().trials;
            wanted.created = s.meta().created;
            resume::check(s.meta(), &wanted, &job.study)?;
            if let Some(n) = job.trials.filter(|&n| n > s.meta().trials) {
                // Extending the study: the optimizer sees the larger budget.
                wanted.trials = n;
                s.update_meta(&wanted)?;
            }
            s
        }
        None => SqliteStudy::create(&job.study, &meta)?,
    };
    let meta = study.meta().clone();
    rt.gate
        .check_trials(meta.trials)
        .map_err(anyhow::Error::from)?;
    let cores = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let threads_per_trial = job
        .threads_per_trial
        .unwrap_or((cores / job.jobs as usize).max(1));
    if job.progress {
        let dims = (searched.len(), learner_dims);
        announce(
            job,
            &plugins,
            &meta,
            &latency,
            threads_per_trial,
            dims,
            &fixed,
        );
    }
    let baseline_latency_ms = latency.as_ref().map(|(_, ms)| *ms);
    let setup = SearchSetup {
        runtime: &rt,
        learner: learner.clone(),
        optimizer: plugins.optimizer.clone(),
        optimizer_options: plugins.optimizer_options.clone(),
        baseline: &base,
        baseline_footprint,
        data: data.clone(),
        space: searched,
        fixed,
        target: meta.target,
        learner_target: !meta.no_target,
        latency: latency.map(|(l, _)| l),
        reward: meta.reward,
        seed: job.seed,
        trials: meta.trials,
        jobs: job.jobs,
        threads_per_trial,
        finetune_steps: meta.finetune_steps,
        bn_images: job.bn_images,
        finetune: FineTune {
            batch_size: job.batch_size,
            lr: meta.lr,
            momentum: 0.9,
            weight_decay: 5e-4,
            progress: job.progress,
        },
        progress: job.progress,
        optimizer_announced: Default::default(),
    };
    let search_start = Instant::now();
    let outcome = run_search(&setup, &mut study)?;
    let search_seconds = search_start.elapsed().as_secs_f64();
    let Some(best) = best_of(&outcome.trials).cloned() else {
        write_report(&out, &study)?;
        bail!(
            "no trial met the target {} ({} trials); the study is kept in {}. First failures:\n  {}\nloosen the target, fine-tune longer, or run more trials with --resume --trials N",
            match targets.latency {
                Some(l) if targets.flops_dimension => l.to_string(),
                Some(l) => format!("{} and {l}", meta.target),
                None => meta.target.to_string(),
            },
            outcome.trials.len(),
            job.study.display(),
            first_failures(&outcome.trials).join("\n  ")
        );
    };
    let mut model = match outcome.best_model {
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
    let result = retrain::finish(
        &setup,
        &splits,
        &norm,
        &best,
        &mut model,
        job.retraining,
        &out.export,
    )?;
    crate::model::save(&model, &out.model)
        .with_context(|| format!("saving {}", out.model.display()))?;
    if out.model != out.export {
        export_deployment(job, &out.export, &model, &splits, &norm).with_context(|| {
            format!(
                "exporting the compressed model to {} (it is saved as {})",
                out.export.display(),
                out.model.display()
            )
        })?;
    }
    study.set_final(&result)?;
    write_report(&out, &study)?;
    Ok(Finished {
        study: job.study.clone(),
        outputs: out,
        meta,
        trials: outcome.trials,
        best,
        result,
        ran: outcome.ran,
        baseline_latency_ms,
        search_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
    })
}

/// The latency bound and the meter that checks it, with the baseline's own
/// latency, when a latency target is given.
fn latency_constraint(
    job: &CompressJob,
    targets: &Targets,
    base: &Model,
) -> Result<Option<(LatencyConstraint, f64)>> {
    let Some(bound) = targets.latency else {
        return Ok(None);
    };
    let python = crate::export::tflite::litert::python(job.python.as_deref());
    let meter = LiteRtMeter::new(python, bound.threads, 50, 5)?;
    let base_ms = meter.median_ms(base).context("timing the baseline")?;
    if job.progress {
        eprintln!(
            "latency: baseline {base_ms:.3} ms, bound {} ms ({})",
            bound.ms,
            meter.describe()
        );
    }
    Ok(Some((
        LatencyConstraint {
            target: bound,
            meter: Arc::new(meter),
            flops_dimension: targets.flops_dimension,
        },
        base_ms,
    )))
}

/// The line that opens a search: who searches what under which target.
fn announce(
    job: &CompressJob,
    plugins: &Plugins,
    meta: &StudyMeta,
    latency: &Option<(LatencyConstraint, f64)>,
    threads_per_trial: usize,
    (dimensions, learner_dims): (usize, usize),
    fixed: &[Param],
) {
    let targets = &plugins.targets;
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
fn write_report(out: &Outputs, study: &dyn StudyStore) -> Result<()> {
    let Some(report) = &out.report else {
        return Ok(());
    };
    crate::search::report::write_file(study.meta(), &study.trials()?, report)
        .with_context(|| format!("writing report {}", report.display()))
}
