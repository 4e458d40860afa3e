//! Quantizers that a learner attaches to a layer; the trainer applies them as
//! fake quantization with a straight-through estimator.

use serde::{Deserialize, Serialize};

/// Most centroids a codebook may have (16-bit codes, like the widest
/// uniform quantizer).
pub const MAX_CENTROIDS: usize = 1 << 16;

/// Most values in one bucket of a bucketed uniform quantizer.
pub const MAX_BUCKET: u32 = 1 << 16;

/// Quantization state of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LayerQuant {
    /// Quantizer of the layer's weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Quantizer>,
    /// Quantizer of the layer's output activations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Quantizer>,
}

/// How values are mapped to a small set of levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Quantizer {
    /// `bits`-bit uniform (affine) quantization (Jacob et al. 2018). Weights
    /// use their min/max (per output channel if asked); activations use an
    /// exponential moving average of the batch min/max.
    Uniform {
        /// Bit width, 2 to 16.
        bits: u8,
        /// Symmetric around zero (zero point 0) or asymmetric.
        symmetric: bool,
        /// One scale per output channel (weights only).
        per_channel: bool,
        /// Values per bucket of the flattened weight, each bucket with its
        /// own scale (weights only); 0 for none.
        #[serde(default, skip_serializing_if = "is_zero")]
        bucket: u32,
    },
    /// Non-uniform quantization to the nearest of a sorted list of centroids
    /// (Han et al. 2016).
    Codebook {
        /// Centroids, sorted ascending.
        centroids: Vec<f32>,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Quantizer {
    /// Bits needed to store one quantized value.
    pub fn bits(&self) -> u32 {
        match self {
            Quantizer::Uniform { bits, .. } => u32::from(*bits),
            Quantizer::Codebook { centroids } => {
                (usize::BITS - centroids.len().saturating_sub(1).leading_zeros()).max(1)
            }
        }
    }

    /// Bytes of side information (scales, zero points, codebook) stored with a
    /// weight of `out_channels` rows and `numel` values.
    pub fn side_bytes(&self, out_channels: usize, numel: u64) -> u64 {
        match self {
            Quantizer::Uniform {
                symmetric,
                per_channel,
                bucket,
                ..
            } => {
                let per = if *symmetric { 4 } else { 8 };
                per * if *bucket > 0 {
                    numel.div_ceil(u64::from(*bucket))
                } else if *per_channel {
                    out_channels as u64
                } else {
                    1
                }
            }
            Quantizer::Codebook { centroids } => centroids.len() as u64 * 4,
        }
    }

    /// Checks the quantizer's settings.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Quantizer::Uniform { bits, .. } if !(2..=16).contains(bits) => {
                Err(format!("uniform quantizer has {bits} bits; use 2 to 16"))
            }
            Quantizer::Uniform {
                bucket,
                per_channel: true,
                ..
            } if *bucket > 0 => {
                Err("a uniform quantizer has buckets or per-channel scales, not both".into())
            }
            Quantizer::Uniform { bucket, .. } if *bucket > MAX_BUCKET => Err(format!(
                "a uniform quantizer's buckets hold at most {MAX_BUCKET} values, not {bucket}"
            )),
            Quantizer::Codebook { centroids } if centroids.is_empty() => {
                Err("codebook quantizer has no centroids".into())
            }
            Quantizer::Codebook { centroids } if centroids.len() > MAX_CENTROIDS => Err(format!(
                "codebook quantizer has {} centroids; at most {MAX_CENTROIDS} (16 bits)",
                centroids.len()
            )),
            Quantizer::Codebook { centroids }
                if centroids.windows(2).any(|w| w[0] > w[1])
                    || centroids.iter().any(|c| !c.is_finite()) =>
            {
                Err("codebook centroids must be finite and sorted ascending".into())
            }
            _ => Ok(()),
        }
    }
}
