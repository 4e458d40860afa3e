//! What a search needs before its first trial, as a job decides it: the
//! plugins (through admission), the data, the baseline, the search space
//! and the latency bound. `pf compress` and `pf worker` prepare the same
//! way, so that a worker rebuilds exactly the search its study was made
//! for.

use super::host_space;
use super::job::CompressJob;
use super::latency::{LatencyConstraint, LatencyMeter, LiteRtMeter};
use super::target::{self, Targets};
use super::{learner_space, BaselineRecord, Reward, SearchSetup, StudyMeta};
use crate::data::{Normalization, Splits};
use crate::model::{Footprint, Model};
use crate::plugin::{space, FineTune, Param, ParamSpec, Plugin, PluginKind, Runtime, TrialData};
use crate::registry::resolve;
use anyhow::{bail, Context, Result};
use std::sync::Arc;

/// The plugins of a study and what they decide: the optimizer's options,
/// the targets and the reward.
pub struct Plugins {
    /// The learner.
    pub learner: Arc<Plugin>,
    /// The optimizer.
    pub optimizer: Arc<Plugin>,
    /// The optimizer's own settings.
    pub optimizer_options: Vec<Param>,
    /// The targets.
    pub targets: Targets,
    /// What the optimizer maximises.
    pub reward: Reward,
}

impl Plugins {
    /// Loads both plugins (through admission) and resolves the targets and
    /// the reward.
    pub fn load(job: &CompressJob, rt: &Runtime) -> Result<Plugins> {
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

/// A search ready to run: data, baseline, search space.
pub struct Prepared {
    /// The data's splits.
    pub splits: Splits,
    /// Its normalisation.
    pub norm: Normalization,
    /// What each trial trains and is judged on.
    pub data: Arc<TrialData>,
    /// The uncompressed model.
    pub base: Model,
    /// Its footprint.
    pub baseline_footprint: Footprint,
    /// The study's settings as this job decides them.
    pub meta: StudyMeta,
    /// The dimensions searched: the learner's, then the host's.
    pub searched: Vec<ParamSpec>,
    /// How many of them are the learner's.
    pub learner_dims: usize,
    /// The learner parameters fixed by the user.
    pub fixed: Vec<Param>,
    /// The latency bound and the baseline's latency, with a latency target.
    pub latency: Option<(LatencyConstraint, f64)>,
}

/// Loads the data and the baseline and works out the search space; a
/// search with nothing to vary is refused unless the study is `resuming`.
pub fn prepare(
    job: &CompressJob,
    rt: &Runtime,
    plugins: &Plugins,
    resuming: bool,
) -> Result<Prepared> {
    let (learner, targets) = (&plugins.learner, &plugins.targets);
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
    let norm = Normalization::for_model(&base.graph, &splits.train);
    let data = Arc::new(TrialData {
        train: splits.train.clone(),
        val: splits.val.clone(),
        norm: norm.clone(),
    });
    let baseline_footprint = base.footprint()?;
    let base_val = crate::train::evaluate(&base, &splits.val, &norm, 256, false)?;
    let learner_target = targets.for_learner.then_some(targets.footprint);
    let (mut searched, fixed) = learner_space::searched(
        rt,
        learner,
        &base,
        &data,
        &job.set,
        job.seed,
        learner_target,
    )?;
    let meta = job.meta(
        plugins,
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
    if searched.is_empty() && !resuming && meta.trials > 1 {
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
    Ok(Prepared {
        splits,
        norm,
        data,
        base,
        baseline_footprint,
        meta,
        searched,
        learner_dims,
        fixed,
        latency,
    })
}

impl Prepared {
    /// The search over this preparation, under the study's settings `meta`
    /// (a resumed or shared study's own), `jobs` trials at once with
    /// `threads_per_trial` threads each.
    pub fn setup<'a>(
        &'a self,
        job: &CompressJob,
        rt: &'a Runtime,
        plugins: &Plugins,
        meta: &StudyMeta,
        threads_per_trial: usize,
    ) -> SearchSetup<'a> {
        SearchSetup {
            runtime: rt,
            learner: plugins.learner.clone(),
            optimizer: plugins.optimizer.clone(),
            optimizer_options: plugins.optimizer_options.clone(),
            baseline: &self.base,
            baseline_footprint: self.baseline_footprint,
            data: self.data.clone(),
            space: self.searched.clone(),
            fixed: self.fixed.clone(),
            target: meta.target,
            learner_target: !meta.no_target,
            latency: self.latency.as_ref().map(|(l, _)| l.clone()),
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
        }
    }
}

/// Threads per trial: as asked, else the cores (`RAYON_NUM_THREADS`, else
/// the machine's) divided by `jobs`.
pub fn threads_per_trial(asked: Option<usize>, jobs: u32) -> usize {
    let cores = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    asked.unwrap_or((cores / jobs.max(1) as usize).max(1))
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
