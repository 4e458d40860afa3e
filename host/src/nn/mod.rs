//! Differentiable building blocks on Candle tensors: convolution, pooling,
//! batch normalisation, activations, losses and fake quantization.
//!
//! Everything here is written once for any float dtype and device, so the
//! same code runs under f64 in the gradient tests, f32 in training, and on
//! CUDA when the feature is on.

pub mod batchnorm;
pub mod cpu_ops;
pub mod loss;
pub mod pool;
pub mod quant;

use candle_core::{Result, Tensor};

/// 2-D convolution (NCHW) with optional bias. On the CPU it runs pf's own
/// kernels (im2col + gemm, direct depthwise); elsewhere Candle's.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
) -> Result<Tensor> {
    let y = if cpu_ops::supported(x) {
        cpu_ops::conv2d(x, weight, stride, padding, groups)?
    } else {
        candle_conv2d(x, weight, stride, padding, groups)?
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// 2-D convolution with Candle's own ops: the reference the CPU kernels are
/// tested against, and the path on CUDA.
pub fn candle_conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
) -> Result<Tensor> {
    if stride[0] != stride[1] {
        candle_core::bail!(
            "conv2d with different row and column strides {stride:?} needs the CPU kernels"
        );
    }
    let (_, _, h, w) = x.dims4()?;
    let (kh, kw) = (weight.dim(2)?, weight.dim(3)?);
    let s = stride[0];
    let rem = |size: usize, k: usize, p: usize| (size + 2 * p).saturating_sub(k) % s;
    // Candle handles symmetric padding and, in its backward pass, one output
    // padding for both axes; anything else is padded here explicitly and the
    // rows and columns no window reads are cut off.
    let (x, pad) = if padding[0] == padding[1] && rem(h, kh, padding[0]) == rem(w, kw, padding[1]) {
        (x.clone(), padding[0])
    } else {
        let x = x
            .pad_with_zeros(2, padding[0], padding[0])?
            .pad_with_zeros(3, padding[1], padding[1])?;
        let used = |size: usize, k: usize| size - rem(size, k, 0);
        let (ph, pw) = (h + 2 * padding[0], w + 2 * padding[1]);
        (x.narrow(2, 0, used(ph, kh))?.narrow(3, 0, used(pw, kw))?, 0)
    };
    x.conv2d(weight, pad, stride[0], 1, groups)
}

/// Fully connected layer: `x · Wᵀ + b` for `x` of shape `(N, in)`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&weight.t()?)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `max(x, 0)`, on the CPU kernels where they apply.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if cpu_ops::supported(x) {
        cpu_ops::relu(x)
    } else {
        x.relu()
    }
}

/// `min(max(x, 0), 6)`.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    x.clamp(0f32, 6f32)
}

/// The logistic function, as `(tanh(x / 2) + 1) / 2`: no overflow for
/// large |x|, in the value or its gradient.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    ((x * 0.5)?.tanh()? + 1.0)? * 0.5
}

/// `max(0, min(1, alpha·x + beta))`.
pub fn hard_sigmoid(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    x.affine(alpha as f64, beta as f64)?.clamp(0f32, 1f32)
}

/// `x · relu6(x + 3) / 6`.
pub fn hard_swish(x: &Tensor) -> Result<Tensor> {
    x.mul(&(relu6(&(x + 3.0)?)? / 6.0)?)
}

/// ShuffleNet's channel shuffle of an NCHW tensor: the channels as
/// `groups` rows read out by columns (channel `i·(C/groups) + j` moves to
/// `j·groups + i`).
pub fn channel_shuffle(x: &Tensor, groups: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    x.reshape((n, groups, c / groups, h, w))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, c, h, w))
}

/// Numerically stable log-softmax over the last dimension.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let d = x.rank() - 1;
    let max = x.max_keepdim(d)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(d)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Softmax over the last dimension.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    log_softmax(x)?.exp()
}
