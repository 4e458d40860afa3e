//! The search loop. Trials run in rounds of `jobs`: the optimizer suggests
//! one set of parameters per trial of the round, the trials run at once
//! (each in its own plugin store and its own thread pool), every finished
//! trial is committed to the study as soon as it ends, and when the round is
//! over the optimizer observes the outcomes in trial order. The trial table
//! is therefore a function of the seed and `jobs` alone, and a resumed study
//! replays the recorded rounds into a fresh optimizer before it goes on, so
//! it continues exactly as an uninterrupted run would have.

use super::record::{ParamRecord, Timings, TrialRecord, TrialStatus, ValueRecord};
use super::study::StudyStore;
use super::Reward;
use crate::model::{Footprint, Model, Target};
use crate::plugin::runtime::{Outcome, Plugin, Runtime};
use crate::plugin::{
    space, trial, FineTune, OptimizerInstance, Param, ParamSpec, ParamValue, TrialData,
};
use anyhow::{bail, Context, Result};
use rand::RngCore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// Everything a search needs.
pub struct SearchSetup<'a> {
    /// The plugin runtime.
    pub runtime: &'a Runtime,
    /// The learner.
    pub learner: Arc<Plugin>,
    /// The optimizer.
    pub optimizer: Arc<Plugin>,
    /// The optimizer's own settings (`--optimizer-set`).
    pub optimizer_options: Vec<Param>,
    /// The uncompressed model every trial starts from.
    pub baseline: &'a Model,
    /// Its footprint.
    pub baseline_footprint: Footprint,
    /// Training, validation and normalisation for the trials.
    pub data: Arc<TrialData>,
    /// The dimensions the optimizer searches.
    pub space: Vec<ParamSpec>,
    /// Parameters the user fixed.
    pub fixed: Vec<Param>,
    /// The budget every result must meet (with a latency target alone,
    /// each trial's FLOPs target comes from its `flops_ratio` instead).
    pub target: Target,
    /// Whether the learner is handed the target (not in a control run).
    pub learner_target: bool,
    /// A bound on the candidates' measured latency, if any.
    pub latency: Option<super::latency::LatencyConstraint>,
    /// What the optimizer maximises.
    pub reward: Reward,
    /// The study's seed.
    pub seed: u64,
    /// Trials in the study (finished ones included).
    pub trials: u32,
    /// Trials run at once.
    pub jobs: u32,
    /// Threads each running trial computes with.
    pub threads_per_trial: usize,
    /// Host fine-tuning steps per trial (unless the trial's
    /// `finetune.steps` says otherwise).
    pub finetune_steps: u64,
    /// Training images each trial's batch-norm statistics are re-estimated
    /// on before it is evaluated (0: not re-estimated).
    pub bn_images: usize,
    /// Fine-tuning settings.
    pub finetune: FineTune,
    /// Show progress bars and one line per trial.
    pub progress: bool,
    /// Whether the optimizer's start-up notes were printed (they are
    /// printed once, not again for each replay).
    pub optimizer_announced: AtomicBool,
}

/// What a search ended with.
pub struct SearchOutcome {
    /// Every finished trial, by number.
    pub trials: Vec<TrialRecord>,
    /// Trials this call ran (the rest were in the study already).
    pub ran: u32,
    /// The best trial's model, when this call ran that trial.
    pub best_model: Option<(u32, Model)>,
}

/// The seed of trial `number` of a study seeded `seed`.
pub fn trial_seed(seed: u64, number: u32) -> u64 {
    crate::rng::stream(seed, &["trial", &number.to_string()]).next_u64()
}

/// The best complete trial: the highest reward, the earliest on ties.
pub fn best_of(trials: &[TrialRecord]) -> Option<&TrialRecord> {
    trials
        .iter()
        .filter(|t| t.status == TrialStatus::Complete)
        .filter(|t| t.reward.is_some_and(f64::is_finite))
        .fold(None, |best: Option<&TrialRecord>, t| match best {
            Some(b) if b.reward >= t.reward => Some(b),
            _ => Some(t),
        })
}

/// A parameter as the study stores it.
pub fn to_record(p: &Param) -> ParamRecord {
    ParamRecord {
        name: p.name.clone(),
        value: match &p.value {
            ParamValue::Float(x) => ValueRecord::Float(*x),
            ParamValue::Int(i) => ValueRecord::Int(*i),
            ParamValue::Boolean(b) => ValueRecord::Boolean(*b),
            ParamValue::Choice(s) => ValueRecord::Choice(s.clone()),
        },
    }
}

/// A stored parameter as plugins take it.
pub fn from_record(p: &ParamRecord) -> Param {
    Param {
        name: p.name.clone(),
        value: match &p.value {
            ValueRecord::Float(x) => ParamValue::Float(*x),
            ValueRecord::Int(i) => ParamValue::Int(*i),
            ValueRecord::Boolean(b) => ParamValue::Boolean(*b),
            ValueRecord::Choice(s) => ParamValue::Choice(s.clone()),
        },
    }
}

/// The optimizer's outcome for a finished trial.
pub(super) fn outcome_of(t: &TrialRecord) -> Outcome {
    match (t.status, t.reward) {
        (TrialStatus::Complete, Some(r)) => Outcome::Reward(r),
        _ => Outcome::Failed(t.error.clone().unwrap_or_else(|| "failed".into())),
    }
}

/// What one trial runs with, from its suggestion.
struct TrialSettings {
    /// The learner's parameters.
    learner: Vec<Param>,
    /// The learner's target (none in a control run).
    target: Option<Target>,
    /// Fine-tuning steps.
    steps: u64,
    /// Fine-tuning settings.
    finetune: FineTune,
}

/// What the optimizer suggested for a trial: its parameters, or why it
/// could not.
pub(super) struct Suggestion {
    pub(super) number: u32,
    pub(super) params: Result<Vec<Param>, String>,
    pub(super) seconds: f64,
}

impl SearchSetup<'_> {
    pub(super) fn failed(
        &self,
        number: u32,
        params: &[Param],
        error: String,
        timings: Timings,
    ) -> TrialRecord {
        let (host, pid) = super::record::this_worker();
        TrialRecord {
            number,
            status: TrialStatus::Failed,
            params: params.iter().map(to_record).collect(),
            seed: trial_seed(self.seed, number),
            accuracy: None,
            loss: None,
            footprint: None,
            target_ratio: None,
            latency_ms: None,
            reward: None,
            error: Some(error),
            timings,
            learner_sha256: self.learner.sha256.clone(),
            optimizer_sha256: self.optimizer.sha256.clone(),
            worker_host: Some(host),
            worker_pid: Some(pid),
        }
    }

    /// The learner's full parameter list: the user's fixed values, then the
    /// optimizer's.
    pub(super) fn learner_params(&self, suggested: &[Param]) -> Vec<Param> {
        self.fixed.iter().chain(suggested).cloned().collect()
    }

    /// What one trial runs with: the learner's parameters (the host's own
    /// dimensions taken out), its target, and its fine-tuning settings.
    fn trial_settings(&self, suggested: &[Param]) -> Result<TrialSettings, String> {
        let host = super::host_space::split(suggested)?;
        let flops_dimension = self.latency.as_ref().is_some_and(|l| l.flops_dimension);
        let target = match (flops_dimension, host.flops_target) {
            (true, Some(t)) => Some(t),
            (true, None) => {
                return Err(format!(
                    "the suggestion has no `{}` in (0, 1]",
                    super::latency::FLOPS_RATIO
                ))
            }
            (false, _) => self.learner_target.then_some(self.target),
        };
        let mut finetune = self.finetune.clone();
        if let Some(lr) = host.lr {
            finetune.lr = lr;
        }
        Ok(TrialSettings {
            learner: host.learner,
            target,
            steps: host.steps.unwrap_or(self.finetune_steps),
            finetune,
        })
    }

    /// Runs one trial: compress a fresh copy of the baseline, fine-tune,
    /// evaluate on the validation split, check the target, reward. Every
    /// failure becomes a failed record; the model comes back only when the
    /// trial is complete.
    pub fn run_trial(
        &self,
        number: u32,
        suggested: &[Param],
        suggest_seconds: f64,
    ) -> (TrialRecord, Option<Model>) {
        let start = Instant::now();
        let params = self.learner_params(suggested);
        let mut timings = Timings {
            suggest: suggest_seconds,
            ..Timings::default()
        };
        let settings = match self.trial_settings(suggested) {
            Ok(x) => x,
            Err(e) => return (self.failed(number, &params, e, timings), None),
        };
        // The host measures every trial against a budget; a control run's
        // is the baseline's FLOPs, which its learner is not told of.
        let target = settings.target.unwrap_or(self.target);
        let spec = trial::TrialSpec {
            params: self.learner_params(&settings.learner),
            finetune_steps: settings.steps,
            finetune: settings.finetune,
            seed: trial_seed(self.seed, number),
            target: settings.target,
        };
        let result = trial::run_learner(
            self.runtime,
            &self.learner,
            self.baseline,
            self.data.clone(),
            &spec,
        );
        let mut result = match result {
            Ok(r) => r,
            Err(e) => {
                timings.total = start.elapsed().as_secs_f64();
                return (self.failed(number, &params, e.to_string(), timings), None);
            }
        };
        [timings.compress, timings.finetune, timings.finish] = result.seconds;
        let t_eval = Instant::now();
        // Statistics that describe this trial's network, not the baseline's
        // or a moving average over fine-tuning.
        if let Err(e) = crate::train::batchnorm::reestimate(
            &mut result.model,
            &self.data.train,
            &self.data.norm,
            self.bn_images,
            64,
            trial_seed(self.seed, number),
        ) {
            timings.total = start.elapsed().as_secs_f64();
            let msg = format!("re-estimating batch-norm statistics: {e:#}");
            return (self.failed(number, &params, msg, timings), None);
        }
        let measured =
            crate::train::evaluate(&result.model, &self.data.val, &self.data.norm, 256, false)
                .and_then(|m| Ok((m, result.model.footprint()?)));
        timings.evaluate = t_eval.elapsed().as_secs_f64();
        timings.total = start.elapsed().as_secs_f64();
        let (metrics, footprint) = match measured {
            Ok(x) => x,
            Err(e) => {
                let msg = format!("evaluating the compressed model: {e:#}");
                return (self.failed(number, &params, msg, timings), None);
            }
        };
        let ratio = target.ratio_of(&footprint, &self.baseline_footprint);
        let mut record = self.failed(number, &params, String::new(), timings);
        record.accuracy = Some(metrics.accuracy);
        record.loss = Some(metrics.loss);
        record.footprint = Some(footprint);
        record.target_ratio = Some(ratio);
        let reward = self.reward.of(
            metrics.accuracy,
            &footprint,
            &self.baseline_footprint,
            &target,
        );
        let mut error = if !metrics.loss.is_finite() || !metrics.accuracy.is_finite() {
            Some(format!(
                "the compressed model is broken: validation loss {}, accuracy {}",
                metrics.loss, metrics.accuracy
            ))
        } else if !target.is_met(&footprint, &self.baseline_footprint) {
            let m = target.measure;
            Some(format!(
                "missed the target: {} {} against at most {:.0} ({} × the baseline's {}), ratio {:.4}",
                footprint.get(m),
                m.unit(),
                (target.ratio * self.baseline_footprint.get(m) as f64).floor(),
                target.ratio,
                self.baseline_footprint.get(m),
                ratio
            ))
        } else if !reward.is_finite() {
            Some(format!("the reward is {reward}"))
        } else {
            None
        };
        // Only a candidate that would otherwise be accepted is timed.
        if let (Some(l), None) = (&self.latency, &error) {
            let t = Instant::now();
            match l.meter.median_ms(&result.model) {
                Ok(ms) => {
                    record.latency_ms = Some(ms);
                    if ms > l.target.ms {
                        error = Some(format!(
                            "missed the latency target: {ms:.3} ms against at most {} ms ({})",
                            l.target.ms,
                            l.meter.describe()
                        ));
                    }
                }
                Err(e) => error = Some(format!("timing the candidate: {e:#}")),
            }
            record.timings.evaluate += t.elapsed().as_secs_f64();
            record.timings.total = start.elapsed().as_secs_f64();
        }
        match error {
            Some(e) => {
                record.error = Some(e);
                (record, None)
            }
            None => {
                record.status = TrialStatus::Complete;
                record.error = None;
                record.reward = Some(reward);
                (record, Some(result.model))
            }
        }
    }

    /// Runs a recorded trial again (same parameters, same seed, the same
    /// number of threads) and returns its model: how the best trial is
    /// rebuilt when its model was not kept (it ran before a resume).
    pub fn rerun(&self, record: &TrialRecord) -> Result<Model> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads_per_trial.max(1))
            .build()?;
        with_kernel_threads(self.threads_per_trial, || {
            pool.install(|| self.rerun_here(record))
        })
    }

    fn rerun_here(&self, record: &TrialRecord) -> Result<Model> {
        let suggested: Vec<Param> = record
            .params
            .iter()
            .map(from_record)
            .filter(|p| !self.fixed.iter().any(|f| f.name == p.name))
            .collect();
        let (again, model) = self.run_trial(record.number, &suggested, 0.0);
        let model = model.with_context(|| {
            format!(
                "trial {} did not complete when run again: {}",
                record.number,
                again.error.unwrap_or_default()
            )
        })?;
        if again.accuracy != record.accuracy {
            warn(&format!(
                "trial {} ran again to {:?} validation accuracy, recorded {:?}",
                record.number, again.accuracy, record.accuracy
            ));
        }
        Ok(model)
    }

    pub(super) fn start_optimizer(&self) -> Result<OptimizerInstance> {
        let seed = crate::rng::stream(self.seed, &["optimizer"]).next_u64();
        let mut opt = self.runtime.optimizer(&self.optimizer, seed)?;
        opt.create(&self.space, self.trials.max(1), &self.optimizer_options)
            .with_context(|| format!("starting optimizer `{}`", self.optimizer.name()))?;
        // What the optimizer says of its plan (its start-up phase scaled to
        // the budget, say), once, as plain escaped lines.
        if self.progress && !self.optimizer_announced.swap(true, Ordering::Relaxed) {
            let name = self.optimizer.name();
            for line in opt.state().log.iter().filter(|l| l.is_notable()).take(8) {
                let message = line.message.trim_start();
                let message = message
                    .strip_prefix(name)
                    .and_then(|m| m.strip_prefix(':'))
                    .unwrap_or(message);
                crate::progress::line(&format!(
                    "{name}: {}",
                    crate::plugin::state::printable(message.trim_start(), 300)
                ));
            }
        }
        Ok(opt)
    }

    pub(super) fn suggest(&self, opt: &mut OptimizerInstance, number: u32) -> Suggestion {
        let t = Instant::now();
        let params = opt.suggest().map_err(|e| e.to_string()).and_then(|p| {
            space::check_params(&self.space, &p)
                .map(|_| p)
                .map_err(|e| format!("optimizer `{}` suggested {e}", self.optimizer.name()))
        });
        Suggestion {
            number,
            params,
            seconds: t.elapsed().as_secs_f64(),
        }
    }
}

/// Runs `f` with Candle's and pf's CPU kernels splitting their work `n`
/// ways: they size their parallel loops from `RAYON_NUM_THREADS` on every
/// call, not from the pool they run in, so a trial in a one-thread pool
/// would otherwise still cut its work for every core and its tasks would
/// queue behind each other's. Only the search sets it, before it starts trial
/// threads and after they are joined.
pub(super) fn with_kernel_threads<T>(n: usize, f: impl FnOnce() -> T) -> T {
    let before = std::env::var_os("RAYON_NUM_THREADS");
    std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    let out = f();
    match before {
        Some(v) => std::env::set_var("RAYON_NUM_THREADS", v),
        None => std::env::remove_var("RAYON_NUM_THREADS"),
    }
    out
}

/// Prints a warning of the loop on standard error.
fn warn(msg: &str) {
    crate::progress::line(&format!("warning: {msg}"));
}

/// Runs (or continues) the search stored in `store` until it holds
/// `setup.trials` trials.
pub fn run_search(setup: &SearchSetup<'_>, store: &mut dyn StudyStore) -> Result<SearchOutcome> {
    with_kernel_threads(setup.threads_per_trial, || search(setup, store))
}

fn search(setup: &SearchSetup<'_>, store: &mut dyn StudyStore) -> Result<SearchOutcome> {
    if setup.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let mut trials = store.trials()?;
    let jobs = setup.jobs;
    let mut opt = setup.start_optimizer()?;
    // Replay: every round with recorded trials is suggested again, and its
    // outcomes observed, exactly as the first run did.
    let recorded = trials.len() as u32;
    let total = trials
        .iter()
        .map(|t| t.number + 1)
        .max()
        .unwrap_or(0)
        .max(setup.trials);
    let mut number = 0u32;
    let mut pending: Vec<(Suggestion, Option<TrialRecord>)> = Vec::new();
    while trials.iter().any(|t| t.number >= number) {
        let round_end = number.saturating_add(jobs).min(total);
        let round: Vec<Suggestion> = (number..round_end)
            .map(|n| setup.suggest(&mut opt, n))
            .collect();
        number = round_end;
        let done: Vec<Option<TrialRecord>> = round
            .iter()
            .map(|s| trials.iter().find(|t| t.number == s.number).cloned())
            .collect();
        if done.iter().all(Option::is_some) {
            for (s, t) in round.iter().zip(&done) {
                observe(setup, &mut opt, s, t.as_ref().expect("checked"))?;
            }
        } else {
            // The round a kill interrupted: run what it did not finish.
            if let Some(t) = trials.iter().find(|t| t.number >= round_end) {
                bail!(
                    "the study records trial {} but not every trial of the round {}..{} before \
                     it; it was not written by `pf compress --jobs {jobs}` (or rows were deleted)",
                    t.number,
                    round_end.saturating_sub(jobs),
                    round_end
                );
            }
            pending = round.into_iter().zip(done).collect();
            break;
        }
    }
    let show = setup.progress;
    let bar = crate::progress::bar(total as u64, "trials", show);
    bar.set_position(recorded as u64);
    let pools: Vec<rayon::ThreadPool> = (0..jobs.min(total.max(1)))
        .map(|_| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(setup.threads_per_trial.max(1))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let mut ran = 0;
    let mut best_model: Option<(u32, Model)> = None;
    // The best so far as `best_of` ranks it: the highest reward, the lowest
    // number on ties (parallel trials finish in any order).
    let mut best_key = best_of(&trials).and_then(|t| t.reward.map(|r| (r, t.number)));
    loop {
        let round: Vec<(Suggestion, Option<TrialRecord>)> = if !pending.is_empty() {
            std::mem::take(&mut pending)
        } else {
            if number >= total {
                break;
            }
            let end = number.saturating_add(jobs).min(total);
            let r = (number..end)
                .map(|n| (setup.suggest(&mut opt, n), None))
                .collect();
            number = end;
            r
        };
        let to_run: Vec<&Suggestion> = round
            .iter()
            .filter(|(_, done)| done.is_none())
            .map(|(s, _)| s)
            .collect();
        let (tx, rx) = mpsc::channel::<(TrialRecord, Option<Model>)>();
        let mut finished: Vec<TrialRecord> = Vec::new();
        std::thread::scope(|scope| -> Result<()> {
            for (slot, s) in to_run.iter().enumerate() {
                super::interrupt::trial_started(s.number);
                let tx = tx.clone();
                let pool = &pools[slot];
                let s: &Suggestion = s;
                scope.spawn(move || {
                    let out = match &s.params {
                        Ok(p) => pool.install(|| setup.run_trial(s.number, p, s.seconds)),
                        Err(e) => (
                            setup.failed(
                                s.number,
                                &setup.fixed,
                                e.clone(),
                                Timings {
                                    suggest: s.seconds,
                                    total: s.seconds,
                                    ..Timings::default()
                                },
                            ),
                            None,
                        ),
                    };
                    // The receiver outlives every sender in this scope.
                    let _ = tx.send(out);
                });
            }
            drop(tx);
            for (record, model) in rx {
                store.record(&record)?;
                super::interrupt::trial_recorded(record.number);
                bar.inc(1);
                if show {
                    crate::progress::line(&trial_line(&record));
                }
                if let (Some(m), Some(r)) = (model, record.reward) {
                    let n = record.number;
                    if best_key.is_none_or(|(br, bn)| r > br || (r == br && n < bn)) {
                        best_key = Some((r, n));
                        best_model = Some((n, m));
                    }
                }
                finished.push(record);
            }
            Ok(())
        })?;
        ran += finished.len() as u32;
        trials.extend(finished);
        return_freed_memory();
        trials.sort_by_key(|t| t.number);
        for (s, _) in &round {
            let t = trials
                .iter()
                .find(|t| t.number == s.number)
                .expect("every trial of the round finished");
            observe(setup, &mut opt, s, t)?;
        }
    }
    bar.finish_and_clear();
    // A best trial recorded before a resume may beat every new one.
    if let (Some(best), Some((n, _))) = (best_of(&trials), &best_model) {
        if best.number != *n {
            best_model = None;
        }
    }
    Ok(SearchOutcome {
        trials,
        ran,
        best_model,
    })
}

/// pf keeps freed memory in the heap during training (see `main.rs`), so a
/// trial that briefly needed much more than the others (a plugin that grew
/// its memory or flooded the host with work) would leave the process at
/// that high-water mark for the rest of the study. Between rounds nothing of
/// a trial is alive: give the free pages back (a few milliseconds per round).
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Tells the optimizer how a trial went. Trials it could not suggest are not
/// observed (there are no parameters to observe).
fn observe(
    setup: &SearchSetup<'_>,
    opt: &mut OptimizerInstance,
    s: &Suggestion,
    t: &TrialRecord,
) -> Result<()> {
    let params = match &s.params {
        Ok(p) => p,
        Err(e) => {
            if t.status == TrialStatus::Complete {
                warn(&format!(
                    "optimizer `{}` could not suggest trial {} again ({e}); the study records it \
                     as complete, but the optimizer will not learn from it",
                    setup.optimizer.name(),
                    t.number
                ));
            }
            return Ok(());
        }
    };
    // The recorded parameters, not a replay's suggestion: the optimizer
    // learns what actually ran.
    let recorded: Vec<Param> = t
        .params
        .iter()
        .filter(|p| setup.space.iter().any(|d| d.name == p.name))
        .map(from_record)
        .collect();
    if recorded
        .iter()
        .map(to_record)
        .ne(params.iter().map(to_record))
    {
        warn(&format!(
            "optimizer `{}` suggested other parameters for trial {} than the study records; \
             continuing with the recorded ones",
            setup.optimizer.name(),
            t.number
        ));
    }
    // An optimizer that fails here fails its later suggestions too: those
    // trials are recorded as failed and the study goes on.
    if let Err(e) = opt.observe(&recorded, &outcome_of(t)) {
        warn(&format!(
            "optimizer `{}` failed to observe trial {}: {e}",
            setup.optimizer.name(),
            t.number
        ));
    }
    Ok(())
}

/// One line about a finished trial.
pub fn trial_line(t: &TrialRecord) -> String {
    match t.status {
        TrialStatus::Complete => format!(
            "trial {:>3}  reward {:.4}  accuracy {:.2}%  target ratio {:.4}{}  {:.1}s",
            t.number,
            t.reward.unwrap_or(f64::NAN),
            t.accuracy.unwrap_or(f64::NAN) * 100.0,
            t.target_ratio.unwrap_or(f64::NAN),
            t.latency_ms
                .map_or(String::new(), |ms| format!("  latency {ms:.3} ms")),
            t.timings.total
        ),
        // One line per trial: the study keeps the whole (bounded) reason.
        TrialStatus::Failed => format!(
            "trial {:>3}  failed: {}",
            t.number,
            crate::plugin::bounds::printable(
                t.error.as_deref().unwrap_or("unknown"),
                crate::plugin::bounds::MAX_LINE_CHARS
            )
        ),
    }
}
