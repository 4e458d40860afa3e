//! Element-wise operators: `Clip` (ReLU6), `Add`/`Sum` (residual joins, or
//! a bias folded into the layer before) and `Mul` (SiLU's `x · σ(x)`,
//! squeeze-and-excitation's channel gate).

use super::attr_float;
use crate::graph::Op;
use crate::onnx::import::constant::Constant;
use crate::onnx::import::{Importer, Value};
use crate::onnx::proto::NodeProto;
use anyhow::{anyhow, Result};

impl Importer<'_> {
    pub(super) fn clip(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["min", "max"])?;
        let x = self.layer_input(node, 0)?;
        let bound = |i: usize, attr: &str, default: f32| -> Result<f32> {
            if self.opset < 11 {
                return Ok(attr_float(node, attr, default));
            }
            if !Self::has_input(node, i) {
                return Ok(default);
            }
            let c = self.constant_input(node, i, attr)?;
            match c.floats().as_slice() {
                [v] => Ok(*v),
                _ => Err(self.unsupported_value(node, format!("its {attr} is not a scalar"))),
            }
        };
        let lo = bound(1, "min", f32::NEG_INFINITY)?;
        let hi = bound(2, "max", f32::INFINITY)?;
        let op = match (lo, hi) {
            (0.0, 6.0) => Op::Relu6,
            (0.0, h) if h == f32::INFINITY => Op::Relu,
            _ => {
                return Err(self.unsupported_value(
                    node,
                    format!("clipping to [{lo}, {hi}] is not supported; pf imports Clip to [0, 6] (ReLU6) or [0, ∞) (ReLU)"),
                ))
            }
        };
        self.push(node, op, vec![x]).map(drop)
    }

    pub(super) fn add(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &[])?;
        let values: Vec<Value> = (0..node.input.len())
            .map(|i| self.value(node, i).cloned())
            .collect::<Result<_>>()?;
        let layers: Vec<String> = values
            .iter()
            .filter_map(|v| match v {
                Value::Layer(l) => Some(l.clone()),
                Value::Constant(_) | Value::Dims(_) | Value::Shuffling { .. } => None,
            })
            .collect();
        let constants: Vec<&Constant> = values
            .iter()
            .filter_map(|v| match v {
                Value::Constant(c) => Some(c),
                Value::Layer(_) | Value::Dims(_) | Value::Shuffling { .. } => None,
            })
            .collect();
        match (layers.as_slice(), constants.as_slice()) {
            (ls, []) if ls.len() >= 2 && ls.len() == values.len() => self.push(node, Op::Add, ls.to_vec()).map(drop),
            ([l], [c]) if node.op_type() == "Add" && values.len() == 2 => self.fold_bias(node, l, c),
            _ => Err(self.unsupported_value(
                node,
                "pf imports an Add of two or more computed tensors (a residual sum), or of one computed tensor and a constant that is the bias of the Conv, Gemm or MatMul before it",
            )),
        }
    }

    /// `Mul` of two computed tensors: equal shapes, or a `C×1×1` gate and
    /// a `C×H×W` map (the shapes are checked when the graph is).
    pub(super) fn mul(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &[])?;
        let values: Vec<Value> = (0..node.input.len())
            .map(|i| self.value(node, i).cloned())
            .collect::<Result<_>>()?;
        match values.as_slice() {
            [Value::Layer(a), Value::Layer(b)] => {
                let (a, b) = (a.clone(), b.clone());
                self.push(node, Op::Mul, vec![a, b]).map(drop)
            }
            _ => Err(self.unsupported_value(
                node,
                "pf imports a Mul of two computed tensors (SiLU's x·sigmoid(x), a squeeze-and-excitation gate), not of a constant",
            )),
        }
    }

    /// Whether a `Concat` joins computed tensors (feature maps), rather
    /// than shapes.
    pub(super) fn joins_maps(&self, node: &NodeProto) -> bool {
        node.input
            .iter()
            .any(|i| matches!(self.values.get(i), Some(Value::Layer(_))))
    }

    /// `Concat` of feature maps along the channels (axis 1).
    pub(super) fn concat(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["axis"])?;
        let axis = super::attr_int(node, "axis", 1);
        if axis != 1 && axis != -3 {
            return Err(self.unsupported_value(
                node,
                format!("it joins along axis {axis}; pf concatenates NCHW feature maps along the channels (axis 1)"),
            ));
        }
        let inputs = (0..node.input.len())
            .map(|i| self.layer_input(node, i))
            .collect::<Result<Vec<_>>>()?;
        // `torch.cat([x], 1)` (DenseNet's first layer): the input itself.
        if let [only] = &inputs[..] {
            if let Some(out) = node.output.first() {
                self.values.insert(out.clone(), Value::Layer(only.clone()));
            }
            return Ok(());
        }
        self.push(node, Op::Concat, inputs).map(drop)
    }

    /// `Add(layer, constant)` where the constant is the bias of a linear or
    /// convolution layer without one, read by this node alone.
    pub(super) fn fold_bias(&mut self, node: &NodeProto, layer: &str, c: &Constant) -> Result<()> {
        let producer_output = node
            .input
            .iter()
            .find(|i| matches!(self.values.get(*i), Some(Value::Layer(l)) if l == layer))
            .cloned()
            .unwrap_or_default();
        let here = self.here(node);
        let refuse = |why: &str| {
            anyhow!(
                "{here}: adds a constant to `{producer_output}`, but {why}; pf folds a constant Add only as the bias of the Conv, Gemm or MatMul right before it"
            )
        };
        if self.readers.get(&producer_output).copied().unwrap_or(0) != 1 {
            return Err(refuse("that tensor is read elsewhere too"));
        }
        let idx = self
            .layers
            .iter()
            .position(|l| l.name == layer)
            .ok_or_else(|| refuse("it is the graph input"))?;
        let (out, bias_shape_ok) = match &mut self.layers[idx].op {
            Op::Linear {
                out_features, bias, ..
            } if !*bias => {
                let ok = matches!(c.dims.as_slice(), [n] | [1, n] if *n == *out_features);
                (*out_features, ok)
            }
            Op::Conv2d {
                out_channels, bias, ..
            } if !*bias => {
                let ok =
                    matches!(c.dims.as_slice(), [n, 1, 1] | [1, n, 1, 1] if *n == *out_channels);
                (*out_channels, ok)
            }
            _ => return Err(refuse("that layer is not a bias-free Conv, Gemm or MatMul")),
        };
        if !bias_shape_ok {
            return Err(refuse(&format!(
                "the constant's shape {:?} is not one value per output channel",
                c.dims
            )));
        }
        match &mut self.layers[idx].op {
            Op::Linear { bias, .. } | Op::Conv2d { bias, .. } => *bias = true,
            _ => unreachable!("checked above"),
        }
        let name = self.layers[idx].name.clone();
        self.weight(&name, "bias", c.floats(), vec![out]);
        if let Some(o) = node.output.first() {
            self.values.insert(o.clone(), Value::Layer(name));
        }
        Ok(())
    }
}
