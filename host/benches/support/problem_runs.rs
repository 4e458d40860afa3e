//! Runs an optimizer component through the host on one of the test
//! problems of `pf_sdk::testing`: shared by the optimizer benchmark
//! (`host/benches/optimizers.rs`) and the integration tests
//! (`tests/all/optimizers.rs`).

use anyhow::Result;
use pf::plugin::runtime::Outcome;
use pf::plugin::{space, Plugin, Runtime};
use pf::plugin::{FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue};
use pf_sdk::testing::Problem;
use std::time::Instant;

/// The host's form of an SDK dimension.
pub fn host_spec(s: &pf_sdk::ParamSpec) -> ParamSpec {
    ParamSpec {
        name: s.name.clone(),
        kind: match &s.kind {
            pf_sdk::ParamKind::Float(r) => ParamKind::Float(FloatRange {
                low: r.low,
                high: r.high,
                log: r.log,
            }),
            pf_sdk::ParamKind::Int(r) => ParamKind::Int(IntRange {
                low: r.low,
                high: r.high,
                log: r.log,
            }),
            pf_sdk::ParamKind::Boolean => ParamKind::Boolean,
            pf_sdk::ParamKind::Choice(c) => ParamKind::Choice(c.clone()),
        },
        default: sdk_to_host(&s.default),
        help: s.help.clone(),
        context: s.context.clone(),
    }
}

fn sdk_to_host(v: &pf_sdk::ParamValue) -> ParamValue {
    match v {
        pf_sdk::ParamValue::Float(x) => ParamValue::Float(*x),
        pf_sdk::ParamValue::Int(i) => ParamValue::Int(*i),
        pf_sdk::ParamValue::Boolean(b) => ParamValue::Boolean(*b),
        pf_sdk::ParamValue::Choice(c) => ParamValue::Choice(c.clone()),
    }
}

fn host_to_sdk(p: &Param) -> pf_sdk::Param {
    let value = match &p.value {
        ParamValue::Float(x) => pf_sdk::ParamValue::Float(*x),
        ParamValue::Int(i) => pf_sdk::ParamValue::Int(*i),
        ParamValue::Boolean(b) => pf_sdk::ParamValue::Boolean(*b),
        ParamValue::Choice(c) => pf_sdk::ParamValue::Choice(c.clone()),
    };
    pf_sdk::Param::new(p.name.clone(), value)
}

/// One run: the best regret after each trial and each suggest's seconds.
pub fn run_once(
    rt: &Runtime,
    plugin: &Plugin,
    options: &[Param],
    problem: &Problem,
    trials: u32,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let space: Vec<ParamSpec> = problem.space.iter().map(host_spec).collect();
    let mut opt = rt.optimizer(plugin, seed)?;
    opt.create(&space, trials, options)?;
    let (mut best, mut curve, mut times) = (f64::INFINITY, Vec::new(), Vec::new());
    for trial in 0..trials {
        let t0 = Instant::now();
        let params = opt.suggest()?;
        times.push(t0.elapsed().as_secs_f64());
        space::check_params(&space, &params).map_err(|e| anyhow::anyhow!("trial {trial}: {e}"))?;
        let sdk: Vec<pf_sdk::Param> = params.iter().map(host_to_sdk).collect();
        let value = problem.value(&sdk);
        best = best.min(problem.regret(value));
        curve.push(best);
        opt.observe(&params, &Outcome::Reward(-value))?;
    }
    Ok((curve, times))
}
