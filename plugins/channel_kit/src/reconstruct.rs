//! The host-side sums of one consumer layer's samples, and the
//! least-squares reconstruction of its kept weights.
//!
//! The consumer reads `c` channels of `kk` inputs each (`kh·kw` for a
//! convolution, `h·w` for a linear layer after a flatten); its sampled input
//! patches `X` are `[N, c·kk]`, channel-major, and its outputs before the
//! bias `Y = XWᵀ` are `[N, O]`. Every product runs in the host; the plugin
//! copies out only `c×c` and `(k·kk)×(k·kk)` systems.

use crate::lasso::Lasso;
use pf_sdk::math;
use pf_sdk::prelude::*;
use pf_sdk::FeatureSample;

/// Samples the features of `consumer` in the model as it is now: `images`
/// training images to fit on and as many again held out, at `per_image`
/// positions each. A linear layer gives one row per image, so it gets as
/// many images as a convolution gets rows (up to the host's 1024). The
/// host draws the same images and positions for a layer on every call.
pub fn sample(
    model: &Model,
    consumer: &LayerInfo,
    images: u32,
    per_image: u32,
) -> Result<FeatureSample> {
    let images = 2 * images.clamp(1, 512);
    let per_image = per_image.clamp(1, 100);
    match consumer.kind {
        LayerKind::Linear => {
            model.sample_features(&consumer.name, (images * per_image).min(1024), 1)
        }
        _ => model.sample_features(&consumer.name, images, per_image),
    }
}

/// The widest system (`k·kk` unknowns per output) the plugin solves; wider
/// consumers keep their original weights for the kept channels.
pub const MAX_UNKNOWNS: u32 = 4096;

/// Most elements of one chunk of per-channel contributions.
const MAX_CHUNK_ELEMENTS: u64 = 4 << 20;

/// One consumer's samples, split into a half to fit on and a held-out half
/// to measure the reconstruction error on.
pub struct Samples {
    /// The consumer layer.
    pub layer: String,
    /// Inputs per channel (`kh·kw`, or `h·w` after a flatten).
    pub kk: u32,
    /// Channels the consumer reads.
    pub channels: u32,
    x_fit: Tensor,
    y_fit: Tensor,
    x_eval: Tensor,
    y_eval: Tensor,
    /// The weight as `[O, c·kk]`.
    weight: Tensor,
}

impl Samples {
    /// Splits the sampled `inputs` and `outputs` (rows in image order, the
    /// same images and positions) into fitting and held-out halves.
    pub fn new(
        model: &Model,
        layer: &LayerInfo,
        channels: u32,
        inputs: Tensor,
        outputs: Tensor,
    ) -> Result<Self> {
        let rows = inputs.shape()[0];
        let width = inputs.shape()[1];
        if rows < 2 || outputs.shape()[0] != rows {
            return Err(Error::invalid_argument(format!(
                "`{}`: {rows} sampled inputs and {} outputs; at least 2 of each, as many \
                 inputs as outputs, are needed",
                layer.name,
                outputs.shape()[0]
            )));
        }
        if channels == 0 || width % channels != 0 {
            return Err(Error::unsupported(format!(
                "`{}` reads {width} inputs per sample, not a multiple of its {channels} channels",
                layer.name
            )));
        }
        let half = rows / 2;
        let out = layer.out_channels();
        Ok(Samples {
            layer: layer.name.clone(),
            kk: width / channels,
            channels,
            x_fit: inputs.narrow(0, 0, half)?,
            y_fit: outputs.narrow(0, 0, half)?,
            x_eval: inputs.narrow(0, half, rows - half)?,
            y_eval: outputs.narrow(0, half, rows - half)?,
            weight: model.weight(&layer.name)?.reshape(&[out, width])?,
        })
    }

    /// The LASSO problem of choosing channels for this consumer: the Gram
    /// matrix of the per-channel contributions `Zᵢ = XᵢWᵢᵀ` and their
    /// products with `Y`.
    pub fn lasso(&self) -> Result<Lasso> {
        let (c, kk) = (self.channels, self.kk);
        let n = self.x_fit.shape()[0];
        let out = self.weight.shape()[0];
        // [c, kk, O], the weight's slice per channel.
        let w = self
            .weight
            .reshape(&[out, c, kk])?
            .transpose(0, 1)?
            .transpose(1, 2)?;
        // The contributions are c·N·O values: summed over row chunks, so
        // that no tensor grows past a few million elements however wide
        // the layer.
        let chunk = (MAX_CHUNK_ELEMENTS / (u64::from(c) * u64::from(out)).max(1))
            .clamp(1, u64::from(n)) as u32;
        let mut gram = vec![0.0; (c * c) as usize];
        let mut zty = vec![0.0; c as usize];
        let mut start = 0;
        while start < n {
            let rows = chunk.min(n - start);
            // [rows, c, kk] → [c, rows, kk] times [c, kk, O] → [c, rows, O].
            let x = self
                .x_fit
                .narrow(0, start, rows)?
                .reshape(&[rows, c, kk])?
                .transpose(0, 1)?;
            let z = x.matmul(&w)?.reshape(&[c, rows * out])?;
            drop(x);
            let y = self
                .y_fit
                .narrow(0, start, rows)?
                .reshape(&[rows * out, 1])?;
            let g = to_f64(&z.matmul(&z.transpose(0, 1)?)?)?;
            let b = to_f64(&z.matmul(&y)?)?;
            gram.iter_mut().zip(g).for_each(|(t, v)| *t += v);
            zty.iter_mut().zip(b).for_each(|(t, v)| *t += v);
            start += rows;
        }
        Ok(Lasso { gram, zty })
    }

    /// The reader's weight as it was sampled, `[O, c·kk]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The gradient, with respect to a weight `w` (`[O, c·kk]`), of the
    /// reconstruction loss `½‖X Wᵀ − Y‖² / N` on the fitting half: `(X Wᵀ −
    /// Y)ᵀ X / N`.
    pub fn reconstruction_gradient(&self, w: &Tensor) -> Result<Tensor> {
        let n = self.x_fit.shape()[0].max(1);
        let residual = self.x_fit.matmul(&w.transpose(0, 1)?)?.sub(&self.y_fit)?;
        residual
            .transpose(0, 1)?
            .matmul(&self.x_fit)?
            .div_scalar(n as f32)
    }

    /// The column indices of the kept channels' inputs.
    pub fn columns(&self, keep: &[u32]) -> Vec<u32> {
        keep.iter()
            .flat_map(|&ch| ch * self.kk..(ch + 1) * self.kk)
            .collect()
    }

    /// The weight of the kept channels, `[O, k·kk]`: with `reconstruct`,
    /// rebuilt by least squares on the fitting half so that the kept inputs
    /// reproduce the original outputs, unless the original columns do better
    /// on the held-out half; otherwise the original columns. Returns it with
    /// the relative error `‖Y − X_S W_Sᵀ‖² / ‖Y‖²` on the held-out half.
    pub fn kept_weight(&self, keep: &[u32], reconstruct: bool) -> Result<(Tensor, f64)> {
        let cols = self.columns(keep);
        let unknowns = cols.len() as u32;
        let original = self.weight.index_select(1, &cols)?;
        let original_error = self.held_out_error(&cols, &original)?;
        if !reconstruct {
            return Ok((original, original_error));
        }
        if unknowns > MAX_UNKNOWNS {
            pf_sdk::log(
                pf_sdk::Level::Warn,
                &format!(
                    "`{}`: {unknowns} unknowns per output is over {MAX_UNKNOWNS}; its kept \
                     weights are not reconstructed",
                    self.layer
                ),
            );
            return Ok((original, original_error));
        }
        let out = self.weight.shape()[0];
        let xs = self.x_fit.index_select(1, &cols)?;
        let xt = xs.transpose(0, 1)?;
        let a = to_f64(&xt.matmul(&xs)?)?;
        let b = to_f64(&xt.matmul(&self.y_fit)?)?; // [k·kk, O]
        drop((xs, xt));
        let w = least_squares(&a, &b, unknowns as usize, out as usize)?;
        let rebuilt = Tensor::from_data(&[out, unknowns], &w)?;
        let error = self.held_out_error(&cols, &rebuilt)?;
        // With fewer samples than unknowns the (ridge) fit can overfit; the
        // held-out half decides, and the original weights win a tie.
        if error < original_error {
            Ok((rebuilt, error))
        } else {
            pf_sdk::log(
                pf_sdk::Level::Info,
                &format!(
                    "`{}`: the reconstruction reproduces held-out outputs worse ({error:.4}) \
                     than the original weights ({original_error:.4}); keeping them",
                    self.layer
                ),
            );
            Ok((original, original_error))
        }
    }

    /// `‖Y − X_S W_Sᵀ‖² / ‖Y‖²` on the held-out half, for the input
    /// columns `cols` and their weight `[O, cols]`.
    fn held_out_error(&self, cols: &[u32], weight: &Tensor) -> Result<f64> {
        let predicted = self
            .x_eval
            .index_select(1, cols)?
            .matmul(&weight.transpose(0, 1)?)?;
        let residual = self.y_eval.sub(&predicted)?.sqr()?.sum_all()?;
        let total = self.y_eval.sqr()?.sum_all()?;
        Ok(if total > 0.0 {
            f64::from(residual / total)
        } else {
            0.0
        })
    }
}

/// Copies a host tensor out as f64.
fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_vec()?.into_iter().map(f64::from).collect())
}

/// Solves `(A + εI) W = B` for `W` (`n×m`) with `A` the `n×n` normal
/// matrix and returns `Wᵀ` (`m×n`, row-major) as f32. The small ridge `ε`
/// (relative to A's mean diagonal) keeps the system solvable when inputs
/// are collinear or dead.
pub fn least_squares(a: &[f64], b: &[f64], n: usize, m: usize) -> Result<Vec<f32>> {
    let mean_diag = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n.max(1) as f64;
    let eps = 1e-4 * mean_diag.max(f64::MIN_POSITIVE) + 1e-12;
    let mut reg = a.to_vec();
    for i in 0..n {
        reg[i * n + i] += eps;
    }
    let l = math::cholesky(&reg, n)?;
    let mut wt = vec![0.0f32; m * n];
    let mut column = vec![0.0; n];
    for j in 0..m {
        for i in 0..n {
            column[i] = b[i * m + j];
        }
        let w = math::cholesky_solve(&l, n, &column);
        if w.iter().any(|v| !v.is_finite()) {
            return Err(Error::numerical(
                "the least-squares reconstruction is not finite",
            ));
        }
        for i in 0..n {
            wt[j * n + i] = w[i] as f32;
        }
    }
    Ok(wt)
}

#[cfg(test)]
mod tests {
    use super::least_squares;

    #[test]
    fn least_squares_recovers_an_exact_fit() {
        // Y = X Wᵀ with W = [[1, 2], [-1, 0.5], [3, 0]] (3 outputs, 2 inputs).
        let x = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]];
        let w = [[1.0, 2.0], [-1.0, 0.5], [3.0, 0.0]];
        let mut a = vec![0.0; 4];
        let mut b = vec![0.0; 6];
        for row in &x {
            for i in 0..2 {
                for j in 0..2 {
                    a[i * 2 + j] += row[i] * row[j];
                }
                for (o, wo) in w.iter().enumerate() {
                    let y = row[0] * wo[0] + row[1] * wo[1];
                    b[i * 3 + o] += row[i] * y;
                }
            }
        }
        let wt = least_squares(&a, &b, 2, 3).unwrap();
        for (o, wo) in w.iter().enumerate() {
            for i in 0..2 {
                assert!((f64::from(wt[o * 2 + i]) - wo[i]).abs() < 1e-3, "{wt:?}");
            }
        }
    }
}
