//! Fake quantization with the straight-through estimator: the forward pass
//! sees quantized values, the backward pass treats quantization as identity
//! (`(x − x.detach()) + q(x)`).

use crate::graph::Quantizer;
use candle_core::{Result, Tensor};

/// Quantizes a weight tensor (`(O, ...)`) and returns the dequantized values
/// with a straight-through gradient.
pub fn fake_quant_weight(w: &Tensor, q: &Quantizer) -> Result<Tensor> {
    let quantized = match q {
        Quantizer::Uniform {
            bits,
            symmetric,
            bucket,
            ..
        } if *bucket > 0 => bucketed(&w.detach(), *bucket as usize, *bits, *symmetric)?,
        Quantizer::Uniform {
            bits,
            symmetric,
            per_channel,
            ..
        } => {
            let (lo, hi) = if *per_channel {
                let flat = w.flatten_from(1)?;
                let mut shape = vec![1; w.rank()];
                shape[0] = w.dim(0)?;
                (
                    flat.min_keepdim(1)?.reshape(shape.as_slice())?,
                    flat.max_keepdim(1)?.reshape(shape.as_slice())?,
                )
            } else {
                let lo = w.flatten_all()?.min_keepdim(0)?;
                let hi = w.flatten_all()?.max_keepdim(0)?;
                let shape = vec![1; w.rank()];
                (lo.reshape(shape.as_slice())?, hi.reshape(shape.as_slice())?)
            };
            uniform(&w.detach(), &lo.detach(), &hi.detach(), *bits, *symmetric)?
        }
        Quantizer::Codebook { centroids } => codebook(&w.detach(), centroids)?,
    };
    straight_through(w, &quantized)
}

/// Quantizes activations to `bits` over the range `[lo, hi]` (scalars),
/// with a straight-through gradient.
pub fn fake_quant_activation(
    x: &Tensor,
    q: &Quantizer,
    range: Option<(f32, f32)>,
) -> Result<Tensor> {
    let quantized = match q {
        Quantizer::Uniform {
            bits, symmetric, ..
        } => {
            let (lo, hi) = range.unwrap_or((0.0, 0.0));
            let lo = Tensor::new(&[lo], x.device())?.to_dtype(x.dtype())?;
            let hi = Tensor::new(&[hi], x.device())?.to_dtype(x.dtype())?;
            uniform(&x.detach(), &lo, &hi, *bits, *symmetric)?
        }
        Quantizer::Codebook { centroids } => codebook(&x.detach(), centroids)?,
    };
    straight_through(x, &quantized)
}

/// Uniform quantization with one range per bucket of `bucket` consecutive
/// values of the flattened `w` (the last bucket zero-padded; every range
/// includes 0 anyway).
fn bucketed(w: &Tensor, bucket: usize, bits: u8, symmetric: bool) -> Result<Tensor> {
    let n = w.elem_count();
    let buckets = n.div_ceil(bucket);
    let flat = w.flatten_all()?;
    let padded = if buckets * bucket > n {
        let pad = Tensor::zeros(buckets * bucket - n, w.dtype(), w.device())?;
        Tensor::cat(&[&flat, &pad], 0)?
    } else {
        flat
    };
    let b = padded.reshape((buckets, bucket))?;
    let (lo, hi) = (b.min_keepdim(1)?, b.max_keepdim(1)?);
    uniform(&b, &lo, &hi, bits, symmetric)?
        .flatten_all()?
        .narrow(0, 0, n)?
        .reshape(w.shape())
}

/// `q` in the forward pass, identity in the backward pass. Written as
/// `(x − x.detach()) + q`, which is exactly `q` in floating point (unlike
/// `x + (q − x).detach()`).
fn straight_through(x: &Tensor, q: &Tensor) -> Result<Tensor> {
    (x - x.detach())? + q.detach()
}

/// Affine quantize–dequantize of `x` over `[lo, hi]` (broadcastable). The
/// range is widened to include 0 so that zero stays exact.
fn uniform(x: &Tensor, lo: &Tensor, hi: &Tensor, bits: u8, symmetric: bool) -> Result<Tensor> {
    let levels = ((1u64 << bits) - 1) as f64;
    let zero = lo.zeros_like()?;
    let lo = lo.minimum(&zero)?;
    let hi = hi.maximum(&zero)?;
    if symmetric {
        // Signed: [-(2^(b-1) - 1), 2^(b-1) - 1] · scale, scale = max|x| / qmax.
        let qmax = ((1u64 << (bits - 1)) - 1) as f64;
        let amax = lo.abs()?.maximum(&hi)?;
        let scale = ((amax / qmax)? + 1e-12)?;
        let q = x.broadcast_div(&scale)?.round()?.clamp(-qmax, qmax)?;
        q.broadcast_mul(&scale)
    } else {
        let scale = (((hi - &lo)? / levels)? + 1e-12)?;
        let zero_point = lo.neg()?.div(&scale)?.round()?;
        let q = (x
            .broadcast_div(&scale)?
            .round()?
            .broadcast_add(&zero_point)?)
        .clamp(0.0, levels)?;
        q.broadcast_sub(&zero_point)?.broadcast_mul(&scale)
    }
}

/// Maps every value to the nearest of the sorted `centroids`: walking up the
/// midpoints, every value above `(cₖ + cₖ₊₁)/2` becomes `cₖ₊₁` (exactly).
fn codebook(x: &Tensor, centroids: &[f32]) -> Result<Tensor> {
    let level = |c: f32| Tensor::full(c, x.shape(), x.device())?.to_dtype(x.dtype());
    let mut out = level(centroids[0])?;
    for pair in centroids.windows(2) {
        let mid = (pair[0] as f64 + pair[1] as f64) / 2.0;
        out = x.gt(mid)?.where_cond(&level(pair[1])?, &out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn buckets_get_their_own_scales() {
        // Two buckets of 4: small values and large ones. One scale for all
        // would round the small ones to 0 at 2 bits; per bucket they stay.
        let w = Tensor::new(
            &[0.01f32, -0.02, 0.03, 0.0, 10.0, -5.0, 2.0, 7.0],
            &Device::Cpu,
        )
        .unwrap()
        .reshape((2, 4))
        .unwrap();
        let q = Quantizer::Uniform {
            bits: 3,
            symmetric: true,
            per_channel: false,
            bucket: 4,
        };
        let out = fake_quant_weight(&w, &q).unwrap().flatten_all().unwrap();
        let out = out.to_vec1::<f32>().unwrap();
        // Bucket 1: scale 0.03 / 3 = 0.01, so every value is a multiple of it.
        for (got, want) in out[..4].iter().zip([0.01, -0.02, 0.03, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
        // Bucket 2: scale 10 / 3.
        for v in &out[4..] {
            let steps = v / (10.0 / 3.0);
            assert!((steps - steps.round()).abs() < 1e-4, "{out:?}");
        }
        // A last bucket shorter than the others is padded, not dropped.
        let odd = Tensor::new(&[1.0f32, 2.0, 3.0, 4.0, 5.0], &Device::Cpu).unwrap();
        let out = fake_quant_weight(&odd, &q).unwrap();
        assert_eq!(out.dims(), &[5]);
        assert!((out.to_vec1::<f32>().unwrap()[4] - 5.0).abs() < 1e-5);
    }
}
