//! The mapping of each supported ONNX operator onto pf layers: `Importer::node`
//! dispatches on the operator, by family:
//!
//! - [`conv`]: `Conv`, `BatchNormalization` (and the padding and strides
//!   pooling shares);
//! - [`elementwise`]: `Clip`, `Add`/`Sum`;
//! - [`pool`]: `MaxPool`, `AveragePool`, `ReduceMean`, `Pad`;
//! - [`shape`]: `Reshape`, `Shape`/`Gather`/`Unsqueeze`/`Concat`/`Cast`,
//!   `Squeeze`, `Split` and `Slice` of channels, and the `Reshape`, `Transpose`,
//!   `Reshape` of a channel shuffle;
//! - [`linear`]: `Gemm`, `MatMul`, `Softmax`.
//!
//! The operators without attributes worth a function (`Relu`,
//! `GlobalAveragePool`, `Flatten`, `Identity`, `Dropout`, `Constant`) are
//! mapped here, with the attribute readers every family uses.

mod conv;
mod elementwise;
mod linear;
mod pool;
mod shape;

use super::constant::{constant, Constant, Values};
use super::{Importer, Value, SUPPORTED_OPS};
use crate::graph::Op;
use crate::onnx::proto::{AttributeProto, NodeProto};
use anyhow::{anyhow, bail, Context, Result};

impl Importer<'_> {
    /// Maps one node onto pf layers (or constants, or nothing).
    pub(super) fn node(&mut self, node: &NodeProto) -> Result<()> {
        if !matches!(node.domain(), "" | "ai.onnx") {
            bail!(
                "{}: operators of domain `{}` are not supported; pf imports the default ONNX domain: {SUPPORTED_OPS}",
                self.here(node),
                node.domain()
            );
        }
        match node.op_type() {
            "Conv" => self.conv(node),
            "BatchNormalization" => self.batch_norm(node),
            "Relu" => {
                self.check_attributes(node, &[])?;
                let x = self.layer_input(node, 0)?;
                self.push(node, Op::Relu, vec![x]).map(drop)
            }
            "Clip" => self.clip(node),
            "Sigmoid" => {
                self.check_attributes(node, &[])?;
                let x = self.layer_input(node, 0)?;
                self.push(node, Op::Sigmoid, vec![x]).map(drop)
            }
            "HardSigmoid" => {
                self.check_attributes(node, &["alpha", "beta"])?;
                let x = self.layer_input(node, 0)?;
                let op = Op::HardSigmoid {
                    alpha: attr_float(node, "alpha", 0.2),
                    beta: attr_float(node, "beta", 0.5),
                };
                self.push(node, op, vec![x]).map(drop)
            }
            "HardSwish" => {
                self.check_attributes(node, &[])?;
                let x = self.layer_input(node, 0)?;
                self.push(node, Op::HardSwish, vec![x]).map(drop)
            }
            // Arithmetic on shapes and integer constants (no feature map
            // among the operands) is evaluated at import.
            "Add" | "Sub" | "Mul" | "Div" if !self.joins_maps(node) => self.shape_arithmetic(node),
            "Mul" => self.mul(node),
            "Add" | "Sum" => self.add(node),
            "MaxPool" | "AveragePool" => self.pool(node),
            "GlobalAveragePool" => {
                self.check_attributes(node, &[])?;
                let x = self.layer_input(node, 0)?;
                self.push(node, Op::GlobalAvgPool, vec![x]).map(drop)
            }
            "ReduceMean" => self.reduce_mean(node),
            "Pad" => self.pad(node),
            "Flatten" => {
                self.check_attributes(node, &["axis"])?;
                let axis = attr_int(node, "axis", 1);
                if axis != 1 {
                    return Err(self.unsupported_value(
                        node,
                        format!("flattening from axis {axis} is not supported; pf flattens each sample (axis 1)"),
                    ));
                }
                let x = self.layer_input(node, 0)?;
                self.push(node, Op::Flatten, vec![x]).map(drop)
            }
            "Reshape" => self.reshape(node),
            "Transpose" => self.transpose(node),
            "Split" => self.split(node),
            "Slice" if self.opset >= 10 => self.slice(node),
            "Concat" if self.joins_maps(node) => self.concat(node),
            "Shape" | "Gather" | "Unsqueeze" | "Concat" | "Cast" => self.shape_arithmetic(node),
            "Squeeze" => self.squeeze(node),
            "Gemm" => self.gemm(node),
            "MatMul" => self.matmul(node),
            "Softmax" => self.softmax(node),
            "Identity" | "Dropout" => {
                self.check_attributes(node, &["ratio", "seed"])?;
                if node.op_type() == "Dropout" && Self::has_input(node, 2) {
                    let training = self.constant_input(node, 2, "training_mode")?;
                    if training.floats().iter().any(|&v| v != 0.0) {
                        return Err(self.unsupported_value(
                            node,
                            "dropout in training mode is not supported; export the model in inference mode",
                        ));
                    }
                }
                let v = self.value(node, 0)?.clone();
                if let Some(out) = node.output.first() {
                    self.values.insert(out.clone(), v);
                }
                Ok(())
            }
            "Constant" => self.constant_node(node),
            other => bail!(
                "{}: operator `{other}` is not supported; pf imports {SUPPORTED_OPS}",
                self.here(node)
            ),
        }
    }

    fn constant_node(&mut self, node: &NodeProto) -> Result<()> {
        let [a] = node.attribute.as_slice() else {
            bail!(
                "{}: a Constant needs exactly one value attribute",
                self.here(node)
            );
        };
        let c = match a.name() {
            "value" => constant(a.t.as_ref().ok_or_else(|| {
                anyhow!("{}: `value` holds no tensor", self.here(node))
            })?)
            .with_context(|| self.here(node))?,
            "value_float" => Constant {
                dims: vec![],
                values: Values::Float(vec![a.f()]),
            },
            "value_floats" => Constant {
                dims: vec![a.floats.len()],
                values: Values::Float(a.floats.clone()),
            },
            "value_int" => Constant {
                dims: vec![],
                values: Values::Int(vec![a.i()]),
            },
            "value_ints" => Constant {
                dims: vec![a.ints.len()],
                values: Values::Int(a.ints.clone()),
            },
            other => {
                return Err(self.unsupported_value(
                    node,
                    format!("attribute `{other}` is not supported (pf reads value, value_float(s), value_int(s))"),
                ))
            }
        };
        if let Some(out) = node.output.first() {
            self.values.insert(out.clone(), Value::Constant(c));
        }
        Ok(())
    }
}

pub(super) fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

pub(super) fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i())
}

pub(super) fn attr_float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f())
}

pub(super) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(super) fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(a.s()).into_owned())
}
