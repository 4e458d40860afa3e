//! The learner conformance suite, run on the embedded digits and
//! `digits_cnn` ([`digits_baseline`]): a valid description and search
//! space; `compress` with the defaults, the host's fine-tuning with
//! `on-train-step`, and `finish` all succeed and leave a model that
//! validates and evaluates to a finite loss; a parameter named after a
//! measure ([`MEASURES`]) is a target the host checks against its own count;
//! random points of the space either work or fail with an error value
//! (never a trap); the same seed gives bit-identical weights.

use super::{check_info, SuiteReport};
use crate::data::{self, DataSource, LoadOptions, Normalization};
use crate::graph::InputSpec;
use crate::model::Model;
use crate::model::{Footprint, Measure, Target};
use crate::plugin::trial::{self, TrialSpec};
use crate::plugin::{
    space, FineTune, ModelContext, Param, ParamKind, ParamSpec, ParamValue, Plugin, PluginKind,
    Runtime, TrialData,
};
use crate::train;
use anyhow::Result;
use candle_core::Device;
use rand::Rng;
use serde::Serialize;
use std::sync::Arc;

/// Settings of the learner suite.
#[derive(Debug, Clone)]
pub struct LearnerSuite {
    /// Steps of the host's fine-tuning in each trial.
    pub finetune_steps: u64,
    /// Random points of the space to try.
    pub random_points: usize,
    /// Seed of everything.
    pub seed: u64,
    /// The ratio of the baseline each declared target is tested at.
    pub target_ratio: f64,
    /// Parameters fixed by the user (`NAME=VALUE`, as `pf compress --set`
    /// takes them): every trial uses them, and random points draw only the
    /// other dimensions.
    pub set: Vec<String>,
}

impl Default for LearnerSuite {
    /// The fixed settings the repository's own tests run the suite with.
    fn default() -> Self {
        LearnerSuite {
            finetune_steps: 20,
            random_points: 2,
            seed: 7,
            target_ratio: TARGET_RATIO,
            set: Vec::new(),
        }
    }
}

impl LearnerSuite {
    /// Settings drawn from `seed`: `pf plugin test` runs the suite with a
    /// fresh host seed each time, so a plugin cannot recognise the suite by
    /// its step count, its seed or its targets (and behave only then); the
    /// seed is printed, so a failure can be reproduced with `--seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = crate::rng::stream(seed, &["conformance", "settings"]);
        LearnerSuite {
            finetune_steps: rng.random_range(MIN_STEPS..=MAX_STEPS),
            random_points: rng.random_range(2..=3),
            seed,
            // Whole percents, so the printed ratio is the one tested.
            target_ratio: f64::from(rng.random_range(25u32..=60)) / 100.0,
            set: Vec::new(),
        }
    }
}

/// Fewest host fine-tuning steps [`LearnerSuite::from_seed`] draws.
pub const MIN_STEPS: u64 = 8;

/// Most host fine-tuning steps [`LearnerSuite::from_seed`] draws.
pub const MAX_STEPS: u64 = 40;

/// The ratio of the baseline each declared target is tested at in the
/// default suite.
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
    // The user's fixed values shape the space and go into every trial.
    let (space, fixed) = if suite.set.is_empty() {
        (space, Vec::new())
    } else {
        let settings = space::fixed_settings(&plugin.info.params_schema)
            .map_err(|e| anyhow::anyhow!("learner `{}`: {e}", plugin.name()))?;
        space::shape_space(&suite.set, &settings, |given| {
            let probe = ModelContext::new(
                base.try_clone()?,
                data.clone(),
                FineTune::default(),
                suite.seed,
            );
            rt.learner(plugin, Some(probe), suite.seed)?
                .search_space(given, None)
                .map_err(anyhow::Error::from)
        })?
    };
    let with_fixed = |mut point: Vec<Param>| {
        for p in &fixed {
            match point.iter_mut().find(|q| q.name == p.name) {
                Some(slot) => *slot = p.clone(),
                // A fixed setting, not a dimension: the learner takes it as given.
                None => point.push(p.clone()),
            }
        }
        point
    };
    let defaults = with_fixed(space::defaults(&space));
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
            measure: crate::plugin::runtime::host_measure(*declared),
            ratio: suite.target_ratio,
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
                .search_space(&fixed, Some(target))
                .map_err(|e| e.to_string())?;
            space::validate_space(&space)?;
            // What the target decides (a pruner's keep ratio, say) cannot be
            // fixed under it: only the fixed values the space still has.
            let mut point = space::defaults(&space);
            for p in &fixed {
                if let Some(slot) = point.iter_mut().find(|q| q.name == p.name) {
                    *slot = p.clone();
                }
            }
            let o = learner_trial(rt, plugin, &base, &data, &point, Some(target), suite)?;
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
    let free: Vec<ParamSpec> = space
        .iter()
        .filter(|d| !fixed.iter().any(|f| f.name == d.name))
        .cloned()
        .collect();
    for i in 0..suite.random_points {
        let point = with_fixed(random_point(&free, &mut rng));
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
