//! The host's own dimensions of a search, searched beside the learner's:
//! the fine-tuning learning rate and steps of each trial (unless the user
//! fixes them with `--lr` and `--finetune-steps`), and with a latency bound
//! alone the learner's FLOPs ratio ([`super::latency::FLOPS_RATIO`]).
//!
//! A learner's dimensions say how to compress; how long and how fast the
//! compressed network is then fine-tuned decides as much of its accuracy,
//! so the optimizer tunes both. The values reach the host's fine-tuning, not
//! the learner.

use super::latency::{FLOPS_RATIO, MIN_FLOPS_RATIO};
use crate::model::{Measure, Target};
use crate::plugin::{FloatRange, IntRange, Param, ParamKind, ParamSpec, ParamValue};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The dimension of each trial's fine-tuning learning rate.
pub const FINETUNE_LR: &str = "finetune.lr";

/// The dimension of each trial's fine-tuning steps.
pub const FINETUNE_STEPS: &str = "finetune.steps";

/// Which fine-tuning settings the optimizer searches. Studies written before
/// the host searched them have neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinetuneSearch {
    /// The learning rate, log-uniform from a tenth to three times `--lr`.
    pub lr: bool,
    /// The steps, from half of `--finetune-steps` to all of them.
    pub steps: bool,
}

/// The host's dimensions: fine-tuning around `lr` and up to `steps` as
/// `search` asks, and the FLOPs ratio when `flops_ratio` is set.
pub fn dimensions(
    search: FinetuneSearch,
    lr: f64,
    steps: u64,
    flops_ratio: bool,
) -> Vec<ParamSpec> {
    let mut dims = Vec::new();
    if search.lr {
        dims.push(ParamSpec {
            name: FINETUNE_LR.to_string(),
            kind: ParamKind::Float(FloatRange {
                low: lr / 10.0,
                high: lr * 3.0,
                log: true,
            }),
            default: ParamValue::Float(lr),
            help:
                "Learning rate of the trial's fine-tuning (searched by the host; fix it with --lr)"
                    .to_string(),
            context: Vec::new(),
        });
    }
    if search.steps {
        let high = steps.min(i64::MAX as u64) as i64;
        dims.push(ParamSpec {
            name: FINETUNE_STEPS.to_string(),
            kind: ParamKind::Int(IntRange {
                low: (high / 2).max(1),
                high,
                log: false,
            }),
            default: ParamValue::Int(high),
            help: "Steps of the trial's fine-tuning (searched by the host; fix them with --finetune-steps)"
                .to_string(),
            context: Vec::new(),
        });
    }
    if flops_ratio {
        dims.push(ParamSpec {
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
    dims
}

/// Refuses a learner space that uses one of the host's names.
pub fn check_names(learner: &str, learner_space: &[ParamSpec], host: &[ParamSpec]) -> Result<()> {
    if let Some(d) = learner_space
        .iter()
        .find(|d| host.iter().any(|h| h.name == d.name))
    {
        bail!(
            "learner `{learner}` has a dimension named `{}`, which the host searches itself; {}",
            d.name,
            if d.name == FLOPS_RATIO {
                "give a footprint target beside the latency bound"
            } else {
                "fix it with --lr and --finetune-steps"
            }
        );
    }
    Ok(())
}

/// One trial's suggestion split into what the learner gets and what the
/// host uses.
#[derive(Debug, Clone)]
pub struct HostValues {
    /// The learner's parameters (the host's dimensions taken out).
    pub learner: Vec<Param>,
    /// The fine-tuning learning rate, when searched.
    pub lr: Option<f64>,
    /// The fine-tuning steps, when searched.
    pub steps: Option<u64>,
    /// The learner's FLOPs target, when its ratio is searched.
    pub flops_target: Option<Target>,
}

/// Splits a suggestion; a host value out of its range is an error.
pub fn split(suggested: &[Param]) -> Result<HostValues, String> {
    let mut out = HostValues {
        learner: Vec::new(),
        lr: None,
        steps: None,
        flops_target: None,
    };
    for p in suggested {
        match (p.name.as_str(), &p.value) {
            (FINETUNE_LR, ParamValue::Float(x)) if x.is_finite() && *x > 0.0 => out.lr = Some(*x),
            (FINETUNE_STEPS, ParamValue::Int(n)) if *n >= 1 => out.steps = Some(*n as u64),
            (FLOPS_RATIO, ParamValue::Float(x)) if *x > 0.0 && *x <= 1.0 => {
                out.flops_target = Some(Target {
                    measure: Measure::Flops,
                    ratio: *x,
                })
            }
            (FINETUNE_LR | FLOPS_RATIO, v) if !matches!(v, ParamValue::Float(_)) => {
                return Err(wrong_type(&p.name, "a number (a float)", v))
            }
            (FINETUNE_STEPS, v) if !matches!(v, ParamValue::Int(_)) => {
                return Err(wrong_type(&p.name, "an integer", v))
            }
            (FINETUNE_LR, v) => {
                return Err(format!(
                    "the suggestion's `{FINETUNE_LR}` = {} is out of range: it must be a positive, finite number",
                    crate::plugin::space::format_value(v)
                ))
            }
            (FINETUNE_STEPS, v) => {
                return Err(format!(
                    "the suggestion's `{FINETUNE_STEPS}` = {} is out of range: it must be at least 1",
                    crate::plugin::space::format_value(v)
                ))
            }
            (FLOPS_RATIO, v) => {
                return Err(format!(
                    "the suggestion's `{FLOPS_RATIO}` = {} is out of range: it must be in (0, 1]",
                    crate::plugin::space::format_value(v)
                ))
            }
            _ => out.learner.push(p.clone()),
        }
    }
    Ok(out)
}

/// A value of the wrong type for a host dimension, named as such (not as
/// out of range), with its type and an escaped, bounded quote of it.
fn wrong_type(name: &str, expected: &str, v: &ParamValue) -> String {
    let (kind, shown) = match v {
        ParamValue::Float(x) => ("float", x.to_string()),
        ParamValue::Int(i) => ("integer", i.to_string()),
        ParamValue::Boolean(b) => ("boolean", b.to_string()),
        ParamValue::Choice(s) => ("string", format!("\"{}\"", crate::plugin::bounds::quote(s))),
    };
    format!(
        "the suggestion's `{name}` has the wrong type: expected {expected}, got the {kind} {shown}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_for_a_host_float_is_the_wrong_type_not_out_of_range() {
        let e = split(&[Param {
            name: FLOPS_RATIO.into(),
            value: ParamValue::Choice("abc".into()),
        }])
        .err()
        .unwrap();
        assert!(
            e.contains("wrong type: expected a number (a float), got the string \"abc\""),
            "{e}"
        );
        assert!(!e.contains("(0, 1]"), "{e}");
        let e = split(&[Param {
            name: FLOPS_RATIO.into(),
            value: ParamValue::Float(2.0),
        }])
        .err()
        .unwrap();
        assert!(
            e.contains("= 2 is out of range: it must be in (0, 1]"),
            "{e}"
        );
    }

    #[test]
    fn host_values_leave_the_learner_its_own() {
        let dims = dimensions(
            FinetuneSearch {
                lr: true,
                steps: true,
            },
            0.01,
            300,
            false,
        );
        assert_eq!(dims.len(), 2);
        assert!(matches!(
            dims[1].kind,
            ParamKind::Int(IntRange {
                low: 150,
                high: 300,
                ..
            })
        ));
        let suggested = vec![
            Param {
                name: "sparsity".into(),
                value: ParamValue::Float(0.8),
            },
            Param {
                name: FINETUNE_LR.into(),
                value: ParamValue::Float(0.02),
            },
            Param {
                name: FINETUNE_STEPS.into(),
                value: ParamValue::Int(200),
            },
        ];
        let v = split(&suggested).unwrap();
        assert_eq!(v.learner.len(), 1);
        assert_eq!(v.learner[0].name, "sparsity");
        assert_eq!(
            (v.lr, v.steps, v.flops_target),
            (Some(0.02), Some(200), None)
        );
        let bad = vec![Param {
            name: FINETUNE_STEPS.into(),
            value: ParamValue::Int(0),
        }];
        assert!(split(&bad).is_err());
    }
}
