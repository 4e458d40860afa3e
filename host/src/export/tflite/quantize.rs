//! Full-integer (int8) export, following TFLite's quantization spec:
//!
//! - weights int8, symmetric (zero point 0, values in `[-127, 127]`), one
//!   scale per output channel (axis 0 of convolutions and fully connected
//!   layers, axis 3 of depthwise convolutions);
//! - biases int32 with scale `input scale × weight scale` of their channel;
//! - activations int8, asymmetric, one scale and zero point per tensor,
//!   from the model's quantization-aware-training ranges where a layer has
//!   an activation quantizer, otherwise from calibration: the float graph
//!   run on a sample of training images, keeping each tensor's min and max;
//! - operators that only move values (pools, `PAD`, `PADV2`, `RESHAPE`,
//!   `GATHER`, `SLICE`) keep their input's parameters, as the integer kernels require (`PADV2`'s
//!   value, a max pool's padding, is the lowest integer), and `SOFTMAX` and
//!   `LOGISTIC` write scale 1/256 with zero point −128;
//! - constant operands of `ADD` and `MUL` (a hard-sigmoid's scale and
//!   offset) are int8, symmetric, one scale per tensor;
//! - the file's input and output are int8, or float wrapped in `QUANTIZE`
//!   and `DEQUANTIZE`.

use super::lower::{self, DType, Lowered, OpDef, OpKind, Quant};
use super::simulate;
use crate::graph::Quantizer;
use crate::model::Model;
use anyhow::{bail, Context, Result};
use candle_core::Tensor;

/// Options of int8 export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Int8Options {
    /// int8 input and output tensors (the caller quantizes), instead of
    /// float ones wrapped in `QUANTIZE` / `DEQUANTIZE`.
    pub int8_io: bool,
}

/// Observed `(min, max)` of each tensor of a graph; `None` for constants.
pub type Ranges = Vec<Option<(f32, f32)>>;

/// Runs the float graph `g` on each batch and records every activation
/// tensor's range.
pub fn calibrate(g: &Lowered, batches: &[Tensor]) -> Result<Ranges> {
    if batches.is_empty() {
        bail!("calibration needs at least one image");
    }
    let mut ranges: Ranges = vec![None; g.tensors.len()];
    for batch in batches {
        let e = simulate::evaluate(g, batch, true)?;
        for (i, v) in e.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let lo = v.min_all()?.to_scalar::<f32>()?;
            let hi = v.max_all()?.to_scalar::<f32>()?;
            if !lo.is_finite() || !hi.is_finite() {
                bail!(
                    "tensor `{}` takes non-finite values on the calibration images; the model cannot be quantized",
                    g.tensors[i].name
                );
            }
            ranges[i] = Some(match ranges[i] {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
    }
    Ok(ranges)
}

/// Asymmetric int8 parameters covering `[lo, hi]` widened to include 0, so
/// that zero (padding, ReLU's floor) is exact.
pub fn activation_quant(lo: f32, hi: f32) -> Quant {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i64;
    Quant::per_tensor(scale, zero_point)
}

fn floats(t: &lower::TensorDef) -> Result<Vec<f32>> {
    Ok(t.data
        .as_ref()
        .with_context(|| format!("tensor `{}` has no data", t.name))?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Quantizes a weight tensor symmetrically per slice along `axis`, with
/// scales no smaller than `floor[c]` (so that the bias fits in int32).
fn quantize_weights(
    t: &mut lower::TensorDef,
    axis: usize,
    floor: impl Fn(usize) -> f32,
) -> Result<()> {
    let w = floats(t)?;
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let along = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let slice = |i: usize| (i / inner) % along;
    let mut amax = vec![0f32; along];
    for (i, v) in w.iter().enumerate() {
        amax[slice(i)] = amax[slice(i)].max(v.abs());
    }
    let scale: Vec<f32> = amax
        .iter()
        .enumerate()
        .map(|(c, &a)| {
            // An all-zero channel (pruned) still needs a positive scale.
            let s = if a > 0.0 { a / 127.0 } else { 1.0 };
            s.max(floor(c))
        })
        .collect();
    let q: Vec<u8> = w
        .iter()
        .enumerate()
        .map(|(i, v)| (v / scale[slice(i)]).round().clamp(-127.0, 127.0) as i8 as u8)
        .collect();
    t.data = Some(q);
    t.dtype = DType::I8;
    t.quant = Some(Quant {
        zero_point: vec![0; along],
        scale,
        axis,
    });
    Ok(())
}

/// Whether `kind` only moves values, so that its int8 output keeps its
/// input's scale and zero point.
fn moves_values(kind: &OpKind) -> bool {
    matches!(
        kind,
        OpKind::MaxPool { .. }
            | OpKind::AvgPool { .. }
            | OpKind::Reshape { .. }
            | OpKind::Gather { .. }
            | OpKind::Slice
            | OpKind::Pad
            | OpKind::PadV2
    )
}

/// Gives every tensor a concatenation joins, and its result, one scale and
/// zero point covering all their ranges, as TFLite's int8 `CONCATENATION`
/// requires (it copies bytes). Tensors linked through several
/// concatenations (DenseNet's growing blocks), or through operators that
/// only move values and so keep their input's parameters (ShuffleNet's
/// channel slices and shuffles, a pool), share one.
fn share_concatenation_quant(q: &mut Lowered, ranges: &Ranges) {
    if !q.ops.iter().any(|op| op.kind == OpKind::Concatenation) {
        return;
    }
    // Union-find over tensors: each concatenation links its inputs to its
    // output, each value-moving operator its input to its output.
    let mut root: Vec<usize> = (0..q.tensors.len()).collect();
    fn find(root: &mut [usize], mut x: usize) -> usize {
        while root[x] != x {
            root[x] = root[root[x]];
            x = root[x];
        }
        x
    }
    let mut joined = Vec::new();
    // A `PADV2` output holds the lowest float, which no range should cover.
    let mut padded = std::collections::HashSet::new();
    for op in &q.ops {
        let linked: &[usize] = match op.kind {
            OpKind::Concatenation => &op.inputs,
            ref k if moves_values(k) => &op.inputs[..1],
            _ => continue,
        };
        if op.kind == OpKind::Concatenation {
            joined.push(op.outputs[0]);
        }
        if op.kind == OpKind::PadV2 {
            padded.insert(op.outputs[0]);
        }
        for &t in linked {
            let (a, b) = (find(&mut root, t), find(&mut root, op.outputs[0]));
            root[a] = b;
        }
    }
    let mut span: std::collections::HashMap<usize, (f32, f32)> = std::collections::HashMap::new();
    for t in 0..q.tensors.len() {
        if padded.contains(&t) {
            continue;
        }
        if let Some((lo, hi)) = ranges.get(t).copied().flatten() {
            let e = span.entry(find(&mut root, t)).or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
        }
    }
    // Only the classes a concatenation is in change.
    let classes: std::collections::HashSet<usize> =
        joined.iter().map(|&t| find(&mut root, t)).collect();
    for t in 0..q.tensors.len() {
        let class = find(&mut root, t);
        if classes.contains(&class) && q.tensors[t].data.is_none() {
            if let Some(&(lo, hi)) = span.get(&class) {
                q.tensors[t].quant = Some(activation_quant(lo, hi));
            }
        }
    }
}

/// Quantizes the float constant operands of an element-wise operator
/// symmetrically, one scale per tensor.
fn quantize_constant_operands(g: &mut Lowered, op: &OpDef) -> Result<()> {
    for &i in &op.inputs {
        let t = &mut g.tensors[i];
        if t.data.is_none() || t.dtype != DType::F32 {
            continue;
        }
        let v = floats(t)?;
        let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        t.data = Some(
            v.iter()
                .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8 as u8)
                .collect(),
        );
        t.dtype = DType::I8;
        t.quant = Some(Quant::per_tensor(scale, 0));
    }
    Ok(())
}

/// Quantizes the weights and bias of a convolution or fully connected
/// operator whose input has scale `s_in`.
fn quantize_layer(g: &mut Lowered, op: &OpDef, s_in: f32) -> Result<()> {
    let axis = match op.kind {
        OpKind::DepthwiseConv2d { .. } => 3,
        _ => 0,
    };
    let (wi, bi) = (op.inputs[1], op.inputs[2]);
    let bias = floats(&g.tensors[bi])?;
    // Keep |bias| / (s_in · s_w) inside int32.
    let limit = i32::MAX as f32 / 2.0;
    quantize_weights(&mut g.tensors[wi], axis, |c| {
        bias.get(c).map_or(0.0, |b| b.abs() / (s_in * limit))
    })?;
    let w_scale = g.tensors[wi]
        .quant
        .as_ref()
        .expect("set above")
        .scale
        .clone();
    let scale: Vec<f32> = w_scale.iter().map(|s| s * s_in).collect();
    let q: Vec<i32> = bias
        .iter()
        .zip(&scale)
        .map(|(b, s)| (b / s).round() as i32)
        .collect();
    let t = &mut g.tensors[bi];
    t.data = Some(lower::i32_bytes(&q));
    t.dtype = DType::I32;
    t.quant = Some(Quant {
        zero_point: vec![0; scale.len()],
        scale,
        axis: 0,
    });
    Ok(())
}

/// Turns the float graph `g` into a full-integer one, with the activation
/// ranges in `ranges` (one per tensor; every activation tensor needs one).
pub fn quantize(g: &Lowered, ranges: &Ranges, opts: &Int8Options) -> Result<Lowered> {
    let mut q = g.clone();
    for (i, t) in q.tensors.iter_mut().enumerate() {
        if t.data.is_some() {
            continue;
        }
        let (lo, hi) = ranges
            .get(i)
            .copied()
            .flatten()
            .with_context(|| format!("tensor `{}` has no calibrated range", t.name))?;
        t.dtype = DType::I8;
        t.quant = Some(activation_quant(lo, hi));
    }
    share_concatenation_quant(&mut q, ranges);
    let ops = q.ops.clone();
    for op in &ops {
        let (x, y) = (op.inputs[0], op.outputs[0]);
        match op.kind {
            OpKind::MaxPool { .. }
            | OpKind::AvgPool { .. }
            | OpKind::Reshape { .. }
            | OpKind::Gather { .. }
            | OpKind::Slice
            | OpKind::Pad => {
                q.tensors[y].quant = q.tensors[x].quant.clone();
            }
            // The padding value is the lowest integer on the input's grid.
            OpKind::PadV2 => {
                let quant = q.tensors[x].quant.clone();
                q.tensors[y].quant = quant.clone();
                let value = &mut q.tensors[op.inputs[2]];
                value.dtype = DType::I8;
                value.data = Some(vec![i8::MIN as u8]);
                value.quant = quant;
            }
            OpKind::Softmax => q.tensors[y].quant = Some(Quant::per_tensor(1.0 / 256.0, -128)),
            OpKind::Conv2d { .. }
            | OpKind::DepthwiseConv2d { .. }
            | OpKind::FullyConnected { .. } => {
                let s_in = q.tensors[x].quant.as_ref().expect("set above").scale[0];
                quantize_layer(&mut q, op, s_in)
                    .with_context(|| format!("quantizing layer `{}`", op.layer))?;
            }
            // TFLite's int8 LOGISTIC writes [0, 1) on a fixed grid.
            OpKind::Logistic => q.tensors[y].quant = Some(Quant::per_tensor(1.0 / 256.0, -128)),
            OpKind::Mean { .. } | OpKind::HardSwish => {}
            OpKind::Concatenation => {
                if let Some(&t) = op
                    .inputs
                    .iter()
                    .find(|&&t| q.tensors[t].quant != q.tensors[y].quant)
                {
                    bail!(
                        "layer `{}`: TFLite's int8 concatenation needs its inputs on the output's scale, and `{}` has parameters of its own; export this model as float32",
                        op.layer,
                        q.tensors[t].name
                    );
                }
            }
            // A constant operand (a hard-sigmoid's scale and offset) is
            // int8 too, as the integer kernels need.
            OpKind::Add { .. } | OpKind::Mul { .. } => quantize_constant_operands(&mut q, op)?,
            OpKind::Quantize | OpKind::Dequantize => {
                bail!("the graph is already quantized")
            }
            OpKind::Densify => bail!("quantize a graph before its weights are made sparse"),
        }
    }
    if !opts.int8_io {
        wrap_float_io(&mut q);
    }
    Ok(q)
}

/// Gives `g` a float input and output: a `QUANTIZE` in front and a
/// `DEQUANTIZE` at the end. The float tensors take the original names.
fn wrap_float_io(g: &mut Lowered) {
    let float = |t: &lower::TensorDef| lower::TensorDef {
        name: t.name.clone(),
        shape: t.shape.clone(),
        dtype: DType::F32,
        data: None,
        quant: None,
        sparse: None,
    };
    let input = g.tensors.len();
    g.tensors.push(float(&g.tensors[g.input]));
    g.tensors[g.input].name.push_str("/int8");
    g.ops.insert(
        0,
        OpDef {
            kind: OpKind::Quantize,
            inputs: vec![input],
            outputs: vec![g.input],
            layer: "input".to_string(),
        },
    );
    let output = g.tensors.len();
    g.tensors.push(float(&g.tensors[g.output]));
    g.tensors[g.output].name.push_str("/int8");
    g.ops.push(OpDef {
        kind: OpKind::Dequantize,
        inputs: vec![g.output],
        outputs: vec![output],
        layer: "output".to_string(),
    });
    g.input = input;
    g.output = output;
}

/// The ranges that quantization-aware training left in the model, for the
/// tensors of `g` that are outputs of layers with a uniform activation
/// quantizer.
pub fn trained_ranges(model: &Model, g: &Lowered) -> Result<Ranges> {
    let mut out: Ranges = vec![None; g.tensors.len()];
    for (i, t) in g.tensors.iter().enumerate() {
        let Some(layer) = model.graph.layer(&t.name) else {
            continue;
        };
        let uniform = matches!(
            layer.quant.as_ref().and_then(|q| q.activation.as_ref()),
            Some(Quantizer::Uniform { .. })
        );
        if !uniform {
            continue;
        }
        if let Some(r) = model.buffers.get(&format!("{}.act_range", t.name)) {
            let r = r.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
            if r.len() == 2 && r != [0.0, 0.0] && r.iter().all(|v| v.is_finite()) {
                out[i] = Some((r[0], r[1]));
            }
        }
    }
    Ok(out)
}

/// Lowers `model` to a full-integer graph: ranges from its trained
/// activation quantizers where it has them, from `calibration` (batches of
/// normalised training images) for every other tensor.
pub fn lower_int8(model: &Model, calibration: &[Tensor], opts: &Int8Options) -> Result<Lowered> {
    let float = lower::lower(model)?;
    let mut ranges = calibrate(&float, calibration)?;
    for (i, r) in trained_ranges(model, &float)?.into_iter().enumerate() {
        if r.is_some() {
            ranges[i] = r;
        }
    }
    quantize(&float, &ranges, opts)
}
