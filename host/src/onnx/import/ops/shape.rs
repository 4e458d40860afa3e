//! Shape operators: `Reshape`, the shape arithmetic exporters write for a
//! flatten (`Shape`, `Gather`, `Unsqueeze`, `Concat`, `Cast`), `Squeeze`,
//! `Split` and `Slice` of channels, and ShuffleNet's channel shuffle (`Reshape` to
//! `N×g×C/g×H×W`, `Transpose` of axes 1 and 2, `Reshape` back).

use super::{attr_int, attr_ints};
use crate::graph::{Op, Shape};
use crate::onnx::import::{Importer, Value};
use crate::onnx::proto::NodeProto;
use anyhow::Result;

impl Importer<'_> {
    /// `Reshape` to `N × features` of a map (or a vector): a flatten; or
    /// one of the two of a channel shuffle (see [`Value::Shuffling`]).
    pub(super) fn reshape(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["allowzero"])?;
        if let Value::Shuffling {
            layer,
            groups,
            transposed,
        } = self.value(node, 0)?.clone()
        {
            return self.close_shuffle(node, layer, groups, transposed);
        }
        let x = self.layer_input(node, 0)?;
        if let Some(groups) = self.opens_shuffle(node, &x)? {
            if let Some(out) = node.output.first() {
                self.values.insert(
                    out.clone(),
                    Value::Shuffling {
                        layer: x,
                        groups,
                        transposed: false,
                    },
                );
            }
            return Ok(());
        }
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

    /// The groups `g` when `node` reshapes the `C×H×W` map of `x` to `N ×
    /// g × C/g × H × W` (the batch copied, inferred or the dynamic size),
    /// the first step of a channel shuffle.
    fn opens_shuffle(&self, node: &NodeProto, x: &str) -> Result<Option<usize>> {
        let Shape::Map { c, h, w } = self.shape(x) else {
            return Ok(None);
        };
        let target = self.dims_input(node, 1, "shape")?;
        let [n, Some(g), Some(per), Some(th), Some(tw)] = target[..] else {
            return Ok(None);
        };
        let batch = matches!(n, Some(0) | Some(-1) | Some(1) | None);
        let fits = g > 0
            && per > 0
            && g.checked_mul(per) == Some(c as i64)
            && (th, tw) == (h as i64, w as i64);
        Ok((batch && fits).then_some(g as usize))
    }

    /// The `Transpose` of a channel shuffle: axes 1 and 2 of the 5-D view.
    pub(super) fn transpose(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["perm"])?;
        let Value::Shuffling {
            layer,
            groups,
            transposed: false,
        } = self.value(node, 0)?.clone()
        else {
            return Err(self.unsupported_value(
                node,
                "pf imports a Transpose only inside a channel shuffle (Reshape to N×g×C/g×H×W, Transpose of axes 1 and 2, Reshape back to N×C×H×W, as ShuffleNet writes it); NCHW feature maps are never transposed otherwise",
            ));
        };
        if attr_ints(node, "perm").as_deref() != Some(&[0, 2, 1, 3, 4]) {
            return Err(self.unsupported_value(
                node,
                format!(
                    "perm {:?} is not [0, 2, 1, 3, 4]; in a channel shuffle pf imports the Transpose of the group axes only",
                    attr_ints(node, "perm").unwrap_or_default()
                ),
            ));
        }
        if let Some(out) = node.output.first() {
            self.values.insert(
                out.clone(),
                Value::Shuffling {
                    layer,
                    groups,
                    transposed: true,
                },
            );
        }
        Ok(())
    }

    /// The `Reshape` that ends a channel shuffle: back to `N × C × H × W`.
    fn close_shuffle(
        &mut self,
        node: &NodeProto,
        layer: String,
        groups: usize,
        transposed: bool,
    ) -> Result<()> {
        let (c, h, w) = match self.shape(&layer) {
            Shape::Map { c, h, w } => (c as i64, h as i64, w as i64),
            Shape::Vector { .. } => unreachable!("a shuffle opens on maps only"),
        };
        let target = self.dims_input(node, 1, "shape")?;
        let back = matches!(
            target[..],
            [Some(0) | Some(-1) | Some(1) | None, Some(tc), Some(th), Some(tw)]
                if (tc == c || tc == -1) && (th, tw) == (h, w)
        );
        if !transposed || !back {
            return Err(self.unsupported_value(
                node,
                "a 5-D view of a feature map is imported only as a channel shuffle: Reshape to N×g×C/g×H×W, Transpose of axes 1 and 2, then Reshape back to N×C×H×W",
            ));
        }
        self.push(node, Op::ChannelShuffle { groups }, vec![layer])
            .map(drop)
    }

    /// `Split` of a feature map along the channels (ShuffleNet's `chunk`):
    /// one channel slice per output that is read.
    pub(super) fn split(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &["axis", "split", "num_outputs"])?;
        let x = self.layer_input(node, 0)?;
        let axis = attr_int(node, "axis", 0);
        let Shape::Map { c, .. } = self.shape(&x) else {
            return Err(self.unsupported_value(node, "pf splits feature maps only"));
        };
        if axis != 1 && axis != -3 {
            return Err(self.unsupported_value(
                node,
                format!("it splits along axis {axis}; pf splits NCHW feature maps along the channels (axis 1)"),
            ));
        }
        let parts = node.output.len();
        // The sizes: the `split` input (opset 13 on) or attribute, else
        // equal parts (the last one smaller when they do not divide).
        let sizes: Vec<i64> = if Self::has_input(node, 1) {
            self.constant_input(node, 1, "split")?
                .ints()
                .ok_or_else(|| self.unsupported_value(node, "its split sizes are not integers"))?
        } else if let Some(s) = attr_ints(node, "split") {
            s
        } else {
            let each = c.div_ceil(parts.max(1)) as i64;
            (0..parts as i64)
                .map(|i| each.min(c as i64 - i * each).max(0))
                .collect()
        };
        let total = sizes.iter().try_fold(0i64, |a, &s| a.checked_add(s));
        if sizes.len() != parts || sizes.iter().any(|&s| s <= 0) || total != Some(c as i64) {
            return Err(self.unsupported_value(
                node,
                format!("split sizes {sizes:?} for {parts} outputs do not cut {c} channels into non-empty parts"),
            ));
        }
        let mut start = 0;
        for (i, (out, &len)) in node.output.iter().zip(&sizes).enumerate() {
            let len = len as usize;
            if !out.is_empty() && self.readers.contains_key(out) {
                // Each part is named after its output (the node's name is
                // shared by all of them).
                let base = match crate::onnx::import::clean_name(out) {
                    n if !n.is_empty() => n,
                    _ => format!("{}_{i}", crate::onnx::import::clean_name(node.name())),
                };
                let op = Op::ChannelSlice { start, len };
                self.push_named(node, base, op, vec![x.clone()], Some(out.clone()))?;
            }
            start += len;
        }
        Ok(())
    }

    /// `Slice` of a feature map's channels (`x[:, a:b]`, and what pf
    /// exports a channel slice as): starts, ends and axes as inputs (opset
    /// 10 on), steps of 1.
    pub(super) fn slice(&mut self, node: &NodeProto) -> Result<()> {
        self.check_attributes(node, &[])?;
        let x = self.layer_input(node, 0)?;
        let Shape::Map { c, .. } = self.shape(&x) else {
            return Err(self.unsupported_value(node, "pf slices the channels of feature maps only"));
        };
        let ints = |i: usize, what: &str| -> Result<Vec<i64>> {
            self.constant_input(node, i, what)?
                .ints()
                .ok_or_else(|| self.unsupported_value(node, format!("its {what} are not integers")))
        };
        let (starts, ends) = (ints(1, "starts")?, ints(2, "ends")?);
        let axes = if Self::has_input(node, 3) {
            ints(3, "axes")?
        } else {
            vec![0]
        };
        let steps = if Self::has_input(node, 4) {
            ints(4, "steps")?
        } else {
            vec![1]
        };
        let (&[start], &[end], &[axis], &[1]) = (&starts[..], &ends[..], &axes[..], &steps[..])
        else {
            return Err(self.unsupported_value(
                node,
                format!("it slices axes {axes:?} with steps {steps:?}; pf imports a Slice of the channels (axis 1) with step 1"),
            ));
        };
        if axis != 1 && axis != -3 {
            return Err(self.unsupported_value(
                node,
                format!("it slices axis {axis}; pf imports a Slice of the channels (axis 1)"),
            ));
        }
        // Negative positions count from the end; both clamp to the size.
        let at = |v: i64| (if v < 0 { v + c as i64 } else { v }).clamp(0, c as i64) as usize;
        let (start, end) = (at(start), at(end));
        if end <= start {
            return Err(self
                .unsupported_value(node, format!("it keeps no channel ({start}..{end} of {c})")));
        }
        let op = Op::ChannelSlice {
            start,
            len: end - start,
        };
        self.push(node, op, vec![x]).map(drop)
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
            "Add" | "Sub" | "Mul" | "Div" => {
                // `channels // groups` and the like, as the legacy exporter
                // writes them for ShuffleNet's views and chunks; a scalar
                // operand applies to every entry.
                self.check_attributes(node, &[])?;
                let (a, b) = (
                    self.dims_input(node, 0, "input")?,
                    self.dims_input(node, 1, "input")?,
                );
                let n = match (a.len(), b.len()) {
                    (x, y) if x == y => x,
                    (1, y) => y,
                    (x, 1) => x,
                    (x, y) => {
                        return Err(self.unsupported_value(
                            node,
                            format!(
                                "its operands have {x} and {y} entries, which do not broadcast"
                            ),
                        ))
                    }
                };
                let at = |v: &[Option<i64>], i: usize| if v.len() == 1 { v[0] } else { v[i] };
                let mut dims = Vec::with_capacity(n);
                for i in 0..n {
                    let (x, y) = (at(&a, i), at(&b, i));
                    let value = match (x, y) {
                        (Some(x), Some(y)) => Some(
                            match node.op_type() {
                                "Add" => x.checked_add(y),
                                "Sub" => x.checked_sub(y),
                                "Mul" => x.checked_mul(y),
                                // ONNX's integer division truncates.
                                _ => x.checked_div(y),
                            }
                            .ok_or_else(|| {
                                self.unsupported_value(
                                    node,
                                    format!(
                                        "{} of {x} and {y} has no integer result",
                                        node.op_type()
                                    ),
                                )
                            })?,
                        ),
                        // The dynamic batch size stays unknown.
                        _ => None,
                    };
                    dims.push(value);
                }
                dims
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
