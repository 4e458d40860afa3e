//! Convolutions and batch normalization, with the padding and strides
//! they share with pooling.

use super::{attr_float, attr_int, attr_ints, attr_string};
use crate::graph::{Op, Shape};
use crate::onnx::import::constant::decimal;
use crate::onnx::import::Importer;
use crate::onnx::proto::NodeProto;
use anyhow::Result;

impl Importer<'_> {
    /// Symmetric padding (rows, columns) from `pads`/`auto_pad`, for a
    /// window of `kernel` with `stride` over `input`.
    pub(super) fn padding(
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
    pub(super) fn strides(&self, node: &NodeProto) -> Result<[usize; 2]> {
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

    pub(super) fn conv(&mut self, node: &NodeProto) -> Result<()> {
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

    pub(super) fn batch_norm(&mut self, node: &NodeProto) -> Result<()> {
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
}
