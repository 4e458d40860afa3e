//! `pf compress`: the automated search. An optimizer suggests learner
//! parameters, the learner compresses a copy of the baseline with fast
//! fine-tuning, the host evaluates it and rewards the optimizer; the best
//! candidate that meets the target is re-trained (optionally distilled from
//! the baseline), tested, saved and reported.

use super::common::{
    cached_baseline, check_writable, data_sha256, print_json, si, DataArgs, DeviceArgs, ModelArgs,
};
use super::plugin::LimitArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use pf::data::{Normalization, Splits};
use pf::model::{Model, Target};
use pf::plugin::runtime::Plugin;
use pf::plugin::{space, FineTune, ModelContext, Param, ParamSpec, PluginKind, Runtime, TrialData};
use pf::registry::resolve;
use pf::search::host_space::{self, FinetuneSearch};
use pf::search::latency::{LatencyConstraint, LatencyMeter, LiteRtMeter};
use pf::search::target::{self, TargetArg, Targets};
use pf::search::{
    best_of, run_search, BaselineRecord, FinalRecord, Reward, SearchSetup, SqliteStudy, StudyMeta,
    StudyStore, TrialRecord, TrialStatus,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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
    /// The study database (SQLite). The model and report are written beside
    /// it by default (runs/a.db: runs/a.tflite, runs/a.pf, runs/a.html).
    #[arg(long, default_value = "pf-out/study.db", value_name = "FILE")]
    study: PathBuf,
    /// Continue the study instead of starting one.
    #[arg(long)]
    resume: bool,
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

/// Trials of a new study when --trials is not given.
const DEFAULT_TRIALS: u32 = 12;

/// The most trials run at once.
const MAX_JOBS: u32 = 256;

/// The first 12 characters of a hash (all of a short or damaged one).
fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// The files a search writes besides its study.
struct Outputs {
    /// The compressed model as the user asked for it (.pf, .tflite, .onnx).
    export: PathBuf,
    /// The compressed model in pf's format: `export` itself, or beside a
    /// `.tflite` or `.onnx` export.
    model: PathBuf,
    /// The report, unless `--no-report`.
    report: Option<PathBuf>,
}

impl Outputs {
    /// The outputs `a` asks for: by default beside the study, named after
    /// it (`runs/a.db` → `runs/a.tflite`, `runs/a.pf`, `runs/a.html`).
    fn of(a: &CompressArgs) -> Outputs {
        let export = a
            .export
            .clone()
            .unwrap_or_else(|| a.study.with_extension("tflite"));
        let model = match export.extension().and_then(|e| e.to_str()) {
            Some("tflite") | Some("onnx") => export.with_extension("pf"),
            _ => export.clone(),
        };
        let report = (!a.no_report).then(|| {
            a.report
                .clone()
                .unwrap_or_else(|| a.study.with_extension("html"))
        });
        Outputs {
            export,
            model,
            report,
        }
    }
}

/// Checks every argument and output before anything is loaded, trained or
/// written, and returns the outputs.
fn check_outputs(a: &CompressArgs) -> Result<Outputs> {
    if a.resume {
        if !a.study.is_file() {
            bail!(
                "--resume: study {} does not exist; start it without --resume",
                a.study.display()
            );
        }
    } else {
        if a.study.exists() {
            bail!(
                "study {} already exists: pass --resume to continue it, or choose another --study",
                a.study.display()
            );
        }
        check_writable(&a.study).with_context(|| format!("--study {}", a.study.display()))?;
    }
    let out = Outputs::of(a);
    match out.export.extension().and_then(|e| e.to_str()) {
        Some("pf") | Some("tflite") | Some("onnx") => {}
        _ => bail!(
            "--export {}: give a .pf file name (pf's model format), a .tflite file name (TensorFlow Lite) or an .onnx file name (ONNX)",
            out.export.display()
        ),
    }
    if a.export_int8 && out.model == out.export {
        bail!(
            "--export-int8 writes a TensorFlow Lite or ONNX file: give --export a .tflite or .onnx name (not {})",
            out.export.display()
        );
    }
    if let Some(report) = &out.report {
        pf::report::Format::from_path(report).context("--report")?;
    }
    let files = [
        ("--export", Some(&out.export)),
        ("--export", Some(&out.model)),
        ("--report", out.report.as_ref()),
    ];
    for (flag, path) in files {
        let Some(path) = path else { continue };
        if path == &a.study {
            bail!(
                "{flag} {} is the study itself: give the output another name",
                path.display()
            );
        }
        check_writable(path).with_context(|| format!("{flag} {}", path.display()))?;
        // A resumed study replaces the outputs it wrote before.
        if path.exists() && !a.force && !a.resume {
            bail!(
                "{flag}: {} already exists and pf overwrites nothing; choose another --study (the outputs are named after it), another {flag}, or pass --force to replace it",
                path.display()
            );
        }
    }
    if !(1..=MAX_JOBS).contains(&a.jobs) {
        bail!("--jobs must be between 1 and {MAX_JOBS}");
    }
    if a.trials == Some(0) {
        bail!("--trials must be at least 1");
    }
    if a.threads_per_trial == Some(0) {
        bail!("--threads-per-trial must be at least 1");
    }
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if a.finetune_steps == Some(0) {
        bail!("--finetune-steps must be at least 1");
    }
    if let Some(lr) = a.lr {
        if !(lr.is_finite() && lr > 0.0) {
            bail!("--lr must be a positive number, not {lr}");
        }
    }
    Ok(out)
}

/// Loads a plugin by path or name and checks its kind.
fn load_plugin(rt: &Runtime, name: &str, kind: PluginKind, flag: &str) -> Result<Arc<Plugin>> {
    let path = resolve::resolve(name).with_context(|| format!("{flag} {name}"))?;
    let plugin = rt
        .load(&path)
        .with_context(|| format!("{flag} {name}: loading {}", path.display()))?;
    if plugin.kind() != kind {
        bail!(
            "{flag} {name}: `{}` is {}, not {}",
            plugin.name(),
            article(plugin.kind()),
            article(kind)
        );
    }
    Ok(plugin)
}

fn article(k: PluginKind) -> &'static str {
    match k {
        PluginKind::Learner => "a learner",
        PluginKind::Optimizer => "an optimizer",
    }
}

/// The learner's search space under the target, less the dimensions the
/// user fixed with `--set`, and those fixed values.
fn search_space(
    rt: &Runtime,
    learner: &Plugin,
    base: &Model,
    data: &Arc<TrialData>,
    a: &CompressArgs,
    target: Option<Target>,
) -> Result<(Vec<ParamSpec>, Vec<Param>)> {
    let space_for = |settings: &[Param], target: Option<Target>| -> Result<Vec<ParamSpec>> {
        let probe = ModelContext::new(base.try_clone()?, data.clone(), FineTune::default(), a.seed);
        rt.learner(learner, Some(probe), a.seed)?
            .search_space(settings, target)
            .map_err(anyhow::Error::from)
    };
    let settings = space::fixed_settings(&learner.info.params_schema)
        .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", learner.name()))?;
    explain_target_derived(a, learner, &settings, target, &space_for)?;
    let (full, fixed) = space::shape_space(&a.set, &settings, |s| space_for(s, target))?;
    space::validate_space(&full)
        .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", learner.name()))?;
    let searched = full
        .into_iter()
        .filter(|d| !fixed.iter().any(|f| f.name == d.name))
        .collect();
    Ok((searched, fixed))
}

/// The learner's space for some fixed settings under some target.
type SpaceFor<'a> = dyn Fn(&[Param], Option<Target>) -> Result<Vec<ParamSpec>> + 'a;

/// A `--set` of a parameter that the target decides (a channel pruner's
/// `preserve_ratio` under a FLOPs target, say) is refused with the reason,
/// instead of as an unknown name; so is one of the host's own dimensions.
fn explain_target_derived(
    a: &CompressArgs,
    learner: &Plugin,
    settings: &[ParamSpec],
    target: Option<Target>,
    space_for: &SpaceFor<'_>,
) -> Result<()> {
    let names: Vec<&str> = a
        .set
        .iter()
        .map(|s| s.split_once('=').map_or(s.as_str(), |(n, _)| n).trim())
        .collect();
    if let Some(n) = names
        .iter()
        .find(|n| [host_space::FINETUNE_LR, host_space::FINETUNE_STEPS].contains(n))
    {
        bail!(
            "--set {n}: `{n}` is the host's fine-tuning dimension, not the learner's; fix it with {}",
            if *n == host_space::FINETUNE_LR { "--lr" } else { "--finetune-steps" }
        );
    }
    let Some(t) = target else { return Ok(()) };
    let known = |space: &[ParamSpec], n: &str| space.iter().chain(settings).any(|d| d.name == n);
    let with_target = space_for(&[], Some(t))?;
    let unknown: Vec<&&str> = names.iter().filter(|n| !known(&with_target, n)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let without = space_for(&[], None)?;
    if let Some(n) = unknown.into_iter().find(|n| known(&without, n)) {
        bail!(
            "--set {n}: learner `{}` derives `{n}` from the target {t} (it scales what it keeps to meet the budget), so it cannot be fixed under it; drop --set {n}, or run with --target none to fix it by hand",
            learner.name()
        );
    }
    Ok(())
}

/// Checks that a resumed study is the one these arguments describe.
fn check_resume(old: &StudyMeta, new: &StudyMeta, path: &Path) -> Result<()> {
    let mut diffs = Vec::new();
    let mut cmp = |what: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{what}: the study has {a}, this run {b}"));
        }
    };
    cmp(
        "model",
        format!(
            "{} (weights {})",
            old.baseline.model,
            short(&old.baseline.weights_sha256)
        ),
        format!(
            "{} (weights {})",
            new.baseline.model,
            short(&new.baseline.weights_sha256)
        ),
    );
    cmp("data", old.data.clone(), new.data.clone());
    cmp(
        "data contents",
        short(&old.data_sha256).to_string(),
        short(&new.data_sha256).to_string(),
    );
    cmp(
        "learner",
        format!("{} ({})", old.learner, short(&old.learner_sha256)),
        format!("{} ({})", new.learner, short(&new.learner_sha256)),
    );
    cmp(
        "optimizer",
        format!("{} ({})", old.optimizer, short(&old.optimizer_sha256)),
        format!("{} ({})", new.optimizer, short(&new.optimizer_sha256)),
    );
    let target = |m: &StudyMeta| match m.no_target {
        true => "none".to_string(),
        false => m.target.to_string(),
    };
    cmp("target", target(old), target(new));
    cmp(
        "latency target",
        format!("{:?}", old.latency.map(|l| l.to_string())),
        format!("{:?}", new.latency.map(|l| l.to_string())),
    );
    cmp("reward", old.reward.to_string(), new.reward.to_string());
    cmp("seed", old.seed.to_string(), new.seed.to_string());
    cmp("--jobs", old.jobs.to_string(), new.jobs.to_string());
    cmp(
        "--finetune-steps",
        old.finetune_steps.to_string(),
        new.finetune_steps.to_string(),
    );
    cmp(
        "--batch-size",
        old.batch_size.to_string(),
        new.batch_size.to_string(),
    );
    cmp("--lr", old.lr.to_string(), new.lr.to_string());
    let searched = |m: &StudyMeta| {
        format!(
            "learning rate {}, steps {}",
            if m.finetune_search.lr {
                "searched"
            } else {
                "fixed"
            },
            if m.finetune_search.steps {
                "searched"
            } else {
                "fixed"
            }
        )
    };
    cmp(
        "fine-tuning (--lr, --finetune-steps)",
        searched(old),
        searched(new),
    );
    cmp(
        "--bn-images",
        old.bn_images.to_string(),
        new.bn_images.to_string(),
    );
    cmp(
        "plugin limits (memory, fuel, tensors)",
        format!("{:?}", old.limits),
        format!("{:?}", new.limits),
    );
    cmp(
        "--optimizer-set",
        format!("{:?}", old.optimizer_options),
        format!("{:?}", new.optimizer_options),
    );
    cmp(
        "--set",
        format!("{:?}", old.fixed),
        format!("{:?}", new.fixed),
    );
    if !diffs.is_empty() {
        bail!(
            "study {} belongs to a different search, so it cannot be resumed with these arguments:\n  {}\nrun with the study's arguments, or start a new study with another --study",
            path.display(),
            diffs.join("\n  ")
        );
    }
    Ok(())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The fine-tuning learning rate when `--lr` is not given: the centre of
/// the searched range, and re-training's peak rate.
const DEFAULT_LR: f64 = 0.01;

/// The fine-tuning steps when `--finetune-steps` is not given: the top of
/// the searched range.
const DEFAULT_FINETUNE_STEPS: u64 = 300;

/// Everything a study's settings hold that the arguments decide.
struct Settings<'a> {
    a: &'a CompressArgs,
    learner: &'a Plugin,
    optimizer: &'a Plugin,
    optimizer_options: &'a [Param],
    targets: &'a Targets,
    reward: Reward,
    finetune_search: FinetuneSearch,
}

impl Settings<'_> {
    /// The study's settings, with the baseline, the data's digest and the
    /// fixed parameters, which only loading the data and the model decides.
    fn meta(&self, baseline: BaselineRecord, data_sha256: String, fixed: &[Param]) -> StudyMeta {
        let a = self.a;
        StudyMeta {
            format: pf::search::study::STUDY_FORMAT,
            baseline,
            data: a.data.data.to_string(),
            data_sha256,
            learner: self.learner.name().to_string(),
            learner_sha256: self.learner.sha256.clone(),
            optimizer: self.optimizer.name().to_string(),
            optimizer_sha256: self.optimizer.sha256.clone(),
            optimizer_options: self
                .optimizer_options
                .iter()
                .map(pf::search::run::to_record)
                .collect(),
            target: self.targets.footprint,
            no_target: !self.targets.for_learner,
            latency: self.targets.latency,
            reward: self.reward,
            seed: a.seed,
            fixed: fixed.iter().map(pf::search::run::to_record).collect(),
            trials: a.trials.unwrap_or(DEFAULT_TRIALS),
            finetune_steps: a.finetune_steps.unwrap_or(DEFAULT_FINETUNE_STEPS),
            bn_images: a.bn_images as u64,
            batch_size: a.batch_size as u64,
            lr: a.lr.unwrap_or(DEFAULT_LR),
            finetune_search: self.finetune_search,
            limits: a.limits.values(),
            jobs: a.jobs,
            created: now_unix(),
        }
    }
}

/// Runs `pf compress`.
pub fn run(a: CompressArgs) -> Result<()> {
    let start = Instant::now();
    let out = check_outputs(&a)?;
    let mut rt = a.limits.runtime("compress")?;
    // The policy caps the search budget at every load; a resumed study's
    // own budget is checked again once it is known.
    rt.search_budget = Some(a.trials.unwrap_or(DEFAULT_TRIALS));
    let learner = load_plugin(&rt, &a.plugin, PluginKind::Learner, "--plugin")?;
    let optimizer = load_plugin(&rt, &a.optimizer, PluginKind::Optimizer, "--optimizer")?;
    let optimizer_options = space::parse_options(&optimizer.info.params_schema, &a.optimizer_set)
        .map_err(|e| {
        anyhow::anyhow!("--optimizer-set: optimizer `{}`: {e}", optimizer.name())
    })?;
    let targets = target::resolve(&a.target, &learner)?;
    let reward = match a.reward {
        Some(r) if !targets.for_learner && r != Reward::Accuracy => bail!(
            "--reward {r}: a run without a target (a control) is rewarded for accuracy alone; drop --reward or give a --target"
        ),
        r => r.unwrap_or(Reward::Accuracy),
    };
    let settings = Settings {
        a: &a,
        learner: &learner,
        optimizer: &optimizer,
        optimizer_options: &optimizer_options,
        targets: &targets,
        reward,
        finetune_search: FinetuneSearch {
            lr: a.lr.is_none(),
            steps: a.finetune_steps.is_none(),
        },
    };
    // A resumed study is checked against everything the arguments decide
    // before any data is loaded or any baseline trained.
    let resumed = if a.resume {
        let s = SqliteStudy::open(&a.study)?;
        let old = s.meta();
        let mut wanted = settings.meta(old.baseline.clone(), old.data_sha256.clone(), &[]);
        wanted.fixed = old.fixed.clone();
        check_resume(old, &wanted, &a.study)?;
        Some(s)
    } else {
        None
    };
    let splits = a.data.load()?;
    let data_hash = data_sha256(&splits);
    let device = a.device.device.open()?;
    let base = cached_baseline(
        &a.model,
        &splits,
        a.baseline_epochs,
        a.seed,
        &device,
        a.json,
    )?;
    let norm = Normalization::of(&splits.train);
    let data = Arc::new(TrialData {
        train: splits.train.clone(),
        val: splits.val.clone(),
        norm: norm.clone(),
    });
    let baseline_footprint = base.footprint()?;
    let base_val = pf::train::evaluate(&base, &splits.val, &norm, 256, false)?;
    let learner_target = targets.for_learner.then_some(targets.footprint);
    let (mut searched, fixed) = search_space(&rt, &learner, &base, &data, &a, learner_target)?;
    let meta = settings.meta(
        BaselineRecord {
            model: a.model.model.clone(),
            weights_sha256: base.weights_sha256()?,
            accuracy: base_val.accuracy,
            loss: base_val.loss,
            footprint: baseline_footprint,
        },
        data_hash,
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
    let latency = match targets.latency {
        Some(bound) => {
            let python = pf::export::tflite::litert::python(a.python.as_deref());
            let meter = LiteRtMeter::new(python, bound.threads, 50, 5)?;
            let base_ms = meter.median_ms(&base).context("timing the baseline")?;
            if !a.json {
                eprintln!(
                    "latency: baseline {base_ms:.3} ms, bound {} ms ({})",
                    bound.ms,
                    meter.describe()
                );
            }
            Some((
                LatencyConstraint {
                    target: bound,
                    meter: Arc::new(meter),
                    flops_dimension: targets.flops_dimension,
                },
                base_ms,
            ))
        }
        None => None,
    };
    let mut study = match resumed {
        Some(mut s) => {
            let mut wanted = meta.clone();
            wanted.trials = s.meta().trials;
            wanted.created = s.meta().created;
            check_resume(s.meta(), &wanted, &a.study)?;
            if let Some(n) = a.trials.filter(|&n| n > s.meta().trials) {
                // Extending the study: the optimizer sees the larger budget.
                wanted.trials = n;
                s.update_meta(&wanted)?;
            }
            s
        }
        None => SqliteStudy::create(&a.study, &meta)?,
    };
    let meta = study.meta().clone();
    let trials = meta.trials;
    rt.gate.check_trials(trials).map_err(anyhow::Error::from)?;
    let cores = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let threads_per_trial = a
        .threads_per_trial
        .unwrap_or((cores / a.jobs as usize).max(1));
    if !a.json {
        eprintln!(
            "search: {} × {} on {} ({} trials, {} at once × {} threads), target {}{}, reward {}; {} dimensions searched ({} of the learner's, {} of the host's){}",
            learner.name(),
            optimizer.name(),
            a.model.model,
            trials,
            a.jobs,
            threads_per_trial,
            match (&latency, targets.flops_dimension, targets.for_learner) {
                (Some((l, _)), true, _) => format!("{} (FLOPs ratio searched)", l.target),
                (Some((l, _)), false, _) => format!("{} ≤ {} × baseline, {}", meta.target.measure, meta.target.ratio, l.target),
                (None, _, true) => format!("{} ≤ {} × baseline", meta.target.measure, meta.target.ratio),
                (None, _, false) => "none (a control run)".to_string(),
            },
            if targets.from_learner && targets.for_learner {
                format!(" (what `{}` is made for; --target changes it)", learner.name())
            } else {
                String::new()
            },
            meta.reward,
            searched.len(),
            learner_dims,
            searched.len() - learner_dims,
            if fixed.is_empty() {
                String::new()
            } else {
                format!(", fixed {}", space::format_params(&fixed))
            }
        );
    }
    let baseline_latency_ms = latency.as_ref().map(|(_, ms)| *ms);
    let setup = SearchSetup {
        runtime: &rt,
        learner: learner.clone(),
        optimizer: optimizer.clone(),
        optimizer_options,
        baseline: &base,
        baseline_footprint,
        data: data.clone(),
        space: searched,
        fixed,
        target: meta.target,
        learner_target: !meta.no_target,
        latency: latency.map(|(l, _)| l),
        reward: meta.reward,
        seed: a.seed,
        trials,
        jobs: a.jobs,
        threads_per_trial,
        finetune_steps: meta.finetune_steps,
        bn_images: a.bn_images,
        finetune: FineTune {
            batch_size: a.batch_size,
            lr: meta.lr,
            momentum: 0.9,
            weight_decay: 5e-4,
            progress: !a.json,
        },
        progress: !a.json,
        optimizer_announced: Default::default(),
    };
    let search_start = Instant::now();
    let outcome = run_search(&setup, &mut study)?;
    let search_seconds = search_start.elapsed().as_secs_f64();
    let Some(best) = best_of(&outcome.trials).cloned() else {
        let failed: Vec<String> = outcome
            .trials
            .iter()
            .filter_map(|t| t.error.as_ref().map(|e| format!("trial {}: {e}", t.number)))
            .take(3)
            .collect();
        write_report(&out, &study)?;
        bail!(
            "no trial met the target {} ({} trials); the study is kept in {}. First failures:\n  {}\nloosen the target, fine-tune longer, or run more trials with --resume --trials N",
            match targets.latency {
                Some(l) if targets.flops_dimension => l.to_string(),
                Some(l) => format!("{} and {l}", meta.target),
                None => meta.target.to_string(),
            },
            outcome.trials.len(),
            a.study.display(),
            failed.join("\n  ")
        );
    };
    let mut model = match outcome.best_model {
        Some((n, m)) if n == best.number => m,
        _ => {
            if !a.json {
                eprintln!(
                    "rebuilding trial {} from its parameters and seed (its model was not kept)",
                    best.number
                );
            }
            setup.rerun(&best)?
        }
    };
    let final_record = finish(&a, &out, &setup, &base, &splits, &norm, &best, &mut model)?;
    pf::model::save(&model, &out.model)
        .with_context(|| format!("saving {}", out.model.display()))?;
    if out.model != out.export {
        export_deployment(&a, &out, &model, &splits, &norm).with_context(|| {
            format!(
                "exporting the compressed model to {} (it is saved as {})",
                out.export.display(),
                out.model.display()
            )
        })?;
    }
    study.set_final(&final_record)?;
    write_report(&out, &study)?;
    summarize(
        &a,
        &out,
        &meta,
        &outcome.trials,
        &best,
        &final_record,
        outcome.ran,
        baseline_latency_ms,
        search_seconds,
        start.elapsed().as_secs_f64(),
    )
}

/// Writes the result as a TFLite or ONNX file (by `--export`'s
/// extension): float32, or int8 with `--export-int8` (calibrated on
/// training images), with the same code as `pf export`.
fn export_deployment(
    a: &CompressArgs,
    out: &Outputs,
    model: &Model,
    splits: &Splits,
    norm: &Normalization,
) -> Result<()> {
    use pf::export::tflite;
    let onnx = pf::onnx::is_onnx_path(&out.export);
    let int8 = if a.export_int8 {
        let calibration: Vec<_> = tflite::verify::image_batches(
            &splits.train,
            norm,
            Some(512),
            a.seed,
            64,
            model.device(),
        )?
        .into_iter()
        .map(|(x, _)| x)
        .collect();
        Some(tflite::quantize::lower_int8(
            model,
            &calibration,
            &Default::default(),
        )?)
    } else {
        None
    };
    match (onnx, int8) {
        (true, int8) => {
            let opts = pf::onnx::ExportOptions {
                int8: int8.as_ref(),
                reduce_range: false,
            };
            pf::onnx::export(model, &out.export, &opts)?;
        }
        (false, None) => {
            tflite::export(model, &out.export)?;
        }
        (false, Some(graph)) => {
            tflite::write_file(
                &tflite::write::serialize(&graph, &model.graph.name),
                &out.export,
            )?;
        }
    }
    Ok(())
}

/// Re-trains the best candidate, tests it, and returns the final record.
/// A re-training that would break the target is undone.
#[allow(clippy::too_many_arguments)]
fn finish(
    a: &CompressArgs,
    out: &Outputs,
    setup: &SearchSetup<'_>,
    base: &Model,
    splits: &Splits,
    norm: &Normalization,
    best: &TrialRecord,
    model: &mut Model,
) -> Result<FinalRecord> {
    let baseline_test = pf::train::evaluate(base, &splits.test, norm, 256, false)?;
    let trial_test = pf::train::evaluate(model, &splits.test, norm, 256, false)?;
    let t = Instant::now();
    let mut test = trial_test;
    if a.retrain_epochs > 0 {
        let mut retrained = model.try_clone()?;
        let mut config = setup.finetune.config(0, setup.seed);
        config.epochs = a.retrain_epochs;
        config.max_steps = None;
        config.schedule = pf::train::Schedule {
            base: setup.finetune.lr,
            kind: pf::train::ScheduleKind::Cosine,
            warmup_steps: 0,
        };
        config.distill = a.distill.then(|| pf::train::DistillConfig {
            temperature: 4.0,
            weight: 0.5,
            teacher_sha256: base.weights_sha256().unwrap_or_default(),
        });
        if !a.json {
            eprintln!(
                "re-training trial {} for {} epochs{}",
                best.number,
                a.retrain_epochs,
                if a.distill {
                    ", distilled from the baseline"
                } else {
                    ""
                }
            );
        }
        pf::train::Trainer {
            config,
            data: &splits.train,
            norm: norm.clone(),
            teacher: a.distill.then_some(base),
            checkpoint: None,
            progress: !a.json,
            auxiliary: &[],
        }
        .run(&mut retrained, None)
        .context("re-training the best candidate")?;
        let fp = retrained.footprint()?;
        let after = pf::train::evaluate(&retrained, &splits.test, norm, 256, false)?;
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
        retrain_epochs: a.retrain_epochs,
        distill: a.distill,
        baseline_test_accuracy: baseline_test.accuracy,
        trial_test_accuracy: trial_test.accuracy,
        test_accuracy: test.accuracy,
        footprint,
        target_ratio: setup.target.ratio_of(&footprint, &setup.baseline_footprint),
        latency_ms,
        output: Some(out.export.display().to_string()),
        retrain_seconds: t.elapsed().as_secs_f64(),
    })
}

fn write_report(out: &Outputs, study: &SqliteStudy) -> Result<()> {
    let Some(report) = &out.report else {
        return Ok(());
    };
    let trials = study.trials()?;
    let format = pf::report::Format::from_path(report)?;
    let text = pf::report::render(study.meta(), &trials, format)?;
    pf::io::atomic_write(report, text.as_bytes())
        .with_context(|| format!("writing report {}", report.display()))
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    a: &CompressArgs,
    out: &Outputs,
    meta: &StudyMeta,
    trials: &[TrialRecord],
    best: &TrialRecord,
    fin: &FinalRecord,
    ran: u32,
    baseline_latency_ms: Option<f64>,
    search_seconds: f64,
    total_seconds: f64,
) -> Result<()> {
    let complete = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Complete)
        .count();
    let base = &meta.baseline.footprint;
    let now = &fin.footprint;
    if a.json {
        return print_json(&serde_json::json!({
            "study": a.study,
            "report": out.report,
            "export": out.export,
            "model": out.model,
            "learner": meta.learner,
            "optimizer": meta.optimizer,
            "target": meta.target,
            "reward": meta.reward,
            "trials": trials.len(),
            "complete": complete,
            "ran": ran,
            "best": best,
            "final": fin,
            "baseline": meta.baseline,
            "latency": meta.latency.map(|bound| serde_json::json!({
                "bound_ms": bound.ms,
                "threads": bound.threads,
                "baseline_ms": baseline_latency_ms,
                "final_ms": fin.latency_ms,
            })),
            "seconds": {"search": search_seconds, "total": total_seconds},
        }));
    }
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
    println!("study   {}", a.study.display());
    if let Some(report) = &out.report {
        println!("report  {}", report.display());
    }
    println!("time    {total_seconds:.1}s");
    Ok(())
}
