//! The optimizer conformance suite: suggestions lie in the space (types and
//! bounds) for a space with every kind of dimension ([`test_space`]); the
//! same seed gives the same suggestions; NaN, infinite and failed outcomes
//! are survived; a suggestion past the budget is refused with an error
//! value; a malformed space is refused with an error value.

use super::{check_info, SuiteReport};
use crate::plugin::runtime::Outcome;
use crate::plugin::space;
use crate::plugin::{
    FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue, Plugin, PluginKind, Runtime,
};
use anyhow::Result;

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

/// The trial budget `pf plugin test` runs an optimizer for when
/// `--budget` is not given: drawn from the host seed (16 to 40), so an
/// optimizer cannot recognise the suite by its budget.
pub fn budget_from_seed(seed: u64) -> u32 {
    use rand::Rng;
    crate::rng::stream(seed, &["conformance", "budget"]).random_range(16..=40)
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
