//! Serialising a lowered graph as a TFLite FlatBuffers file.
//!
//! Buffer 0 is the empty buffer TFLite reserves for tensors without data;
//! every constant gets a buffer of its own, and equal constants are written
//! once. Operator codes are shared by all
//! operators of a kind, as the format expects.

use super::lower::{Activation, DType, Lowered, OpKind, Padding};
use super::schema::tflite as fb;

/// The TFLite schema version written.
pub const SCHEMA_VERSION: u32 = 3;

fn act(a: Activation) -> fb::ActivationFunctionType {
    match a {
        Activation::None => fb::ActivationFunctionType::None,
        Activation::Relu => fb::ActivationFunctionType::Relu,
        Activation::Relu6 => fb::ActivationFunctionType::Relu6,
    }
}

fn pad(p: Padding) -> fb::Padding {
    match p {
        Padding::Same => fb::Padding::Same,
        Padding::Valid => fb::Padding::Valid,
    }
}

fn code_and_options(kind: &OpKind) -> (fb::BuiltinOperator, Option<fb::BuiltinOptions>) {
    use fb::BuiltinOperator as B;
    use fb::BuiltinOptions as O;
    match kind {
        OpKind::Conv2d {
            padding,
            stride,
            act: a,
        } => (
            B::Conv2d,
            Some(O::Conv2DOptions(Box::new(fb::Conv2DOptions {
                padding: pad(*padding),
                stride_w: stride[1] as i32,
                stride_h: stride[0] as i32,
                fused_activation_function: act(*a),
                dilation_w_factor: 1,
                dilation_h_factor: 1,
            }))),
        ),
        OpKind::DepthwiseConv2d {
            padding,
            stride,
            act: a,
        } => (
            B::DepthwiseConv2d,
            Some(O::DepthwiseConv2DOptions(Box::new(
                fb::DepthwiseConv2DOptions {
                    padding: pad(*padding),
                    stride_w: stride[1] as i32,
                    stride_h: stride[0] as i32,
                    depth_multiplier: 1,
                    fused_activation_function: act(*a),
                    dilation_w_factor: 1,
                    dilation_h_factor: 1,
                },
            ))),
        ),
        OpKind::FullyConnected { act: a } => (
            B::FullyConnected,
            Some(O::FullyConnectedOptions(Box::new(
                fb::FullyConnectedOptions {
                    fused_activation_function: act(*a),
                    keep_num_dims: false,
                },
            ))),
        ),
        OpKind::Add { act: a } => (
            B::Add,
            Some(O::AddOptions(Box::new(fb::AddOptions {
                fused_activation_function: act(*a),
            }))),
        ),
        OpKind::Mul { act: a } => (
            B::Mul,
            Some(O::MulOptions(Box::new(fb::MulOptions {
                fused_activation_function: act(*a),
            }))),
        ),
        OpKind::Logistic => (B::Logistic, None),
        OpKind::Concatenation => (
            B::Concatenation,
            Some(O::ConcatenationOptions(Box::new(
                fb::ConcatenationOptions {
                    axis: 3,
                    fused_activation_function: fb::ActivationFunctionType::None,
                },
            ))),
        ),
        OpKind::HardSwish => (B::HardSwish, None),
        OpKind::MaxPool {
            padding,
            kernel,
            stride,
        }
        | OpKind::AvgPool {
            padding,
            kernel,
            stride,
        } => (
            if matches!(kind, OpKind::MaxPool { .. }) {
                B::MaxPool2d
            } else {
                B::AveragePool2d
            },
            Some(O::Pool2DOptions(Box::new(fb::Pool2DOptions {
                padding: pad(*padding),
                stride_w: stride[1] as i32,
                stride_h: stride[0] as i32,
                filter_width: kernel[1] as i32,
                filter_height: kernel[0] as i32,
                fused_activation_function: fb::ActivationFunctionType::None,
            }))),
        ),
        OpKind::Mean { keep_dims } => (
            B::Mean,
            Some(O::ReducerOptions(Box::new(fb::ReducerOptions {
                keep_dims: *keep_dims,
            }))),
        ),
        OpKind::Pad => (B::Pad, Some(O::PadOptions(Box::new(fb::PadOptions {})))),
        // PadV2Options is an empty table; TFLite reads no options for it.
        OpKind::PadV2 => (B::Padv2, None),
        OpKind::Gather { axis } => (
            B::Gather,
            Some(O::GatherOptions(Box::new(fb::GatherOptions {
                axis: *axis,
                batch_dims: 0,
            }))),
        ),
        // SliceOptions is an empty table; TFLite reads no options for it.
        OpKind::Slice => (B::Slice, None),
        OpKind::Reshape { shape } => (
            B::Reshape,
            Some(O::ReshapeOptions(Box::new(fb::ReshapeOptions {
                new_shape: Some(shape.clone()),
            }))),
        ),
        OpKind::Softmax => (
            B::Softmax,
            Some(O::SoftmaxOptions(Box::new(fb::SoftmaxOptions {
                beta: 1.0,
            }))),
        ),
        OpKind::Quantize => (B::Quantize, None),
        OpKind::Dequantize => (B::Dequantize, None),
        OpKind::Densify => (B::Densify, None),
    }
}

/// The operator version a reader needs, from TFLite's versioning rules
/// (`tools/versioning/op_version.cc`): int8 kernels came in later versions
/// than float ones. `int8` says whether the operator's data input or output is int8.
fn version(kind: &OpKind, int8: bool) -> i32 {
    if !int8 {
        return 1;
    }
    match kind {
        // Per-channel int8 weights.
        OpKind::Conv2d { .. } | OpKind::DepthwiseConv2d { .. } => 3,
        OpKind::FullyConnected { .. } => 4,
        OpKind::Add { .. }
        | OpKind::Mul { .. }
        | OpKind::Logistic
        | OpKind::Concatenation
        | OpKind::MaxPool { .. }
        | OpKind::AvgPool { .. }
        | OpKind::Mean { .. }
        | OpKind::Softmax
        | OpKind::Dequantize => 2,
        OpKind::Pad => 3,
        OpKind::PadV2 => 2,
        OpKind::Gather { .. } | OpKind::Slice => 2,
        OpKind::Reshape { .. } | OpKind::Densify => 1,
        OpKind::HardSwish => 1,
        // Float input; version 2 is the one with int8 output.
        OpKind::Quantize => 2,
    }
}

/// The narrowest of TFLite's index vectors that holds `v`.
fn index_vector(v: &[u32]) -> fb::SparseIndexVector {
    let max = v.iter().copied().max().unwrap_or(0);
    if max <= u8::MAX as u32 {
        fb::SparseIndexVector::Uint8Vector(Box::new(fb::Uint8Vector {
            values: Some(v.iter().map(|&x| x as u8).collect()),
        }))
    } else if max <= u16::MAX as u32 {
        fb::SparseIndexVector::Uint16Vector(Box::new(fb::Uint16Vector {
            values: Some(v.iter().map(|&x| x as u16).collect()),
        }))
    } else {
        fb::SparseIndexVector::Int32Vector(Box::new(fb::Int32Vector {
            values: Some(v.iter().map(|&x| x as i32).collect()),
        }))
    }
}

/// Sparsity parameters of a tensor of `shape` stored as `csr`: the
/// leading dimensions dense, the last compressed, in natural order.
fn sparsity(shape: &[i32], csr: &super::lower::Csr) -> fb::SparsityParameters {
    let rank = shape.len();
    let dims = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i + 1 < rank {
                fb::DimensionMetadata {
                    format: fb::DimensionType::Dense,
                    dense_size: d,
                    array_segments: None,
                    array_indices: None,
                }
            } else {
                fb::DimensionMetadata {
                    format: fb::DimensionType::SparseCsr,
                    dense_size: 0,
                    array_segments: Some(index_vector(&csr.segments)),
                    array_indices: Some(index_vector(&csr.indices)),
                }
            }
        })
        .collect();
    fb::SparsityParameters {
        traversal_order: Some((0..rank as i32).collect()),
        block_map: None,
        dim_metadata: Some(dims),
    }
}

fn tensor_type(d: DType) -> fb::TensorType {
    match d {
        DType::F32 => fb::TensorType::Float32,
        DType::I32 => fb::TensorType::Int32,
        DType::I8 => fb::TensorType::Int8,
    }
}

/// Serialises a lowered graph. The model's name becomes the subgraph's
/// name; the description says which pf wrote the file and, for a model
/// with its own input preprocessing, how to normalise its inputs.
pub fn serialize(g: &Lowered, model: &crate::graph::Graph) -> Vec<u8> {
    let name = model.name.as_str();
    // Equal constants (the zero biases of fresh or folded layers, repeated
    // paddings and axes) are one tensor with one buffer, as TensorFlow's
    // converter writes them: `file_index[i]` is tensor i's index in the file.
    let mut file_index = vec![0usize; g.tensors.len()];
    let mut kept: Vec<&super::lower::TensorDef> = Vec::new();
    let mut seen: std::collections::HashMap<(&[u8], &[i32], String), usize> =
        std::collections::HashMap::new();
    for (i, t) in g.tensors.iter().enumerate() {
        if let Some(d) = &t.data {
            let key = (
                d.as_slice(),
                t.shape.as_slice(),
                format!("{:?} {:?} {:?}", t.dtype, t.quant, t.sparse),
            );
            if let Some(&j) = seen.get(&key) {
                file_index[i] = j;
                continue;
            }
            seen.insert(key, kept.len());
        }
        file_index[i] = kept.len();
        kept.push(t);
    }
    let mut buffers = vec![fb::Buffer { data: None }];
    let tensors: Vec<fb::Tensor> = kept
        .iter()
        .map(|t| {
            let buffer = match &t.data {
                Some(d) => {
                    buffers.push(fb::Buffer {
                        data: Some(d.clone()),
                    });
                    (buffers.len() - 1) as u32
                }
                None => 0,
            };
            fb::Tensor {
                shape: Some(t.shape.clone()),
                type_: tensor_type(t.dtype),
                buffer,
                name: Some(t.name.clone()),
                sparsity: t.sparse.as_ref().map(|c| Box::new(sparsity(&t.shape, c))),
                quantization: t.quant.as_ref().map(|q| {
                    Box::new(fb::QuantizationParameters {
                        min: None,
                        max: None,
                        scale: Some(q.scale.clone()),
                        zero_point: Some(q.zero_point.clone()),
                        quantized_dimension: q.axis as i32,
                    })
                }),
            }
        })
        .collect();
    // Each operator code once, at the highest version any of its uses needs.
    let mut codes: Vec<(fb::BuiltinOperator, i32)> = Vec::new();
    let operators: Vec<fb::Operator> = g
        .ops
        .iter()
        .map(|op| {
            let (code, options) = code_and_options(&op.kind);
            let int8 = [op.inputs.first(), op.outputs.first()]
                .into_iter()
                .flatten()
                .any(|&i| g.tensors[i].dtype == DType::I8);
            let v = version(&op.kind, int8);
            let index = match codes.iter().position(|(c, _)| *c == code) {
                Some(i) => {
                    codes[i].1 = codes[i].1.max(v);
                    i
                }
                None => {
                    codes.push((code, v));
                    codes.len() - 1
                }
            };
            fb::Operator {
                opcode_index: index as u32,
                inputs: Some(op.inputs.iter().map(|&i| file_index[i] as i32).collect()),
                outputs: Some(op.outputs.iter().map(|&i| file_index[i] as i32).collect()),
                builtin_options: options,
            }
        })
        .collect();
    let model = fb::Model {
        version: SCHEMA_VERSION,
        operator_codes: Some(
            codes
                .iter()
                .map(|&(c, version)| fb::OperatorCode {
                    // Readers older than the 32-bit field look here; codes
                    // above 127 are stored as 127 (PLACEHOLDER_FOR_GREATER_OP_CODES).
                    deprecated_builtin_code: (c as i32).min(127) as i8,
                    version,
                    builtin_code: c,
                })
                .collect(),
        ),
        subgraphs: Some(vec![fb::SubGraph {
            tensors: Some(tensors),
            inputs: Some(vec![file_index[g.input] as i32]),
            outputs: Some(vec![file_index[g.output] as i32]),
            operators: Some(operators),
            name: Some(name.to_string()),
        }]),
        description: Some(description(model)),
        buffers: Some(buffers),
    };
    let mut builder = planus::Builder::new();
    let bytes = builder.finish(&model, Some(*b"TFL3"));
    with_identifier_after_root(bytes)
}

/// FlatBuffers puts the root offset first and the file identifier after it
/// (`[root][TFL3]...`). planus 1.3 writes the two the other way round
/// (`[TFL3][root - 4]...`), which TFLite cannot read; this swaps them back.
/// The root table stays where it is, so only the first 8 bytes change.
fn with_identifier_after_root(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.len() >= 8 && &out[0..4] == b"TFL3" {
        let relative = u32::from_le_bytes([out[4], out[5], out[6], out[7]]);
        out[0..4].copy_from_slice(&(relative + 4).to_le_bytes());
        out[4..8].copy_from_slice(b"TFL3");
    }
    out
}

/// The file's description: pf's version, and the input normalisation of a
/// model that has its own.
fn description(model: &crate::graph::Graph) -> String {
    let pf = format!("pf {}", env!("CARGO_PKG_VERSION"));
    match &model.preprocessing {
        Some(p) => format!(
            "{pf}; input: per channel (x - mean) / std of pixels scaled to [0, 1], mean {:?}, std {:?}",
            p.mean, p.std
        ),
        None => pf,
    }
}
