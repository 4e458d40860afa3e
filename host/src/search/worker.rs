//! Shared studies: many `pf` processes, on any machines, run the trials of
//! one study kept in PostgreSQL (see `docs/distributed.md`).
//!
//! `pf compress --study postgres://…` creates the study: besides its
//! settings it stores a [`SharedJob`] (everything the trials depend on)
//! and the baseline model's bytes with their SHA-256, so that `pf worker
//! --study URL` rebuilds the same search anywhere, without the original
//! command line or a shared file system. A worker resolves the learner and
//! optimizer by name through the normal registry and admission path and
//! refuses any digest, data or baseline other than the study's.
//!
//! Each worker loops: claim a trial ([`PgStudy::claim`]), run it exactly
//! as `pf compress` does ([`SearchSetup::run_trial`]) while a thread beats
//! its heartbeat, commit its result. To suggest, the worker rebuilds the
//! optimizer from a fresh component by replaying the study in number
//! order: `suggest` for every earlier trial, then `observe` (with the
//! recorded parameters) for each finished one; lost trials are suggested
//! but not observed, and running ones are suggested only. That is how the
//! frozen 0.1.0 contract, which has no call for "pending" trials, tells
//! the optimizer about running trials: their suggestions are part of its
//! state, so the next suggestion differs from theirs. Run one at a time,
//! workers therefore make exactly the calls `pf compress --jobs 1` makes,
//! and the same trials.

use super::finish::finish_study;
use super::job::{self, CompressJob, Finished, Outputs};
use super::prepare::{prepare, threads_per_trial, Plugins, Prepared};
use super::retrain::Retraining;
use super::run::{from_record, outcome_of, to_record, trial_line, with_kernel_threads, Suggestion};
use super::study::{
    require_parts, Claim, Heartbeat, Past, PgLocation, PgStudy, RunningTrial, SharedParts,
};
use super::{resume, Reward, SearchSetup, StudyLocation, StudyMeta, StudyStore, TrialRecord};
use crate::data::LoadOptions;
use crate::device::DeviceSpec;
use crate::model::Model;
use crate::plugin::{Param, Runtime};
use crate::source::{DataSpec, ModelSource};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds between heartbeats when none are asked for.
pub const DEFAULT_HEARTBEAT_SECONDS: f64 = 10.0;

/// A running trial is lost after this many heartbeat intervals of silence.
pub const TIMEOUT_BEATS: f64 = 6.0;

/// How a process works on a shared study.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerOptions {
    /// Seconds between heartbeats of a running trial (`--heartbeat`); a
    /// new study's timeout is [`TIMEOUT_BEATS`] times it.
    pub heartbeat_seconds: f64,
    /// Stop after claiming this many trials (`--max-trials`).
    pub max_trials: Option<u32>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            heartbeat_seconds: DEFAULT_HEARTBEAT_SECONDS,
            max_trials: None,
        }
    }
}

/// Everything the trials of a shared study depend on, stored in it as JSON
/// so that a worker rebuilds the search from the study alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedJob {
    /// The data set (`digits`, `mnist:PATH`, …): embedded data works
    /// anywhere, a path must exist on the worker with the same contents.
    pub data: String,
    /// Validation fraction of the data.
    pub val_fraction: f64,
    /// Image side of folder data.
    pub image_size: usize,
    /// A side every image is resized to.
    pub resize: Option<usize>,
    /// The learner's name (resolved on the worker).
    pub learner: String,
    /// The optimizer's name (resolved on the worker).
    pub optimizer: String,
    /// `--target`s.
    pub targets: Vec<String>,
    /// `--reward`.
    pub reward: Option<Reward>,
    /// `--set`.
    pub set: Vec<String>,
    /// `--optimizer-set`.
    pub optimizer_set: Vec<String>,
    /// `--finetune-steps`.
    pub finetune_steps: Option<u64>,
    /// `--bn-images`.
    pub bn_images: usize,
    /// `--batch-size`.
    pub batch_size: usize,
    /// `--lr`.
    pub lr: Option<f64>,
    /// `--retrain-epochs`.
    pub retrain_epochs: u64,
    /// `--distill`.
    pub distill: bool,
    /// The trial budget.
    pub trials: u32,
    /// The study's seed.
    pub seed: u64,
    /// Sandbox limits: memory bytes, fuel per call, tensor handles.
    pub limits: [u64; 3],
    /// Seconds of silence after which a running trial is lost.
    pub heartbeat_timeout_seconds: f64,
}

impl SharedJob {
    /// What `job`, with its `plugins` loaded, stores for workers.
    fn of(job: &CompressJob, plugins: &Plugins) -> SharedJob {
        SharedJob {
            data: job.data.source.to_string(),
            val_fraction: job.data.options.val_fraction,
            image_size: job.data.options.image_size,
            resize: job.data.resize,
            learner: plugins.learner.name().to_string(),
            optimizer: plugins.optimizer.name().to_string(),
            targets: job.targets.iter().map(|t| t.to_string()).collect(),
            reward: job.reward,
            set: job.set.clone(),
            optimizer_set: job.optimizer_set.clone(),
            finetune_steps: job.finetune_steps,
            bn_images: job.bn_images,
            batch_size: job.batch_size,
            lr: job.lr,
            retrain_epochs: job.retraining.epochs,
            distill: job.retraining.distill,
            trials: job.trials.unwrap_or(job::DEFAULT_TRIALS),
            seed: job.seed,
            limits: job.limits,
            heartbeat_timeout_seconds: job.worker.heartbeat_seconds * TIMEOUT_BEATS,
        }
    }
}

/// What a worker is started with besides the study: how it computes and
/// where `--finish` writes.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The study.
    pub study: PgLocation,
    /// Heartbeat and trial limit.
    pub options: WorkerOptions,
    /// Trials run at once.
    pub jobs: u32,
    /// Threads per trial.
    pub threads_per_trial: Option<usize>,
    /// Where it computes.
    pub device: DeviceSpec,
    /// Python with LiteRT, for a latency target.
    pub python: Option<PathBuf>,
    /// Progress lines on standard error.
    pub progress: bool,
}

/// A shared study as a worker finds it: its job and baseline, checked.
pub struct Joined {
    /// The job.
    pub job: SharedJob,
    /// The baseline model file, written from the study's bytes.
    model: tempfile::NamedTempFile,
}

impl Joined {
    /// Reads the study's job and baseline, checking the baseline's digest.
    pub fn read(at: &PgLocation) -> Result<Joined> {
        let study = PgStudy::open(at, true)?;
        let parts = require_parts(&study)?;
        let digest = crate::io::sha256_hex(&parts.model);
        if digest != parts.model_sha256 {
            bail!(
                "study {}: its baseline model's bytes do not match their SHA-256 ({} stored, {} \
                 read): the study is damaged",
                at.display(),
                parts.model_sha256,
                digest
            );
        }
        let job: SharedJob = serde_json::from_str(&parts.job)
            .with_context(|| format!("study {}: its job cannot be read", at.display()))?;
        let mut model = tempfile::Builder::new().suffix(".pf").tempfile()?;
        std::io::Write::write_all(&mut model, &parts.model)?;
        Ok(Joined { job, model })
    }

    /// The compression job the study was created with, as this worker runs
    /// it.
    fn compress_job(&self, a: &WorkerArgs) -> Result<CompressJob> {
        let j = &self.job;
        let targets = j
            .targets
            .iter()
            .map(|t| t.parse().map_err(anyhow::Error::msg))
            .collect::<Result<_>>()?;
        Ok(CompressJob {
            model: ModelSource {
                name: self.model.path().to_string_lossy().into_owned(),
                width: 1.0,
                input_shape: None,
            },
            data: DataSpec {
                source: j.data.parse().map_err(anyhow::Error::msg)?,
                options: LoadOptions {
                    val_fraction: j.val_fraction,
                    image_size: j.image_size,
                },
                resize: j.resize,
            },
            device: a.device,
            learner: j.learner.clone(),
            optimizer: j.optimizer.clone(),
            trials: Some(j.trials),
            targets,
            python: a.python.clone(),
            reward: j.reward,
            set: j.set.clone(),
            optimizer_set: j.optimizer_set.clone(),
            finetune_steps: j.finetune_steps,
            bn_images: j.bn_images,
            batch_size: j.batch_size,
            lr: j.lr,
            retraining: Retraining {
                epochs: j.retrain_epochs,
                distill: j.distill,
            },
            jobs: a.jobs,
            threads_per_trial: a.threads_per_trial,
            baseline_epochs: 0,
            study: StudyLocation::Postgres(Box::new(a.study.clone())),
            resume: true,
            seed: j.seed,
            export: None,
            export_int8: false,
            report: None,
            force: false,
            no_report: true,
            limits: j.limits,
            worker: a.options,
            finish: false,
            progress: a.progress,
        })
    }
}

/// What a worker did.
#[derive(Debug, Clone, Copy)]
pub struct Worked {
    /// Trials it ran.
    pub ran: u32,
    /// Where the study is now.
    pub progress: super::study::Progress,
    /// The study's budget.
    pub budget: u32,
}

/// `pf worker`: joins the shared study, runs trials until its budget is
/// used up (or `--max-trials`), and returns what it did.
pub fn run_worker(a: &WorkerArgs, joined: &Joined, mut rt: Runtime) -> Result<Worked> {
    let job = joined.compress_job(a)?;
    rt.search_budget = Some(joined.job.trials);
    let plugins = Plugins::load(&job, &rt)?;
    let prepared = prepare(&job, &rt, &plugins, true)?;
    let study = PgStudy::open(&a.study, true)?;
    let meta = study.meta().clone();
    check_same_search(&meta, &prepared, &a.study)?;
    rt.gate
        .check_trials(meta.trials)
        .map_err(anyhow::Error::from)?;
    let threads = threads_per_trial(job.threads_per_trial, job.jobs);
    let setup = prepared.setup(&job, &rt, &plugins, &meta, threads);
    let timeout = joined.job.heartbeat_timeout_seconds;
    let (ran, _) = work(&setup, &a.study, &a.options, timeout)?;
    Ok(Worked {
        ran,
        progress: study.progress()?,
        budget: meta.trials,
    })
}

/// Refuses to work on a study whose search differs from the one this
/// worker rebuilt (another learner or optimizer digest, other data, …).
fn check_same_search(meta: &StudyMeta, prepared: &Prepared, at: &PgLocation) -> Result<()> {
    let mut wanted = prepared.meta.clone();
    wanted.baseline.model = meta.baseline.model.clone();
    (wanted.trials, wanted.created, wanted.jobs) = (meta.trials, meta.created, meta.jobs);
    resume::check(meta, &wanted, &at.display())
}

/// What `pf compress --study postgres://…` ended with.
pub enum SharedEnd {
    /// Every trial is finished and the best is re-trained and exported.
    Finished(Box<Finished>),
    /// This process stopped at `--max-trials` before the study finished.
    Stopped(Worked),
}

/// `pf compress --study postgres://…`: creates the shared study (or checks
/// an existing one as `--resume` does), works on it as a worker, and once
/// every trial is finished re-trains and exports the best. With `--finish`
/// it does only the last step.
pub fn compress_shared(
    job: &CompressJob,
    mut rt: Runtime,
    out: Outputs,
    at: &PgLocation,
) -> Result<SharedEnd> {
    let start = Instant::now();
    rt.search_budget = Some(job.trials.unwrap_or(job::DEFAULT_TRIALS));
    let plugins = Plugins::load(job, &rt)?;
    let exists = PgStudy::exists(at)?;
    if (job.resume || job.finish) && !exists {
        bail!(
            "study {} does not exist; start it with `pf compress --study URL` (without --resume \
             or --finish)",
            at.display()
        );
    }
    let prepared = prepare(job, &rt, &plugins, exists)?;
    let mut study = if exists {
        let s = PgStudy::open(at, true)?;
        let mut wanted = prepared.meta.clone();
        (wanted.trials, wanted.created, wanted.jobs) =
            (s.meta().trials, s.meta().created, s.meta().jobs);
        resume::check(s.meta(), &wanted, &at.display())?;
        s
    } else {
        let model = tempfile::Builder::new().suffix(".pf").tempfile()?;
        crate::model::save(&prepared.base, model.path())?;
        let bytes = std::fs::read(model.path())?;
        let parts = SharedParts {
            job: serde_json::to_string(&SharedJob::of(job, &plugins))?,
            model_sha256: crate::io::sha256_hex(&bytes),
            model: bytes,
        };
        PgStudy::create_shared(at, &prepared.meta, &parts)?
    };
    let meta = study.meta().clone();
    rt.gate
        .check_trials(meta.trials)
        .map_err(anyhow::Error::from)?;
    let threads = threads_per_trial(job.threads_per_trial, job.jobs);
    if job.progress && !job.finish {
        job::announce(job, &plugins, &meta, &prepared, threads);
    }
    let setup = prepared.setup(job, &rt, &plugins, &meta, threads);
    let search_start = Instant::now();
    let (ran, best_model) = match job.finish {
        true => (0, None),
        false => {
            let timeout = match study.shared_parts()? {
                Some(p) => serde_json::from_str::<SharedJob>(&p.job)?.heartbeat_timeout_seconds,
                None => job.worker.heartbeat_seconds * TIMEOUT_BEATS,
            };
            work(&setup, at, &job.worker, timeout)?
        }
    };
    let search_seconds = search_start.elapsed().as_secs_f64();
    let progress = study.progress()?;
    if progress.counted < meta.trials {
        if job.finish {
            bail!(
                "study {} is not finished: {} of its {} trials are done ({} running); finish it \
                 once the workers are done",
                at.display(),
                progress.counted,
                meta.trials,
                progress.running
            );
        }
        return Ok(SharedEnd::Stopped(Worked {
            ran,
            progress,
            budget: meta.trials,
        }));
    }
    let trials = study.trials()?;
    let (best, result) = finish_study(
        job, &plugins, &prepared, &setup, &mut study, &trials, best_model, &out,
    )?;
    Ok(SharedEnd::Finished(Box::new(Finished {
        study: at.display(),
        outputs: out,
        meta,
        trials,
        best,
        result,
        ran,
        baseline_latency_ms: prepared.latency.as_ref().map(|(_, ms)| *ms),
        search_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
    })))
}

/// Works on the study until its budget is used up or `options.max_trials`
/// are claimed, `setup.jobs` trials at once (each on its own connection);
/// returns the trials run and the best model among them.
fn work(
    setup: &SearchSetup<'_>,
    at: &PgLocation,
    options: &WorkerOptions,
    timeout_seconds: f64,
) -> Result<(u32, Option<(u32, Model)>)> {
    let claimed = AtomicU32::new(0);
    let best: Mutex<Option<(f64, u32, Model)>> = Mutex::new(None);
    let ran = AtomicU32::new(0);
    with_kernel_threads(setup.threads_per_trial, || {
        std::thread::scope(|scope| -> Result<()> {
            let lanes: Vec<_> = (0..setup.jobs.max(1))
                .map(|_| {
                    scope.spawn(|| lane(setup, at, options, timeout_seconds, &claimed, &ran, &best))
                })
                .collect();
            for l in lanes {
                l.join()
                    .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
            }
            Ok(())
        })
    })?;
    let best = best.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok((ran.into_inner(), best.map(|(_, n, m)| (n, m))))
}

/// One claim-run-commit loop of a worker.
fn lane(
    setup: &SearchSetup<'_>,
    at: &PgLocation,
    options: &WorkerOptions,
    timeout_seconds: f64,
    claimed: &AtomicU32,
    ran: &AtomicU32,
    best: &Mutex<Option<(f64, u32, Model)>>,
) -> Result<()> {
    let mut study = PgStudy::open(at, true)?;
    let worker = super::record::this_worker();
    let running = RunningTrial {
        learner_sha256: setup.learner.sha256.clone(),
        optimizer_sha256: setup.optimizer.sha256.clone(),
        seed: setup.seed,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(setup.threads_per_trial.max(1))
        .build()?;
    let beat = Duration::from_secs_f64(options.heartbeat_seconds.max(0.1));
    loop {
        // Reserve one of the --max-trials before claiming.
        let reserved = claimed.fetch_add(1, Ordering::SeqCst);
        if options.max_trials.is_some_and(|m| reserved >= m) {
            return Ok(());
        }
        let claim = study.claim(
            timeout_seconds,
            setup.trials,
            &worker,
            &running,
            |past, next| {
                let s = replay_and_suggest(setup, past, next)?;
                let params = match &s.params {
                    Ok(p) => setup.learner_params(p).iter().map(to_record).collect(),
                    Err(_) => setup.fixed.iter().map(to_record).collect(),
                };
                Ok((s, params))
            },
        )?;
        let (number, suggestion) = match claim {
            Claim::Done => return Ok(()),
            Claim::Wait => {
                claimed.fetch_sub(1, Ordering::SeqCst);
                std::thread::sleep(beat);
                continue;
            }
            Claim::Trial { number, suggestion } => (number, suggestion),
        };
        let heartbeat = Heartbeat::start(at, &study, number, beat)?;
        let (record, model) = run_claimed(setup, &pool, &suggestion);
        drop(heartbeat);
        if !study.finish_trial(&record)? {
            crate::progress::line(&format!(
                "warning: trial {number} was failed as lost (no heartbeat for {timeout_seconds} s) \
                 while it ran here; its result is discarded"
            ));
            continue;
        }
        ran.fetch_add(1, Ordering::SeqCst);
        if setup.progress {
            crate::progress::line(&trial_line(&record));
        }
        if let (Some(m), Some(r)) = (model, record.reward) {
            let mut best = best.lock().unwrap_or_else(|e| e.into_inner());
            if best
                .as_ref()
                .is_none_or(|(br, bn, _)| r > *br || (r == *br && number < *bn))
            {
                *best = Some((r, number, m));
            }
        }
    }
}

/// Runs a claimed trial as `pf compress` runs one.
fn run_claimed(
    setup: &SearchSetup<'_>,
    pool: &rayon::ThreadPool,
    s: &Suggestion,
) -> (TrialRecord, Option<Model>) {
    match &s.params {
        Ok(p) => pool.install(|| setup.run_trial(s.number, p, s.seconds)),
        Err(e) => {
            let timings = super::Timings {
                suggest: s.seconds,
                total: s.seconds,
                ..Default::default()
            };
            (
                setup.failed(s.number, &setup.fixed, e.clone(), timings),
                None,
            )
        }
    }
}

/// A fresh optimizer, told the study's history in number order (`suggest`
/// for every trial, `observe` with the recorded parameters for each
/// finished one), then asked for trial `next`.
fn replay_and_suggest(setup: &SearchSetup<'_>, past: &[Past], next: u32) -> Result<Suggestion> {
    let mut opt = setup.start_optimizer()?;
    for p in past {
        let s = setup.suggest(&mut opt, p.number());
        let (Past::Finished(t), Ok(_)) = (p, &s.params) else {
            continue;
        };
        let recorded: Vec<Param> = t
            .params
            .iter()
            .filter(|p| setup.space.iter().any(|d| d.name == p.name))
            .map(from_record)
            .collect();
        // An optimizer that cannot observe fails its later suggestions,
        // which are recorded as failed trials.
        let _ = opt.observe(&recorded, &outcome_of(t));
    }
    Ok(setup.suggest(&mut opt, next))
}

/// The summary line of a worker.
pub fn summary(w: &Worked) -> String {
    format!(
        "worker ran {} trial{}; the study has {} of its {} trials ({} running, {} lost to stopped workers)",
        w.ran,
        if w.ran == 1 { "" } else { "s" },
        w.progress.counted,
        w.budget,
        w.progress.running,
        w.progress.lost
    )
}
