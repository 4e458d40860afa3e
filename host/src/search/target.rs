//! The targets of a search as the user gives them (`--target`), and the
//! target a learner runs under when the user gives none: the one it declares
//! it is made for.

use super::latency::LatencyTarget;
use crate::model::{Measure, Target};
use crate::plugin::runtime::{host_measure, Plugin};
use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// The key of a learner's parameter schema under which it declares the
/// target it is made for (the SDK's `Info::made_for`).
pub const MADE_FOR_KEY: &str = "x-pf-target";

/// One `--target`: a budget on a footprint measure, a latency bound, or
/// `none` (the learner runs unconstrained, as a control).
#[derive(Clone, Debug, PartialEq)]
pub enum TargetArg {
    /// `flops=0.5`, `params=0.25`, `size=0.25`.
    Footprint(Target),
    /// `latency=2ms@1`.
    Latency(LatencyTarget),
    /// `none`.
    None,
}

impl FromStr for TargetArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "none" {
            Ok(TargetArg::None)
        } else if s.starts_with("latency") {
            s.parse().map(TargetArg::Latency)
        } else {
            s.parse().map(TargetArg::Footprint)
        }
    }
}

impl fmt::Display for TargetArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetArg::Footprint(t) => t.fmt(f),
            TargetArg::Latency(l) => l.fmt(f),
            TargetArg::None => f.write_str("none"),
        }
    }
}

/// What a search runs under, resolved from the user's `--target`s and the
/// learner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Targets {
    /// The budget every result must meet. Without one (a control run, or a
    /// latency bound alone), FLOPs at most the baseline's.
    pub footprint: Target,
    /// Whether the learner is handed a target at all: not in a control run.
    pub for_learner: bool,
    /// A bound on measured latency.
    pub latency: Option<LatencyTarget>,
    /// With a latency bound alone, the optimizer searches the learner's
    /// FLOPs ratio (the `flops_ratio` dimension).
    pub flops_dimension: bool,
    /// Whether the footprint budget came from the learner's declaration
    /// rather than the command line.
    pub from_learner: bool,
}

/// The ratio pf gives a measure when a learner names the measure it meets
/// but not the ratio it is made for.
pub fn default_ratio(measure: Measure) -> f64 {
    match measure {
        Measure::Flops => 0.5,
        Measure::Params | Measure::Size => 0.25,
    }
}

/// The target `learner` declares it is made for: its schema's
/// [`MADE_FOR_KEY`], else the first measure it supports at
/// [`default_ratio`]; `None` for a learner that supports no target.
pub fn made_for(learner: &Plugin) -> Option<Target> {
    let declared = serde_json::from_str::<serde_json::Value>(&learner.info.params_schema)
        .ok()
        .and_then(|schema| {
            let t = schema.get(MADE_FOR_KEY)?;
            let measure: Measure = t.get("measure")?.as_str()?.parse().ok()?;
            let ratio = t.get("ratio")?.as_f64()?;
            (ratio > 0.0 && ratio <= 1.0).then_some(Target { measure, ratio })
        });
    let supported: Vec<Measure> = learner
        .info
        .targets
        .iter()
        .map(|m| host_measure(*m))
        .collect();
    match declared {
        Some(t) if supported.contains(&t.measure) => Some(t),
        _ => supported.first().map(|&measure| Target {
            measure,
            ratio: default_ratio(measure),
        }),
    }
}

/// Resolves the user's `--target`s for `learner`: at most one footprint
/// budget and one latency bound, or `none` alone; with nothing given, the
/// target the learner is made for (a control run for a learner that meets
/// none). A budget the learner cannot meet is an error naming what it can.
pub fn resolve(args: &[TargetArg], learner: &Plugin) -> Result<Targets> {
    let mut footprint = None;
    let mut latency = None;
    let mut none = false;
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
            TargetArg::None => none = true,
        }
    }
    if none && args.len() > 1 {
        bail!("--target none runs the learner without a target: give it alone");
    }
    let supported: Vec<Measure> = learner
        .info
        .targets
        .iter()
        .map(|m| host_measure(*m))
        .collect();
    let names = || {
        if supported.is_empty() {
            "no targets (it runs as a control: --target none)".to_string()
        } else {
            supported
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let unconstrained = Target {
        measure: Measure::Flops,
        ratio: 1.0,
    };
    let from_learner = !none && footprint.is_none() && latency.is_none();
    if from_learner {
        footprint = made_for(learner);
    }
    let flops_dimension = latency.is_some() && footprint.is_none();
    if flops_dimension && !supported.contains(&Measure::Flops) {
        let bound = latency.map(|l| l.to_string()).unwrap_or_default();
        bail!(
            "--target {bound}: a latency target alone hands the learner a FLOPs target (whose ratio the optimizer searches), and learner `{}` cannot meet a flops target; it supports {}: give one of those beside the latency bound, e.g. --target {}=0.5 --target {bound}",
            learner.name(),
            names(),
            supported.first().map_or("params", |m| m.name()),
        );
    }
    if let Some(t) = footprint {
        if !supported.contains(&t.measure) {
            bail!(
                "--target {t}: learner `{}` cannot meet a {} target; it supports {}",
                learner.name(),
                t.measure,
                names()
            );
        }
    }
    Ok(Targets {
        for_learner: footprint.is_some() || flops_dimension,
        footprint: footprint.unwrap_or(unconstrained),
        latency,
        flops_dimension,
        from_learner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_arguments_parse() {
        assert_eq!("none".parse::<TargetArg>(), Ok(TargetArg::None));
        assert!(matches!(
            "flops=0.5".parse::<TargetArg>(),
            Ok(TargetArg::Footprint(Target {
                measure: Measure::Flops,
                ..
            }))
        ));
        assert!(matches!(
            "latency=2ms@1".parse::<TargetArg>(),
            Ok(TargetArg::Latency(_))
        ));
        assert!("flops".parse::<TargetArg>().is_err());
    }

    #[test]
    fn default_ratios_suit_each_measure() {
        assert_eq!(default_ratio(Measure::Flops), 0.5);
        assert_eq!(default_ratio(Measure::Params), 0.25);
        assert_eq!(default_ratio(Measure::Size), 0.25);
    }
}
