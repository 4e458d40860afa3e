//! What a model costs, counted the same way everywhere (targets, reports,
//! plugins): MACs, parameters that are not zero, and stored bytes.

use super::Model;
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Cost and size of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    /// Multiply-accumulates of one sample, dense (zeroed weights count).
    pub macs: u64,
    /// Parameters (weights, biases, batch-norm affine terms).
    pub params: u64,
    /// Parameters whose weight entry is not zero.
    pub nonzero_params: u64,
    /// Bytes to store the parameters: 4 per float; a quantized weight at its
    /// bit width plus its side data; a weight with zeros as its non-zero
    /// values plus a one-bit-per-entry mask, when that is smaller.
    pub bytes: u64,
}

/// A measure a target can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// Dense MACs ([`Footprint::macs`]).
    Flops,
    /// Non-zero parameters ([`Footprint::nonzero_params`]).
    Params,
    /// Stored bytes ([`Footprint::bytes`]).
    Size,
}

impl Measure {
    /// Every measure.
    pub const ALL: [Measure; 3] = [Measure::Flops, Measure::Params, Measure::Size];

    /// The name used on the command line and in studies.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Flops => "flops",
            Measure::Params => "params",
            Measure::Size => "size",
        }
    }

    /// What the measure counts, for axis labels and tables.
    pub fn unit(self) -> &'static str {
        match self {
            Measure::Flops => "MACs",
            Measure::Params => "non-zero parameters",
            Measure::Size => "bytes",
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Measure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flops" | "macs" => Ok(Measure::Flops),
            "params" => Ok(Measure::Params),
            "size" | "bytes" => Ok(Measure::Size),
            _ => Err(format!(
                "unknown measure `{s}`: use flops (or macs), params or size (or bytes)"
            )),
        }
    }
}

/// A budget: the compressed model's `measure` at most `ratio` times the
/// baseline's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is bounded.
    pub measure: Measure,
    /// The bound, as a fraction of the baseline, in (0, 1].
    pub ratio: f64,
}

impl Target {
    /// The measure of `now` as a fraction of `baseline`'s.
    pub fn ratio_of(&self, now: &Footprint, baseline: &Footprint) -> f64 {
        now.get(self.measure) as f64 / baseline.get(self.measure).max(1) as f64
    }

    /// Whether `now` meets the target.
    pub fn is_met(&self, now: &Footprint, baseline: &Footprint) -> bool {
        // Integer comparison: `now ≤ ratio · baseline` without rounding slack.
        (now.get(self.measure) as f64) <= self.ratio * baseline.get(self.measure) as f64
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.measure, self.ratio)
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    /// Parses `MEASURE=RATIO`, e.g. `flops=0.5`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (m, r) = s
            .split_once('=')
            .ok_or_else(|| format!("target `{s}` is not MEASURE=RATIO, e.g. flops=0.5"))?;
        let measure: Measure = m.trim().parse()?;
        let ratio: f64 = r
            .trim()
            .parse()
            .map_err(|_| format!("target ratio `{r}` is not a number"))?;
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(format!(
                "target ratio {ratio} is not in (0, 1]: it is a fraction of the baseline's {}",
                measure.unit()
            ));
        }
        Ok(Target { measure, ratio })
    }
}

impl Footprint {
    /// The value of one measure.
    pub fn get(&self, measure: Measure) -> u64 {
        match measure {
            Measure::Flops => self.macs,
            Measure::Params => self.nonzero_params,
            Measure::Size => self.bytes,
        }
    }
}

/// Zero entries of a tensor, counted in integers (a float sum stops
/// counting at 2^24).
pub fn zero_count(t: &Tensor) -> candle_core::Result<u64> {
    Ok(t.eq(0f32)?
        .to_dtype(DType::I64)?
        .sum_all()?
        .to_scalar::<i64>()? as u64)
}

impl Model {
    /// Counts the model's footprint.
    pub fn footprint(&self) -> Result<Footprint> {
        let cost = self.graph.cost()?;
        let mut zero_params = 0u64;
        let mut bytes = 0u64;
        for layer in &self.graph.layers {
            for (name, shape) in layer.op.parameters() {
                let n = shape.iter().product::<usize>() as u64;
                let key = format!("{}.{name}", layer.name);
                let Some(var) = self.params.get(&key) else {
                    bail!("the model has no tensor `{key}`");
                };
                let zeros = if name == "weight" {
                    zero_count(var.as_tensor())?
                } else {
                    0
                };
                zero_params += zeros;
                let quant = layer.quant.as_ref().and_then(|q| q.weight.as_ref());
                bytes += match (name, quant) {
                    ("weight", Some(q)) => {
                        let side = q.side_bytes(shape[0], n);
                        let bits = u64::from(q.bits());
                        let dense = (n * bits).div_ceil(8);
                        let sparse = ((n - zeros) * bits).div_ceil(8) + n.div_ceil(8);
                        dense.min(sparse) + side
                    }
                    ("weight", None) if layer.op.has_weight() => {
                        (4 * n).min(4 * (n - zeros) + n.div_ceil(8))
                    }
                    _ => 4 * n,
                };
            }
        }
        Ok(Footprint {
            macs: cost.macs,
            params: cost.params,
            nonzero_params: cost.params.saturating_sub(zero_params),
            bytes,
        })
    }

    /// Fraction of the entries of every conv and linear weight that are
    /// zero.
    pub fn weight_sparsity(&self) -> Result<f64> {
        let (mut zero, mut total) = (0u64, 0u64);
        for layer in self.graph.layers.iter().filter(|l| l.op.has_weight()) {
            let w = self.params[&format!("{}.weight", layer.name)].as_tensor();
            zero += zero_count(w)?;
            total += w.elem_count() as u64;
        }
        Ok(zero as f64 / total.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_reject_nonsense() {
        let t: Target = "flops=0.5".parse().unwrap();
        assert_eq!(t.measure, Measure::Flops);
        assert_eq!(t.ratio, 0.5);
        assert_eq!(
            "size=0.25".parse::<Target>().unwrap().measure,
            Measure::Size
        );
        for bad in [
            "flops",
            "speed=0.5",
            "params=0",
            "params=1.5",
            "params=x",
            "params=NaN",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_target_is_met_at_its_bound_and_not_above() {
        let base = Footprint {
            macs: 1000,
            params: 100,
            nonzero_params: 100,
            bytes: 400,
        };
        let at = Footprint {
            nonzero_params: 25,
            ..base
        };
        let above = Footprint {
            nonzero_params: 26,
            ..base
        };
        let t = Target {
            measure: Measure::Params,
            ratio: 0.25,
        };
        assert!(t.is_met(&at, &base));
        assert!(!t.is_met(&above, &base));
        assert!((t.ratio_of(&above, &base) - 0.26).abs() < 1e-12);
    }
}
