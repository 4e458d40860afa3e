//! Pooling and padding: `MaxPool`/`AveragePool`, `ReduceMean` as global
//! average pooling, and `Pad` of channels.

use super::{attr_float, attr_int, attr_ints, attr_string};
use crate::graph::{Op, Shape};
use crate::onnx::import::Importer;
use crate::onnx::proto::NodeProto;
use anyhow::Result;

impl Importer<'_> {
    pub(super) fn pool(&mut self, node: &NodeProto) -> Result<()> {
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
        // ceil_mode: the output size rounds up and the last window may run
        // past the input's end; what it overhangs is padding.
        let ceil_mode = match attr_int(node, "ceil_mode", 0) {
            0 => false,
            1 => true,
            v => {
                return Err(
                    self.unsupported_value(node, format!("ceil_mode {v} is neither 0 nor 1"))
                )
            }
        };
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
                ceil_mode,
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
                ceil_mode,
            }
        };
        self.push(node, op, vec![x]).map(drop)
    }

    /// `ReduceMean` over the spatial axes: global average pooling, then a
    /// flatten when the reduced axes are dropped (`keepdims` 0).
    pub(super) fn reduce_mean(&mut self, node: &NodeProto) -> Result<()> {
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
    pub(super) fn pad(&mut self, node: &NodeProto) -> Result<()> {
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
}
