//! Serialising a lowered graph as a TFLite FlatBuffers file.
//!
//! Buffer 0 is the empty buffer TFLite reserves for tensors without data;
//! every constant gets a buffer of its own. Operator codes are shared by all
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
        OpKind::Mean => (
            B::Mean,
            Some(O::ReducerOptions(Box::new(fb::ReducerOptions {
                keep_dims: true,
            }))),
        ),
        OpKind::Pad => (B::Pad, Some(O::PadOptions(Box::new(fb::PadOptions {})))),
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
    }
}

/// Serialises a lowered graph; `name` becomes the subgraph's name.
pub fn serialize(g: &Lowered, name: &str) -> Vec<u8> {
    let mut buffers = vec![fb::Buffer { data: None }];
    let tensors: Vec<fb::Tensor> = g
        .tensors
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
                type_: match t.dtype {
                    DType::F32 => fb::TensorType::Float32,
                    DType::I32 => fb::TensorType::Int32,
                },
                buffer,
                name: Some(t.name.clone()),
                quantization: None,
            }
        })
        .collect();
    let mut codes: Vec<fb::BuiltinOperator> = Vec::new();
    let operators: Vec<fb::Operator> = g
        .ops
        .iter()
        .map(|op| {
            let (code, options) = code_and_options(&op.kind);
            let index = codes.iter().position(|c| *c == code).unwrap_or_else(|| {
                codes.push(code);
                codes.len() - 1
            });
            fb::Operator {
                opcode_index: index as u32,
                inputs: Some(op.inputs.iter().map(|&i| i as i32).collect()),
                outputs: Some(op.outputs.iter().map(|&i| i as i32).collect()),
                builtin_options: options,
            }
        })
        .collect();
    let model = fb::Model {
        version: SCHEMA_VERSION,
        operator_codes: Some(
            codes
                .iter()
                .map(|&c| fb::OperatorCode {
                    // Readers older than the 32-bit field look here; codes
                    // above 127 are stored as 127 (PLACEHOLDER_FOR_GREATER_OP_CODES).
                    deprecated_builtin_code: (c as i32).min(127) as i8,
                    version: 1,
                    builtin_code: c,
                })
                .collect(),
        ),
        subgraphs: Some(vec![fb::SubGraph {
            tensors: Some(tensors),
            inputs: Some(vec![g.input as i32]),
            outputs: Some(vec![g.output as i32]),
            operators: Some(operators),
            name: Some(name.to_string()),
        }]),
        description: Some(format!("pf {}", env!("CARGO_PKG_VERSION"))),
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
