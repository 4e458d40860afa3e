//! Batch normalisation with correct training and evaluation modes.

use candle_core::{Result, Tensor};

/// Parameters and running statistics of one batch-norm layer.
pub struct BatchNormParams<'a> {
    /// Scale γ, shape `(C)`.
    pub weight: &'a Tensor,
    /// Shift β, shape `(C)`.
    pub bias: &'a Tensor,
    /// Running mean, shape `(C)`.
    pub running_mean: &'a Tensor,
    /// Running (unbiased) variance, shape `(C)`.
    pub running_var: &'a Tensor,
    /// Added to the variance.
    pub eps: f64,
    /// Weight of the batch statistics in the running averages.
    pub momentum: f64,
}

/// New running statistics computed in a training step.
pub struct RunningUpdate {
    /// New running mean.
    pub mean: Tensor,
    /// New running variance.
    pub var: Tensor,
}

fn broadcast_shape(x: &Tensor) -> Vec<usize> {
    let mut s = vec![1; x.rank()];
    s[1] = x.dim(1).unwrap_or(1);
    s
}

/// Normalises `x` of shape `(N, C, H, W)` or `(N, C)` over everything but the
/// channels, then applies ReLU if `relu`. In training it uses the batch
/// statistics and returns updated running statistics (PyTorch's convention:
/// the running variance is unbiased); in evaluation it uses the running
/// statistics.
///
/// On the CPU (f32/f64) this is one fused kernel each way; elsewhere it is
/// composed from Candle ops.
pub fn batch_norm(
    x: &Tensor,
    p: &BatchNormParams<'_>,
    train: bool,
    relu: bool,
) -> Result<(Tensor, Option<RunningUpdate>)> {
    if super::cpu_ops::supported(x) {
        return fused(x, p, train, relu);
    }
    let (y, update) = composed(x, p, train)?;
    Ok((if relu { y.relu()? } else { y }, update))
}

fn fused(
    x: &Tensor,
    p: &BatchNormParams<'_>,
    train: bool,
    relu: bool,
) -> Result<(Tensor, Option<RunningUpdate>)> {
    let to_vec = |t: &Tensor| t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>();
    let running = if train {
        None
    } else {
        Some((to_vec(p.running_mean)?, to_vec(p.running_var)?))
    };
    let out = super::cpu_ops::batch_norm(x, p.weight, p.bias, p.eps, relu, running)?;
    let update = match out.batch_stats {
        None => None,
        Some((mean, var)) => {
            let count = x.elem_count() / x.dim(1)?;
            let unbias = count as f64 / (count.max(2) - 1) as f64;
            let m = p.momentum;
            let blend = |old: &Tensor, new: Vec<f64>, scale: f64| -> Result<Tensor> {
                let old_v = to_vec(old)?;
                let v: Vec<f64> = old_v
                    .iter()
                    .zip(new)
                    .map(|(o, n)| (1.0 - m) * o + m * n * scale)
                    .collect();
                Tensor::from_vec(v, old.shape(), old.device())?.to_dtype(old.dtype())
            };
            Some(RunningUpdate {
                mean: blend(p.running_mean, mean, 1.0)?,
                var: blend(p.running_var, var, unbias)?,
            })
        }
    };
    Ok((out.y, update))
}

/// The same computation from Candle ops (any device).
pub fn composed(
    x: &Tensor,
    p: &BatchNormParams<'_>,
    train: bool,
) -> Result<(Tensor, Option<RunningUpdate>)> {
    let shape = broadcast_shape(x);
    let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
    let count = x.elem_count() / x.dim(1)?;
    let (mean, var, update) = if train {
        let mean = x.mean_keepdim(dims.as_slice())?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(dims.as_slice())?;
        let m = p.momentum;
        let unbias = count as f64 / (count.max(2) - 1) as f64;
        let batch_mean = mean.flatten_all()?.detach();
        let batch_var = (var.flatten_all()?.detach() * unbias)?;
        let update = RunningUpdate {
            mean: ((p.running_mean * (1.0 - m))? + (batch_mean * m)?)?,
            var: ((p.running_var * (1.0 - m))? + (batch_var * m)?)?,
        };
        (mean, var, Some(update))
    } else {
        (
            p.running_mean.reshape(shape.as_slice())?,
            p.running_var.reshape(shape.as_slice())?,
            None,
        )
    };
    let inv_std = (var + p.eps)?.sqrt()?.recip()?;
    let y = x.broadcast_sub(&mean)?.broadcast_mul(&inv_std)?;
    let y = y
        .broadcast_mul(&p.weight.reshape(shape.as_slice())?)?
        .broadcast_add(&p.bias.reshape(shape.as_slice())?)?;
    Ok((y, update))
}
