//! Max and average pooling with any window, stride and padding, differentiable
//! in every case (candle's own pooling backward needs window == stride).

use candle_core::{DType, Result, Tensor, D};

/// Pooling reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Maximum; padded positions never win.
    Max,
    /// Mean over the positions inside the input (padding excluded).
    Avg,
}

/// Pools an NCHW tensor padded by `pads` = `[top, bottom, left, right]`
/// (unequal sides are how `ceil_mode`'s overhang and TFLite's SAME padding
/// come out); every window starts on a stride step of the padded input and
/// ends inside it.
pub fn pool2d(
    x: &Tensor,
    kind: Pool,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (ph, pw) = (h + pads[0] + pads[1], w + pads[2] + pads[3]);
    if ph < kernel[0] || pw < kernel[1] || stride.contains(&0) {
        candle_core::bail!(
            "a {kernel:?} pooling window with stride {stride:?} does not fit a {h}×{w} input padded by {pads:?}"
        );
    }
    let oh = (ph - kernel[0]) / stride[0] + 1;
    let ow = (pw - kernel[1]) / stride[1] + 1;
    // Fast path: non-overlapping windows that tile the input exactly.
    if kernel == stride && pads == [0; 4] && h % kernel[0] == 0 && w % kernel[1] == 0 {
        let k = (kernel[0], kernel[1]);
        return match kind {
            Pool::Max => x.max_pool2d_with_stride(k, k),
            Pool::Avg => x.avg_pool2d_with_stride(k, k),
        };
    }
    // General path: gather each window offset with index_select (which has a
    // gradient), then reduce over the offsets.
    let fill = match kind {
        Pool::Max => f32::MIN as f64,
        Pool::Avg => 0.0,
    };
    let xp = pad_constant(x, pads, fill)?;
    let dev = x.device();
    let idx = |start: usize, n: usize, s: usize| -> Result<Tensor> {
        let v: Vec<u32> = (0..n).map(|i| (start + i * s) as u32).collect();
        Tensor::from_vec(v, n, dev)
    };
    let mut windows = Vec::with_capacity(kernel[0] * kernel[1]);
    for i in 0..kernel[0] {
        let rows = xp.index_select(&idx(i, oh, stride[0])?, 2)?;
        for j in 0..kernel[1] {
            windows.push(rows.index_select(&idx(j, ow, stride[1])?, 3)?);
        }
    }
    if windows.len() == 1 {
        return Ok(windows.pop().expect("one window"));
    }
    let stacked = Tensor::stack(&windows, D::Minus1)?;
    match kind {
        Pool::Max => stacked.max(D::Minus1),
        Pool::Avg => {
            let sum = stacked.sum(D::Minus1)?;
            let count = valid_counts([h, w], kernel, stride, [pads[0], pads[2]], [oh, ow])?
                .to_dtype(x.dtype())?
                .to_device(dev)?;
            sum.broadcast_div(&count)
        }
    }
}

/// `x` (NCHW) with `pads` = `[top, bottom, left, right]` rows and columns
/// of `fill` around each map.
pub fn pad_constant(x: &Tensor, pads: [usize; 4], fill: f64) -> Result<Tensor> {
    if pads == [0; 4] {
        return Ok(x.clone());
    }
    let (n, c, h, w) = x.dims4()?;
    let band = |rows: usize, cols: usize| {
        Tensor::full(fill, (n, c, rows, cols), x.device())?.to_dtype(x.dtype())
    };
    let mut parts = Vec::with_capacity(3);
    if pads[0] > 0 {
        parts.push(band(pads[0], w)?);
    }
    parts.push(x.clone());
    if pads[1] > 0 {
        parts.push(band(pads[1], w)?);
    }
    let x = Tensor::cat(&parts, 2)?;
    let rows = h + pads[0] + pads[1];
    let mut parts = Vec::with_capacity(3);
    if pads[2] > 0 {
        parts.push(band(rows, pads[2])?);
    }
    parts.push(x);
    if pads[3] > 0 {
        parts.push(band(rows, pads[3])?);
    }
    Tensor::cat(&parts, 3)
}

/// Number of real (unpadded) input positions under each output window.
fn valid_counts(
    [h, w]: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    [top, left]: [usize; 2],
    [oh, ow]: [usize; 2],
) -> Result<Tensor> {
    let span = |o: usize, size: usize, k: usize, s: usize, p: usize| {
        let start = (o * s) as isize - p as isize;
        let end = (start + k as isize).min(size as isize);
        (end - start.max(0)) as f32
    };
    let mut v = Vec::with_capacity(oh * ow);
    for i in 0..oh {
        for j in 0..ow {
            v.push(span(i, h, k[0], s[0], top) * span(j, w, k[1], s[1], left));
        }
    }
    Tensor::from_vec(v, (1, 1, oh, ow), &candle_core::Device::Cpu)?.to_dtype(DType::F32)
}

/// Mean over the spatial dimensions, keeping them as 1×1.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean_keepdim(3)?.mean_keepdim(2)
}
