//! `pf compress`: the automated search. An optimizer suggests learner
//! parameters, the learner compresses a copy of the baseline with fast
//! fine-tuning, the host evaluates it and rewards the optimizer; the best
//! candidate that meets the target is re-trained (optionally distilled from
//! the baseline), tested, saved and reported. The study itself runs in
//! [`pf::search::job`]; this parses its flags and prints its result.

use super::common::{print_json, si, DataArgs, DeviceArgs, ModelArgs};
use super::plugin::LimitArgs;
use anyhow::Result;
use clap::Args;
use pf::search::job::{self, CompressJob, Finished, SharedEnd};
use pf::search::retrain::Retraining;
use pf::search::target::TargetArg;
use pf::search::worker::WorkerOptions;
use pf::search::Reward;
use pf::search::StudyLocation;
use std::path::PathBuf;

/// Arguments of `pf compress`.
#[derive(Args)]
pub struct CompressArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// The learner: a .wasm component or the name of a built-in plugin.
    #[arg(
        long,
        short = 'p',
        default_value = "channel_pruned",
        value_name = "LEARNER"
    )]
    pub plugin: String,
    /// The optimizer: a .wasm component or the name of a built-in plugin.
    #[arg(long, short = 'O', default_value = "tpe", value_name = "OPTIMIZER")]
    pub optimizer: String,
    /// Trials in the study [default: 12; with --resume, the study's own
    /// number, and a larger one extends it].
    #[arg(long, value_name = "N")]
    trials: Option<u32>,
    /// The budget every result must meet; repeatable, one of each kind.
    /// MEASURE=RATIO of the baseline: flops=0.5 (MACs), params=0.25
    /// (non-zero parameters) or size=0.25 (stored bytes); and/or
    /// latency=MS[@THREADS]: the exported model's median latency in LiteRT
    /// on this machine (e.g. latency=2ms@1), measured for every candidate.
    /// With a latency target alone, the learner gets a FLOPs target whose
    /// ratio the optimizer searches (the `flops_ratio` dimension). `none`
    /// runs the learner without a target, as a control rewarded for
    /// accuracy. [default: the target the learner is made for, e.g.
    /// flops=0.5 for the channel pruners, params=0.25 for weight_sparse,
    /// size=0.25 for the quantizers; none for full_prec]
    #[arg(long, value_name = "TARGET")]
    target: Vec<TargetArg>,
    /// Python with the `ai-edge-litert` package, for a latency target
    /// [default: $PF_LITERT_PYTHON, else target/litert-venv of this pf's
    /// checkout, else python3].
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// What the optimizer maximises among models that meet the target
    /// [default: accuracy].
    #[arg(long, value_enum)]
    reward: Option<Reward>,
    /// A learner parameter fixed to a value instead of searched,
    /// NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// An option of the optimizer itself, NAME=VALUE (repeatable), e.g.
    /// `multivariate=true` for tpe; `pf plugin inspect OPTIMIZER` lists them.
    #[arg(long = "optimizer-set", value_name = "NAME=VALUE")]
    optimizer_set: Vec<String>,
    /// Host fine-tuning steps of each trial. Without it, the optimizer
    /// searches each trial's steps from 150 to 300 (the `finetune.steps`
    /// dimension); with it, every trial takes K.
    #[arg(long, value_name = "K")]
    finetune_steps: Option<u64>,
    /// Training images on which each trial's batch-norm statistics are
    /// re-estimated before it is evaluated (forward passes, no weight
    /// updates), so that a pruned or quantized network is judged with its
    /// own statistics; 0 turns it off.
    #[arg(long, default_value_t = 512, value_name = "N")]
    bn_images: usize,
    /// Fine-tuning batch size.
    #[arg(long, default_value_t = 64, value_name = "N")]
    batch_size: usize,
    /// Fine-tuning learning rate (constant, SGD with momentum 0.9; also
    /// re-training's peak rate). Without it, the optimizer searches each
    /// trial's rate from 0.001 to 0.03 (the `finetune.lr` dimension) and
    /// re-training uses 0.01; with it, every trial uses LR.
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,
    /// Epochs of re-training the best candidate with the whole training
    /// split (0: keep it as the trial left it).
    #[arg(long, default_value_t = 20, value_name = "E")]
    retrain_epochs: u64,
    /// Re-train with the uncompressed baseline as the teacher.
    #[arg(long)]
    distill: bool,
    /// Trials run at once, each in its own plugin store and thread pool. The
    /// trial table depends on it: keep it when resuming.
    #[arg(long, short = 'j', default_value_t = 1, value_name = "J")]
    jobs: u32,
    /// Threads each trial computes with (default: the cores divided by --jobs).
    #[arg(long, value_name = "N")]
    threads_per_trial: Option<usize>,
    /// Epochs to train a zoo baseline first (cached); a .pf model is used as
    /// it is.
    #[arg(long, default_value_t = 30, value_name = "N")]
    baseline_epochs: u64,
    /// The study: a SQLite file, or a study shared by many machines in
    /// PostgreSQL, postgres://USER@HOST/DB?study=NAME (password from the
    /// URL, PGPASSWORD or ~/.pgpass). The model and report are written
    /// beside a SQLite study by default (runs/a.db: runs/a.tflite,
    /// runs/a.pf, runs/a.html); for a PostgreSQL study they are named after
    /// it in the current folder. A PostgreSQL study is created (or, if it
    /// exists, checked as --resume does) and this process works on it as a
    /// `pf worker` does, beside any others; once every trial is finished it
    /// re-trains and exports the best (see docs/distributed.md).
    #[arg(long, default_value = "pf-out/study.db", value_name = "FILE|URL")]
    study: String,
    /// Continue the study instead of starting one.
    #[arg(long)]
    resume: bool,
    /// A PostgreSQL study: seconds between heartbeats of each running
    /// trial; a new study fails a trial as "worker lost" after 6 times this
    /// without one.
    #[arg(long, default_value_t = pf::search::worker::DEFAULT_HEARTBEAT_SECONDS, value_name = "SECS")]
    heartbeat: f64,
    /// A PostgreSQL study: run at most N trials here, then stop (0 creates
    /// the study for workers and runs none); the study is finished later
    /// with --finish.
    #[arg(long, value_name = "N")]
    max_trials: Option<u32>,
    /// A PostgreSQL study whose trials are all finished (by workers): only
    /// re-train, export and report its best trial, from any machine.
    #[arg(long)]
    finish: bool,
    /// Seed of the study: baseline, optimizer, every trial.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to save the compressed model: a .pf file (pf's format), a
    /// .tflite file (TensorFlow Lite) or an .onnx file (ONNX, for ONNX
    /// Runtime); float32, or int8 with --export-int8, with the .pf beside
    /// it [default: the study's name with .tflite].
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// With a .tflite or .onnx --export: write it int8 (int8 weights per
    /// channel, int8 activations with ranges from the model's trained
    /// quantizers or calibrated on 512 training images, float input and
    /// output; QDQ for ONNX), as `pf export --int8` does.
    #[arg(long)]
    export_int8: bool,
    /// Where to write the report (.html, or .svg for the plots alone)
    /// [default: the study's name with .html].
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Replace an existing model or report file. Without it, pf refuses to
    /// overwrite anything, except the outputs a resumed study (--resume)
    /// wrote itself.
    #[arg(long)]
    force: bool,
    /// Do not write a report.
    #[arg(long)]
    no_report: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print the result as JSON on standard output.
    #[arg(long)]
    json: bool,
}

impl CompressArgs {
    /// The study these flags ask for.
    fn job(&self) -> Result<CompressJob> {
        Ok(CompressJob {
            model: self.model.source(),
            data: self.data.spec(),
            device: self.device.device,
            learner: self.plugin.clone(),
            optimizer: self.optimizer.clone(),
            trials: self.trials,
            targets: self.target.clone(),
            python: self.python.clone(),
            reward: self.reward,
            set: self.set.clone(),
            optimizer_set: self.optimizer_set.clone(),
            finetune_steps: self.finetune_steps,
            bn_images: self.bn_images,
            batch_size: self.batch_size,
            lr: self.lr,
            retraining: Retraining {
                epochs: self.retrain_epochs,
                distill: self.distill,
            },
            jobs: self.jobs,
            threads_per_trial: self.threads_per_trial,
            baseline_epochs: self.baseline_epochs,
            study: StudyLocation::parse(&self.study)?,
            resume: self.resume,
            worker: WorkerOptions {
                heartbeat_seconds: self.heartbeat,
                max_trials: self.max_trials,
            },
            finish: self.finish,
            seed: self.seed,
            export: self.export.clone(),
            export_int8: self.export_int8,
            report: self.report.clone(),
            force: self.force,
            no_report: self.no_report,
            limits: self.limits.values(),
            progress: !self.json,
        })
    }
}

/// Runs `pf compress`.
pub fn run(a: CompressArgs) -> Result<()> {
    let job = a.job()?;
    let outputs = job.check()?;
    let runtime = a.limits.runtime("compress")?;
    // Ctrl-C records the running trials of a SQLite study as interrupted
    // and prints this; a shared study's running trials are failed as lost
    // by the other workers once their heartbeat stops.
    if let StudyLocation::Sqlite(path) = &job.study {
        let resume = pf::search::interrupt::resume_command(std::env::args());
        pf::search::interrupt::watch_study(path, resume)?;
    }
    match job::run(&job, runtime, outputs)? {
        SharedEnd::Finished(finished) if a.json => print_json(&finished.to_json()),
        SharedEnd::Finished(finished) => {
            summarize(&finished);
            Ok(())
        }
        SharedEnd::Stopped(worked) if a.json => print_json(&serde_json::json!({
            "study": job.study.display(),
            "ran": worked.ran,
            "complete_or_failed": worked.progress.counted,
            "running": worked.progress.running,
            "lost": worked.progress.lost,
            "trials": worked.budget,
        })),
        SharedEnd::Stopped(worked) => {
            println!("{}", pf::search::worker::summary(&worked));
            println!(
                "the study goes on with `pf worker --study URL`; once its trials are finished, \
                 `pf compress --finish --study URL` re-trains and exports the best"
            );
            Ok(())
        }
    }
}

/// Prints a finished study: the trials, the baseline against the result,
/// the target and the files written.
fn summarize(f: &Finished) {
    let Finished {
        study,
        outputs: out,
        meta,
        trials,
        best,
        result: fin,
        ran,
        baseline_latency_ms,
        search_seconds,
        total_seconds,
    } = f;
    let complete = f.complete();
    let base = &meta.baseline.footprint;
    let now = &fin.footprint;
    let ratio = |x: u64, y: u64| x as f64 / y.max(1) as f64;
    println!();
    println!(
        "{} trials ({} complete, {} failed; {} run now) in {:.1}s; best: trial {} (reward {:.4})",
        trials.len(),
        complete,
        trials.len() - complete,
        ran,
        search_seconds,
        best.number,
        best.reward.unwrap_or(f64::NAN)
    );
    println!();
    println!(
        "{:<22} {:>12} {:>12} {:>8}",
        "", "baseline", "compressed", "ratio"
    );
    println!(
        "{:<22} {:>11.2}% {:>11.2}% {:>+7.2}pp",
        "test accuracy",
        fin.baseline_test_accuracy * 100.0,
        fin.test_accuracy * 100.0,
        (fin.test_accuracy - fin.baseline_test_accuracy) * 100.0
    );
    for (name, x, y) in [
        ("MACs", base.macs, now.macs),
        ("parameters", base.params, now.params),
        (
            "non-zero parameters",
            base.nonzero_params,
            now.nonzero_params,
        ),
        ("bytes", base.bytes, now.bytes),
    ] {
        println!(
            "{:<22} {:>12} {:>12} {:>8.3}",
            name,
            si(x),
            si(y),
            ratio(y, x)
        );
    }
    println!();
    println!(
        "target {} ≤ {}: met at {:.4}; re-trained {} epochs{} ({:.1}s), accuracy before re-training {:.2}%",
        meta.target.measure,
        meta.target.ratio,
        fin.target_ratio,
        fin.retrain_epochs,
        if fin.distill { " with distillation" } else { "" },
        fin.retrain_seconds,
        fin.trial_test_accuracy * 100.0
    );
    if let (Some(bound), Some(ms)) = (meta.latency, fin.latency_ms) {
        println!(
            "latency {ms:.3} ms (bound {} ms, {} thread{}; baseline {})",
            bound.ms,
            bound.threads,
            if bound.threads == 1 { "" } else { "s" },
            baseline_latency_ms.map_or("?".to_string(), |b| format!("{b:.3} ms"))
        );
    }
    println!("model   {}", out.export.display());
    if out.model != out.export {
        println!("        {}", out.model.display());
    }
    println!("study   {study}");
    if let Some(report) = &out.report {
        println!("report  {}", report.display());
    }
    println!("time    {total_seconds:.1}s");
}
