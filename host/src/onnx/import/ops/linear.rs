//! The classifier head: `Gemm`, `MatMul` (with its bias `Add`) and
//! `Softmax`.

use super::{attr_float, attr_int};
use crate::graph::{Op, Shape};
use crate::onnx::import::Importer;
use crate::onnx::proto::NodeProto;
use anyhow::Result;

impl Importer<'_> {
    /// A classifier input: refuses a map, which ONNX's Gemm/MatMul would
    /// not take either without a flatten.
    pub(super) fn vector_features(&self, node: &NodeProto, x: &str) -> Result<usize> {
        match self.shape(x) {
            Shape::Vector { n } => Ok(n),
            s => Err(self.unsupported_value(
                node,
                format!("its input is a {s} map; pf imports Gemm and MatMul on N×features tensors (flatten first)"),
            )),
        }
    }

    pub(super) fn gemm(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["alpha", "beta", "transA", "transB"])?;
        if attr_int(node, "transA", 0) != 0 {
            return Err(
                self.unsupported_value(node, "transA 1 is not supported; pf's input is N×features")
            );
        }
        let x = self.layer_input(node, 0)?;
        let in_features = self.vector_features(node, &x)?;
        let b = self.constant_input(node, 1, "B")?;
        let trans_b = attr_int(node, "transB", 0) != 0;
        let alpha = attr_float(node, "alpha", 1.0);
        let beta = attr_float(node, "beta", 1.0);
        let [r, c] = b.dims[..] else {
            return Err(
                self.unsupported_value(node, format!("B of shape {:?} is not a matrix", b.dims))
            );
        };
        let (rows_in, out_features) = if trans_b { (c, r) } else { (r, c) };
        if rows_in != in_features {
            return Err(self.unsupported_value(
                node,
                format!(
                    "B of shape {:?} (transB {}) does not take {in_features} features",
                    b.dims,
                    u8::from(trans_b)
                ),
            ));
        }
        let values = b.floats();
        // pf's weight is out × in.
        let mut w = vec![0f32; values.len()];
        for o in 0..out_features {
            for i in 0..in_features {
                let v = if trans_b {
                    values[o * in_features + i]
                } else {
                    values[i * out_features + o]
                };
                w[o * in_features + i] = alpha * v;
            }
        }
        let bias = if Self::has_input(node, 2) {
            let c = self.constant_input(node, 2, "C")?;
            let values = c.floats();
            let full = match values.len() {
                1 => vec![values[0]; out_features],
                n if n == out_features && matches!(c.dims.as_slice(), [_] | [1, _]) => values,
                _ => {
                    return Err(self.unsupported_value(
                        node,
                        format!("C of shape {:?} is not one bias per output (pf's layers add the same bias to every sample)", c.dims),
                    ))
                }
            };
            Some(full.into_iter().map(|v| beta * v).collect::<Vec<_>>())
        } else {
            None
        };
        let op = Op::Linear {
            in_features,
            out_features,
            bias: bias.is_some(),
        };
        let name = self.push(node, op, vec![x])?;
        self.weight(&name, "weight", w, vec![out_features, in_features]);
        if let Some(b) = bias {
            self.weight(&name, "bias", b, vec![out_features]);
        }
        Ok(())
    }

    pub(super) fn matmul(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &[])?;
        let x = self.layer_input(node, 0)?;
        let in_features = self.vector_features(node, &x)?;
        let b = self.constant_input(node, 1, "B")?;
        let [r, out_features] = b.dims[..] else {
            return Err(
                self.unsupported_value(node, format!("B of shape {:?} is not a matrix", b.dims))
            );
        };
        if r != in_features {
            return Err(self.unsupported_value(
                node,
                format!(
                    "B of shape {:?} does not take {in_features} features",
                    b.dims
                ),
            ));
        }
        let values = b.floats();
        let mut w = vec![0f32; values.len()];
        for i in 0..in_features {
            for o in 0..out_features {
                w[o * in_features + i] = values[i * out_features + o];
            }
        }
        let op = Op::Linear {
            in_features,
            out_features,
            bias: false,
        };
        let name = self.push(node, op, vec![x])?;
        self.weight(&name, "weight", w, vec![out_features, in_features]);
        Ok(())
    }

    pub(super) fn softmax(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["axis"])?;
        let x = self.layer_input(node, 0)?;
        let default = if self.opset < 13 { 1 } else { -1 };
        let axis = attr_int(node, "axis", default);
        let ok = match self.shape(&x) {
            Shape::Vector { .. } => axis == 1 || axis == -1,
            Shape::Map { .. } => false,
        };
        if !ok {
            return Err(self.unsupported_value(
                node,
                format!("softmax over axis {axis} of a {} tensor is not supported; pf imports a softmax over the features of N×features logits", self.shape(&x)),
            ));
        }
        self.push(node, Op::Softmax, vec![x]).map(drop)
    }
}
