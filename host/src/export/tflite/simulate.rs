//! pf's own evaluation of a lowered graph: what a TFLite interpreter
//! computes, on Candle tensors.
//!
//! It serves two purposes. On a float32 graph it is the calibration pass of
//! int8 export: every tensor of the file, including the ones pf's graph does
//! not have (a `PAD` in front of a convolution, a folded batch norm's
//! output), gets its observed range. On an int8 graph it is pf's
//! simulated-quantization forward pass: weights and biases are the stored
//! integers times their scales, and every int8 activation is rounded to its
//! grid and clamped to `[-128, 127]` after the operator that writes it, as
//! the integer kernels do. Arithmetic in between is float, so the two can
//! differ by one step where a value falls on a rounding boundary; the tests
//! bound how often that changes a prediction.
//!
//! Feature maps are kept NCHW (pf's layout, so pf's kernels run them) and
//! vectors `(N, n)`; the file's NHWC shapes are checked against them after
//! every operator.

use super::lower::{same_padding, Activation, DType, Lowered, OpKind, Padding, Quant, TensorDef};
use crate::nn;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

/// The result of evaluating a lowered graph on a batch.
pub struct Evaluation {
    /// The graph's output, `(N, n)` (dequantized if the output is int8).
    pub output: Tensor,
    /// Every tensor that was computed, by index, when asked for
    /// (feature maps NCHW, vectors `(N, n)`); constants are `None`.
    pub values: Vec<Option<Tensor>>,
}

/// The real values an int8 tensor can hold, from `x`: `x` rounded to the
/// grid of `q` (per tensor) and clamped to the int8 range.
pub fn fake_quant(x: &Tensor, q: &Quant) -> Result<Tensor> {
    let (s, z) = (q.scale[0] as f64, q.zero_point[0] as f64);
    Ok(x.affine(1.0 / s, 0.0)?
        .round()?
        .affine(1.0, z)?
        .clamp(-128f32, 127f32)?
        .affine(s, -z * s)?)
}

/// The integers of a constant tensor, widened to i64.
fn integers(t: &TensorDef) -> Result<Vec<i64>> {
    let data =
        super::sparse::dense_data(t).with_context(|| format!("tensor `{}` has no data", t.name))?;
    let data = &data;
    Ok(match t.dtype {
        DType::I32 => data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        DType::I8 => data.iter().map(|&b| b as i8 as i64).collect(),
        DType::F32 => bail!("tensor `{}` is float, not integer", t.name),
    })
}

/// A constant as the real values it stands for, in the file's layout.
fn real_constant(t: &TensorDef, device: &Device) -> Result<Tensor> {
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let values: Vec<f32> = match (t.dtype, &t.quant) {
        (DType::F32, _) => super::sparse::dense_data(t)
            .with_context(|| format!("tensor `{}` has no data", t.name))?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        (_, Some(q)) => {
            let ints = integers(t)?;
            // Index of the slice along `q.axis` for a flat (row-major) index.
            let inner: usize = shape[q.axis + 1..].iter().product();
            let along = shape[q.axis];
            ints.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = if q.scale.len() == 1 {
                        0
                    } else {
                        (i / inner) % along
                    };
                    (v - q.zero_point[c]) as f32 * q.scale[c]
                })
                .collect()
        }
        (_, None) => bail!(
            "tensor `{}` is an integer constant without quantization parameters where real values are needed",
            t.name
        ),
    };
    Ok(Tensor::from_vec(values, shape, device)?)
}

fn activate(y: Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::None => y,
        Activation::Relu => nn::relu(&y)?,
        Activation::Relu6 => nn::relu6(&y)?,
    })
}

/// Explicit per-side padding of a window op, and the symmetric padding to
/// hand the kernel (after padding `x` itself where the sides differ).
fn window_input(
    x: &Tensor,
    padding: Padding,
    kernel: [usize; 2],
    stride: [usize; 2],
) -> Result<(Tensor, [usize; 2])> {
    let (_, _, h, w) = x.dims4()?;
    if padding == Padding::Valid {
        return Ok((x.clone(), [0, 0]));
    }
    let [t, b, l, r] = same_padding([h, w], kernel, stride);
    if t == b && l == r {
        return Ok((x.clone(), [t, l]));
    }
    Ok((x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?, [0, 0]))
}

/// The NHWC (or `[1, n]`) shape the file declares, as the layout kept here.
fn expected_dims(def: &TensorDef, n: usize) -> Vec<usize> {
    let s: Vec<usize> = def.shape.iter().map(|&d| d as usize).collect();
    match s.as_slice() {
        [_, h, w, c] => vec![n, *c, *h, *w],
        [_, rest @ ..] => std::iter::once(n).chain(rest.iter().copied()).collect(),
        [] => vec![],
    }
}

/// Evaluates `g` on `images` (`(N, C, H, W)`, float, normalised as for the
/// model). An int8 input is quantized with its parameters first, as a
/// caller of the file would. With `keep_all`, every computed tensor is
/// returned.
pub fn evaluate(g: &Lowered, images: &Tensor, keep_all: bool) -> Result<Evaluation> {
    let device = images.device().clone();
    let n = images.dim(0)?;
    let mut values: Vec<Option<Tensor>> = vec![None; g.tensors.len()];
    let input_def = &g.tensors[g.input];
    let x = images.to_dtype(candle_core::DType::F32)?;
    if x.dims() != expected_dims(input_def, n).as_slice() {
        bail!(
            "the images are {:?} but the model's input is {:?} (NHWC)",
            x.dims(),
            input_def.shape
        );
    }
    values[g.input] = Some(match &input_def.quant {
        Some(q) => fake_quant(&x, q)?,
        None => x,
    });
    let last_use = {
        let mut last = vec![0usize; g.tensors.len()];
        for (i, op) in g.ops.iter().enumerate() {
            for &t in &op.inputs {
                last[t] = i;
            }
        }
        last
    };
    for (i, op) in g.ops.iter().enumerate() {
        if op.kind == OpKind::Densify {
            // A weight, in the file's layout, as the real values it holds.
            values[op.outputs[0]] = Some(real_constant(&g.tensors[op.inputs[0]], &device)?);
            continue;
        }
        let value = |k: usize| -> Result<Tensor> {
            let t = op.inputs[k];
            match &values[t] {
                Some(v) => Ok(v.clone()),
                None => real_constant(&g.tensors[t], &device),
            }
        };
        let ints = |k: usize| integers(&g.tensors[op.inputs[k]]);
        // An element-wise operand: a per-channel constant (`[1, 1, 1, C]`,
        // a batch norm's scale or shift) moves its channels to NCHW's axis 1.
        let operand = |k: usize| -> Result<Tensor> {
            let v = value(k)?;
            if values[op.inputs[k]].is_none() && v.rank() == 4 {
                Ok(v.permute((0, 3, 1, 2))?)
            } else {
                Ok(v)
            }
        };
        let y = match &op.kind {
            OpKind::Conv2d {
                padding,
                stride,
                act,
            }
            | OpKind::DepthwiseConv2d {
                padding,
                stride,
                act,
            } => {
                let depthwise = matches!(op.kind, OpKind::DepthwiseConv2d { .. });
                // Conv: O × kh × kw × I; depthwise: 1 × kh × kw × C.
                let w = value(1)?;
                let w = if depthwise {
                    w.permute((3, 0, 1, 2))?
                } else {
                    w.permute((0, 3, 1, 2))?
                };
                let (kh, kw) = (w.dim(2)?, w.dim(3)?);
                let (x, pad) = window_input(&value(0)?, *padding, [kh, kw], *stride)?;
                let groups = if depthwise { x.dim(1)? } else { 1 };
                let y = nn::conv2d(&x, &w, Some(&value(2)?), *stride, pad, groups)?;
                activate(y, *act)?
            }
            OpKind::FullyConnected { act } => {
                let y = nn::linear(&value(0)?, &value(1)?, Some(&value(2)?))?;
                activate(y, *act)?
            }
            OpKind::Add { act } => activate(value(0)?.broadcast_add(&operand(1)?)?, *act)?,
            OpKind::Mul { act } => activate(value(0)?.broadcast_mul(&operand(1)?)?, *act)?,
            OpKind::Logistic => nn::sigmoid(&value(0)?)?,
            OpKind::Concatenation => {
                let parts = (0..op.inputs.len())
                    .map(value)
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&parts, 1)?
            }
            OpKind::HardSwish => nn::hard_swish(&value(0)?)?,
            OpKind::MaxPool {
                padding,
                kernel,
                stride,
            }
            | OpKind::AvgPool {
                padding,
                kernel,
                stride,
            } => {
                let kind = if matches!(op.kind, OpKind::MaxPool { .. }) {
                    nn::pool::Pool::Max
                } else {
                    nn::pool::Pool::Avg
                };
                let x = value(0)?;
                let (_, _, h, w) = x.dims4()?;
                let pads = match padding {
                    Padding::Valid => [0; 4],
                    Padding::Same => same_padding([h, w], *kernel, *stride),
                };
                nn::pool::pool2d(&x, kind, *kernel, *stride, pads)?
            }
            OpKind::Mean { keep_dims } => {
                if ints(1)? != [1, 2] {
                    bail!(
                        "operator for layer `{}`: only a mean over height and width is simulated",
                        op.layer
                    );
                }
                let m = value(0)?.mean_keepdim(3)?.mean_keepdim(2)?;
                if *keep_dims {
                    m
                } else {
                    m.flatten_from(1)?
                }
            }
            OpKind::Pad => {
                let p = ints(1)?;
                let x = value(0)?;
                if x.rank() != 4 || p.len() != 8 || p[0] != 0 || p[1] != 0 {
                    bail!(
                        "operator for layer `{}`: only padding of a feature map's height, width and channels is simulated",
                        op.layer
                    );
                }
                let p: Vec<usize> = p.iter().map(|&v| v as usize).collect();
                // NHWC pairs → NCHW axes: H → 2, W → 3, C → 1.
                x.pad_with_zeros(2, p[2], p[3])?
                    .pad_with_zeros(3, p[4], p[5])?
                    .pad_with_zeros(1, p[6], p[7])?
            }
            OpKind::PadV2 => {
                let p = ints(1)?;
                let x = value(0)?;
                if x.rank() != 4 || p.len() != 8 || p != [0, 0, p[2], p[3], p[4], p[5], 0, 0] {
                    bail!(
                        "operator for layer `{}`: only padding of a feature map's height and width by a constant is simulated",
                        op.layer
                    );
                }
                let fill = value(2)?.flatten_all()?.to_vec1::<f32>()?;
                let [fill] = fill[..] else {
                    bail!(
                        "operator for layer `{}`: the padding value is not one number",
                        op.layer
                    );
                };
                let pads = [p[2], p[3], p[4], p[5]].map(|v| v as usize);
                nn::pool::pad_constant(&x, pads, fill as f64)?
            }
            OpKind::Gather { axis } => {
                let x = value(0)?;
                if x.rank() != 4 || *axis != 3 {
                    bail!(
                        "operator for layer `{}`: only a gather of a feature map's channels is simulated",
                        op.layer
                    );
                }
                let c = x.dim(1)?;
                let from = ints(1)?;
                if from.iter().any(|&k| k < 0 || k as usize >= c) {
                    bail!(
                        "operator for layer `{}`: a channel index is out of range",
                        op.layer
                    );
                }
                let from: Vec<u32> = from.iter().map(|&k| k as u32).collect();
                let n = from.len();
                x.index_select(&Tensor::from_vec(from, n, x.device())?, 1)?
            }
            OpKind::Slice => {
                let x = value(0)?;
                let (begin, size) = (ints(1)?, ints(2)?);
                let (_, c, h, w) = x.dims4()?;
                let whole = |b: i64, s: i64, n: usize| b == 0 && (s == n as i64 || s == -1);
                match (&begin[..], &size[..]) {
                    ([0, bh, bw, start], [1 | -1, sh, sw, len])
                        if whole(*bh, *sh, h)
                            && whole(*bw, *sw, w)
                            && *start >= 0
                            && *len > 0
                            && (start + len) as usize <= c =>
                    {
                        x.narrow(1, *start as usize, *len as usize)?.contiguous()?
                    }
                    _ => bail!(
                        "operator for layer `{}`: only a slice of a feature map's channels is simulated",
                        op.layer
                    ),
                }
            }
            OpKind::Reshape { shape } => {
                let x = value(0)?;
                if shape.len() != 2 || shape[0] != 1 {
                    bail!(
                        "operator for layer `{}`: only a reshape to [1, n] is simulated",
                        op.layer
                    );
                }
                // The file's reshape flattens NHWC, i.e. H·W·C order.
                let x = if x.rank() == 4 {
                    x.permute((0, 2, 3, 1))?
                } else {
                    x
                };
                x.flatten_from(1)?
            }
            OpKind::Softmax => nn::softmax(&value(0)?)?,
            OpKind::Quantize | OpKind::Dequantize => value(0)?,
            OpKind::Densify => unreachable!("handled above"),
        };
        let out = op.outputs[0];
        let def = &g.tensors[out];
        let want = expected_dims(def, n);
        if y.dims() != want.as_slice() {
            bail!(
                "operator for layer `{}` computed {:?} but its output `{}` is declared {:?} (NHWC)",
                op.layer,
                y.dims(),
                def.name,
                def.shape
            );
        }
        let y = match (&def.quant, def.dtype) {
            (Some(q), DType::I8) => fake_quant(&y, q)?,
            _ => y,
        };
        values[out] = Some(y.contiguous()?);
        if !keep_all {
            for &t in &op.inputs {
                if last_use[t] == i && t != g.output {
                    values[t] = None;
                }
            }
        }
    }
    let output = values[g.output]
        .clone()
        .context("the graph's output was never computed")?;
    if !keep_all {
        values.iter_mut().for_each(|v| *v = None);
    }
    Ok(Evaluation { output, values })
}
