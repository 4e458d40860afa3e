//! The mapping of each supported ONNX operator onto pf layers.

use super::constant::{constant, decimal, Constant, Values};
use super::{Importer, Value, SUPPORTED_OPS};
use crate::graph::{Op, Shape};
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

    /// Symmetric padding (rows, columns) from `pads`/`auto_pad`, for a
    /// window of `kernel` with `stride` over `input`.
    fn padding(
        &self,
        node: &NodeProto,
        input: Shape,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Result<[usize; 2]> {
        let auto = attr_string(node, "auto_pad").unwrap_or_default();
        let pads: [usize; 4] = match auto.as_str() {
            "" | "NOTSET" => match attr_ints(node, "pads") {
                None => [0; 4],
                Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => {
                    [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
                }
                Some(p) => {
                    return Err(self.unsupported_value(
                        node,
                        format!(
                        "pads {p:?} are not four non-negative values (top, left, bottom, right)"
                    ),
                    ))
                }
            },
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let Shape::Map { h, w, .. } = input else {
                    return Err(self.unsupported_value(node, "needs a feature-map input"));
                };
                let mut p = [0; 4];
                for (axis, size) in [h, w].into_iter().enumerate() {
                    let out = size.div_ceil(stride[axis]);
                    let total = ((out - 1) * stride[axis] + kernel[axis]).saturating_sub(size);
                    let small = total / 2;
                    let (begin, end) = if auto == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    p[axis] = begin;
                    p[axis + 2] = end;
                }
                p
            }
            other => {
                return Err(self.unsupported_value(
                    node,
                    format!("auto_pad `{other}` is not an ONNX padding mode"),
                ))
            }
        };
        if pads[0] != pads[2] || pads[1] != pads[3] {
            return Err(self.unsupported_value(
                node,
                format!(
                    "asymmetric padding (top {}, left {}, bottom {}, right {}) is not supported; pf pads both sides of an axis equally",
                    pads[0], pads[1], pads[2], pads[3]
                ),
            ));
        }
        Ok([pads[0], pads[1]])
    }

    /// `strides` (default 1) and that `dilations` are all 1.
    fn strides(&self, node: &NodeProto) -> Result<[usize; 2]> {
        if let Some(d) = attr_ints(node, "dilations") {
            if d.iter().any(|&v| v != 1) {
                return Err(self.unsupported_value(
                    node,
                    format!(
                        "dilations {d:?} are not supported; pf's windows are dense (dilation 1)"
                    ),
                ));
            }
        }
        match attr_ints(node, "strides") {
            None => Ok([1, 1]),
            Some(s) if s.len() == 2 && s.iter().all(|&v| v > 0) => {
                Ok([s[0] as usize, s[1] as usize])
            }
            Some(s) => Err(self.unsupported_value(
                node,
                format!("strides {s:?} are not two positive values; pf imports 2-D windows"),
            )),
        }
    }

    fn conv(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(
            node,
            &[
                "auto_pad",
                "dilations",
                "group",
                "kernel_shape",
                "pads",
                "strides",
            ],
        )?;
        let x = self.layer_input(node, 0)?;
        let w = self.constant_input(node, 1, "weight")?;
        if w.dims.len() != 4 {
            return Err(self.unsupported_value(
                node,
                format!(
                    "a weight of shape {:?} is not a 2-D convolution's (O×I×kh×kw)",
                    w.dims
                ),
            ));
        }
        let groups = attr_int(node, "group", 1);
        if groups < 1 {
            return Err(self.unsupported_value(node, format!("group {groups} is not positive")));
        }
        let groups = groups as usize;
        let kernel = [w.dims[2], w.dims[3]];
        if let Some(k) = attr_ints(node, "kernel_shape") {
            if k != [kernel[0] as i64, kernel[1] as i64] {
                return Err(self.unsupported_value(
                    node,
                    format!("kernel_shape {k:?} disagrees with the weight's {kernel:?}"),
                ));
            }
        }
        let stride = self.strides(node)?;
        let input = self.shape(&x);
        let padding = self.padding(node, input, kernel, stride)?;
        let out_channels = w.dims[0];
        let bias = if Self::has_input(node, 2) {
            let b = self.constant_input(node, 2, "bias")?;
            if b.numel() != out_channels {
                return Err(self.unsupported_value(
                    node,
                    format!(
                        "a bias of {} values does not fit {out_channels} output channels",
                        b.numel()
                    ),
                ));
            }
            Some(b.floats())
        } else {
            None
        };
        let op = Op::Conv2d {
            in_channels: w.dims[1].checked_mul(groups).ok_or_else(|| {
                self.unsupported_value(node, format!("group {groups} is impossibly large"))
            })?,
            out_channels,
            kernel,
            stride,
            padding,
            groups,
            bias: bias.is_some(),
        };
        let name = self.push(node, op, vec![x])?;
        self.weight(&name, "weight", w.floats(), w.dims.clone());
        if let Some(b) = bias {
            self.weight(&name, "bias", b, vec![out_channels]);
        }
        Ok(())
    }

    fn batch_norm(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(
            node,
            &[
                "epsilon",
                "momentum",
                "spatial",
                "training_mode",
                "is_test",
                "consumed_inputs",
            ],
        )?;
        if attr_int(node, "training_mode", 0) != 0 {
            return Err(self.unsupported_value(
                node,
                "training_mode 1 is not supported; export the model in inference mode",
            ));
        }
        if attr_int(node, "spatial", 1) != 1 {
            return Err(self.unsupported_value(
                node,
                "spatial 0 (statistics per position) is not supported; pf normalises per channel",
            ));
        }
        if node
            .output
            .iter()
            .skip(1)
            .any(|o| !o.is_empty() && self.readers.contains_key(o))
        {
            return Err(self.unsupported_value(
                node,
                "its running-statistics outputs are read by other nodes; pf imports inference-mode batch norms",
            ));
        }
        let x = self.layer_input(node, 0)?;
        let channels = self.shape(&x).channels();
        let mut params = Vec::new();
        for (i, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
            let c = self.constant_input(node, i, what)?;
            if c.numel() != channels {
                return Err(self.unsupported_value(
                    node,
                    format!(
                        "its {what} has {} values for {channels} channels",
                        c.numel()
                    ),
                ));
            }
            params.push(c.floats());
        }
        let eps = decimal(attr_float(node, "epsilon", 1e-5));
        // ONNX: running = momentum·running + (1 − momentum)·batch; pf's
        // momentum is the batch statistic's weight.
        let onnx_momentum = attr_float(node, "momentum", 0.9);
        let momentum = decimal((1.0 - decimal(onnx_momentum)) as f32);
        let name = self.push(
            node,
            Op::BatchNorm {
                channels,
                eps,
                momentum,
            },
            vec![x],
        )?;
        let mut params = params.into_iter();
        for key in ["weight", "bias", "running_mean", "running_var"] {
            let v = params.next().expect("four tensors");
            self.weight(&name, key, v, vec![channels]);
        }
        Ok(())
    }

    fn clip(&mut self, node: &NodeProto) -> Result<()> {
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

    fn add(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &[])?;
        let values: Vec<Value> = (0..node.input.len())
            .map(|i| self.value(node, i).cloned())
            .collect::<Result<_>>()?;
        let layers: Vec<String> = values
            .iter()
            .filter_map(|v| match v {
                Value::Layer(l) => Some(l.clone()),
                Value::Constant(_) | Value::Dims(_) => None,
            })
            .collect();
        let constants: Vec<&Constant> = values
            .iter()
            .filter_map(|v| match v {
                Value::Constant(c) => Some(c),
                Value::Layer(_) | Value::Dims(_) => None,
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

    /// `Add(layer, constant)` where the constant is the bias of a linear or
    /// convolution layer without one, read by this node alone.
    fn fold_bias(&mut self, node: &NodeProto, layer: &str, c: &Constant) -> Result<()> {
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

    fn pool(&mut self, node: &NodeProto) -> Result<()> {
        let max = node.op_type() == "MaxPool";
        self.check_attributes(
            node,
            &[
                "auto_pad",
                "ceil_mode",
                "count_include_pad",
                "dilations",
                "kernel_shape",
                "pads",
                "strides",
                "storage_order",
            ],
        )?;
        if node
            .output
            .get(1)
            .is_some_and(|o| !o.is_empty() && self.readers.contains_key(o))
        {
            return Err(self.unsupported_value(
                node,
                "its Indices output is read; pf pools produce values only",
            ));
        }
        if attr_int(node, "ceil_mode", 0) != 0 {
            return Err(self.unsupported_value(
                node,
                "ceil_mode 1 is not supported; pf's pooling windows round the output size down",
            ));
        }
        let x = self.layer_input(node, 0)?;
        let kernel = match attr_ints(node, "kernel_shape") {
            Some(k) if k.len() == 2 && k.iter().all(|&v| v > 0) => [k[0] as usize, k[1] as usize],
            k => {
                return Err(self.unsupported_value(
                    node,
                    format!(
                        "kernel_shape {k:?} is not two positive values; pf imports 2-D pooling"
                    ),
                ))
            }
        };
        let stride = self.strides(node)?;
        let padding = self.padding(node, self.shape(&x), kernel, stride)?;
        let op = if max {
            Op::MaxPool {
                kernel,
                stride,
                padding,
            }
        } else {
            if attr_int(node, "count_include_pad", 0) != 0 && padding != [0, 0] {
                return Err(self.unsupported_value(
                    node,
                    "count_include_pad 1 with padding is not supported; pf's average leaves padded positions out",
                ));
            }
            Op::AvgPool {
                kernel,
                stride,
                padding,
            }
        };
        self.push(node, op, vec![x]).map(drop)
    }

    /// `ReduceMean` over the spatial axes: global average pooling, then a
    /// flatten when the reduced axes are dropped (`keepdims` 0).
    fn reduce_mean(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["axes", "keepdims", "noop_with_empty_axes"])?;
        let x = self.layer_input(node, 0)?;
        let axes = if self.opset < 18 {
            attr_ints(node, "axes")
        } else if Self::has_input(node, 1) {
            self.constant_input(node, 1, "axes")?.ints()
        } else {
            None
        };
        let mut axes = axes.unwrap_or_default();
        for a in &mut axes {
            if *a < 0 {
                *a += 4;
            }
        }
        axes.sort_unstable();
        if axes != [2, 3] || !matches!(self.shape(&x), Shape::Map { .. }) {
            return Err(self.unsupported_value(
                node,
                format!("a mean over axes {axes:?} of a {} tensor is not supported; pf imports ReduceMean over the spatial axes [2, 3] of a feature map (global average pooling)", self.shape(&x)),
            ));
        }
        let pooled = self.push(node, Op::GlobalAvgPool, vec![x])?;
        if attr_int(node, "keepdims", 1) == 0 {
            self.push(node, Op::Flatten, vec![pooled])?;
        }
        Ok(())
    }

    /// `Pad` that adds zero channels only: pf's `PadChannels`.
    fn pad(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["mode", "pads", "value"])?;
        let mode = attr_string(node, "mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(self.unsupported_value(
                node,
                format!("mode `{mode}` is not supported; pf pads with zeros"),
            ));
        }
        let x = self.layer_input(node, 0)?;
        let (pads, value) = if self.opset < 11 {
            (
                attr_ints(node, "pads").unwrap_or_default(),
                attr_float(node, "value", 0.0),
            )
        } else {
            let pads = self
                .constant_input(node, 1, "pads")?
                .ints()
                .ok_or_else(|| self.unsupported_value(node, "its pads are not integers"))?;
            let value = if Self::has_input(node, 2) {
                self.constant_input(node, 2, "constant_value")?
                    .floats()
                    .first()
                    .copied()
                    .unwrap_or(0.0)
            } else {
                0.0
            };
            if Self::has_input(node, 3) {
                return Err(self.unsupported_value(node, "the axes input is not supported"));
            }
            (pads, value)
        };
        let ok = pads.len() == 8
            && value == 0.0
            && pads.iter().all(|&p| p >= 0)
            && [0, 2, 3, 4, 6, 7].iter().all(|&i| pads[i] == 0);
        if !ok {
            return Err(self.unsupported_value(
                node,
                format!("padding {pads:?} with value {value} is not supported; pf imports a Pad that adds zero channels only (N×C×H×W pads [0, b, 0, 0, 0, a, 0, 0])"),
            ));
        }
        let op = Op::PadChannels {
            before: pads[1] as usize,
            after: pads[5] as usize,
        };
        self.push(node, op, vec![x]).map(drop)
    }

    /// `Reshape` to `N × features` of a map (or a vector): a flatten.
    fn reshape(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["allowzero"])?;
        let x = self.layer_input(node, 0)?;
        let numel = self.shape(&x).numel() as i64;
        let target = self.dims_input(node, 1, "shape")?;
        // The batch: copied (0), inferred (-1), the dynamic batch size
        // itself (None, from shape arithmetic) or 1.
        let flattens = match target.as_slice() {
            [n, f] => match (n, f) {
                (Some(-1), Some(f)) => *f == numel,
                (Some(0) | Some(1) | None, Some(f)) => *f == -1 || *f == numel,
                _ => false,
            },
            _ => false,
        };
        if !flattens {
            let shown: Vec<String> = target
                .iter()
                .map(|d| d.map_or("N".into(), |v| v.to_string()))
                .collect();
            return Err(self.unsupported_value(
                node,
                format!("reshaping to [{}] is not supported; pf imports a Reshape that flattens each sample (to [N, {numel}], [0, -1] or [-1, {numel}])", shown.join(", ")),
            ));
        }
        self.push(node, Op::Flatten, vec![x]).map(drop)
    }

    /// `Shape`, `Gather`, `Unsqueeze`, `Concat` and `Cast` over shapes and
    /// integer constants, evaluated at import: what exporters write for a
    /// flatten that keeps the dynamic batch (`x.view(x.size(0), -1)`).
    fn shape_arithmetic(&mut self, node: &NodeProto) -> Result<()> {
        let dims: Vec<Option<i64>> = match node.op_type() {
            "Shape" => {
                self.check_attributes(node, &["start", "end"])?;
                let x = self.layer_input(node, 0)?;
                let all: Vec<Option<i64>> = std::iter::once(None)
                    .chain(
                        self.shape(&x)
                            .batch_dims(1)
                            .into_iter()
                            .skip(1)
                            .map(|d| Some(d as i64)),
                    )
                    .collect();
                let rank = all.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let start = clamp(attr_int(node, "start", 0));
                let end = clamp(attr_int(node, "end", rank));
                all.get(start..end.max(start)).unwrap_or_default().to_vec()
            }
            "Gather" => {
                self.check_attributes(node, &["axis"])?;
                if attr_int(node, "axis", 0) != 0 {
                    return Err(self.unsupported_value(
                        node,
                        "pf evaluates Gather on shapes along axis 0 only",
                    ));
                }
                let data = self.dims_input(node, 0, "data")?;
                let indices = self.constant_input(node, 1, "indices")?;
                let indices = indices
                    .ints()
                    .ok_or_else(|| self.unsupported_value(node, "its indices are not integers"))?;
                indices
                    .iter()
                    .map(|&i| {
                        let k = if i < 0 { i + data.len() as i64 } else { i };
                        usize::try_from(k)
                            .ok()
                            .and_then(|k| data.get(k).copied())
                            .ok_or_else(|| {
                                self.unsupported_value(
                                    node,
                                    format!("index {i} is out of range for {} values", data.len()),
                                )
                            })
                    })
                    .collect::<Result<_>>()?
            }
            "Unsqueeze" => {
                self.check_attributes(node, &["axes"])?;
                self.dims_input(node, 0, "data")?
            }
            "Concat" => {
                self.check_attributes(node, &["axis"])?;
                if attr_int(node, "axis", 0) != 0 {
                    return Err(self.unsupported_value(
                        node,
                        "pf evaluates Concat on shapes along axis 0 only",
                    ));
                }
                let mut all = Vec::new();
                for i in 0..node.input.len() {
                    all.extend(self.dims_input(node, i, "input")?);
                }
                all
            }
            _ => {
                // Cast: shapes and integer constants stay what they are.
                self.check_attributes(node, &["to", "saturate"])?;
                self.dims_input(node, 0, "input")?
            }
        };
        if let Some(out) = node.output.first() {
            self.values.insert(out.clone(), Value::Dims(dims));
        }
        Ok(())
    }

    /// `Squeeze` of the unit spatial axes of a `C×1×1` map: a flatten.
    fn squeeze(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["axes"])?;
        let x = self.layer_input(node, 0)?;
        let axes = if self.opset < 13 {
            attr_ints(node, "axes")
        } else if Self::has_input(node, 1) {
            self.constant_input(node, 1, "axes")?.ints()
        } else {
            None
        };
        let unit_map = matches!(self.shape(&x), Shape::Map { h: 1, w: 1, .. });
        let mut axes = axes.unwrap_or_else(|| vec![2, 3]);
        for a in &mut axes {
            if *a < 0 {
                *a += 4;
            }
        }
        axes.sort_unstable();
        if !unit_map || axes != [2, 3] {
            return Err(self.unsupported_value(
                node,
                format!("squeezing axes {axes:?} of a {} tensor is not supported; pf imports a Squeeze of the 1×1 spatial axes of a C×1×1 map", self.shape(&x)),
            ));
        }
        self.push(node, Op::Flatten, vec![x]).map(drop)
    }

    /// A classifier input: refuses a map, which ONNX's Gemm/MatMul would
    /// not take either without a flatten.
    fn vector_features(&self, node: &NodeProto, x: &str) -> Result<usize> {
        match self.shape(x) {
            Shape::Vector { n } => Ok(n),
            s => Err(self.unsupported_value(
                node,
                format!("its input is a {s} map; pf imports Gemm and MatMul on N×features tensors (flatten first)"),
            )),
        }
    }

    fn gemm(&mut self, node: &NodeProto) -> Result<()> {
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

    fn matmul(&mut self, node: &NodeProto) -> Result<()> {
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

    fn softmax(&mut self, node: &NodeProto) -> Result<()> {
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
