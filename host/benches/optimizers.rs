//! The optimizer benchmark: pf's optimizer components, run through the host
//! as `pf compress` runs them (WebAssembly, sandbox limits, the host's seeded
//! stream), on the five test problems of `pf_sdk::testing` (Branin,
//! Hartmann-6, Rosenbrock-4, Ackley-5 and a mixed int/categorical function).
//!
//! For every optimizer, problem and seed it runs `--trials` trials (reward =
//! −value) and reports the median simple regret over the seeds at each
//! checkpoint, with the median time of one `suggest` call (the optimizer's
//! own work plus the crossing into WebAssembly). `benches/optimizers.sh`
//! runs it beside Optuna's samplers and prints the comparison.
//!
//! ```text
//! cargo bench -p pf --bench optimizers -- --seeds 20 --trials 50 \
//!     --optimizer random --optimizer tpe --optimizer gp --out optimizers.json
//! ```

#[path = "support/problem_runs.rs"]
mod problem_runs;

use anyhow::{bail, Context, Result};
use pf::plugin::{space, Limits, Runtime};
use pf::registry::resolve;
use pf_sdk::testing::{self, Problem};
use problem_runs::run_once;
use std::time::Instant;

/// What the command line asks for.
struct Args {
    optimizers: Vec<String>,
    options: Vec<(String, Vec<String>)>,
    problems: Vec<String>,
    trials: u32,
    seeds: u64,
    checkpoints: Vec<u32>,
    out: Option<String>,
}

const USAGE: &str =
    "usage: optimizers [--optimizer NAME|PATH]... [--variant LABEL=OPTIMIZER:KEY=VALUE,...]... \
[--problem NAME]... [--trials N] [--seeds N] [--checkpoints 10,25,50] [--out FILE.json]
(cargo runs benches from host/, so give --out an absolute path)";

fn parse_args() -> Result<Args> {
    let mut a = Args {
        optimizers: Vec::new(),
        options: Vec::new(),
        problems: Vec::new(),
        trials: 50,
        seeds: 20,
        checkpoints: vec![10, 25, 50],
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // cargo bench passes --bench to every harness.
        if flag == "--bench" {
            continue;
        }
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--optimizer" => a.optimizers.push(value()?),
            // A named variant with options, e.g. `tpe-mv=tpe:multivariate=true`.
            "--variant" => {
                let v = value()?;
                let (label, rest) = v
                    .split_once('=')
                    .with_context(|| format!("--variant {v}: expected LABEL=OPTIMIZER:K=V,..."))?;
                let (optimizer, opts) = rest.split_once(':').unwrap_or((rest, ""));
                a.optimizers.push(label.to_string());
                a.options.push((
                    label.to_string(),
                    std::iter::once(optimizer.to_string())
                        .chain(opts.split(',').filter(|s| !s.is_empty()).map(String::from))
                        .collect(),
                ));
            }
            "--problem" => a.problems.push(value()?),
            "--trials" => a.trials = value()?.parse().context("--trials")?,
            "--seeds" => a.seeds = value()?.parse().context("--seeds")?,
            "--checkpoints" => {
                a.checkpoints = value()?
                    .split(',')
                    .map(|c| c.parse().context("--checkpoints"))
                    .collect::<Result<_>>()?
            }
            "--out" => a.out = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.optimizers.is_empty() {
        a.optimizers = ["random", "tpe", "gp"].map(String::from).to_vec();
    }
    if a.trials == 0 || a.seeds == 0 {
        bail!("--trials and --seeds must be at least 1");
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = parse_args()?;
    // Built-in plugins by name: a bench executable lives in target/*/deps,
    // so point the search path at the repository's target/plugins.
    if std::env::var_os("PF_PLUGIN_PATH").is_none() {
        let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
        std::env::set_var("PF_PLUGIN_PATH", plugins);
    }
    let rt = Runtime::new(Limits::default(), pf::plugin::runtime::default_cache_dir())?;
    let problems: Vec<Problem> = testing::problems()
        .into_iter()
        .filter(|p| a.problems.is_empty() || a.problems.iter().any(|n| n == p.name))
        .collect();
    if problems.is_empty() {
        bail!("no problem matches {:?}", a.problems);
    }
    let mut rows = Vec::new();
    println!(
        "{:<14} {:<12} {:>12} {:>12} {:>12} {:>12}",
        "optimizer", "problem", "regret@10", "regret@25", "regret@50", "suggest ms"
    );
    for label in &a.optimizers {
        let (name, assignments) = match a.options.iter().find(|(l, _)| l == label) {
            Some((_, v)) => (v[0].clone(), v[1..].to_vec()),
            None => (label.clone(), Vec::new()),
        };
        let plugin = rt.load(&resolve::resolve(&name)?)?;
        let options = space::parse_options(&plugin.info.params_schema, &assignments)
            .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
        for problem in &problems {
            let t0 = Instant::now();
            let mut curves = Vec::new();
            let mut times = Vec::new();
            for seed in 0..a.seeds {
                let (curve, t) = run_once(&rt, &plugin, &options, problem, a.trials, seed)
                    .with_context(|| format!("{label} on {} with seed {seed}", problem.name))?;
                curves.push(curve);
                times.extend(t);
            }
            let at = |c: u32| {
                let finals: Vec<f64> = curves.iter().map(|v| v[c as usize - 1]).collect();
                testing::median(&finals)
            };
            let median_regret: serde_json::Map<String, serde_json::Value> = a
                .checkpoints
                .iter()
                .filter(|&&c| c >= 1 && c <= a.trials)
                .map(|&c| (c.to_string(), at(c).into()))
                .collect();
            let suggest_ms = testing::median(&times) * 1e3;
            let show = |c: u32| {
                if c <= a.trials {
                    format!("{:.4}", at(c))
                } else {
                    "-".into()
                }
            };
            println!(
                "{:<14} {:<12} {:>12} {:>12} {:>12} {:>12.3}",
                label,
                problem.name,
                show(10),
                show(25),
                show(50),
                suggest_ms
            );
            rows.push(serde_json::json!({
                "optimizer": label,
                "problem": problem.name,
                "median_regret": median_regret,
                "final_regrets": curves.iter().map(|v| v[v.len() - 1]).collect::<Vec<_>>(),
                "median_suggest_ms": suggest_ms,
                "seconds": t0.elapsed().as_secs_f64(),
            }));
        }
    }
    if let Some(out) = &a.out {
        let doc = serde_json::json!({
            "trials": a.trials,
            "seeds": a.seeds,
            "through": "wasmtime, as pf compress runs optimizers",
            "results": rows,
        });
        std::fs::write(out, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {out}"))?;
    }
    Ok(())
}
