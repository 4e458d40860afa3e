//! Non-uniform quantization (Han, Mao & Dally, ICLR 2016, "Deep
//! Compression", §3): a pf learner plugin.
//!
//! `compress` builds a codebook of `2^b` centroids for every weight layer
//! by k-means over its weights ([`codebook`], linfa's Lloyd iterations from
//! a linear, quantile or uniform start) and attaches it to the layer. From
//! then on the layer computes with each weight replaced by its nearest
//! centroid (the host's fake quantization), and the host fine-tunes:
//!
//! - `train = weights`: the float weights train through the quantizer
//!   (straight-through estimator) and snap to the fixed centroids;
//! - `train = centroids` (the default): the paper's shared-weight
//!   fine-tuning. Each weight
//!   keeps the cluster k-means gave it (its index is stored); after every
//!   host step each centroid moves by the learning rate times the summed
//!   gradient of the weights that share it (`centroid_lr`), and every weight
//!   is set to its centroid again;
//! - `train = both`: the weights train and snap to their nearest centroid,
//!   and the centroids take the same shared-gradient steps. Measured on
//!   LeNet it is the least stable of the three (`docs/benchmarks.md`).
//!
//! A weight that a mask has zeroed (a pruned model: deep compression's
//! pruning stage) stays zero: the codebook of such a layer holds 0 and
//! `2^b − 1` centroids fitted to the surviving weights.
//!
//! ## Size
//!
//! The host counts a codebook-quantized weight of `n` entries as `⌈n·b/8⌉`
//! bytes of indices plus 4 bytes per centroid (the `size` measure). Under a
//! `size` target, `bits` leaves the search space: the learner takes the
//! largest `b` whose model fits.

pub mod codebook;

use codebook::Init;
use pf_sdk::prelude::*;
use pf_sdk::{QuantTarget, Quantizer};

/// How fine-tuning updates the quantized layers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(crate = "pf_sdk::serde", rename_all = "snake_case")]
#[schemars(crate = "pf_sdk::schemars")]
pub enum Train {
    /// The float weights (straight-through), with fixed centroids.
    Weights,
    /// The centroids, by the summed gradients of their weights (Han et al.).
    Centroids,
    /// Both.
    Both,
}

/// The hyper-parameters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(crate = "pf_sdk::serde", default, deny_unknown_fields)]
#[schemars(crate = "pf_sdk::schemars")]
pub struct NonUniformQuantParams {
    /// Bits per weight index: 2^bits centroids per layer.
    #[schemars(range(min = 1, max = 8))]
    pub bits: i64,
    /// Learning rate of the centroids' shared-gradient steps.
    #[schemars(range(min = 1e-5, max = 0.1), extend("x-log" = true))]
    pub centroid_lr: f64,
    /// Where k-means starts: `linear`, `quantile` or `uniform`.
    #[schemars(extend("x-fixed" = true))]
    pub init: Init,
    /// What fine-tuning updates: `weights`, `centroids` or `both`.
    #[schemars(extend("x-fixed" = true))]
    pub train: Train,
    /// Most weights per layer k-means runs on (a seeded sample of larger layers).
    #[schemars(range(min = 256, max = 1048576), extend("x-fixed" = true))]
    pub kmeans_samples: i64,
}

impl Default for NonUniformQuantParams {
    fn default() -> Self {
        NonUniformQuantParams {
            bits: 4,
            centroid_lr: 1e-3,
            init: Init::Linear,
            train: Train::Centroids,
            kmeans_samples: 65536,
        }
    }
}

/// Bytes the host counts for a codebook-quantized weight of `n` entries
/// with `k` centroids.
pub fn codebook_bytes(n: u64, k: u64) -> u64 {
    let bits = u64::from((u64::BITS - k.saturating_sub(1).leading_zeros()).max(1));
    (n * bits).div_ceil(8) + 4 * k
}

/// One quantized layer.
struct Layer {
    name: String,
    /// Centroids: ascending, except that with fixed `codes` they keep the
    /// order the codes index (the host is given a sorted copy).
    centroids: Vec<f32>,
    /// Whether 0 is a fixed centroid (the layer has a mask).
    zero: bool,
    /// Each weight's centroid index, fixed at `compress` (`train =
    /// centroids`); otherwise weights go to their nearest centroid.
    codes: Option<Tensor>,
}

/// Most elements of the one-pass cluster membership mask (clusters ×
/// weights); larger layers take one mask per cluster.
const MAX_MASK_ELEMENTS: u64 = 16 << 20;

/// `values` sorted ascending.
fn sorted(values: &[f32]) -> Vec<f32> {
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    v
}

/// The index of each weight's nearest centroid (`centroids` ascending), as
/// the host's quantizer assigns them: the number of midpoints it is above.
fn nearest_codes(w: &Tensor, centroids: &[f32]) -> Result<Tensor> {
    let mut codes = Tensor::zeros(&w.shape())?;
    for pair in centroids.windows(2) {
        codes = codes.add(&w.gt_scalar(0.5 * (pair[0] + pair[1]))?)?;
    }
    Ok(codes)
}

/// The learner's state.
pub struct NonUniformQuant {
    layers: Vec<Layer>,
    bits: u32,
    train: Train,
    lr: f32,
    baseline_bytes: u64,
}

impl NonUniformQuant {
    /// Moves every centroid by `−lr ·` the summed gradient of the weights
    /// nearest to it (the host's assignment: a weight above the midpoint of
    /// two neighbours goes to the upper one).
    fn centroid_step(&mut self, model: &Model) -> Result<()> {
        let names: Vec<String> = self.layers.iter().map(|l| l.name.clone()).collect();
        let grads = model.gradients(&names, 1)?;
        for (layer, g) in self.layers.iter_mut().zip(grads) {
            // Fixed indices, or the nearest centroid of the (masked) weight.
            let codes = match &layer.codes {
                Some(codes) => codes.add_scalar(0.0)?,
                None => {
                    let w = match model.mask(&layer.name)? {
                        Some(m) => model.weight(&layer.name)?.mul(&m)?,
                        None => model.weight(&layer.name)?,
                    };
                    nearest_codes(&w, &layer.centroids)?
                }
            };
            let c = &layer.centroids;
            let k = c.len();
            let n = codes.numel();
            let shape = g.shape();
            let mut next = c.clone();
            // Each cluster's summed gradient: one [k, n] membership mask in
            // a few host calls where it fits, else one mask per cluster.
            let one_pass = (k as u64) * n <= MAX_MASK_ELEMENTS;
            let members = if one_pass {
                let levels: Vec<f32> = (0..k).map(|i| i as f32).collect();
                let levels = Tensor::from_data(&[k as u32, 1], &levels)?;
                Some(codes.reshape(&[1, n as u32])?.eq(&levels)?)
            } else {
                None
            };
            let shared: Vec<f32> = match &members {
                Some(m) => m
                    .mul(&g.reshape(&[1, n as u32])?)?
                    .sum(&[1], false)?
                    .to_vec()?,
                None => (0..k)
                    .map(|i| g.mul(&codes.eq_scalar(i as f32)?)?.sum_all())
                    .collect::<Result<_>>()?,
            };
            for i in 0..k {
                if !(layer.zero && c[i] == 0.0) {
                    next[i] = c[i] - self.lr * shared[i];
                }
            }
            // With fixed indices, every weight back on its own centroid,
            // whatever the host's step did to it.
            let snapped = match (&layer.codes, &members) {
                (None, _) => None,
                (Some(_), Some(m)) => {
                    let values = Tensor::from_data(&[k as u32, 1], &next)?;
                    Some(m.mul(&values)?.sum(&[0], false)?.reshape(&shape)?)
                }
                (Some(_), None) => {
                    let mut w = Tensor::zeros(&shape)?;
                    for (i, &v) in next.iter().enumerate() {
                        w = w.add(&codes.eq_scalar(i as f32)?.mul_scalar(v)?)?;
                    }
                    Some(w)
                }
            };
            if next.iter().any(|v| !v.is_finite()) {
                return Err(Error::numerical(format!(
                    "a centroid of `{}` is no longer finite; lower centroid_lr",
                    layer.name
                )));
            }
            if layer.codes.is_none() {
                next.sort_by(f32::total_cmp);
            }
            layer.centroids = next;
            if let Some(w) = snapped {
                model.set_weight(&layer.name, &w)?;
            }
            model.set_quantizer(
                &layer.name,
                QuantTarget::Weights,
                &Quantizer::Codebook(sorted(&layer.centroids)),
            )?;
        }
        Ok(())
    }

    fn report(&self, model: &Model, what: &str) -> Report {
        let bytes = model.cost().bytes;
        let ratio = bytes as f64 / self.baseline_bytes.max(1) as f64;
        Report::new(format!(
            "{what}: {} layers with {}-bit codebooks; the model takes {bytes} bytes, \
             {:.1}× smaller than in float",
            self.layers.len(),
            self.bits,
            1.0 / ratio.max(f64::MIN_POSITIVE)
        ))
        .with("bits", f64::from(self.bits))
        .with("bytes", bytes as f64)
        .with("bytes_ratio", ratio)
    }
}

impl Learner for NonUniformQuant {
    type Params = NonUniformQuantParams;

    fn info() -> Info {
        Info::new(
            "non_uniform_quant",
            env!("CARGO_PKG_VERSION"),
            "Non-uniform quantization (Han et al. 2016): each layer's weights share the 2^b \
             centroids that k-means finds for them, and fine-tuning trains the weights, the \
             centroids (by the summed gradients of the weights that share each), or both.",
        )
        .with_targets(&[Measure::Size])
        .made_for(Measure::Size, 0.25)
    }

    fn search_space(
        _settings: &NonUniformQuantParams,
        target: Option<Target>,
        _model: &Model,
    ) -> Result<Vec<ParamSpec>> {
        let mut space = NonUniformQuantParams::search_space()?;
        if target.is_some() {
            // The budget decides the bits.
            space.retain(|s| s.name != "bits");
        }
        Ok(space)
    }

    fn compress(
        p: NonUniformQuantParams,
        target: Option<Target>,
        _extra: &Extra,
        model: &Model,
    ) -> Result<(Self, Report)> {
        let layers = model.layers();
        if layers.is_empty() {
            return Err(Error::invalid_argument(
                "the model has no convolution or linear layer to quantize",
            ));
        }
        let cost = model.cost();
        let bits = match target {
            None => p.bits.clamp(1, 8) as u32,
            Some(t) => {
                // Everything but the weights stays float (4 bytes each, as
                // the host counts them, whatever the weights' own format).
                let weights: u64 = layers.iter().map(|l| l.weight_numel()).sum();
                let outside = 4 * cost.params.saturating_sub(weights);
                let allowed = (t.ratio * cost.bytes as f64).floor() as u64;
                let fits = |b: u32| {
                    let q: u64 = layers
                        .iter()
                        .map(|l| codebook_bytes(l.weight_numel(), 1 << b))
                        .sum();
                    outside + q <= allowed
                };
                (1..=8).rev().find(|&b| fits(b)).ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "size target {} is out of reach: with 1-bit codebooks the model still \
                         takes more than the {allowed} bytes allowed",
                        t.ratio
                    ))
                })?
            }
        };
        let mut rng = HostRng::new();
        let mut out = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            pf_sdk::progress(
                i as u64,
                layers.len() as u64,
                &format!("k-means of `{}`", l.name),
            );
            let weight = model.weight(&l.name)?;
            let mask = model.mask(&l.name)?;
            let all: Vec<f32> = weight.to_vec()?;
            let keep: Option<Vec<f32>> = match &mask {
                Some(m) => Some(m.to_vec()?),
                None => None,
            };
            let mut values: Vec<f64> = match &keep {
                Some(m) => all
                    .iter()
                    .zip(m)
                    .filter(|(_, &k)| k != 0.0)
                    .map(|(&w, _)| f64::from(w))
                    .collect(),
                None => all.iter().map(|&w| f64::from(w)).collect(),
            };
            let zero = keep.is_some();
            let k = (1usize << bits) - usize::from(zero);
            let limit = p.kmeans_samples.clamp(256, 1 << 20) as usize;
            if values.len() > limit {
                // A seeded sample without replacement (partial Fisher–Yates).
                for j in 0..limit {
                    let r = j + rng.below((values.len() - j) as u64) as usize;
                    values.swap(j, r);
                }
                values.truncate(limit);
            }
            values.sort_by(f64::total_cmp);
            let mut centroids = if values.is_empty() || k == 0 {
                Vec::new()
            } else if values.len() <= k {
                values.iter().map(|&v| v as f32).collect()
            } else {
                let start = codebook::initial(&values, k, p.init, &mut rng);
                codebook::kmeans(&values, start)?
            };
            if zero || centroids.is_empty() {
                centroids.push(0.0);
                centroids.sort_by(f32::total_cmp);
            }
            model.set_quantizer(
                &l.name,
                QuantTarget::Weights,
                &Quantizer::Codebook(centroids.clone()),
            )?;
            let codes = if p.train == Train::Centroids {
                let w = match &mask {
                    Some(m) => weight.mul(m)?,
                    None => weight,
                };
                Some(nearest_codes(&w, &centroids)?)
            } else {
                None
            };
            out.push(Layer {
                name: l.name.clone(),
                centroids,
                zero,
                codes,
            });
        }
        pf_sdk::progress(layers.len() as u64, layers.len() as u64, "codebooks built");
        let learner = NonUniformQuant {
            layers: out,
            bits,
            train: p.train,
            lr: p.centroid_lr as f32,
            baseline_bytes: cost.bytes,
        };
        let report = learner.report(model, "k-means codebooks");
        Ok((learner, report))
    }

    fn on_train_step(&mut self, model: &Model, _step: u32, _total: u32) -> Result<()> {
        if self.train == Train::Weights {
            return Ok(());
        }
        self.centroid_step(model)
    }

    fn finish(&mut self, model: &Model) -> Result<Report> {
        Ok(self.report(model, "non-uniform quantization"))
    }
}

pf_sdk::export_learner!(NonUniformQuant);

#[cfg(test)]
mod tests {
    use super::codebook_bytes;

    #[test]
    fn codebook_bytes_count_indices_and_centroids() {
        assert_eq!(codebook_bytes(1000, 16), 500 + 64);
        assert_eq!(codebook_bytes(3, 2), 1 + 8);
        assert_eq!(codebook_bytes(8, 256), 8 + 1024);
    }
}
