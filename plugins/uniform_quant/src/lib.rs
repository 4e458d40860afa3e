//! Uniform quantization-aware training (Jacob et al. 2018, "Quantization and
//! Training of Neural Networks for Efficient Integer-Arithmetic-Only
//! Inference"): a pf learner plugin.
//!
//! `compress` attaches quantizers to every weight layer and the host's
//! fine-tuning trains through them (fake quantization with the
//! straight-through estimator):
//!
//! - weights: `b`-bit symmetric, one scale per output channel (the scale is
//!   the channel's largest magnitude over `2^(b−1) − 1`), `b` from 2 to 8;
//! - activations: `a`-bit asymmetric per tensor, over the exponential
//!   moving average of the batch minimum and maximum, at the end of each
//!   layer's block (after its batch norm and ReLU), where an integer
//!   kernel writes its output. Batch norms are folded at export, so a
//!   trained model exports to int8 TFLite with these ranges
//!   (`pf export --int8`).
//!
//! ## Targets and bit allocation
//!
//! The learner meets a `size` target, counted as the host counts it: a
//! `b`-bit weight of `n` entries takes `⌈n·b/8⌉` bytes plus 4 bytes of scale
//! per output channel; everything else stays float. Under a target the
//! weight bits leave the search space: uniformly, the largest `b` whose
//! size fits; with `per_layer`, the `bits.<layer>` dimensions are
//! preferences, and while the model is over budget the layer whose next
//! bit down saves the most bytes loses it ([`allocate_bits`]), the outcome
//! PocketFlow's bit allocation searches for under an average-bits budget.
//!
//! ## Bucketing
//!
//! As PocketFlow's `uql` offers, `bucket_size = k > 0` cuts each flattened
//! weight into buckets of `k` consecutive values, each with its own scale
//! (4 bytes per bucket, counted in the size), instead of one scale per
//! output channel: finer ranges for low bit widths, at the cost of the
//! scales.

use pf_sdk::prelude::*;
use pf_sdk::{QuantTarget, Quantizer, UniformQuantizer};

/// The hyper-parameters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(crate = "pf_sdk::serde", default, deny_unknown_fields)]
#[schemars(crate = "pf_sdk::schemars")]
pub struct UniformQuantParams {
    /// Bits of every weight (symmetric, per output channel).
    #[schemars(range(min = 2, max = 8))]
    pub weight_bits: i64,
    /// Bits of the activations (asymmetric, per tensor, moving-average ranges).
    #[schemars(range(min = 2, max = 16))]
    pub activation_bits: i64,
    /// Quantize activations as well as weights.
    pub quantize_activations: bool,
    /// Give each layer its own weight bits (the `bits.<layer>` dimensions).
    pub per_layer: bool,
    /// Weights per bucket with its own scale, instead of one scale per channel (0: none).
    #[schemars(range(min = 0, max = 65536), extend("x-fixed" = true))]
    pub bucket_size: i64,
}

impl Default for UniformQuantParams {
    fn default() -> Self {
        UniformQuantParams {
            weight_bits: 8,
            activation_bits: 8,
            quantize_activations: true,
            per_layer: false,
            bucket_size: 0,
        }
    }
}

/// The name of a layer's own bits dimension.
fn layer_dim(layer: &str) -> String {
    format!("bits.{layer}")
}

/// Bytes of a weight of `n` entries and `out` channels at `bits`, as the
/// host counts a symmetric quantized weight: one 4-byte scale per output
/// channel, or per bucket of `bucket` values when `bucket > 0`.
pub fn weight_bytes(n: u64, out: u64, bits: u32, bucket: u64) -> u64 {
    let scales = if bucket > 0 { n.div_ceil(bucket) } else { out };
    (n * u64::from(bits)).div_ceil(8) + 4 * scales
}

/// Lowers the bits of `prefs` (one per layer, `(entries, channels)` in
/// `sizes`) until the weights fit in `budget` bytes: each time, the layer
/// whose next bit down saves the most bytes (of those above 2 bits) loses
/// one. `None` if even 2 bits everywhere do not fit.
pub fn allocate_bits(
    sizes: &[(u64, u64)],
    prefs: &[u32],
    budget: u64,
    bucket: u64,
) -> Option<Vec<u32>> {
    let mut bits: Vec<u32> = prefs.iter().map(|&b| b.clamp(2, 8)).collect();
    let total = |bits: &[u32]| -> u64 {
        sizes
            .iter()
            .zip(bits)
            .map(|(&(n, o), &b)| weight_bytes(n, o, b, bucket))
            .sum()
    };
    while total(&bits) > budget {
        let best = (0..bits.len()).filter(|&i| bits[i] > 2).max_by_key(|&i| {
            let (n, o) = sizes[i];
            (
                weight_bytes(n, o, bits[i], bucket) - weight_bytes(n, o, bits[i] - 1, bucket),
                bits[i],
            )
        })?;
        bits[best] -= 1;
    }
    Some(bits)
}

/// The learner's state: the bits it gave each layer.
pub struct UniformQuant {
    bits: Vec<(String, u32)>,
    activation_bits: Option<u32>,
}

impl UniformQuant {
    fn report(&self, model: &Model) -> Report {
        let layers = model.layers();
        let (mut entries, mut weighted) = (0u64, 0u64);
        for l in &layers {
            if let Some((_, b)) = self.bits.iter().find(|(n, _)| *n == l.name) {
                entries += l.weight_numel();
                weighted += l.weight_numel() * u64::from(*b);
            }
        }
        let average = weighted as f64 / entries.max(1) as f64;
        let cost = model.cost();
        let acts = match self.activation_bits {
            Some(a) => format!("activations at {a} bits (asymmetric, per tensor)"),
            None => "activations in float".to_string(),
        };
        Report::new(format!(
            "quantization-aware training: {} layers, weights at {:.2} bits on average (symmetric, per channel), {acts}",
            self.bits.len(),
            average
        ))
        .with("average_weight_bits", average)
        .with(
            "activation_bits",
            self.activation_bits.map_or(32.0, f64::from),
        )
        .with("bytes", cost.bytes as f64)
    }
}

impl Learner for UniformQuant {
    type Params = UniformQuantParams;

    fn info() -> Info {
        Info::new(
            "uniform_quant",
            env!("CARGO_PKG_VERSION"),
            "Uniform quantization-aware training (Jacob et al. 2018): symmetric per-channel \
             weights of 2 to 8 bits and asymmetric per-tensor activations with moving-average \
             ranges, trained through fake quantization; under a size target the bits come \
             from the budget, optionally per layer.",
        )
        .with_targets(&[Measure::Size])
        .made_for(Measure::Size, 0.25)
    }

    fn search_space(
        settings: &UniformQuantParams,
        target: Option<Target>,
        model: &Model,
    ) -> Result<Vec<ParamSpec>> {
        let mut space = UniformQuantParams::search_space()?;
        if target.is_some() {
            // The budget decides the weight bits.
            space.retain(|s| s.name != "weight_bits");
        }
        if !settings.per_layer {
            return Ok(space);
        }
        let layers = model.layers();
        for layer in &layers {
            space.push(
                ParamSpec::int(
                    layer_dim(&layer.name),
                    2,
                    8,
                    settings.weight_bits.clamp(2, 8),
                )
                .with_help(format!("Weight bits of layer `{}`.", layer.name))
                .with_context(layer.context(&layers)),
            );
        }
        Ok(space)
    }

    fn compress(
        params: UniformQuantParams,
        target: Option<Target>,
        extra: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        if !(2..=8).contains(&params.weight_bits) {
            return Err(Error::InvalidArgument(format!(
                "weight_bits is {}; uniform_quant quantizes weights to 2 to 8 bits",
                params.weight_bits
            )));
        }
        if !(2..=16).contains(&params.activation_bits) {
            return Err(Error::InvalidArgument(format!(
                "activation_bits is {}; use 2 to 16 (or quantize_activations = false)",
                params.activation_bits
            )));
        }
        let layers = model.layers();
        if layers.is_empty() {
            return Err(Error::InvalidArgument(
                "the model has no convolution or linear layer to quantize".into(),
            ));
        }
        let prefs: Vec<u32> = layers
            .iter()
            .map(|l| {
                let b = if params.per_layer {
                    extra.int(&layer_dim(&l.name)).unwrap_or(params.weight_bits)
                } else if target.is_some() {
                    8
                } else {
                    params.weight_bits
                };
                b.clamp(2, 8) as u32
            })
            .collect();
        let bits = match target {
            None => prefs,
            Some(t) if t.measure == Measure::Size => {
                let cost = model.cost();
                let sizes: Vec<(u64, u64)> = layers
                    .iter()
                    .map(|l| (l.weight_numel(), u64::from(l.out_channels())))
                    .collect();
                // Everything but the weights stays as it is (float).
                let weights_now: u64 = sizes.iter().map(|&(n, _)| 4 * n).sum();
                let outside = cost.bytes.saturating_sub(weights_now);
                let allowed = (t.ratio * cost.bytes as f64).floor() as u64;
                let budget = allowed.checked_sub(outside).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "size target {} is out of reach: the biases and batch norms alone take {outside} of the {allowed} bytes allowed",
                        t.ratio
                    ))
                })?;
                allocate_bits(&sizes, &prefs, budget, params.bucket_size.max(0) as u64).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "size target {} is out of reach: even 2-bit weights take more than the {budget} bytes left for them",
                        t.ratio
                    ))
                })?
            }
            Some(t) => {
                return Err(Error::Unsupported(format!(
                    "uniform_quant meets size targets, not {:?}",
                    t.measure
                )))
            }
        };
        let activation_bits = params
            .quantize_activations
            .then_some(params.activation_bits as u32);
        for (l, &b) in layers.iter().zip(&bits) {
            model.set_quantizer(
                &l.name,
                QuantTarget::Weights,
                &Quantizer::Uniform(UniformQuantizer {
                    bits: b as u8,
                    symmetric: true,
                    per_channel: params.bucket_size == 0,
                    bucket: params.bucket_size.clamp(0, 65536) as u32,
                }),
            )?;
            if let Some(a) = activation_bits {
                model.set_quantizer(
                    &l.name,
                    QuantTarget::Activations,
                    &Quantizer::Uniform(UniformQuantizer {
                        bits: a as u8,
                        symmetric: false,
                        per_channel: false,
                        bucket: 0,
                    }),
                )?;
            }
        }
        let learner = UniformQuant {
            bits: layers.iter().map(|l| l.name.clone()).zip(bits).collect(),
            activation_bits,
        };
        let report = learner.report(model);
        Ok((learner, report))
    }

    fn finish(&mut self, model: &Model) -> Result<Report> {
        Ok(self.report(model))
    }
}

pf_sdk::export_learner!(UniformQuant);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_come_down_where_they_save_most_until_the_budget_holds() {
        // A big and a small layer at 8 bits: 1000 + 40 and 10 + 4 bytes.
        let sizes = [(1000, 10), (10, 1)];
        assert_eq!(allocate_bits(&sizes, &[8, 8], 10_000, 0), Some(vec![8, 8]));
        // Cutting the big layer saves far more, so it goes first.
        let b = allocate_bits(&sizes, &[8, 8], 800, 0).unwrap();
        assert_eq!(b[1], 8);
        assert!(weight_bytes(1000, 10, b[0], 0) + weight_bytes(10, 1, b[1], 0) <= 800);
        assert!(weight_bytes(1000, 10, b[0] + 1, 0) + weight_bytes(10, 1, b[1], 0) > 800);
        // Never below 2 bits: an impossible budget is reported.
        assert_eq!(allocate_bits(&sizes, &[8, 8], 100, 0), None);
    }

    #[test]
    fn a_quantized_weight_costs_its_bits_and_one_scale_per_channel() {
        assert_eq!(weight_bytes(16, 2, 8, 0), 16 + 8);
        assert_eq!(weight_bytes(16, 2, 4, 0), 8 + 8);
        assert_eq!(weight_bytes(3, 1, 3, 0), 2 + 4);
        // Buckets of 4: ⌈10/4⌉ = 3 scales instead of one per channel.
        assert_eq!(weight_bytes(10, 1, 8, 4), 10 + 12);
    }
}
