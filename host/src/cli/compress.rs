//! `pf compress`: the automated search. An optimizer suggests learner
//! parameters, the learner compresses a copy of the baseline with fast
//! fine-tuning, the host evaluates it and rewards the optimizer; the best
//! candidate that meets the target is re-trained (optionally distilled from
//! the baseline), tested, saved and reported.

use super::common::{
    baseline_config, check_writable, input_of, is_model_file, model_for, print_json, si, DataArgs,
    DeviceArgs, ModelArgs,
};
use super::plugin::LimitArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use pf::data::{Normalization, Splits};
use pf::model::{Model, Target};
use pf::plugin::bindings::types::{FloatRange, Param, ParamKind, ParamSpec, ParamValue};
use pf::plugin::runtime::{host_measure, Plugin};
use pf::plugin::{resolve, space, FineTune, ModelContext, PluginKind, Runtime, TrialData};
use pf::search::latency::{
    LatencyConstraint, LatencyMeter, LatencyTarget, LiteRtMeter, FLOPS_RATIO, MIN_FLOPS_RATIO,
};
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
        default_value = "weight_sparse",
        value_name = "LEARNER"
    )]
    plugin: String,
    /// The optimizer: a .wasm component or the name of a built-in plugin.
    #[arg(long, short = 'O', default_value = "random", value_name = "OPTIMIZER")]
    optimizer: String,
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
    /// ratio the optimizer searches (the `flops_ratio` dimension).
    #[arg(long, default_value = "params=0.25", value_name = "TARGET")]
    target: Vec<TargetArg>,
    /// Python with the `ai-edge-litert` package, for a latency target
    /// [default: $PF_LITERT_PYTHON, else target/litert-venv of this pf's
    /// checkout, else python3].
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// What the optimizer maximises among models that meet the target.
    #[arg(long, value_enum, default_value_t = Reward::Accuracy)]
    reward: Reward,
    /// A learner parameter fixed to a value instead of searched,
    /// NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// An option of the optimizer itself, NAME=VALUE (repeatable), e.g.
    /// `multivariate=true` for tpe; `pf plugin inspect OPTIMIZER` lists them.
    #[arg(long = "optimizer-set", value_name = "NAME=VALUE")]
    optimizer_set: Vec<String>,
    /// Host fine-tuning steps of each trial.
    #[arg(long, default_value_t = 300, value_name = "K")]
    finetune_steps: u64,
    /// Training images on which each trial's batch-norm statistics are
    /// re-estimated before it is evaluated (forward passes, no weight
    /// updates), so that a pruned or quantized network is judged with its
    /// own statistics; 0 turns it off.
    #[arg(long, default_value_t = 512, value_name = "N")]
    bn_images: usize,
    /// Fine-tuning batch size.
    #[arg(long, default_value_t = 64, value_name = "N")]
    batch_size: usize,
    /// Fine-tuning learning rate (constant, SGD with momentum 0.9).
    #[arg(long, default_value_t = 0.01, value_name = "LR")]
    lr: f64,
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
    /// The study database (SQLite).
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
    /// it.
    #[arg(long, default_value = "pf-out/compressed.pf", value_name = "FILE")]
    export: PathBuf,
    /// With a .tflite or .onnx --export: write it int8 (int8 weights per
    /// channel, int8 activations with ranges from the model's trained
    /// quantizers or calibrated on 512 training images, float input and
    /// output; QDQ for ONNX), as `pf export --int8` does.
    #[arg(long)]
    export_int8: bool,
    /// Where to write the report (.html, or .svg for the plots alone).
    #[arg(long, default_value = "pf-out/report.html", value_name = "FILE")]
    report: PathBuf,
    /// Do not write a report.
    #[arg(long)]
    no_report: bool,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print the result as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// One `--target`: a budget on a footprint measure, or a latency bound.
#[derive(Clone, Debug)]
enum TargetArg {
    Footprint(Target),
    Latency(LatencyTarget),
}

impl std::str::FromStr for TargetArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("latency") {
            s.parse().map(TargetArg::Latency)
        } else {
            s.parse().map(TargetArg::Footprint)
        }
    }
}

impl std::fmt::Display for TargetArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetArg::Footprint(t) => t.fmt(f),
            TargetArg::Latency(l) => l.fmt(f),
        }
    }
}

/// The targets of a search: the learner's budget, the latency bound, and
/// whether each trial's FLOPs target is searched. With a latency bound
/// alone, the budget is FLOPs at most the baseline's and each trial's own
/// FLOPs target is searched.
fn resolve_targets(args: &[TargetArg]) -> Result<(Target, Option<LatencyTarget>, bool)> {
    let mut footprint = None;
    let mut latency = None;
    for t in args {
        match t {
            TargetArg::Footprint(f) => {
                if let Some(old) = footprint.replace(*f) {
                    bail!("--target {old} and --target {f}: give at most one of flops, params and size (a latency bound may join it)");
                }
            }
            TargetArg::Latency(l) => {
                if let Some(old) = latency.replace(*l) {
                    bail!("--target {old} and --target {l}: give at most one latency bound");
                }
            }
        }
    }
    let flops_dimension = latency.is_some() && footprint.is_none();
    let footprint = footprint.unwrap_or(Target {
        measure: pf::model::Measure::Flops,
        ratio: 1.0,
    });
    Ok((footprint, latency, flops_dimension))
}

/// Trials of a new study when --trials is not given.
const DEFAULT_TRIALS: u32 = 12;

/// The most trials run at once.
const MAX_JOBS: u32 = 256;

/// The first 12 characters of a hash (all of a short or damaged one).
fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// Where the compressed model is saved in pf's format: `--export` itself, or
/// beside a `.tflite` or `.onnx` export.
fn model_file(a: &CompressArgs) -> PathBuf {
    if a.export
        .extension()
        .is_some_and(|e| e == "tflite" || e == "onnx")
    {
        a.export.with_extension("pf")
    } else {
        a.export.clone()
    }
}

/// Checks every output before anything is loaded, trained or written.
fn check_outputs(a: &CompressArgs) -> Result<()> {
    match a.export.extension().and_then(|e| e.to_str()) {
        Some("pf") | Some("tflite") | Some("onnx") => {}
        _ => bail!(
            "--export {}: give a .pf file name (pf's model format), a .tflite file name (TensorFlow Lite) or an .onnx file name (ONNX)",
            a.export.display()
        ),
    }
    if a.export_int8
        && !matches!(
            a.export.extension().and_then(|e| e.to_str()),
            Some("tflite") | Some("onnx")
        )
    {
        bail!(
            "--export-int8 writes a TensorFlow Lite or ONNX file: give --export a .tflite or .onnx name (not {})",
            a.export.display()
        );
    }
    check_writable(&a.export).with_context(|| format!("--export {}", a.export.display()))?;
    check_writable(&model_file(a)).with_context(|| format!("--export {}", a.export.display()))?;
    if !a.no_report {
        check_writable(&a.report).with_context(|| format!("--report {}", a.report.display()))?;
    }
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
    if !(1..=MAX_JOBS).contains(&a.jobs) {
        bail!("--jobs must be between 1 and {MAX_JOBS}");
    }
    if a.trials == Some(0) {
        bail!("--trials must be at least 1");
    }
    if a.threads_per_trial == Some(0) {
        bail!("--threads-per-trial must be at least 1");
    }
    Ok(())
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

/// SHA-256 over every split's pixels and labels: the data's identity.
fn data_sha256(splits: &Splits) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for d in [&splits.train, &splits.val, &splits.test] {
        h.update((d.pixels.len() as u64).to_le_bytes());
        h.update(&d.pixels);
        for l in &d.labels {
            h.update(l.to_le_bytes());
        }
        for s in d.shape {
            h.update((s as u64).to_le_bytes());
        }
    }
    pf::io::hex(&h.finalize())
}

/// The baseline: a .pf file as it is, or a zoo architecture trained on the
/// training split, cached by everything that determines its weights.
fn baseline(a: &CompressArgs, splits: &Splits, data_hash: &str) -> Result<Model> {
    let device = a.device.device.open()?;
    let input = input_of(splits);
    if is_model_file(&a.model.model) || a.baseline_epochs == 0 {
        return model_for(&a.model, input, splits.train.classes, a.seed, &device);
    }
    let config = baseline_config(a.baseline_epochs, a.seed);
    let key = pf::io::sha256_hex(
        serde_json::json!({
            "model": a.model.model,
            "width": a.model.width,
            "data": data_hash,
            "config": config,
            // Baselines are plain (version 1) model files.
            "format": "1",
        })
        .to_string()
        .as_bytes(),
    );
    let cached = pf::io::cache_root().map(|d| {
        d.join("baselines")
            .join(format!("{}-{}.pf", a.model.model, &key[..16]))
    });
    if let Some(path) = &cached {
        if path.is_file() {
            match pf::model::load(path, &device) {
                Ok(m) => {
                    if !a.json {
                        eprintln!("baseline: cached {}", path.display());
                    }
                    return Ok(m);
                }
                Err(e) => eprintln!("warning: ignoring a damaged cached baseline: {e:#}"),
            }
        }
    }
    let mut model = model_for(&a.model, input, splits.train.classes, a.seed, &device)?;
    if !a.json {
        eprintln!(
            "baseline: training {} for {} epochs (cached afterwards)",
            a.model.model, a.baseline_epochs
        );
    }
    pf::train::Trainer {
        config,
        data: &splits.train,
        norm: Normalization::of(&splits.train),
        teacher: None,
        checkpoint: None,
        progress: !a.json,
        auxiliary: &[],
    }
    .run(&mut model, None)
    .context("training the baseline")?;
    if let Some(path) = &cached {
        if let Err(e) = pf::model::save(&model, path) {
            eprintln!("warning: could not cache the baseline: {e:#}");
        }
    }
    Ok(model)
}

/// The learner's search space under the target, less the dimensions the
/// user fixed with `--set`, and those fixed values.
fn search_space(
    rt: &Runtime,
    learner: &Plugin,
    base: &Model,
    data: &Arc<TrialData>,
    a: &CompressArgs,
    target: Target,
) -> Result<(Vec<ParamSpec>, Vec<Param>)> {
    let space_for = |settings: &[Param]| -> Result<Vec<ParamSpec>> {
        let probe = ModelContext::new(base.try_clone()?, data.clone(), FineTune::default(), a.seed);
        rt.learner(learner, Some(probe), a.seed)?
            .search_space(settings, Some(target))
            .map_err(anyhow::Error::from)
    };
    let settings = space::fixed_settings(&learner.info.params_schema)
        .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", learner.name()))?;
    let (full, fixed) = space::shape_space(&a.set, &settings, space_for)?;
    space::validate_space(&full)
        .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", learner.name()))?;
    let searched = full
        .into_iter()
        .filter(|d| !fixed.iter().any(|f| f.name == d.name))
        .collect();
    Ok((searched, fixed))
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
    cmp("target", old.target.to_string(), new.target.to_string());
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

/// Runs `pf compress`.
pub fn run(a: CompressArgs) -> Result<()> {
    let start = Instant::now();
    check_outputs(&a)?;
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
    let (target, latency, flops_dimension) = resolve_targets(&a.target)?;
    let supported: Vec<_> = learner
        .info
        .targets
        .iter()
        .map(|m| host_measure(*m))
        .collect();
    if !supported.contains(&target.measure) {
        let names = if supported.is_empty() {
            "no targets".to_string()
        } else {
            supported
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if flops_dimension {
            let bound = latency.map(|l| l.to_string()).unwrap_or_default();
            bail!(
                "--target {bound}: a latency target alone hands the learner a FLOPs target (whose ratio the optimizer searches), and learner `{}` cannot meet a flops target; it supports {names}: give one of those beside the latency bound, e.g. --target {}=0.5 --target {bound}",
                learner.name(),
                supported.first().map_or("params", |m| m.name()),
            );
        }
        bail!(
            "--target {target}: learner `{}` cannot meet a {} target; it supports {names}",
            learner.name(),
            target.measure,
        );
    }
    let splits = a.data.load()?;
    let data_hash = data_sha256(&splits);
    let base = baseline(&a, &splits, &data_hash)?;
    let norm = Normalization::of(&splits.train);
    let data = Arc::new(TrialData {
        train: splits.train.clone(),
        val: splits.val.clone(),
        norm: norm.clone(),
    });
    let baseline_footprint = base.footprint()?;
    let base_val = pf::train::evaluate(&base, &splits.val, &norm, 256, false)?;
    let (mut searched, fixed) = search_space(&rt, &learner, &base, &data, &a, target)?;
    if flops_dimension {
        if searched.iter().any(|d| d.name == FLOPS_RATIO) {
            bail!(
                "learner `{}` has a dimension named `{FLOPS_RATIO}`, which a latency target alone needs for itself; give a footprint target beside the latency bound",
                learner.name()
            );
        }
        searched.push(ParamSpec {
            name: FLOPS_RATIO.to_string(),
            kind: ParamKind::Float(FloatRange {
                low: MIN_FLOPS_RATIO,
                high: 1.0,
                log: false,
            }),
            default: ParamValue::Float(0.5),
            help: "The learner's FLOPs target as a fraction of the baseline's (searched by the host for the latency bound)".to_string(),
            context: Vec::new(),
        });
    }
    let latency = match latency {
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
                    flops_dimension,
                },
                base_ms,
            ))
        }
        None => None,
    };
    let meta = StudyMeta {
        format: pf::search::study::STUDY_FORMAT,
        baseline: BaselineRecord {
            model: a.model.model.clone(),
            weights_sha256: base.weights_sha256()?,
            accuracy: base_val.accuracy,
            loss: base_val.loss,
            footprint: baseline_footprint,
        },
        data: a.data.data.to_string(),
        data_sha256: data_hash,
        learner: learner.name().to_string(),
        learner_sha256: learner.sha256.clone(),
        optimizer: optimizer.name().to_string(),
        optimizer_sha256: optimizer.sha256.clone(),
        optimizer_options: optimizer_options
            .iter()
            .map(pf::search::run::to_record)
            .collect(),
        target,
        latency: latency.as_ref().map(|(l, _)| l.target),
        reward: a.reward,
        seed: a.seed,
        fixed: fixed.iter().map(pf::search::run::to_record).collect(),
        trials: a.trials.unwrap_or(DEFAULT_TRIALS),
        finetune_steps: a.finetune_steps,
        bn_images: a.bn_images as u64,
        batch_size: a.batch_size as u64,
        lr: a.lr,
        limits: a.limits.values(),
        jobs: a.jobs,
        created: now_unix(),
    };
    let mut study = if a.resume {
        let mut s = SqliteStudy::open(&a.study)?;
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
    } else {
        SqliteStudy::create(&a.study, &meta)?
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
            "search: {} × {} on {} ({} trials, {} at once × {} threads), target {}, reward {}; {} dimensions searched{}",
            learner.name(),
            optimizer.name(),
            a.model.model,
            trials,
            a.jobs,
            threads_per_trial,
            match (&latency, flops_dimension) {
                (Some((l, _)), true) => format!("{} (FLOPs ratio searched)", l.target),
                (Some((l, _)), false) => format!("{} ≤ {} × baseline, {}", target.measure, target.ratio, l.target),
                (None, _) => format!("{} ≤ {} × baseline", target.measure, target.ratio),
            },
            a.reward,
            searched.len(),
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
        target,
        latency: latency.map(|(l, _)| l),
        reward: a.reward,
        seed: a.seed,
        trials,
        jobs: a.jobs,
        threads_per_trial,
        finetune_steps: a.finetune_steps,
        bn_images: a.bn_images,
        finetune: FineTune {
            batch_size: a.batch_size,
            lr: a.lr,
            momentum: 0.9,
            weight_decay: 5e-4,
            progress: !a.json,
        },
        progress: !a.json,
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
        write_report(&a, &study)?;
        bail!(
            "no trial met the target {} ({} trials); the study is kept in {}. First failures:\n  {}\nloosen the target, fine-tune longer, or run more trials with --resume --trials N",
            a.target
                .iter()
                .map(TargetArg::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
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
    let final_record = finish(&a, &setup, &base, &splits, &norm, &best, &mut model)?;
    let pf_file = model_file(&a);
    pf::model::save(&model, &pf_file).with_context(|| format!("saving {}", pf_file.display()))?;
    if pf_file != a.export {
        export_deployment(&a, &model, &splits, &norm).with_context(|| {
            format!(
                "exporting the compressed model to {} (it is saved as {})",
                a.export.display(),
                pf_file.display()
            )
        })?;
    }
    study.set_final(&final_record)?;
    write_report(&a, &study)?;
    summarize(
        &a,
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
    model: &Model,
    splits: &Splits,
    norm: &Normalization,
) -> Result<()> {
    use pf::export::tflite;
    let onnx = pf::onnx::is_onnx_path(&a.export);
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
            pf::onnx::export(model, &a.export, &opts)?;
        }
        (false, None) => {
            tflite::export(model, &a.export)?;
        }
        (false, Some(graph)) => {
            tflite::write_file(
                &tflite::write::serialize(&graph, &model.graph.name),
                &a.export,
            )?;
        }
    }
    Ok(())
}

/// Re-trains the best candidate, tests it, and returns the final record.
/// A re-training that would break the target is undone.
fn finish(
    a: &CompressArgs,
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
            base: a.lr,
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
        output: Some(a.export.display().to_string()),
        retrain_seconds: t.elapsed().as_secs_f64(),
    })
}

fn write_report(a: &CompressArgs, study: &SqliteStudy) -> Result<()> {
    if a.no_report {
        return Ok(());
    }
    let trials = study.trials()?;
    let format = pf::report::Format::from_path(&a.report);
    let text = pf::report::render(study.meta(), &trials, format)?;
    pf::io::atomic_write(&a.report, text.as_bytes())
        .with_context(|| format!("writing report {}", a.report.display()))
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    a: &CompressArgs,
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
            "report": (!a.no_report).then_some(&a.report),
            "export": a.export,
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
    println!("model   {}", a.export.display());
    println!("study   {}", a.study.display());
    if !a.no_report {
        println!("report  {}", a.report.display());
    }
    println!("time    {total_seconds:.1}s");
    Ok(())
}
