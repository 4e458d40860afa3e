//! Lowering pf's graph (NCHW, explicit padding, separate batch norms and
//! activations) to TensorFlow Lite operators (NHWC, SAME/VALID padding,
//! folded batch norms, fused activations).
//!
//! | pf | TFLite |
//! |---|---|
//! | conv (+ batch norm) (+ ReLU/ReLU6) | `CONV_2D` or `DEPTHWISE_CONV_2D`, batch norm folded into weights and bias, activation fused |
//! | padding SAME cannot express | a `PAD` in front, then `VALID` |
//! | add (+ ReLU) | `ADD`, activation fused |
//! | max / average pool | `MAX_POOL_2D` / `AVERAGE_POOL_2D` (padding as for convs; TFLite's SAME, like pf, leaves padded cells out) |
//! | global average pool | `MEAN` over height and width (without kept dimensions when a flatten follows) |
//! | channel padding (ResNet option-A shortcut) | `PAD` on the channel axis |
//! | flatten | `RESHAPE`; the next linear layer's columns are permuted from C·H·W to H·W·C order |
//! | linear (+ ReLU) | `FULLY_CONNECTED` |
//! | softmax | `SOFTMAX` |
//! | sigmoid | `LOGISTIC` |
//! | hard-swish | `HARD_SWISH` |
//! | hard-sigmoid `clamp(αx + β, 0, 1)` | `MUL` by 6α, `ADD` of 6β with ReLU6 fused, `MUL` by 1/6 |
//! | multiply (SiLU's, squeeze-and-excitation's) | `MUL`, the `C×1×1` gate broadcast |
//! | concatenation of maps | `CONCATENATION` on the channel axis |
//!
//! Weights are the ones pf computes with: masked, and fake-quantized where a
//! weight quantizer is attached. Physically pruned layers are simply smaller.

use crate::graph::{pool_padding, Graph, Layer, Op, Shape, INPUT};
use crate::model::Model;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit integer (shapes, paddings, axes, biases of int8 ops).
    I32,
    /// 8-bit integer (weights and activations of full-integer models).
    I8,
}

/// Affine quantization of a tensor: `real = scale · (q − zero_point)`, one
/// pair per tensor or, for weights, one per slice along `axis`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quant {
    /// Scale of each slice (one entry when per tensor).
    pub scale: Vec<f32>,
    /// Zero point of each slice.
    pub zero_point: Vec<i64>,
    /// The axis the slices run along (TFLite's `quantized_dimension`).
    pub axis: usize,
}

impl Quant {
    /// Per-tensor parameters.
    pub fn per_tensor(scale: f32, zero_point: i64) -> Quant {
        Quant {
            scale: vec![scale],
            zero_point: vec![zero_point],
            axis: 0,
        }
    }
}

/// One tensor of the lowered graph.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDef {
    /// Name (the pf layer it comes from, with a suffix for constants).
    pub name: String,
    /// Shape, NHWC for feature maps.
    pub shape: Vec<i32>,
    /// Element type.
    pub dtype: DType,
    /// Constant contents, little-endian; `None` for activations.
    pub data: Option<Vec<u8>>,
    /// Quantization parameters of an integer tensor that stands for real
    /// values; `None` for float tensors and plain integers (shapes, axes).
    pub quant: Option<Quant>,
    /// For a constant in TFLite's sparse encoding: where its values sit
    /// (`data` then holds only the non-zero values).
    pub sparse: Option<Csr>,
}

/// TFLite's sparse encoding of a constant as pf writes it: every dimension
/// but the last dense, the last compressed (CSR), in row-major order. A
/// row is one index of all the leading dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    /// Where each row's values start among the stored values, and one more
    /// entry: the count of stored values.
    pub segments: Vec<u32>,
    /// The index along the last dimension of each stored value.
    pub indices: Vec<u32>,
}

/// Fused activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

/// How a window op pads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// TFLite's SAME.
    Same,
    /// No padding.
    Valid,
}

/// One TFLite operator with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    /// `CONV_2D`.
    Conv2d {
        /// Padding.
        padding: Padding,
        /// Stride (rows, columns).
        stride: [usize; 2],
        /// Fused activation.
        act: Activation,
    },
    /// `DEPTHWISE_CONV_2D` with multiplier 1.
    DepthwiseConv2d {
        /// Padding.
        padding: Padding,
        /// Stride (rows, columns).
        stride: [usize; 2],
        /// Fused activation.
        act: Activation,
    },
    /// `FULLY_CONNECTED`.
    FullyConnected {
        /// Fused activation.
        act: Activation,
    },
    /// `ADD`.
    Add {
        /// Fused activation.
        act: Activation,
    },
    /// `MAX_POOL_2D`.
    MaxPool {
        /// Padding.
        padding: Padding,
        /// Window (rows, columns).
        kernel: [usize; 2],
        /// Stride (rows, columns).
        stride: [usize; 2],
    },
    /// `AVERAGE_POOL_2D`.
    AvgPool {
        /// Padding.
        padding: Padding,
        /// Window (rows, columns).
        kernel: [usize; 2],
        /// Stride (rows, columns).
        stride: [usize; 2],
    },
    /// `MEAN` over the axes in its second input.
    Mean {
        /// Keep the reduced axes (as size 1); without, the result of a
        /// mean over height and width is the `[1, C]` vector.
        keep_dims: bool,
    },
    /// `PAD` with the paddings in its second input.
    Pad,
    /// `PADV2`: `PAD` with the value in its third input (a max pool's
    /// padding that can never win).
    PadV2,
    /// `GATHER` along `axis` of the indices in its second input (a channel
    /// shuffle: a fixed permutation of the channels, NHWC axis 3).
    Gather {
        /// The axis gathered along.
        axis: i32,
    },
    /// `SLICE` from the begin in its second input, of the size in its third
    /// (a channel slice).
    Slice,
    /// `RESHAPE` to the shape in its second input.
    Reshape {
        /// The new shape.
        shape: Vec<i32>,
    },
    /// `SOFTMAX`, β = 1.
    Softmax,
    /// `MUL`, broadcasting a `[1, 1, 1, C]` (or `[1]`) operand.
    Mul {
        /// Fused activation.
        act: Activation,
    },
    /// `LOGISTIC` (sigmoid).
    Logistic,
    /// `HARD_SWISH`.
    HardSwish,
    /// `CONCATENATION` along the channels (NHWC axis 3).
    Concatenation,
    /// `QUANTIZE`: float to int8, with the output tensor's parameters.
    Quantize,
    /// `DEQUANTIZE`: int8 to float.
    Dequantize,
    /// `DENSIFY`: a sparse constant to its dense form (once, at load).
    Densify,
}

/// One operator: what it does, and its input and output tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct OpDef {
    /// The operator.
    pub kind: OpKind,
    /// Input tensor indices.
    pub inputs: Vec<usize>,
    /// Output tensor indices.
    pub outputs: Vec<usize>,
    /// The pf layer it implements, for messages.
    pub layer: String,
}

/// A lowered graph, ready to serialise.
#[derive(Debug, Clone, PartialEq)]
pub struct Lowered {
    /// Every tensor.
    pub tensors: Vec<TensorDef>,
    /// Operators in execution order.
    pub ops: Vec<OpDef>,
    /// The input tensor.
    pub input: usize,
    /// The output tensor.
    pub output: usize,
}

/// A value flowing between layers: its tensor and the pf shape it has.
#[derive(Clone, Copy)]
struct Value {
    tensor: usize,
    shape: Shape,
    /// For a flattened map: the map it came from (the next linear layer
    /// permutes its columns accordingly).
    flattened_from: Option<(usize, usize, usize)>,
}

struct Lowering<'a> {
    model: &'a Model,
    graph: &'a Graph,
    shapes: Vec<Shape>,
    out: Lowered,
    values: HashMap<String, Value>,
}

/// What pads a layer's input where TFLite's SAME padding does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PadFill {
    /// Zeros (`PAD`): a convolution's padding.
    Zeros,
    /// The lowest value (`PADV2`): a max pool's, which never wins.
    Lowest,
    /// Nothing can: an average pool leaves padding out of its count.
    Refuse,
}

impl PadFill {
    fn what(self) -> &'static str {
        match self {
            PadFill::Zeros => "convolution",
            PadFill::Lowest => "max pool",
            PadFill::Refuse => "average pool",
        }
    }
}

/// `[top, bottom, left, right]` of a padding equal on both sides.
fn symmetric(padding: [usize; 2]) -> [usize; 4] {
    [padding[0], padding[0], padding[1], padding[1]]
}

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn dims(v: &[usize]) -> Vec<i32> {
    v.iter().map(|&d| d as i32).collect()
}

/// Padding per side (top, bottom, left, right) that TFLite's SAME uses.
pub(crate) fn same_padding(
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> [usize; 4] {
    let mut p = [0; 4];
    for axis in 0..2 {
        let out = input[axis].div_ceil(stride[axis]);
        let total = ((out - 1) * stride[axis] + kernel[axis]).saturating_sub(input[axis]);
        p[2 * axis] = total / 2;
        p[2 * axis + 1] = total - total / 2;
    }
    p
}

impl<'a> Lowering<'a> {
    fn tensor(
        &mut self,
        name: String,
        shape: Vec<i32>,
        dtype: DType,
        data: Option<Vec<u8>>,
    ) -> usize {
        self.out.tensors.push(TensorDef {
            name,
            shape,
            dtype,
            data,
            quant: None,
            sparse: None,
        });
        self.out.tensors.len() - 1
    }

    /// A float32 constant.
    fn constant(&mut self, name: String, shape: Vec<i32>, values: &[f32]) -> usize {
        self.tensor(name, shape, DType::F32, Some(f32_bytes(values)))
    }

    fn activation_tensor(&mut self, name: &str, shape: Shape) -> usize {
        let s = match shape {
            Shape::Map { c, h, w } => vec![1, h as i32, w as i32, c as i32],
            Shape::Vector { n } => vec![1, n as i32],
        };
        self.tensor(name.to_string(), s, DType::F32, None)
    }

    /// Records that pf's value `name` is the (unflattened) tensor `tensor`
    /// of shape `shape`, for the layers that read it.
    fn define(&mut self, name: impl Into<String>, tensor: usize, shape: Shape) {
        let value = Value {
            tensor,
            shape,
            flattened_from: None,
        };
        self.values.insert(name.into(), value);
    }

    fn op(&mut self, kind: OpKind, inputs: Vec<usize>, outputs: Vec<usize>, layer: &str) {
        self.out.ops.push(OpDef {
            kind,
            inputs,
            outputs,
            layer: layer.to_string(),
        });
    }

    fn shape_of(&self, name: &str) -> Shape {
        self.graph.shape_of(&self.shapes, name)
    }

    /// The single reader of `name`, if exactly one layer reads it, it reads
    /// nothing else, and `name` is not the graph's output.
    fn only_reader(&self, name: &str) -> Option<&'a Layer> {
        if self.graph.output() == name {
            return None;
        }
        match self.graph.consumers(name).as_slice() {
            [one] if one.inputs.len() == 1 => Some(*one),
            _ => None,
        }
    }

    /// The activation layer that reads only `name`, if any, to fuse.
    fn fusable_activation(&self, name: &str) -> Option<(&'a Layer, Activation)> {
        let reader = self.only_reader(name)?;
        let act = match reader.op {
            Op::Relu => Activation::Relu,
            Op::Relu6 => Activation::Relu6,
            _ => return None,
        };
        Some((reader, act))
    }

    /// Fuses the activation that reads only `name`, if any: returns the
    /// layer whose output the fused operator produces, and the activation;
    /// the activation layer joins `consumed`.
    fn fuse_activation(&self, name: &str, consumed: &mut Vec<String>) -> (String, Activation) {
        match self.fusable_activation(name) {
            Some((l, a)) => {
                consumed.push(l.name.clone());
                (l.name.clone(), a)
            }
            None => (name.to_string(), Activation::None),
        }
    }

    fn input_value(&self, layer: &Layer, i: usize) -> Result<Value> {
        let name = &layer.inputs[i];
        self.values.get(name).copied().with_context(|| {
            format!(
                "layer `{}` reads `{name}`, which was folded into another operator and is not available on its own",
                layer.name
            )
        })
    }

    /// Pads `x` explicitly when neither VALID nor SAME is `pads` (`[top,
    /// bottom, left, right]`), with `fill`'s operator; returns the tensor to
    /// read and the padding mode to use.
    fn spatial_padding(
        &mut self,
        layer: &Layer,
        x: Value,
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        fill: PadFill,
    ) -> Result<(usize, Padding)> {
        let what = fill.what();
        let Shape::Map { c, h, w } = x.shape else {
            bail!("layer `{}`: a {what} needs a feature map", layer.name);
        };
        if pads == [0; 4] {
            return Ok((x.tensor, Padding::Valid));
        }
        if same_padding([h, w], kernel, stride) == pads {
            return Ok((x.tensor, Padding::Same));
        }
        let paddings = [0, 0, pads[0], pads[1], pads[2], pads[3], 0, 0].map(|p| p as i32);
        let paddings = self.tensor(
            format!("{}/paddings", layer.name),
            vec![4, 2],
            DType::I32,
            Some(i32_bytes(&paddings)),
        );
        let padded = Shape::Map {
            c,
            h: h + pads[0] + pads[1],
            w: w + pads[2] + pads[3],
        };
        let padded = self.activation_tensor(&format!("{}/padded", layer.name), padded);
        match fill {
            PadFill::Zeros => {
                self.op(OpKind::Pad, vec![x.tensor, paddings], vec![padded], &layer.name);
            }
            // The lowest float never wins a maximum; in an int8 file the
            // value becomes the lowest integer (quantize.rs).
            PadFill::Lowest => {
                let value = self.tensor(
                    format!("{}/padding_value", layer.name),
                    vec![1],
                    DType::F32,
                    Some(f32_bytes(&[f32::MIN])),
                );
                self.op(
                    OpKind::PadV2,
                    vec![x.tensor, paddings, value],
                    vec![padded],
                    &layer.name,
                );
            }
            PadFill::Refuse => bail!(
                "layer `{}`: a {what} padded by {pads:?} (top, bottom, left, right) differs from TFLite's SAME padding for this input, and explicit padding would be counted in the average",
                layer.name
            ),
        }
        Ok((padded, Padding::Valid))
    }

    fn floats(t: &candle_core::Tensor) -> Result<Vec<f32>> {
        Ok(t.to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    fn lower_conv(&mut self, layer: &Layer) -> Result<Vec<String>> {
        let Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
            groups,
            ..
        } = layer.op
        else {
            bail!(
                "layer `{}` is not the kind of layer this step lowers",
                layer.name
            )
        };
        let depthwise = layer.op.is_depthwise();
        let x = self.input_value(layer, 0)?;
        let mut consumed = vec![layer.name.clone()];
        let mut last = layer.name.as_str();
        let bn = self
            .only_reader(&layer.name)
            .filter(|l| matches!(l.op, Op::BatchNorm { .. }));
        let (w, b) = match bn {
            Some(bn) => {
                consumed.push(bn.name.clone());
                last = &bn.name;
                self.model.folded_conv(layer, &bn.name)?
            }
            None => {
                let w = self.model.effective_weight(layer, false)?;
                let b = match self.model.params.get(&format!("{}.bias", layer.name)) {
                    Some(b) => b.as_tensor().detach(),
                    None => candle_core::Tensor::zeros(
                        out_channels,
                        candle_core::DType::F32,
                        w.device(),
                    )?,
                };
                (w, b)
            }
        };
        let (last, act) = self.fuse_activation(last, &mut consumed);
        let (input, pad_mode) =
            self.spatial_padding(layer, x, kernel, stride, symmetric(padding), PadFill::Zeros)?;
        if groups != 1 && !depthwise {
            let conv = OpKind::Conv2d {
                padding: pad_mode,
                stride,
                act,
            };
            self.lower_groups(layer, input, conv, &w, &b, groups, &last)?;
            return Ok(consumed);
        }
        // pf: O × I/g × kh × kw. TFLite conv: O × kh × kw × I; depthwise:
        // 1 × kh × kw × O.
        let w = if depthwise {
            w.permute((1, 2, 3, 0))?
        } else {
            w.permute((0, 2, 3, 1))?
        };
        let w_shape = dims(w.dims());
        let w_data = Self::floats(&w.contiguous()?)?;
        let weights = self.constant(format!("{}/weights", layer.name), w_shape, &w_data);
        let bias = self.constant(
            format!("{}/bias", layer.name),
            vec![out_channels as i32],
            &Self::floats(&b)?,
        );
        let out_shape = self.shape_of(&last);
        let y = self.activation_tensor(&last, out_shape);
        let kind = if depthwise {
            OpKind::DepthwiseConv2d {
                padding: pad_mode,
                stride,
                act,
            }
        } else {
            OpKind::Conv2d {
                padding: pad_mode,
                stride,
                act,
            }
        };
        self.op(kind, vec![input, weights, bias], vec![y], &layer.name);
        self.define(last, y, out_shape);
        Ok(consumed)
    }

    /// A grouped convolution (RegNet's, ResNeXt's), which TFLite's kernels
    /// do not all run: each group's channels `SLICE`d from `input`, its own
    /// `CONV_2D` (`conv`, the activation fused), the results joined by
    /// `CONCATENATION` into `last`'s tensor. `w` (`O × I/g × kh × kw`) and
    /// `b` are the layer's, batch norm folded.
    #[allow(clippy::too_many_arguments)]
    fn lower_groups(
        &mut self,
        layer: &Layer,
        input: usize,
        conv: OpKind,
        w: &candle_core::Tensor,
        b: &candle_core::Tensor,
        groups: usize,
        last: &str,
    ) -> Result<()> {
        let in_shape = self.out.tensors[input].shape.clone();
        let [1, h, wd, c] = in_shape[..] else {
            bail!(
                "layer `{}`: a grouped convolution needs a feature map",
                layer.name
            );
        };
        let out_shape = self.shape_of(last);
        let Shape::Map {
            c: out_c,
            h: oh,
            w: ow,
        } = out_shape
        else {
            bail!(
                "layer `{}`: a grouped convolution writes a feature map",
                layer.name
            );
        };
        let (per_in, per_out) = (c as usize / groups, out_c / groups);
        let mut parts = Vec::with_capacity(groups);
        for g in 0..groups {
            let name = format!("{}/group{g}", layer.name);
            let begin = [0, 0, 0, (g * per_in) as i32];
            let size = [1, h, wd, per_in as i32];
            let begin = self.tensor(
                format!("{name}/begin"),
                vec![4],
                DType::I32,
                Some(i32_bytes(&begin)),
            );
            let size = self.tensor(
                format!("{name}/size"),
                vec![4],
                DType::I32,
                Some(i32_bytes(&size)),
            );
            let part_in = Shape::Map {
                c: per_in,
                h: h as usize,
                w: wd as usize,
            };
            let sliced = self.activation_tensor(&format!("{name}/input"), part_in);
            self.op(
                OpKind::Slice,
                vec![input, begin, size],
                vec![sliced],
                &layer.name,
            );
            let wg = w.narrow(0, g * per_out, per_out)?.permute((0, 2, 3, 1))?;
            let weights = self.constant(
                format!("{name}/weights"),
                dims(wg.dims()),
                &Self::floats(&wg.contiguous()?)?,
            );
            let bias = self.constant(
                format!("{name}/bias"),
                vec![per_out as i32],
                &Self::floats(&b.narrow(0, g * per_out, per_out)?)?,
            );
            let part_out = Shape::Map {
                c: per_out,
                h: oh,
                w: ow,
            };
            let y = self.activation_tensor(&name, part_out);
            self.op(
                conv.clone(),
                vec![sliced, weights, bias],
                vec![y],
                &layer.name,
            );
            parts.push(y);
        }
        let y = self.activation_tensor(last, out_shape);
        self.op(OpKind::Concatenation, parts, vec![y], &layer.name);
        self.define(last.to_string(), y, out_shape);
        Ok(())
    }

    fn lower_linear(&mut self, layer: &Layer) -> Result<Vec<String>> {
        let Op::Linear {
            in_features,
            out_features,
            ..
        } = layer.op
        else {
            bail!(
                "layer `{}` is not the kind of layer this step lowers",
                layer.name
            )
        };
        let x = self.input_value(layer, 0)?;
        let w = self.model.effective_weight(layer, false)?;
        let mut w_data = Self::floats(&w)?;
        if let Some((c, h, wd)) = x.flattened_from.filter(|&(_, h, w)| h * w > 1) {
            // pf flattened C·H·W; TFLite's reshape of NHWC gives H·W·C.
            let mut permuted = vec![0f32; w_data.len()];
            for o in 0..out_features {
                for ci in 0..c {
                    for hw in 0..h * wd {
                        permuted[o * in_features + hw * c + ci] =
                            w_data[o * in_features + ci * h * wd + hw];
                    }
                }
            }
            w_data = permuted;
        }
        let b = match self.model.params.get(&format!("{}.bias", layer.name)) {
            Some(b) => Self::floats(&b.as_tensor().detach())?,
            None => vec![0.0; out_features],
        };
        let mut consumed = vec![layer.name.clone()];
        let (last, act) = self.fuse_activation(&layer.name, &mut consumed);
        let weights = self.constant(
            format!("{}/weights", layer.name),
            vec![out_features as i32, in_features as i32],
            &w_data,
        );
        let bias = self.constant(
            format!("{}/bias", layer.name),
            vec![out_features as i32],
            &b,
        );
        let shape = self.shape_of(&last);
        let y = self.activation_tensor(&last, shape);
        self.op(
            OpKind::FullyConnected { act },
            vec![x.tensor, weights, bias],
            vec![y],
            &layer.name,
        );
        self.define(last, y, shape);
        Ok(consumed)
    }

    fn lower_add(&mut self, layer: &Layer) -> Result<Vec<String>> {
        let mut consumed = vec![layer.name.clone()];
        let (last, act) = self.fuse_activation(&layer.name, &mut consumed);
        let shape = self.shape_of(&layer.name);
        let mut acc = self.input_value(layer, 0)?.tensor;
        for i in 1..layer.inputs.len() {
            let other = self.input_value(layer, i)?.tensor;
            let final_step = i + 1 == layer.inputs.len();
            let name = if final_step {
                last.clone()
            } else {
                format!("{}/partial{i}", layer.name)
            };
            let y = self.activation_tensor(&name, shape);
            let act = if final_step { act } else { Activation::None };
            self.op(OpKind::Add { act }, vec![acc, other], vec![y], &layer.name);
            acc = y;
        }
        self.define(last, acc, shape);
        Ok(consumed)
    }

    fn emit_simple(
        &mut self,
        layer: &Layer,
        kind: OpKind,
        extra: Vec<usize>,
        flattened_from: Option<(usize, usize, usize)>,
    ) -> Result<()> {
        let x = self.input_value(layer, 0)?;
        let shape = self.shape_of(&layer.name);
        let y = self.activation_tensor(&layer.name, shape);
        let mut inputs = vec![x.tensor];
        inputs.extend(extra);
        self.op(kind, inputs, vec![y], &layer.name);
        self.values.insert(
            layer.name.clone(),
            Value {
                tensor: y,
                shape,
                flattened_from,
            },
        );
        Ok(())
    }

    fn lower(&mut self, layer: &Layer) -> Result<Vec<String>> {
        match &layer.op {
            Op::Conv2d { .. } => self.lower_conv(layer),
            Op::Linear { .. } => self.lower_linear(layer),
            Op::Add => self.lower_add(layer),
            // Not after a convolution it folds into (DenseNet's
            // pre-activation blocks): its affine map, per channel.
            Op::BatchNorm { .. } => self.lower_batch_norm(layer),
            Op::Relu | Op::Relu6 => bail!(
                "layer `{}`: an activation is exported fused into the convolution, linear layer or add before it, and `{}` is not one read only by it",
                layer.name,
                layer.inputs[0]
            ),
            Op::MaxPool { kernel, stride, padding, ceil_mode } | Op::AvgPool { kernel, stride, padding, ceil_mode } => {
                let max = matches!(layer.op, Op::MaxPool { .. });
                let x = self.input_value(layer, 0)?;
                let Shape::Map { h, w, .. } = x.shape else {
                    bail!("layer `{}`: a pool needs a feature map", layer.name);
                };
                let pads = pool_padding([h, w], *kernel, *stride, *padding, *ceil_mode)
                    .with_context(|| format!("layer `{}`: the pooling window does not fit its input", layer.name))?;
                let fill = if max { PadFill::Lowest } else { PadFill::Refuse };
                let (input, pad) = self.spatial_padding(layer, x, *kernel, *stride, pads, fill)?;
                let kind = if max {
                    OpKind::MaxPool { padding: pad, kernel: *kernel, stride: *stride }
                } else {
                    OpKind::AvgPool { padding: pad, kernel: *kernel, stride: *stride }
                };
                let shape = self.shape_of(&layer.name);
                let y = self.activation_tensor(&layer.name, shape);
                self.op(kind, vec![input], vec![y], &layer.name);
                self.define(layer.name.clone(), y, shape);
                Ok(vec![layer.name.clone()])
            }
            Op::GlobalAvgPool => {
                let axes = self.tensor(format!("{}/axes", layer.name), vec![2], DType::I32, Some(i32_bytes(&[1, 2])));
                // A flatten that alone reads the mean is the mean without
                // kept dimensions (one operator instead of MEAN + RESHAPE).
                if let Some(flat) = self.only_reader(&layer.name).filter(|l| l.op == Op::Flatten) {
                    let x = self.input_value(layer, 0)?;
                    let shape = self.shape_of(&flat.name);
                    let y = self.activation_tensor(&flat.name, shape);
                    self.op(OpKind::Mean { keep_dims: false }, vec![x.tensor, axes], vec![y], &layer.name);
                    self.define(flat.name.clone(), y, shape);
                    return Ok(vec![layer.name.clone(), flat.name.clone()]);
                }
                self.emit_simple(layer, OpKind::Mean { keep_dims: true }, vec![axes], None)?;
                Ok(vec![layer.name.clone()])
            }
            Op::PadChannels { before, after } => {
                let p = [0, 0, 0, 0, 0, 0, *before as i32, *after as i32];
                let pads = self.tensor(format!("{}/paddings", layer.name), vec![4, 2], DType::I32, Some(i32_bytes(&p)));
                self.emit_simple(layer, OpKind::Pad, vec![pads], None)?;
                Ok(vec![layer.name.clone()])
            }
            Op::Flatten => {
                let x = self.input_value(layer, 0)?;
                let from = match x.shape {
                    Shape::Map { c, h, w } => Some((c, h, w)),
                    Shape::Vector { .. } => None,
                };
                if from.is_some_and(|(_, h, w)| h * w > 1)
                    && !self
                        .graph
                        .consumers(&layer.name)
                        .iter()
                        .all(|l| matches!(l.op, Op::Linear { .. }))
                {
                    bail!(
                        "layer `{}`: a flatten of a {}×{} map is exported only in front of linear layers (their columns are reordered for TFLite's channels-last layout)",
                        layer.name,
                        from.unwrap().1,
                        from.unwrap().2
                    );
                }
                let n = x.shape.numel() as i32;
                let shape = vec![1, n];
                let new_shape = self.tensor(format!("{}/shape", layer.name), vec![2], DType::I32, Some(i32_bytes(&shape)));
                self.emit_simple(layer, OpKind::Reshape { shape }, vec![new_shape], from)?;
                Ok(vec![layer.name.clone()])
            }
            Op::Softmax => {
                self.emit_simple(layer, OpKind::Softmax, vec![], None)?;
                Ok(vec![layer.name.clone()])
            }
            Op::Sigmoid | Op::HardSwish => {
                let kind = match layer.op {
                    Op::Sigmoid => OpKind::Logistic,
                    _ => OpKind::HardSwish,
                };
                self.emit_simple(layer, kind, vec![], None)?;
                Ok(vec![layer.name.clone()])
            }
            Op::HardSigmoid { alpha, beta } => self.lower_hard_sigmoid(layer, *alpha, *beta),
            Op::Concat => self.emit_joining(layer, OpKind::Concatenation),
            Op::ChannelShuffle { groups } => {
                let Shape::Map { c, .. } = self.shape_of(&layer.name) else {
                    bail!("layer `{}`: a channel shuffle needs a feature map", layer.name);
                };
                // Output channel j·g + i reads input channel i·(C/g) + j.
                let per = c / groups;
                let from: Vec<i32> = (0..c).map(|k| ((k % groups) * per + k / groups) as i32).collect();
                let indices = self.tensor(format!("{}/indices", layer.name), vec![c as i32], DType::I32, Some(i32_bytes(&from)));
                self.emit_simple(layer, OpKind::Gather { axis: 3 }, vec![indices], None)?;
                Ok(vec![layer.name.clone()])
            }
            Op::ChannelSlice { start, len } => {
                let Shape::Map { h, w, .. } = self.shape_of(&layer.name) else {
                    bail!("layer `{}`: a channel slice needs a feature map", layer.name);
                };
                let begin = [0, 0, 0, *start as i32];
                let size = [1, h as i32, w as i32, *len as i32];
                let begin = self.tensor(format!("{}/begin", layer.name), vec![4], DType::I32, Some(i32_bytes(&begin)));
                let size = self.tensor(format!("{}/size", layer.name), vec![4], DType::I32, Some(i32_bytes(&size)));
                self.emit_simple(layer, OpKind::Slice, vec![begin, size], None)?;
                Ok(vec![layer.name.clone()])
            }
            Op::Mul => self.emit_joining(layer, OpKind::Mul { act: Activation::None }),
        }
    }

    /// One operator over all of `layer`'s inputs (a product, a
    /// concatenation), writing the layer's output.
    fn emit_joining(&mut self, layer: &Layer, kind: OpKind) -> Result<Vec<String>> {
        let inputs = (0..layer.inputs.len())
            .map(|i| Ok(self.input_value(layer, i)?.tensor))
            .collect::<Result<Vec<_>>>()?;
        let shape = self.shape_of(&layer.name);
        let y = self.activation_tensor(&layer.name, shape);
        self.op(kind, inputs, vec![y], &layer.name);
        self.define(layer.name.clone(), y, shape);
        Ok(vec![layer.name.clone()])
    }

    /// `clamp(αx + β, 0, 1)` as `relu6(6α·x + 6β) / 6`: TFLite has no
    /// hard-sigmoid operator, and these three run in every interpreter.
    /// A batch norm on its own: `MUL` by its per-channel scale, then `ADD`
    /// of its shift, with the ReLU or ReLU6 that alone reads it fused.
    fn lower_batch_norm(&mut self, layer: &Layer) -> Result<Vec<String>> {
        let x = self.input_value(layer, 0)?;
        let Shape::Map { c, .. } = x.shape else {
            bail!(
                "layer `{}`: a batch norm of a vector is not exported",
                layer.name
            );
        };
        let (scale, shift) = self.model.batch_norm_affine(&layer.name)?;
        let constant = |l: &mut Self, what: &str, t: &candle_core::Tensor| -> Result<usize> {
            Ok(l.tensor(
                format!("{}/{what}", layer.name),
                vec![1, 1, 1, c as i32],
                DType::F32,
                Some(f32_bytes(&Self::floats(t)?)),
            ))
        };
        let scale = constant(self, "scale", &scale)?;
        let shift = constant(self, "shift", &shift)?;
        let mut consumed = vec![layer.name.clone()];
        let (last, act) = self.fuse_activation(&layer.name, &mut consumed);
        let shape = x.shape;
        let scaled = self.activation_tensor(&format!("{}/scaled", layer.name), shape);
        let mul = OpKind::Mul {
            act: Activation::None,
        };
        self.op(mul, vec![x.tensor, scale], vec![scaled], &layer.name);
        let y = self.activation_tensor(&last, shape);
        self.op(
            OpKind::Add { act },
            vec![scaled, shift],
            vec![y],
            &layer.name,
        );
        self.define(last, y, shape);
        Ok(consumed)
    }

    fn lower_hard_sigmoid(&mut self, layer: &Layer, alpha: f32, beta: f32) -> Result<Vec<String>> {
        let x = self.input_value(layer, 0)?.tensor;
        let shape = self.shape_of(&layer.name);
        let scalar = |l: &mut Self, what: &str, v: f32| {
            l.tensor(
                format!("{}/{what}", layer.name),
                vec![1],
                DType::F32,
                Some(v.to_le_bytes().to_vec()),
            )
        };
        let six_alpha = scalar(self, "scale", 6.0 * alpha);
        let six_beta = scalar(self, "offset", 6.0 * beta);
        let sixth = scalar(self, "sixth", 1.0 / 6.0);
        let scaled = self.activation_tensor(&format!("{}/scaled", layer.name), shape);
        self.op(
            OpKind::Mul {
                act: Activation::None,
            },
            vec![x, six_alpha],
            vec![scaled],
            &layer.name,
        );
        let clamped = self.activation_tensor(&format!("{}/clamped", layer.name), shape);
        self.op(
            OpKind::Add {
                act: Activation::Relu6,
            },
            vec![scaled, six_beta],
            vec![clamped],
            &layer.name,
        );
        let y = self.activation_tensor(&layer.name, shape);
        self.op(
            OpKind::Mul {
                act: Activation::None,
            },
            vec![clamped, sixth],
            vec![y],
            &layer.name,
        );
        self.define(layer.name.clone(), y, shape);
        Ok(vec![layer.name.clone()])
    }
}

/// Lowers a model to TFLite operators, float32.
pub fn lower(model: &Model) -> Result<Lowered> {
    let graph = &model.graph;
    let shapes = graph.shapes().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut l = Lowering {
        model,
        graph,
        shapes,
        out: Lowered {
            tensors: Vec::new(),
            ops: Vec::new(),
            input: 0,
            output: 0,
        },
        values: HashMap::new(),
    };
    let input_shape = Shape::Map {
        c: graph.input.channels,
        h: graph.input.height,
        w: graph.input.width,
    };
    let input = l.activation_tensor(INPUT, input_shape);
    l.out.input = input;
    l.values.insert(
        INPUT.to_string(),
        Value {
            tensor: input,
            shape: input_shape,
            flattened_from: None,
        },
    );
    let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
    for layer in &graph.layers {
        if done.contains(&layer.name) {
            continue;
        }
        let consumed = l
            .lower(layer)
            .with_context(|| format!("cannot export model `{}` to TFLite", graph.name))?;
        done.extend(consumed);
    }
    let out = graph.output();
    l.out.output = l
        .values
        .get(out)
        .map(|v| v.tensor)
        .with_context(|| format!("the output `{out}` was not produced"))?;
    Ok(l.out)
}
