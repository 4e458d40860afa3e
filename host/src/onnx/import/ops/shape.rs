//! Shape operators: `Reshape`, the shape arithmetic exporters write for a
//! flatten (`Shape`, `Gather`, `Unsqueeze`, `Concat`, `Cast`), and `Squeeze`.

use super::{attr_int, attr_ints};
use crate::graph::{Op, Shape};
use crate::onnx::import::{Importer, Value};
use crate::onnx::proto::NodeProto;
use anyhow::Result;

impl Importer<'_> {
    /// `Reshape` to `N × features` of a map (or a vector): a flatten.
    pub(super) fn reshape(&mut self, node: &NodeProto) -> Result<()> {
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
    pub(super) fn shape_arithmetic(&mut self, node: &NodeProto) -> Result<()> {
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
    pub(super) fn squeeze(&mut self, node: &NodeProto) -> Result<()> {
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
}
