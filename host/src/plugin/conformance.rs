//! The conformance suites: what every learner and every optimizer must do.
//! The built-in plugins pass them in the test suite; a third-party author
//! runs the same checks with `pf plugin test FILE`.
//!
//! Learner suite (on the embedded digits and `digits_cnn`): a valid
//! description and search space; `compress` with the defaults, the host's
//! fine-tuning with `on-train-step`, and `finish` all succeed and leave a
//! model that validates and evaluates to a finite loss; a parameter named
//! after a measure (`sparsity`, `params_ratio`, `macs_ratio`, `bytes_ratio`)
//! is a target the host checks against its own count; random points of the
//! space either work or fail with an error value (never a trap); the same
//! seed gives bit-identical weights.
//!
//! Optimizer suite: suggestions lie in the space (types and bounds) for a
//! space with every kind of dimension; the same seed gives the same
//! suggestions; NaN, infinite and failed outcomes are survived; a suggestion
//! past the budget is refused with an error value; a malformed space is
//! refused with an error value.

use super::bindings::types::{
    FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue, PluginInfo,
};
use super::inspect::PluginKind;
use super::model_api::{FineTune, ModelContext, TrialData};
use super::runtime::{Outcome, Plugin, Runtime};
use super::space;
use super::trial::{self, TrialSpec};
use crate::data::{self, DataSource, LoadOptions, Normalization};
use crate::graph::InputSpec;
use crate::model::Model;
use crate::model::{Footprint, Measure, Target};
use crate::train;
use anyhow::Result;
use candle_core::Device;
use rand::Rng;
use serde::Serialize;
use std::sync::Arc;

/// One check of a suite.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// The result of running a suite on one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// The plugin's name.
    pub plugin: String,
    /// Learner or optimizer.
    pub kind: PluginKind,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl SuiteReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks, one per line.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check(&mut self, name: &str, r: Result<String, String>) -> bool {
        let passed = r.is_ok();
        self.checks.push(Check {
            name: name.to_string(),
            passed,
            detail: r.unwrap_or_else(|e| e),
        });
        passed
    }
}

/// Settings of the learner suite.
#[derive(Debug, Clone)]
pub struct LearnerSuite {
    /// Steps of the host's fine-tuning in each trial.
    pub finetune_steps: u64,
    /// Random points of the space to try.
    pub random_points: usize,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for LearnerSuite {
    fn default() -> Self {
        LearnerSuite {
            finetune_steps: 20,
            random_points: 2,
            seed: 7,
        }
    }
}

/// The ratio of the baseline each declared target is tested at.
pub const TARGET_RATIO: f64 = 0.4;

/// The measures a learner parameter may promise, by name.
pub const MEASURES: &[&str] = &["sparsity", "params_ratio", "macs_ratio", "bytes_ratio"];

/// Measures of a model relative to its baseline, counted by the host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measures {
    /// Fraction of weight entries (conv and linear) that are zero.
    pub sparsity: f64,
    /// Non-zero parameters now / before.
    pub params_ratio: f64,
    /// MACs now / before.
    pub macs_ratio: f64,
    /// Stored bytes now / before (the `size` measure).
    pub bytes_ratio: f64,
}

impl Measures {
    /// Measures `now` against `before`.
    pub fn of(now: &Model, before: &Footprint) -> Result<Measures> {
        let f = now.footprint()?;
        let ratio = |m: Measure| f.get(m) as f64 / before.get(m).max(1) as f64;
        Ok(Measures {
            sparsity: now.weight_sparsity()?,
            params_ratio: ratio(Measure::Params),
            macs_ratio: ratio(Measure::Flops),
            bytes_ratio: ratio(Measure::Size),
        })
    }

    /// A measure by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "sparsity" => Some(self.sparsity),
            "params_ratio" => Some(self.params_ratio),
            "macs_ratio" => Some(self.macs_ratio),
            "bytes_ratio" => Some(self.bytes_ratio),
            _ => None,
        }
    }
}

/// A small trained baseline: `digits_cnn` on the embedded digits.
pub fn digits_baseline(seed: u64, steps: u64) -> Result<(Model, Arc<TrialData>)> {
    let splits = data::load(&DataSource::Digits, &LoadOptions::default())?;
    let norm = Normalization::of(&splits.train);
    let [c, h, w] = splits.train.shape;
    let cfg = crate::zoo::ZooConfig {
        input: InputSpec {
            channels: c,
            height: h,
            width: w,
        },
        num_classes: splits.train.classes,
        width: 1.0,
    };
    let graph = crate::zoo::build("digits_cnn", &cfg)?;
    let mut model = Model::init(graph, seed, &Device::Cpu)?;
    // Constant-rate SGD, as the host fine-tunes, at a higher rate.
    let config = FineTune {
        lr: 0.05,
        ..FineTune::default()
    }
    .config(steps, seed);
    let trainer = train::Trainer {
        config,
        data: &splits.train,
        norm: norm.clone(),
        teacher: None,
        checkpoint: None,
        progress: false,
        auxiliary: &[],
    };
    trainer.run(&mut model, None)?;
    let data = Arc::new(TrialData {
        train: splits.train,
        val: splits.val,
        norm,
    });
    Ok((model, data))
}

/// The outcome of one learner trial in the suite.
struct TrialOutcome {
    weights: String,
    measures: Measures,
    footprint: Footprint,
    loss: f64,
    accuracy: f64,
    report: Vec<(String, f64)>,
}

fn learner_trial(
    rt: &Runtime,
    plugin: &Plugin,
    base: &Model,
    data: &Arc<TrialData>,
    params: &[Param],
    target: Option<Target>,
    suite: &LearnerSuite,
) -> Result<TrialOutcome, String> {
    let before = base.footprint().map_err(|e| format!("{e:#}"))?;
    let spec = TrialSpec {
        params: params.to_vec(),
        finetune_steps: suite.finetune_steps,
        finetune: FineTune::default(),
        seed: suite.seed,
        target,
    };
    let r = trial::run_learner(rt, plugin, base, data.clone(), &spec).map_err(|e| e.to_string())?;
    let ctx = ModelContext::new(r.model, data.clone(), FineTune::default(), suite.seed);
    let m = ctx.evaluate(0).map_err(|e| format!("{e:#}"))?;
    Ok(TrialOutcome {
        weights: ctx.model.weights_sha256().map_err(|e| format!("{e:#}"))?,
        measures: Measures::of(&ctx.model, &before).map_err(|e| format!("{e:#}"))?,
        footprint: ctx.model.footprint().map_err(|e| format!("{e:#}"))?,
        loss: m.loss,
        accuracy: m.accuracy,
        report: r.finish.values,
    })
}

/// A random point of a space, drawn by the host.
pub fn random_point(space: &[ParamSpec], rng: &mut impl Rng) -> Vec<Param> {
    space
        .iter()
        .map(|s| {
            let value = match &s.kind {
                ParamKind::Float(r) if r.log => ParamValue::Float(
                    (rng.random_range(r.low.ln()..=r.high.ln()))
                        .exp()
                        .clamp(r.low, r.high),
                ),
                ParamKind::Float(r) => ParamValue::Float(rng.random_range(r.low..=r.high)),
                ParamKind::Int(r) => ParamValue::Int(rng.random_range(r.low..=r.high)),
                ParamKind::Boolean => ParamValue::Boolean(rng.random()),
                ParamKind::Choice(c) => ParamValue::Choice(c[rng.random_range(0..c.len())].clone()),
            };
            Param {
                name: s.name.clone(),
                value,
            }
        })
        .collect()
}

/// Runs the learner suite.
pub fn run_learner_suite(
    rt: &Runtime,
    plugin: &Plugin,
    suite: &LearnerSuite,
) -> Result<SuiteReport> {
    let mut rep = SuiteReport {
        plugin: plugin.name().to_string(),
        kind: PluginKind::Learner,
        checks: Vec::new(),
    };
    rep.check("describe", check_info(&plugin.info));
    let (base, data) = digits_baseline(suite.seed, 60)?;
    let probe = ModelContext::new(
        base.try_clone()?,
        data.clone(),
        FineTune::default(),
        suite.seed,
    );
    let space = rt
        .learner(plugin, Some(probe), suite.seed)?
        .search_space(&[], None)
        .map_err(|e| e.to_string())
        .and_then(|s| space::validate_space(&s).map(|_| s));
    let space_ok = rep.check(
        "search space is valid",
        space
            .as_ref()
            .map(|s| format!("{} dimensions", s.len()))
            .map_err(Clone::clone),
    );
    if !space_ok {
        return Ok(rep);
    }
    let space = space.expect("checked");
    let defaults = space::defaults(&space);
    let first = learner_trial(rt, plugin, &base, &data, &defaults, None, suite);
    let ok = rep.check(
        "compress, fine-tune and finish with the defaults; the model still evaluates",
        first.as_ref().map_err(Clone::clone).and_then(|o| {
            if o.loss.is_finite() && (0.0..=1.0).contains(&o.accuracy) {
                Ok(format!("loss {:.4}, accuracy {:.4}", o.loss, o.accuracy))
            } else {
                Err(format!("loss {} accuracy {}", o.loss, o.accuracy))
            }
        }),
    );
    if !ok {
        return Ok(rep);
    }
    let first = first.expect("checked");
    let mut targets = Vec::new();
    for p in &defaults {
        if let (Some(m), ParamValue::Float(t)) = (first.measures.get(&p.name), &p.value) {
            let met = if p.name == "sparsity" {
                m >= t - 0.005
            } else {
                m <= t + 0.005
            };
            targets.push((p.name.clone(), *t, m, met));
        }
    }
    rep.check(
        "targets named by parameters are reached (host count)",
        if targets.iter().all(|t| t.3) {
            Ok(if targets.is_empty() {
                "no parameter names a measure".into()
            } else {
                targets
                    .iter()
                    .map(|(n, t, m, _)| format!("{n}: target {t:.4}, measured {m:.4}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        } else {
            Err(targets
                .iter()
                .filter(|t| !t.3)
                .map(|(n, t, m, _)| format!("{n}: target {t:.4} but the host measured {m:.4}"))
                .collect::<Vec<_>>()
                .join("; "))
        },
    );
    let claims: Vec<String> = first
        .report
        .iter()
        .filter_map(|(k, v)| first.measures.get(k).map(|m| (k, v, m)))
        .filter(|(_, v, m)| (*v - m).abs() > 1e-3)
        .map(|(k, v, m)| format!("{k}: reported {v:.4}, host measured {m:.4}"))
        .collect();
    rep.check(
        "reported measures agree with the host's count",
        if claims.is_empty() {
            Ok(format!("{:?}", first.measures))
        } else {
            Err(claims.join("; "))
        },
    );
    let second = learner_trial(rt, plugin, &base, &data, &defaults, None, suite);
    rep.check(
        "the same seed gives identical weights",
        match second {
            Ok(s) if s.weights == first.weights => {
                Ok(format!("weights sha256 {}", &s.weights[..16]))
            }
            Ok(s) => Err(format!(
                "weights differ: {} vs {}",
                &first.weights[..16],
                &s.weights[..16]
            )),
            Err(e) => Err(format!("second run failed: {e}")),
        },
    );
    let baseline = base.footprint()?;
    for declared in &plugin.info.targets {
        let target = Target {
            measure: super::runtime::host_measure(*declared),
            ratio: TARGET_RATIO,
        };
        let outcome = (|| {
            let probe = ModelContext::new(
                base.try_clone().map_err(|e| format!("{e:#}"))?,
                data.clone(),
                FineTune::default(),
                suite.seed,
            );
            let space = rt
                .learner(plugin, Some(probe), suite.seed)
                .map_err(|e| format!("{e:#}"))?
                .search_space(&[], Some(target))
                .map_err(|e| e.to_string())?;
            space::validate_space(&space)?;
            let o = learner_trial(
                rt,
                plugin,
                &base,
                &data,
                &space::defaults(&space),
                Some(target),
                suite,
            )?;
            let ratio = target.ratio_of(&o.footprint, &baseline);
            if target.is_met(&o.footprint, &baseline) {
                Ok(format!("{target}: measured {ratio:.4}"))
            } else {
                Err(format!("{target}: the host measured {ratio:.4}"))
            }
        })();
        rep.check(
            &format!("a declared {} target is met (host count)", target.measure),
            outcome,
        );
    }
    let mut rng = crate::rng::stream(suite.seed, &["conformance", "points"]);
    for i in 0..suite.random_points {
        let point = random_point(&space, &mut rng);
        let r = learner_trial(rt, plugin, &base, &data, &point, None, suite);
        rep.check(
            &format!("random point {} works or fails cleanly", i + 1),
            match r {
                Ok(o) if o.loss.is_finite() => Ok(format!(
                    "{} → accuracy {:.4}",
                    space::format_params(&point),
                    o.accuracy
                )),
                Ok(o) => Err(format!(
                    "{} → loss {}",
                    space::format_params(&point),
                    o.loss
                )),
                Err(e) if e.contains("returned an error") => {
                    Ok(format!("{} → refused: {e}", space::format_params(&point)))
                }
                Err(e) => Err(format!("{} → {e}", space::format_params(&point))),
            },
        );
    }
    Ok(rep)
}

/// Checks what a plugin says about itself: a name, a semantic version and a
/// parameter schema that is JSON.
fn check_info(info: &PluginInfo) -> Result<String, String> {
    if info.name.is_empty() {
        return Err("the name is empty".into());
    }
    if !semver_ok(&info.version) {
        return Err(format!(
            "version `{}` is not semantic (x.y.z)",
            info.version
        ));
    }
    serde_json::from_str::<serde_json::Value>(&info.params_schema)
        .map(|_| format!("{} {}", info.name, info.version))
        .map_err(|e| format!("params-schema is not JSON: {e}"))
}

fn semver_ok(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The space the optimizer suite searches: one dimension of every kind.
pub fn test_space() -> Vec<ParamSpec> {
    let spec = |name: &str, kind: ParamKind, default: ParamValue| ParamSpec {
        name: name.into(),
        kind,
        default,
        help: format!("test dimension {name}"),
        context: vec![],
    };
    vec![
        spec(
            "x",
            ParamKind::Float(FloatRange {
                low: -2.0,
                high: 3.0,
                log: false,
            }),
            ParamValue::Float(0.0),
        ),
        spec(
            "lr",
            ParamKind::Float(FloatRange {
                low: 1e-4,
                high: 1.0,
                log: true,
            }),
            ParamValue::Float(0.01),
        ),
        spec(
            "n",
            ParamKind::Int(IntRange {
                low: -3,
                high: 7,
                log: false,
            }),
            ParamValue::Int(0),
        ),
        spec(
            "width",
            ParamKind::Int(IntRange {
                low: 1,
                high: 1024,
                log: true,
            }),
            ParamValue::Int(16),
        ),
        spec("flag", ParamKind::Boolean, ParamValue::Boolean(false)),
        spec(
            "act",
            ParamKind::Choice(vec!["relu".into(), "relu6".into(), "tanh".into()]),
            ParamValue::Choice("relu".into()),
        ),
    ]
}

/// A test objective over [`test_space`]: smooth, with its best at x = 1,
/// lr = 0.1, n = 2, flag = true, act = relu6.
pub fn test_objective(params: &[Param]) -> f64 {
    let mut r = 0.0;
    for p in params {
        r -= match (p.name.as_str(), &p.value) {
            ("x", ParamValue::Float(x)) => (x - 1.0).powi(2),
            ("lr", ParamValue::Float(v)) => (v.log10() + 1.0).powi(2),
            ("n", ParamValue::Int(n)) => ((n - 2) as f64).powi(2) / 10.0,
            ("width", ParamValue::Int(w)) => ((*w as f64).log2() - 5.0).powi(2) / 20.0,
            ("flag", ParamValue::Boolean(b)) => {
                if *b {
                    0.0
                } else {
                    0.5
                }
            }
            ("act", ParamValue::Choice(c)) => {
                if c == "relu6" {
                    0.0
                } else {
                    0.5
                }
            }
            _ => 0.0,
        };
    }
    r
}

/// Runs the optimizer over the test space for `budget` trials, feeding
/// some NaN, infinite and failed outcomes. Returns the suggestions.
fn optimizer_run(
    rt: &Runtime,
    plugin: &Plugin,
    budget: u32,
    seed: u64,
) -> Result<Vec<Vec<Param>>, String> {
    let space = test_space();
    let mut inst = rt.optimizer(plugin, seed).map_err(|e| format!("{e:#}"))?;
    inst.create(&space, budget, &[])
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for i in 0..budget {
        let p = inst.suggest().map_err(|e| e.to_string())?;
        space::check_params(&space, &p).map_err(|e| format!("suggestion {}: {e}", i + 1))?;
        let outcome = match i % 7 {
            3 => Outcome::Reward(f64::NAN),
            4 => Outcome::Reward(f64::INFINITY),
            5 => Outcome::Failed("the trial crashed on purpose".into()),
            6 => Outcome::Reward(f64::NEG_INFINITY),
            _ => Outcome::Reward(test_objective(&p)),
        };
        inst.observe(&p, &outcome).map_err(|e| e.to_string())?;
        out.push(p);
    }
    match inst.suggest() {
        Ok(p) => Err(format!(
            "a suggestion past the budget of {budget} was given: {}",
            space::format_params(&p)
        )),
        Err(e) if !e.is_trap() => Ok(out),
        Err(e) => Err(format!(
            "past the budget it trapped instead of returning an error: {e}"
        )),
    }
}

/// Runs the optimizer as `pf compress --jobs 3` does: three suggestions,
/// then their three outcomes, over the budget.
fn optimizer_batched(
    rt: &Runtime,
    plugin: &Plugin,
    budget: u32,
    seed: u64,
) -> Result<String, String> {
    let space = test_space();
    let mut inst = rt.optimizer(plugin, seed).map_err(|e| format!("{e:#}"))?;
    inst.create(&space, budget, &[])
        .map_err(|e| e.to_string())?;
    let mut done = 0;
    while done < budget {
        let round = (budget - done).min(3);
        let mut batch = Vec::new();
        for i in 0..round {
            let p = inst.suggest().map_err(|e| e.to_string())?;
            space::check_params(&space, &p)
                .map_err(|e| format!("suggestion {}: {e}", done + i + 1))?;
            batch.push(p);
        }
        for p in &batch {
            inst.observe(p, &Outcome::Reward(test_objective(p)))
                .map_err(|e| e.to_string())?;
        }
        done += round;
    }
    Ok(format!("{budget} suggestions in rounds of 3"))
}

/// Replays trials the optimizer never suggested, as a resumed study does,
/// then asks for a suggestion; observing parameters outside the space must
/// not trap (an error or acceptance are both fine).
fn optimizer_replay(rt: &Runtime, plugin: &Plugin, seed: u64) -> Result<String, String> {
    let space = test_space();
    let mut inst = rt.optimizer(plugin, seed).map_err(|e| format!("{e:#}"))?;
    inst.create(&space, 20, &[]).map_err(|e| e.to_string())?;
    let mut replayed = space::defaults(&space);
    for i in 0..12 {
        if let Some(ParamValue::Float(x)) = replayed.first_mut().map(|p| &mut p.value) {
            *x = -2.0 + 5.0 * f64::from(i) / 11.0;
        }
        let outcome = Outcome::Reward(test_objective(&replayed));
        inst.observe(&replayed, &outcome)
            .map_err(|e| format!("observing a replayed trial: {e}"))?;
    }
    let p = inst.suggest().map_err(|e| e.to_string())?;
    space::check_params(&space, &p).map_err(|e| format!("after the replay: {e}"))?;
    let mut outside = space::defaults(&space);
    outside[0].value = ParamValue::Float(1e9);
    match inst.observe(&outside, &Outcome::Reward(0.0)) {
        Err(e) if e.is_trap() => Err(format!("a value outside the space trapped: {e}")),
        _ => Ok("12 foreign trials observed, then a valid suggestion".into()),
    }
}

/// Runs the optimizer suite.
pub fn run_optimizer_suite(
    rt: &Runtime,
    plugin: &Plugin,
    budget: u32,
    seed: u64,
) -> Result<SuiteReport> {
    let mut rep = SuiteReport {
        plugin: plugin.name().to_string(),
        kind: PluginKind::Optimizer,
        checks: Vec::new(),
    };
    rep.check("describe", check_info(&plugin.info));
    let first = optimizer_run(rt, plugin, budget, seed);
    rep.check(
        "suggestions respect types and bounds; NaN, infinite and failed outcomes are survived; the budget is honoured",
        first.as_ref().map(|s| format!("{} suggestions", s.len())).map_err(Clone::clone),
    );
    let second = optimizer_run(rt, plugin, budget, seed);
    rep.check(
        "the same seed gives the same suggestions",
        match (&first, &second) {
            (Ok(a), Ok(b)) if format!("{a:?}") == format!("{b:?}") => Ok("identical".into()),
            (Ok(_), Ok(_)) => Err("the suggestions differ between two runs with one seed".into()),
            _ => Err("a run failed".into()),
        },
    );
    let mut bad = test_space();
    bad[0].kind = ParamKind::Float(FloatRange {
        low: 5.0,
        high: 1.0,
        log: false,
    });
    let refused = rt
        .optimizer(plugin, seed)
        .map_err(|e| format!("{e:#}"))
        .and_then(|mut inst| match inst.create(&bad, budget, &[]) {
            Ok(()) => Err("it accepted a float range [5, 1]".to_string()),
            Err(e) if !e.is_trap() => Ok(format!("refused: {e}")),
            Err(e) => Err(format!("it trapped: {e}")),
        });
    rep.check("a malformed space is refused with an error", refused);
    rep.check(
        "suggestions made before earlier outcomes arrive (parallel trials) are valid",
        optimizer_batched(rt, plugin, budget, seed),
    );
    rep.check(
        "trials it never suggested (a resumed study) are observed without a trap",
        optimizer_replay(rt, plugin, seed),
    );
    let unknown = Param {
        name: "pf_conformance_no_such_option".into(),
        value: ParamValue::Boolean(true),
    };
    let refused = rt
        .optimizer(plugin, seed)
        .map_err(|e| format!("{e:#}"))
        .and_then(
            |mut inst| match inst.create(&test_space(), budget, &[unknown]) {
                Ok(()) => Err("it accepted an option it does not declare".to_string()),
                Err(e) if !e.is_trap() => Ok(format!("refused: {e}")),
                Err(e) => Err(format!("it trapped: {e}")),
            },
        );
    rep.check("an unknown option is refused with an error", refused);
    Ok(rep)
}
