//! `pf plugin`: build, inspect, test and apply plugins.

use super::common::{print_json, DataArgs, DeviceArgs, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use pf::conformance::{self, LearnerSuite, Measures};
use pf::devtools::build::{self, BuildOptions};
use pf::plugin::runtime::default_cache_dir;
use pf::plugin::{
    space, trial, FineTune, Limits, ModelContext, Param, ParamSpec, PluginInfo, PluginKind,
    Runtime, TrialData,
};
use pf::registry::resolve;
use pf_registry::admission::Gate;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `pf plugin`.
#[derive(Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Build plugin crates into WebAssembly components (default: every
    /// built-in plugin under plugins/, into target/plugins/NAME.wasm).
    Build(BuildArgs),
    /// Show a plugin's world, contract version, imports and search space.
    Inspect(InspectArgs),
    /// Run the conformance suite for the plugin's kind.
    Test(TestArgs),
    /// Run a learner once with fixed parameters on a model and save the result.
    Apply(ApplyArgs),
    /// Measure load times, call costs and the WebAssembly overhead of a
    /// weight-sparse fine-tune against the same schedule run natively.
    Bench(super::plugin_bench::BenchArgs),
    /// Start a new plugin crate (outside pf's workspace, depending only on
    /// pf-sdk) that builds and passes the conformance suite as it is.
    New(super::plugin_new::NewArgs),
    /// Write a built plugin's manifest (NAME.manifest.json beside it): name,
    /// version, world, digest, hyper-parameter schema, crate metadata.
    Manifest(super::plugin_registry::ManifestArgs),
    /// Create an ed25519 key pair for signing plugins.
    Keygen(super::plugin_registry::KeygenArgs),
    /// Sign a plugin's manifest and component digest (NAME.sig.json).
    Sign(super::plugin_registry::SignArgs),
    /// Check a plugin's digest, manifest and signatures against a policy or
    /// trusted keys, without running it.
    Verify(super::plugin_registry::VerifyArgs),
    /// Sign a plugin and add it to a registry folder.
    Publish(super::plugin_registry::PublishArgs),
    /// Install a plugin from a registry, after the admission policy accepts
    /// it; it then resolves by name (`--plugin NAME[@VERSION]`).
    Install(super::plugin_registry::InstallArgs),
    /// List installed and built-in plugins, or a registry's.
    List(super::plugin_registry::ListArgs),
    /// Uninstall a plugin (every version, or NAME@VERSION).
    Remove(super::plugin_registry::RemoveArgs),
}

/// Sandbox limits, settable on every command that runs plugins.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Memory cap of a plugin instance, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub plugin_memory: u64,
    /// Execution budget of one plugin call, in millions of WebAssembly
    /// instructions (fuel). Host work (training, tensor ops) is not counted.
    #[arg(long, default_value_t = 20_000, value_name = "MILLIONS")]
    pub plugin_fuel: u64,
    /// Most tensor handles a plugin may hold at once.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub plugin_tensors: u32,
    /// Wall-clock budget of one trial, host work included (also of one
    /// optimizer call, and of a plugin's `describe` at load); a trial past
    /// it fails and the next one runs [default: the admission policy's
    /// `limits.trial_timeout_seconds`, else 600].
    #[arg(long, value_name = "SECONDS")]
    pub trial_timeout: Option<u64>,
    /// Host work one trial's plugin calls may ask for (fine-tuning steps,
    /// gradient batches, tensor operations), in billions of
    /// element-operations; a call that would pass it is refused up front.
    #[arg(long, default_value_t = 100_000, value_name = "BILLIONS")]
    pub plugin_host_work: u64,
    /// Do not read or write the cache of compiled components.
    #[arg(long)]
    pub no_cache: bool,
    /// Admission policy (TOML) that decides which plugins may load
    /// [default: $PF_POLICY, else ~/.config/pf/policy.toml, else
    /// /etc/pf/policy.toml, else none: unsigned plugins load with a warning].
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Let unsigned plugins load where the policy requires signatures (itself
    /// refused if the policy sets `allow_unsigned_flag = false`).
    #[arg(long)]
    pub allow_unsigned: bool,
}

impl LimitArgs {
    /// The limits as numbers: memory bytes, fuel per call, tensor handles.
    pub fn values(&self) -> [u64; 3] {
        [
            self.plugin_memory.saturating_mul(1 << 20),
            self.plugin_fuel.saturating_mul(1_000_000),
            u64::from(self.plugin_tensors),
        ]
    }

    /// The admission gate these flags ask for: the policy (from `--policy`
    /// or the standard places), the audit log, and the pf command doing the
    /// loading (for the log).
    pub fn gate(&self, command: &str) -> Result<Gate> {
        pf::registry::gate(self.policy.as_deref(), self.allow_unsigned, command)
    }

    /// The runtime these flags ask for, with the admission gate of
    /// `command`.
    pub fn runtime(&self, command: &str) -> Result<Runtime> {
        let gate = self.gate(command)?;
        let trial_seconds = gate
            .policy
            .limits
            .trial_timeout(self.trial_timeout)
            .map_err(anyhow::Error::msg)?;
        let mut rt = self.runtime_with(Limits {
            trial_seconds,
            ..self.limits()
        })?;
        rt.gate = gate;
        Ok(rt)
    }

    /// The sandbox limits these flags ask for (the trial timeout as asked,
    /// before the policy has its say).
    pub fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.plugin_memory.saturating_mul(1 << 20),
            fuel_per_call: self.plugin_fuel.saturating_mul(1_000_000),
            max_tensors: self.plugin_tensors,
            trial_seconds: self
                .trial_timeout
                .unwrap_or(pf::plugin::limits::DEFAULT_TRIAL_SECONDS),
            host_work: self.plugin_host_work.saturating_mul(1_000_000_000),
            ..Limits::default()
        }
    }

    fn runtime_with(&self, limits: Limits) -> Result<Runtime> {
        Runtime::new(
            limits,
            if self.no_cache {
                None
            } else {
                default_cache_dir()
            },
        )
    }
}

#[derive(Args)]
struct BuildArgs {
    /// Plugin crates (folders with a Cargo.toml) to build; none builds the
    /// built-in plugins of this repository.
    crates: Vec<PathBuf>,
    /// Also build the test fixtures of the plugins workspace.
    #[arg(long)]
    all: bool,
    /// Where NAME.wasm components go [default: target/plugins of the
    /// repository, or of the crate].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Cargo target folder shared by every plugin [default: target/wasm
    /// beside the output folder].
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Write components even if they import interfaces other than pf's
    /// (only to build fixtures that prove the loader refuses them).
    #[arg(long)]
    allow_foreign_imports: bool,
    /// Show cargo's output.
    #[arg(long, short)]
    verbose: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// A .wasm component, or the name of an installed plugin.
    plugin: String,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TestArgs {
    /// A .wasm component, or the name of an installed plugin.
    plugin: String,
    /// Host fine-tuning steps per learner trial [default: drawn from the
    /// seed, 8 to 40].
    #[arg(long, value_name = "N")]
    finetune_steps: Option<u64>,
    /// Trials an optimizer is run for [default: drawn from the seed, 16 to
    /// 40].
    #[arg(long, value_name = "N")]
    budget: Option<u32>,
    /// Seed of the suite: the baseline, the plugin's randomness, the random
    /// points, and (unless given) the steps, the target ratio and the
    /// budget all follow it [default: a fresh random seed, printed so a
    /// failure can be reproduced].
    #[arg(long)]
    seed: Option<u64>,
    /// A learner parameter fixed for every trial of the suite, NAME=VALUE
    /// (repeatable), as `pf compress --set` takes it.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ApplyArgs {
    /// The learner: a .wasm component or a plugin name.
    #[arg(long, short = 'p', value_name = "PLUGIN")]
    plugin: String,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// Epochs to train the baseline first when --model names a zoo
    /// architecture (a .pf file is used as it is).
    #[arg(long, default_value_t = 30, value_name = "N")]
    baseline_epochs: u64,
    /// A parameter value, NAME=VALUE (repeatable); others take their defaults.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Host fine-tuning steps after compression.
    #[arg(long, default_value_t = 600, value_name = "N")]
    finetune_steps: u64,
    /// Fine-tuning batch size.
    #[arg(long, default_value_t = 64, value_name = "N")]
    batch_size: usize,
    /// Fine-tuning learning rate (constant, SGD with momentum 0.9).
    #[arg(long, default_value_t = 0.01, value_name = "LR")]
    lr: f64,
    /// Fine-tuning weight decay.
    #[arg(long, default_value_t = 5e-4, value_name = "WD")]
    weight_decay: f64,
    /// Seed of the trial.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A budget the learner must meet, MEASURE=RATIO of the baseline:
    /// flops=0.5, params=0.25 or size=0.25.
    #[arg(long, value_name = "MEASURE=RATIO")]
    target: Option<pf::model::Target>,
    /// Where to save the compressed model (.pf).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `pf plugin`.
pub fn run(args: PluginArgs) -> Result<()> {
    match args.command {
        PluginCommand::Build(a) => run_build(a),
        PluginCommand::Inspect(a) => run_inspect(a),
        PluginCommand::Test(a) => run_test(a),
        PluginCommand::Apply(a) => run_apply(a),
        PluginCommand::Bench(a) => super::plugin_bench::run(a),
        PluginCommand::New(a) => super::plugin_new::run(a),
        PluginCommand::Manifest(a) => super::plugin_registry::run_manifest(a),
        PluginCommand::Keygen(a) => super::plugin_registry::run_keygen(a),
        PluginCommand::Sign(a) => super::plugin_registry::run_sign(a),
        PluginCommand::Verify(a) => super::plugin_registry::run_verify(a),
        PluginCommand::Publish(a) => super::plugin_registry::run_publish(a),
        PluginCommand::Install(a) => super::plugin_registry::run_install(a),
        PluginCommand::List(a) => super::plugin_registry::run_list(a),
        PluginCommand::Remove(a) => super::plugin_registry::run_remove(a),
    }
}

fn run_build(a: BuildArgs) -> Result<()> {
    let cwd = std::env::current_dir()?;
    let jobs: Vec<(PathBuf, PathBuf)> = if a.crates.is_empty() {
        let root = build::find_repo_root(&cwd).context(
            "not inside the pf repository (no plugins/Cargo.toml above this folder); pass the folder of a plugin crate",
        )?;
        vec![(root.join("plugins/Cargo.toml"), root.join("target"))]
    } else {
        a.crates
            .iter()
            .map(|c| {
                let manifest = if c.is_dir() {
                    c.join("Cargo.toml")
                } else {
                    c.clone()
                };
                let dir = manifest
                    .parent()
                    .map(|d| cwd.join(d))
                    .unwrap_or_else(|| cwd.clone());
                // Inside a pf checkout, share the repository's target folder
                // (std is built once); elsewhere use the crate's own.
                let target = build::find_repo_root(&dir).unwrap_or(dir).join("target");
                (manifest, target)
            })
            .collect()
    };
    let mut all = Vec::new();
    for (manifest, target) in jobs {
        let out_dir = a.out.clone().unwrap_or_else(|| target.join("plugins"));
        let target_dir = a
            .target_dir
            .clone()
            .unwrap_or_else(|| out_dir.parent().unwrap_or(&target).join("wasm"));
        let bar = pf::progress::spinner(&format!("building {}", manifest.display()), !a.json);
        let built = build::build(&BuildOptions {
            manifest: manifest.clone(),
            all: a.all,
            target_dir,
            out_dir,
            allow_foreign_imports: a.allow_foreign_imports,
            verbose: a.verbose,
        });
        bar.finish_and_clear();
        all.extend(built?);
    }
    if a.json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|b| {
                serde_json::json!({
                    "name": b.name,
                    "path": b.path,
                    "bytes": b.bytes,
                    "inspection": b.inspection.as_ref().ok(),
                    "refused": b.inspection.as_ref().err(),
                })
            })
            .collect();
        return print_json(&rows);
    }
    for b in &all {
        match &b.inspection {
            Ok(i) => println!(
                "{:<20} {:<9} @{}  {:>8} bytes  {}",
                b.name,
                i.kind.world_name(),
                i.contract,
                b.bytes,
                b.path.display()
            ),
            Err(e) => println!("{:<20} REFUSED   {}  ({e})", b.name, b.path.display()),
        }
    }
    Ok(())
}

fn space_rows(space: &[ParamSpec]) -> Vec<serde_json::Value> {
    space
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "domain": space::format_kind(&s.kind),
                "default": space::format_value(&s.default),
                "help": s.help,
                "context": s.context,
            })
        })
        .collect()
}

fn info_json(info: &PluginInfo) -> serde_json::Value {
    serde_json::json!({
        "name": info.name,
        "version": info.version,
        "summary": info.summary,
        "params_schema": serde_json::from_str::<serde_json::Value>(&info.params_schema).unwrap_or(serde_json::Value::Null),
    })
}

/// A model context on the embedded digits for plugins that need one to
/// declare their space.
fn probe_context(seed: u64) -> Result<ModelContext> {
    let (model, data) = conformance::digits_baseline(seed, 0)?;
    Ok(ModelContext::new(model, data, FineTune::default(), seed))
}

fn run_inspect(a: InspectArgs) -> Result<()> {
    let rt = a.limits.runtime("plugin inspect")?;
    let path = resolve::resolve(&a.plugin)?;
    let plugin = rt.load(&path)?;
    let space = match plugin.kind() {
        PluginKind::Learner => Some(
            rt.learner(&plugin, Some(probe_context(0)?), 0)?
                .search_space(&[], None)
                .map_err(anyhow::Error::from)?,
        ),
        PluginKind::Optimizer => None,
    };
    let options = match plugin.kind() {
        PluginKind::Optimizer => Some(
            space::settings_from_schema(&plugin.info.params_schema)
                .map_err(|e| anyhow::anyhow!("optimizer `{}`: {e}", plugin.name()))?,
        ),
        PluginKind::Learner => None,
    };
    let settings = match plugin.kind() {
        PluginKind::Learner => Some(
            space::fixed_settings(&plugin.info.params_schema)
                .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", plugin.name()))?,
        ),
        PluginKind::Optimizer => None,
    };
    if a.json {
        return print_json(&serde_json::json!({
            "path": plugin.path,
            "sha256": plugin.sha256,
            "world": plugin.kind().world_name(),
            "contract": plugin.inspection.contract,
            "imports": plugin.inspection.imports,
            "exports": plugin.inspection.exports,
            "info": info_json(&plugin.info),
            "provenance": plugin.admission.provenance.label(),
            "signer": plugin.admission.provenance.signer(),
            "manifest": plugin.admission.manifest,
            "search_space": space.as_deref().map(space_rows),
            "options": options.as_deref().map(space_rows),
            "settings": settings.as_deref().map(space_rows),
        }));
    }
    println!(
        "{} {}  ({})",
        plugin.info.name,
        plugin.info.version,
        plugin.path.display()
    );
    println!("  {}", plugin.info.summary);
    println!(
        "world     pocketflow:plugin/{}@{}",
        plugin.kind().world_name(),
        plugin.inspection.contract
    );
    println!("sha256    {}", plugin.sha256);
    println!(
        "origin    {}",
        match (
            &plugin.admission.provenance,
            plugin.admission.provenance.signer()
        ) {
            (pf_registry::admission::Provenance::Builtin { lock }, _) =>
                format!("built in (pinned in {})", lock.display()),
            (_, Some(signer)) => format!("signed by {signer}"),
            _ => "unsigned".to_string(),
        }
    );
    println!("imports   {}", plugin.inspection.imports.join(", "));
    println!("exports   {}", plugin.inspection.exports.join(", "));
    let rows = |space: &[ParamSpec]| {
        for s in space {
            println!(
                "  {:<24} {:<36} default {:<10} {}",
                s.name,
                space::format_kind(&s.kind),
                space::format_value(&s.default),
                s.help
            );
        }
    };
    if let Some(space) = space {
        println!("search space (as declared for digits_cnn; per-layer spaces follow the model):");
        rows(&space);
    }
    if let Some(settings) = settings.filter(|s| !s.is_empty()) {
        println!("settings (fixed, never searched; --set NAME=VALUE):");
        rows(&settings);
    }
    match options {
        Some(o) if o.is_empty() => println!("options   none"),
        Some(o) => {
            println!("options (pf compress --optimizer-set NAME=VALUE):");
            rows(&o);
        }
        None => {}
    }
    Ok(())
}

fn run_test(a: TestArgs) -> Result<()> {
    let rt = a.limits.runtime("plugin test")?;
    let path = resolve::resolve(&a.plugin)?;
    let plugin = rt.load(&path)?;
    // A fresh seed each run, so the suite cannot be recognised; printed
    // first, so that even a run that never ends can be reproduced.
    let seed = a.seed.unwrap_or_else(|| u64::from(rand::random::<u32>()));
    let report = match plugin.kind() {
        PluginKind::Learner => {
            let mut suite = LearnerSuite::from_seed(seed);
            if let Some(steps) = a.finetune_steps {
                suite.finetune_steps = steps;
            }
            suite.set = a.set.clone();
            eprintln!(
                "seed {seed} ({} fine-tuning steps, targets at {} of the baseline, {} random points); \
                 rerun with --seed {seed}",
                suite.finetune_steps, suite.target_ratio, suite.random_points
            );
            let bar = pf::progress::spinner(&format!("testing {}", plugin.name()), !a.json);
            let report = conformance::run_learner_suite(&rt, &plugin, &suite)?;
            bar.finish_and_clear();
            report
        }
        PluginKind::Optimizer => {
            if let Some(s) = a.set.first() {
                bail!(
                    "--set {s}: `{}` is an optimizer; --set fixes a learner's parameters",
                    plugin.name()
                );
            }
            let budget = a
                .budget
                .unwrap_or_else(|| conformance::budget_from_seed(seed));
            eprintln!("seed {seed} (a budget of {budget} trials); rerun with --seed {seed}");
            let bar = pf::progress::spinner(&format!("testing {}", plugin.name()), !a.json);
            let report = conformance::run_optimizer_suite(&rt, &plugin, budget, seed)?;
            bar.finish_and_clear();
            report
        }
    };
    if a.json {
        print_json(&report)?;
    } else {
        println!(
            "{} ({}) conformance:",
            report.plugin,
            plugin.kind().world_name()
        );
        for c in &report.checks {
            println!(
                "  [{}] {}: {}",
                if c.passed { "ok" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
    }
    if !report.passed() {
        bail!(
            "plugin `{}` fails the {} conformance suite:\n{}",
            report.plugin,
            plugin.kind().world_name(),
            report.failures()
        );
    }
    Ok(())
}

fn run_apply(a: ApplyArgs) -> Result<()> {
    let rt = a.limits.runtime("plugin apply")?;
    let path = resolve::resolve(&a.plugin)?;
    let plugin = rt.load(&path)?;
    if plugin.kind() != PluginKind::Learner {
        bail!(
            "`{}` is an optimizer; `pf plugin apply` needs a learner",
            plugin.name()
        );
    }
    let device = a.device.device.open()?;
    let splits = a.data.load()?;
    // The same cached baseline `pf compress` trains (and reuses).
    let base = pf::search::baseline::cached(
        &a.model.source(),
        &splits,
        a.baseline_epochs,
        a.seed,
        &device,
        a.json,
    )?;
    let norm = pf::data::Normalization::for_model(&base.graph, &splits.train);
    let data = Arc::new(TrialData {
        train: splits.train.clone(),
        val: splits.val.clone(),
        norm: norm.clone(),
    });
    let finetune = FineTune {
        batch_size: a.batch_size,
        lr: a.lr,
        momentum: 0.9,
        weight_decay: a.weight_decay,
        progress: !a.json,
    };
    let space_for = |settings: &[Param]| -> Result<Vec<ParamSpec>> {
        let probe = ModelContext::new(base.try_clone()?, data.clone(), finetune.clone(), a.seed);
        rt.learner(&plugin, Some(probe), a.seed)?
            .search_space(settings, a.target)
            .map_err(anyhow::Error::from)
    };
    let settings = space::fixed_settings(&plugin.info.params_schema)
        .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", plugin.name()))?;
    let (space, fixed) = space::shape_space(&a.set, &settings, space_for)?;
    let mut params = space::defaults(&space);
    for p in fixed {
        match params.iter_mut().find(|q| q.name == p.name) {
            Some(slot) => *slot = p,
            // A fixed setting, not a dimension: the learner takes it as given.
            None => params.push(p),
        }
    }
    let before_cost = base.footprint()?;
    let before = pf::train::evaluate(&base, &splits.test, &norm, 256, false)?;
    if !a.json {
        eprintln!(
            "{} ({}), {} fine-tuning steps",
            plugin.name(),
            space::format_params(&params),
            a.finetune_steps
        );
    }
    let spec = trial::TrialSpec {
        params: params.clone(),
        finetune_steps: a.finetune_steps,
        finetune,
        seed: a.seed,
        target: a.target,
    };
    let result = trial::run_learner(&rt, &plugin, &base, data.clone(), &spec);
    let result = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    let after = pf::train::evaluate(&result.model, &splits.test, &norm, 256, false)?;
    let measures = Measures::of(&result.model, &before_cost)?;
    if let Some(out) = &a.output {
        pf::model::save(&result.model, out).with_context(|| format!("saving {}", out.display()))?;
    }
    let summary = serde_json::json!({
        "plugin": plugin.name(),
        "plugin_sha256": plugin.sha256,
        "params": params.iter().map(|p| (p.name.clone(), space::format_value(&p.value))).collect::<std::collections::BTreeMap<_, _>>(),
        "seed": a.seed,
        "finetune_steps": a.finetune_steps,
        "test_accuracy_before": before.accuracy,
        "test_accuracy_after": after.accuracy,
        "measured": measures,
        "plugin_report": result.finish.values.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "plugin_summary": result.finish.summary,
        "seconds": {"compress": result.seconds[0], "finetune": result.seconds[1], "finish": result.seconds[2]},
        "output": a.output,
    });
    if a.json {
        return print_json(&summary);
    }
    println!("{}: {}", plugin.name(), result.finish.summary);
    println!(
        "test accuracy {:.2}% → {:.2}%  (sparsity {:.2}%, params ×{:.3}, MACs ×{:.3}, bytes ×{:.3}; counted by the host)",
        before.accuracy * 100.0,
        after.accuracy * 100.0,
        measures.sparsity * 100.0,
        measures.params_ratio,
        measures.macs_ratio,
        measures.bytes_ratio
    );
    println!(
        "time: compress {:.2}s, fine-tune {:.2}s, finish {:.2}s",
        result.seconds[0], result.seconds[1], result.seconds[2]
    );
    if let Some(out) = &a.output {
        println!("saved {}", out.display());
    }
    Ok(())
}
