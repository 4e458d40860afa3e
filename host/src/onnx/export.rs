//! pf → ONNX: float32 graphs, and int8 graphs in QDQ form.
//!
//! **Float32.** Every pf layer becomes one node named after it, whose
//! output tensor has the layer's name, so the file reads like `pf info`:
//! `Conv`, `BatchNormalization` (kept, not folded), `Relu`, `Clip` for
//! ReLU6, `Sigmoid`, `HardSigmoid`, `HardSwish`, `Mul`, `Add` (`Sum` for
//! more than two inputs), `Concat`, `Slice` for a channel slice,
//! `MaxPool`, `AveragePool` (with `ceil_mode` where the layer has it),
//! `GlobalAveragePool`, `Pad` for zero channels, `Flatten`, `Gemm` with
//! `transB = 1` (pf's weights are out × in) and `Softmax`. A channel
//! shuffle is the three nodes PyTorch writes (`Reshape`, `Transpose`,
//! `Reshape`), so that it imports back.
//! Weights are the ones the model computes with: masked and, for
//! quantized layers, fake-quantized. A pruned model is written with its
//! smaller shapes. The batch dimension is symbolic (`batch`).
//!
//! **int8 (QDQ).** The quantization is exactly the one of pf's int8 TFLite
//! export (see [`crate::export::tflite::quantize`]): batch norms folded
//! into the convolutions before them, int8 weights with one symmetric scale
//! per output channel, int32 biases with scale `input scale × weight
//! scale`, and int8 activations with one asymmetric scale and zero point
//! per tensor, where TFLite's integer kernels write them (block outputs:
//! after a fused ReLU). The integers become initializers behind
//! `DequantizeLinear`, and every quantized activation passes through
//! `QuantizeLinear` → `DequantizeLinear`; ONNX Runtime fuses these
//! patterns into its integer kernels (`QLinearConv`, `QLinearAdd`, ...).
//! The file's input and output stay float32.

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::IR_VERSION;
use crate::export::tflite::lower::{Lowered, Quant};
use crate::graph::{Graph, Layer, Op, Shape, INPUT};
use crate::model::Model;
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions<'a> {
    /// Write an int8 QDQ graph with the quantization of this int8 TFLite
    /// lowering of the same model
    /// ([`crate::export::tflite::quantize::lower_int8`]); `None` writes
    /// float32.
    pub int8: Option<&'a Lowered>,
    /// With `int8`: 7-bit weights (values in `[-63, 63]`, twice the scale),
    /// as ONNX Runtime advises for x86 CPUs without VNNI, whose u8×s8
    /// kernels (`vpmaddubsw`) saturate 16-bit sums of full-range products.
    /// Costs one bit of weight precision; biases are requantized to match.
    pub reduce_range: bool,
}

/// The largest weight magnitude of an int8 file (`[-127, 127]`, or
/// `[-63, 63]` with `reduce_range`).
fn weight_limit(reduce_range: bool) -> f32 {
    if reduce_range {
        63.0
    } else {
        127.0
    }
}

/// Converts a model to the bytes of an `.onnx` file.
pub fn to_bytes(model: &Model, opts: &ExportOptions) -> Result<Vec<u8>> {
    let proto = to_proto(model, opts)
        .with_context(|| format!("cannot export model `{}` to ONNX", model.graph.name))?;
    Ok(proto.encode_to_vec())
}

/// Writes a model as an `.onnx` file, atomically; returns its size.
pub fn export(model: &Model, path: &Path, opts: &ExportOptions) -> Result<usize> {
    let bytes = to_bytes(model, opts)?;
    crate::io::atomic_write(path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes.len())
}

/// The quantization of one int8 TFLite lowering, by pf layer name.
struct Int8Params<'a> {
    tensors: HashMap<&'a str, &'a crate::export::tflite::lower::TensorDef>,
}

impl<'a> Int8Params<'a> {
    fn new(g: &'a Lowered) -> Self {
        Int8Params {
            tensors: g.tensors.iter().map(|t| (t.name.as_str(), t)).collect(),
        }
    }

    /// Per-tensor parameters of the activation named `name`, if the int8
    /// graph materialises it.
    fn activation(&self, name: &str) -> Option<(f32, i64)> {
        // With float input and output, the lowering's int8 input and output
        // carry a suffix (the float ones keep the plain names).
        let t = self
            .tensors
            .get(format!("{name}/int8").as_str())
            .or_else(|| self.tensors.get(name))?;
        if t.data.is_some() {
            return None;
        }
        match &t.quant {
            Some(Quant {
                scale, zero_point, ..
            }) if scale.len() == 1 => Some((scale[0], zero_point[0])),
            _ => None,
        }
    }

    /// Per-channel weight scales, the int32 bias and its scales of layer
    /// `layer`: of its one operator, or of its groups' operators in order
    /// (a grouped convolution is lowered one group at a time).
    fn layer(&self, layer: &str) -> Result<(Vec<f32>, Vec<i32>, Vec<f32>)> {
        if !self
            .tensors
            .contains_key(format!("{layer}/weights").as_str())
            && self
                .tensors
                .contains_key(format!("{layer}/group0/weights").as_str())
        {
            let mut all = (Vec::new(), Vec::new(), Vec::new());
            for g in 0.. {
                let part = format!("{layer}/group{g}");
                if !self
                    .tensors
                    .contains_key(format!("{part}/weights").as_str())
                {
                    break;
                }
                let (w, b, s) = self.operator(&part)?;
                all.0.extend(w);
                all.1.extend(b);
                all.2.extend(s);
            }
            return Ok(all);
        }
        self.operator(layer)
    }

    /// What [`Int8Params::layer`] gives, for the operator whose constants
    /// are named `prefix/weights` and `prefix/bias`.
    fn operator(&self, prefix: &str) -> Result<(Vec<f32>, Vec<i32>, Vec<f32>)> {
        let w = self
            .tensors
            .get(format!("{prefix}/weights").as_str())
            .and_then(|t| t.quant.as_ref())
            .with_context(|| {
                format!("the int8 lowering has no quantized weights for `{prefix}`")
            })?;
        let b = self
            .tensors
            .get(format!("{prefix}/bias").as_str())
            .with_context(|| format!("the int8 lowering has no bias for `{prefix}`"))?;
        let (Some(data), Some(q)) = (&b.data, &b.quant) else {
            bail!("the int8 lowering's bias of `{prefix}` is not quantized");
        };
        let ints = data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((w.scale.clone(), ints, q.scale.clone()))
    }
}

struct Writer<'a> {
    model: &'a Model,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// The ONNX tensor that holds each pf layer's output.
    values: HashMap<String, String>,
    int8: Option<Int8Params<'a>>,
    reduce_range: bool,
    /// Every layer's output shape, in graph order.
    shapes: Vec<Shape>,
}

fn floats(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

fn tensor(name: &str, dims: &[usize], data_type: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, DataType::Float, raw)
}

fn i64_tensor(name: &str, dims: &[usize], values: &[i64]) -> TensorProto {
    let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, DataType::Int64, raw)
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        ints: v.iter().map(|&x| x as i64).collect(),
        ..attribute(name, AttributeType::Ints)
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..attribute(name, AttributeType::Int)
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..attribute(name, AttributeType::Float)
    }
}

/// A tensor's type: float32 of `dims`, `None` for the symbolic batch.
fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v as i64),
                None => tensor_shape_proto::dimension::Value::DimParam("batch".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn batch_dims(shape: Shape) -> Vec<Option<usize>> {
    std::iter::once(None)
        .chain(shape.batch_dims(1).into_iter().skip(1).map(Some))
        .collect()
}

impl Writer<'_> {
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: Vec<String>,
        output: &str,
        attributes: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            op_type: Some(op.to_string()),
            name: Some(name.to_string()),
            input: inputs,
            output: vec![output.to_string()],
            attribute: attributes,
            ..Default::default()
        });
    }

    fn input_of(&self, layer: &Layer, i: usize) -> Result<String> {
        let name = &layer.inputs[i];
        self.values.get(name).cloned().with_context(|| {
            format!(
                "layer `{}` reads `{name}`, which was folded into another node",
                layer.name
            )
        })
    }

    /// Records that pf layer `layer`'s output is the ONNX tensor `tensor`,
    /// passing it through QuantizeLinear/DequantizeLinear when the int8
    /// graph quantizes it.
    fn produce(&mut self, layer: &str, value: String) {
        let q = self.int8.as_ref().and_then(|p| p.activation(layer));
        let out = match q {
            Some((scale, zero_point)) => {
                let (s, z) = (format!("{layer}/scale"), format!("{layer}/zero_point"));
                self.initializers.push(f32_tensor(&s, &[], &[scale]));
                self.initializers.push(tensor(
                    &z,
                    &[],
                    DataType::Int8,
                    vec![zero_point as i8 as u8],
                ));
                let (qn, dq) = (format!("{layer}/quantized"), format!("{layer}/dequantized"));
                self.node(
                    "QuantizeLinear",
                    &qn,
                    vec![value, s.clone(), z.clone()],
                    &qn,
                    vec![],
                );
                self.node("DequantizeLinear", &dq, vec![qn, s, z], &dq, vec![]);
                dq
            }
            None => value,
        };
        self.values.insert(layer.to_string(), out);
    }

    /// The weight (and bias) inputs of a convolution or linear layer:
    /// float initializers, or int8/int32 ones behind DequantizeLinear.
    fn weight_inputs(
        &mut self,
        layer: &str,
        w: &Tensor,
        b: Option<&Tensor>,
    ) -> Result<Vec<String>> {
        let dims = w.dims().to_vec();
        let values = floats(w)?;
        let Some(p) = &self.int8 else {
            let mut names = vec![format!("{layer}.weight")];
            self.initializers
                .push(f32_tensor(&names[0], &dims, &values));
            if let Some(b) = b {
                names.push(format!("{layer}.bias"));
                self.initializers
                    .push(f32_tensor(&names[1], b.dims(), &floats(b)?));
            }
            return Ok(names);
        };
        let (w_scale, bias, b_scale) = p.layer(layer)?;
        let out = dims[0];
        if w_scale.len() != out || bias.len() != out {
            bail!(
                "the int8 lowering of `{layer}` has {} scales for {out} channels",
                w_scale.len()
            );
        }
        let limit = weight_limit(self.reduce_range);
        // With reduced range, the scales grow by 127/63 and the int32
        // biases are requantized to the new `input scale × weight scale`.
        let widen = 127.0 / limit;
        let w_scale: Vec<f32> = w_scale.iter().map(|s| s * widen).collect();
        let bias: Vec<i32> = if self.reduce_range {
            bias.iter()
                .map(|&q| (q as f64 / widen as f64).round() as i32)
                .collect()
        } else {
            bias
        };
        let b_scale: Vec<f32> = b_scale.iter().map(|s| s * widen).collect();
        let inner = values.len() / out;
        let q: Vec<u8> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v / w_scale[i / inner]).round().clamp(-limit, limit) as i8 as u8)
            .collect();
        let mut dequantized = Vec::new();
        for (what, data_type, raw, d, scale) in [
            ("weight", DataType::Int8, q, dims.clone(), w_scale),
            (
                "bias",
                DataType::Int32,
                bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
                vec![out],
                b_scale,
            ),
        ] {
            let (qn, s, z, dq) = (
                format!("{layer}.{what}_quantized"),
                format!("{layer}.{what}_scale"),
                format!("{layer}.{what}_zero_point"),
                format!("{layer}.{what}"),
            );
            let zero_width = if data_type == DataType::Int8 { 1 } else { 4 };
            self.initializers.push(tensor(&qn, &d, data_type, raw));
            self.initializers.push(f32_tensor(&s, &[out], &scale));
            self.initializers
                .push(tensor(&z, &[out], data_type, vec![0; out * zero_width]));
            self.node(
                "DequantizeLinear",
                &dq,
                vec![qn, s, z],
                &dq,
                vec![int("axis", 0)],
            );
            dequantized.push(dq);
        }
        Ok(dequantized)
    }

    /// The batch norm that alone reads `conv` and that int8 export folds.
    fn folded_bn(&self, conv: &Layer) -> Option<&Layer> {
        if self.int8.is_none() || self.model.graph.output() == conv.name {
            return None;
        }
        match self.model.graph.consumers(&conv.name).as_slice() {
            [bn] if bn.inputs.len() == 1 && matches!(bn.op, Op::BatchNorm { .. }) => Some(*bn),
            _ => None,
        }
    }

    /// A tensor of the model (a parameter or a buffer) by key.
    fn model_tensor(&self, key: &str) -> Result<Tensor> {
        match self.model.params.get(key) {
            Some(v) => Ok(v.as_tensor().detach()),
            None => self
                .model
                .buffers
                .get(key)
                .cloned()
                .with_context(|| format!("the model has no tensor `{key}`")),
        }
    }

    /// The bias of a convolution or linear layer with `channels` outputs:
    /// its own, zeros in an int8 graph (whose integer kernels always take
    /// one), or none.
    fn bias(&self, layer: &str, channels: usize, like: &Tensor) -> Result<Option<Tensor>> {
        Ok(match self.model.params.get(&format!("{layer}.bias")) {
            Some(b) => Some(b.as_tensor().detach()),
            None if self.int8.is_some() => Some(Tensor::zeros(
                channels,
                candle_core::DType::F32,
                like.device(),
            )?),
            None => None,
        })
    }

    /// Adds float initializers `<layer>.<key>` for `keys` and returns their
    /// names.
    fn float_initializers(&mut self, layer: &str, keys: &[&str]) -> Result<Vec<String>> {
        keys.iter()
            .map(|key| {
                let name = format!("{layer}.{key}");
                let t = self.model_tensor(&name)?;
                self.initializers
                    .push(f32_tensor(&name, t.dims(), &floats(&t)?));
                Ok(name)
            })
            .collect()
    }

    /// Writes `layer` as one node; returns the layers it consumed besides
    /// itself (a batch norm folded into a convolution).
    fn layer(&mut self, layer: &Layer) -> Result<Vec<String>> {
        let name = layer.name.clone();
        let mut inputs = (0..layer.inputs.len())
            .map(|i| self.input_of(layer, i))
            .collect::<Result<Vec<_>>>()?;
        // The tensor the node writes: the layer's, or the folded batch
        // norm's.
        let mut out = name.clone();
        let mut consumed = Vec::new();
        let pads = |p: &[usize; 2]| [p[0], p[1], p[0], p[1]];
        let (op, attrs) = match &layer.op {
            Op::Conv2d {
                kernel,
                stride,
                padding,
                groups,
                out_channels,
                ..
            } => {
                let (w, b) = match self.folded_bn(layer) {
                    Some(bn) => {
                        let (w, b) = self.model.folded_conv(layer, &bn.name)?;
                        consumed.push(bn.name.clone());
                        out = bn.name.clone();
                        (w, Some(b))
                    }
                    None => {
                        let w = self.model.effective_weight(layer, false)?;
                        let b = self.bias(&name, *out_channels, &w)?;
                        (w, b)
                    }
                };
                inputs.extend(self.weight_inputs(&name, &w, b.as_ref())?);
                let attrs = vec![
                    ints("dilations", &[1, 1]),
                    int("group", *groups as i64),
                    ints("kernel_shape", kernel),
                    ints("pads", &pads(padding)),
                    ints("strides", stride),
                ];
                ("Conv", attrs)
            }
            Op::BatchNorm { eps, momentum, .. } => {
                inputs.extend(self.float_initializers(
                    &name,
                    &["weight", "bias", "running_mean", "running_var"],
                )?);
                // pf's momentum is the batch statistic's weight; ONNX's is
                // the running one's.
                let attrs = vec![
                    float("epsilon", *eps as f32),
                    float("momentum", (1.0 - momentum) as f32),
                ];
                ("BatchNormalization", attrs)
            }
            Op::Relu => ("Relu", vec![]),
            Op::Relu6 => {
                for (bound, value) in [("min", 0.0), ("max", 6.0)] {
                    let key = format!("{name}.{bound}");
                    self.initializers.push(f32_tensor(&key, &[], &[value]));
                    inputs.push(key);
                }
                ("Clip", vec![])
            }
            Op::Sigmoid => ("Sigmoid", vec![]),
            Op::HardSigmoid { alpha, beta } => (
                "HardSigmoid",
                vec![float("alpha", *alpha), float("beta", *beta)],
            ),
            Op::HardSwish => ("HardSwish", vec![]),
            Op::Mul => ("Mul", vec![]),
            Op::Concat => ("Concat", vec![int("axis", 1)]),
            // PyTorch's form, which pf imports back: a view of the channels
            // as groups, the groups transposed, the view undone.
            Op::ChannelShuffle { groups } => {
                let Shape::Map { c, h, w } =
                    self.model.graph.shape_of(&self.shapes, &layer.inputs[0])
                else {
                    bail!("layer `{name}`: a channel shuffle needs a feature map");
                };
                let (g, c, h, w) = (*groups as i64, c as i64, h as i64, w as i64);
                let grouped = format!("{name}.grouped_shape");
                self.initializers
                    .push(i64_tensor(&grouped, &[5], &[0, g, c / g, h, w]));
                let view = format!("{name}.grouped");
                self.node(
                    "Reshape",
                    &view,
                    vec![inputs[0].clone(), grouped],
                    &view,
                    vec![],
                );
                let turned = format!("{name}.transposed");
                let perm = ints("perm", &[0, 2, 1, 3, 4]);
                self.node("Transpose", &turned, vec![view], &turned, vec![perm]);
                let back = format!("{name}.shape");
                self.initializers
                    .push(i64_tensor(&back, &[4], &[0, c, h, w]));
                inputs = vec![turned, back];
                ("Reshape", vec![])
            }
            Op::ChannelSlice { start, len } => {
                for (key, v) in [("starts", *start), ("ends", start + len), ("axes", 1)] {
                    let key = format!("{name}.{key}");
                    self.initializers.push(i64_tensor(&key, &[1], &[v as i64]));
                    inputs.push(key);
                }
                ("Slice", vec![])
            }
            Op::Add if inputs.len() == 2 => ("Add", vec![]),
            Op::Add => ("Sum", vec![]),
            Op::MaxPool {
                kernel,
                stride,
                padding,
                ceil_mode,
            } => {
                let mut attrs = vec![
                    ints("kernel_shape", kernel),
                    ints("pads", &pads(padding)),
                    ints("strides", stride),
                ];
                if *ceil_mode {
                    attrs.push(int("ceil_mode", 1));
                }
                ("MaxPool", attrs)
            }
            Op::AvgPool {
                kernel,
                stride,
                padding,
                ceil_mode,
            } => {
                let mut attrs = vec![
                    ints("kernel_shape", kernel),
                    ints("pads", &pads(padding)),
                    ints("strides", stride),
                    int("count_include_pad", 0),
                ];
                if *ceil_mode {
                    attrs.push(int("ceil_mode", 1));
                }
                ("AveragePool", attrs)
            }
            Op::GlobalAvgPool => ("GlobalAveragePool", vec![]),
            Op::PadChannels { before, after } => {
                let key = format!("{name}.pads");
                self.initializers.push(i64_tensor(
                    &key,
                    &[8],
                    &[0, *before as i64, 0, 0, 0, *after as i64, 0, 0],
                ));
                inputs.push(key);
                let attrs = vec![AttributeProto {
                    s: Some(b"constant".to_vec()),
                    ..attribute("mode", AttributeType::String)
                }];
                ("Pad", attrs)
            }
            Op::Flatten => ("Flatten", vec![int("axis", 1)]),
            Op::Linear { out_features, .. } => {
                let w = self.model.effective_weight(layer, false)?;
                let b = self.bias(&name, *out_features, &w)?;
                inputs.extend(self.weight_inputs(&name, &w, b.as_ref())?);
                ("Gemm", vec![int("transB", 1)])
            }
            Op::Softmax => ("Softmax", vec![int("axis", -1)]),
        };
        self.node(op, &name, inputs, &out, attrs);
        self.produce(&out, out.clone());
        Ok(consumed)
    }
}

/// Builds the ONNX model of `model`.
pub fn to_proto(model: &Model, opts: &ExportOptions) -> Result<ModelProto> {
    let graph = &model.graph;
    let shapes = graph.validate()?;
    let mut w = Writer {
        model,
        nodes: Vec::new(),
        initializers: Vec::new(),
        values: HashMap::new(),
        int8: opts.int8.map(Int8Params::new),
        reduce_range: opts.reduce_range,
        shapes: shapes.clone(),
    };
    w.produce(INPUT, INPUT.to_string());
    let mut consumed: std::collections::HashSet<String> = std::collections::HashSet::new();
    for layer in &graph.layers {
        if consumed.contains(&layer.name) {
            continue;
        }
        consumed.extend(w.layer(layer)?);
    }
    let out_layer = graph.output();
    let out = w.values[out_layer].clone();
    let input = graph.input;
    let input_shape = Shape::Map {
        c: input.channels,
        h: input.height,
        w: input.width,
    };
    let output_shape = *shapes.last().expect("validated graphs have layers");
    let doc = if opts.int8.is_some() {
        "int8 (QDQ) export of a pf model"
    } else {
        "float32 export of a pf model"
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(super::opset_for(graph)),
        }],
        producer_name: Some("pf".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(doc.into()),
        graph: Some(GraphProto {
            name: Some(graph.name.clone()),
            node: w.nodes,
            initializer: w.initializers,
            input: vec![value_info(INPUT, &batch_dims(input_shape))],
            output: vec![value_info(&out, &batch_dims(output_shape))],
            ..Default::default()
        }),
        metadata_props: preprocessing_metadata(graph),
        ..Default::default()
    })
}

/// A model's own input normalisation, as metadata that says how to feed it
/// (and that `pf import` reads back).
fn preprocessing_metadata(graph: &Graph) -> Vec<StringStringEntryProto> {
    let Some(p) = &graph.preprocessing else {
        return Vec::new();
    };
    let list = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
    [
        (super::import::MEAN_KEY, list(&p.mean)),
        (super::import::STD_KEY, list(&p.std)),
        (
            "pf.input.normalization",
            "per channel (x - mean) / std of pixels scaled to [0, 1], NCHW".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| StringStringEntryProto {
        key: Some(k.to_string()),
        value: Some(v),
    })
    .collect()
}
