//! Shape inference over a [`Graph`].

use super::{Graph, GraphError, Layer, Op, INPUT};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// The shape of one sample flowing along an edge (the batch dimension is
/// implicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Shape {
    /// A feature map, channels × height × width.
    Map {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
    /// A feature vector.
    Vector {
        /// Features.
        n: usize,
    },
}

impl Shape {
    /// Number of values in one sample.
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Map { c, h, w } => c * h * w,
            Shape::Vector { n } => n,
        }
    }

    /// Channels of a map, or features of a vector.
    pub fn channels(&self) -> usize {
        match *self {
            Shape::Map { c, .. } => c,
            Shape::Vector { n } => n,
        }
    }

    /// The dimensions of a batch of `batch` samples of this shape.
    pub fn batch_dims(&self, batch: usize) -> Vec<usize> {
        match *self {
            Shape::Map { c, h, w } => vec![batch, c, h, w],
            Shape::Vector { n } => vec![batch, n],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map { c, h, w } => write!(f, "{c}×{h}×{w}"),
            Shape::Vector { n } => write!(f, "{n}"),
        }
    }
}

/// Output size of a windowed op along one axis, or `None` when the window does
/// not fit.
fn window_out(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let total = padded(size, padding)?;
    if stride == 0 || kernel == 0 || total < kernel {
        return None;
    }
    Some((total - kernel) / stride + 1)
}

/// `size` with `padding` on both sides, or `None` past `usize` (a damaged
/// model's sizes must not overflow).
fn padded(size: usize, padding: usize) -> Option<usize> {
    padding.checked_mul(2)?.checked_add(size)
}

/// Output size of a pooling window along one axis with the size rounded
/// up (`ceil_mode`), and how far its last window runs past the input's
/// trailing padding; `None` when the window does not fit.
///
/// The rule is PyTorch's and ONNX Runtime's: round `(size + 2·padding −
/// kernel) / stride` up, then drop the last window if it would start past
/// the input and its leading padding (it would see padding only).
fn ceil_window_out(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Option<(usize, usize)> {
    window_out(size, kernel, stride, padding)?;
    let total = padded(size, padding)?;
    let mut out = (total - kernel).div_ceil(stride) + 1;
    if (out - 1).checked_mul(stride)? >= size + padding {
        out -= 1;
    }
    let reach = (out - 1).checked_mul(stride)?.checked_add(kernel)?;
    Some((out, reach.saturating_sub(total)))
}

/// The padding a pooling layer applies to a `h×w` input, as `[top, bottom,
/// left, right]`: its symmetric `padding`, plus, with `ceil_mode`, the
/// overhang of the last row and column of windows at the bottom and right.
/// `None` when the window does not fit the input.
pub fn pool_padding(
    [h, w]: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    ceil_mode: bool,
) -> Option<[usize; 4]> {
    let extra = |size: usize, axis: usize| {
        if ceil_mode {
            ceil_window_out(size, kernel[axis], stride[axis], padding[axis]).map(|(_, o)| o)
        } else {
            window_out(size, kernel[axis], stride[axis], padding[axis]).map(|_| 0)
        }
    };
    let (eh, ew) = (extra(h, 0)?, extra(w, 1)?);
    Some([padding[0], padding[0] + eh, padding[1], padding[1] + ew])
}

impl Layer {
    /// The shape this layer outputs for inputs of shapes `ins` (one per
    /// entry of `inputs`, at least one), or why they do not fit.
    pub(crate) fn output_shape(&self, ins: &[Shape]) -> Result<Shape, GraphError> {
        let err = |reason: String| GraphError::Shape {
            layer: self.name.clone(),
            reason,
        };
        let x = ins[0];
        let map = |what: &str| match x {
            Shape::Map { c, h, w } => Ok((c, h, w)),
            Shape::Vector { n } => Err(err(format!(
                "{what} needs a C×H×W feature map but gets a vector of {n}"
            ))),
        };
        let shape = match &self.op {
            Op::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                groups,
                ..
            } => {
                let (c, h, w) = map("conv2d")?;
                if c != *in_channels {
                    return Err(err(format!(
                        "expects {in_channels} input channels but gets {c}"
                    )));
                }
                if *groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
                    return Err(err(format!(
                        "{groups} groups do not divide {in_channels} input and {out_channels} output channels"
                    )));
                }
                let oh = window_out(h, kernel[0], stride[0], padding[0]);
                let ow = window_out(w, kernel[1], stride[1], padding[1]);
                match (oh, ow) {
                    (Some(h), Some(w)) => Shape::Map {
                        c: *out_channels,
                        h,
                        w,
                    },
                    _ => {
                        return Err(err(format!(
                        "kernel {kernel:?} with padding {padding:?} does not fit a {h}×{w} input"
                    )))
                    }
                }
            }
            Op::BatchNorm { channels, .. } => {
                if x.channels() != *channels {
                    return Err(err(format!(
                        "normalises {channels} channels but gets {}",
                        x.channels()
                    )));
                }
                x
            }
            Op::Relu
            | Op::Relu6
            | Op::Sigmoid
            | Op::HardSigmoid { .. }
            | Op::HardSwish
            | Op::Softmax => x,
            Op::Concat => {
                let (mut c, h, w) = map("concatenation")?;
                for other in &ins[1..] {
                    match *other {
                        Shape::Map { c: c2, h: h2, w: w2 } if (h2, w2) == (h, w) => c += c2,
                        _ => {
                            return Err(err(format!(
                                "concatenates a {x} map with {other}; pf joins maps of the same height and width along the channels"
                            )))
                        }
                    }
                }
                Shape::Map { c, h, w }
            }
            Op::ChannelShuffle { groups } => {
                let (c, _, _) = map("channel shuffle")?;
                if *groups == 0 || c % groups != 0 {
                    return Err(err(format!(
                        "shuffles {c} channels in {groups} groups; the groups must divide the channels"
                    )));
                }
                x
            }
            Op::ChannelSlice { start, len } => {
                let (c, h, w) = map("channel slice")?;
                if *len == 0 || start.checked_add(*len).is_none_or(|end| end > c) {
                    return Err(err(format!(
                        "takes channels {start}..{} of {c}; a slice keeps at least one channel of its input",
                        start.saturating_add(*len)
                    )));
                }
                Shape::Map { c: *len, h, w }
            }
            Op::Mul => {
                let y = ins[1];
                match (x, y) {
                    _ if x == y => x,
                    (Shape::Map { c, h: 1, w: 1 }, Shape::Map { c: c2, .. }) if c == c2 => y,
                    (Shape::Map { c: c2, .. }, Shape::Map { c, h: 1, w: 1 }) if c == c2 => x,
                    _ => {
                        return Err(err(format!(
                            "multiplies inputs of shapes {x} and {y}; pf multiplies equal shapes, or a C×1×1 map by a C×H×W one"
                        )))
                    }
                }
            }
            Op::Add => {
                if let Some(other) = ins.iter().find(|s| **s != x) {
                    return Err(err(format!(
                        "adds inputs of different shapes {x} and {other}"
                    )));
                }
                x
            }
            Op::MaxPool {
                kernel,
                stride,
                padding,
                ceil_mode,
            }
            | Op::AvgPool {
                kernel,
                stride,
                padding,
                ceil_mode,
            } => {
                let (c, h, w) = map("pooling")?;
                if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
                    return Err(err(format!(
                        "padding {padding:?} is more than half the window {kernel:?}"
                    )));
                }
                match pool_padding([h, w], *kernel, *stride, *padding, *ceil_mode) {
                    // Every window starts on a stride step of the padded
                    // input and ends inside it.
                    Some([t, b, l, r]) => Shape::Map {
                        c,
                        h: (h + t + b - kernel[0]) / stride[0] + 1,
                        w: (w + l + r - kernel[1]) / stride[1] + 1,
                    },
                    None => {
                        return Err(err(format!(
                            "window {kernel:?} does not fit a {h}×{w} input"
                        )))
                    }
                }
            }
            Op::GlobalAvgPool => {
                let (c, _, _) = map("global average pooling")?;
                Shape::Map { c, h: 1, w: 1 }
            }
            Op::PadChannels { before, after } => {
                let (c, h, w) = map("channel padding")?;
                Shape::Map {
                    c: c + before + after,
                    h,
                    w,
                }
            }
            Op::Flatten => Shape::Vector { n: x.numel() },
            Op::Linear {
                in_features,
                out_features,
                ..
            } => match x {
                Shape::Vector { n } if n == *in_features => Shape::Vector { n: *out_features },
                Shape::Vector { n } => {
                    return Err(err(format!("expects {in_features} features but gets {n}")))
                }
                Shape::Map { .. } => {
                    return Err(err(format!(
                        "expects a vector of {in_features} but gets a {x} map; add a flatten layer"
                    )))
                }
            },
        };
        Ok(shape)
    }
}

impl Graph {
    /// Infers the output shape of every layer, in layer order.
    pub(crate) fn infer_shapes(&self) -> Result<Vec<Shape>, GraphError> {
        let mut known: HashMap<&str, Shape> = HashMap::new();
        known.insert(
            INPUT,
            Shape::Map {
                c: self.input.channels,
                h: self.input.height,
                w: self.input.width,
            },
        );
        let mut out = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let ins: Vec<Shape> = layer.inputs.iter().map(|i| known[i.as_str()]).collect();
            let shape = layer.output_shape(&ins)?;
            known.insert(layer.name.as_str(), shape);
            out.push(shape);
        }
        Ok(out)
    }

    /// Output shapes of every layer, in layer order (validates the graph).
    pub fn shapes(&self) -> Result<Vec<Shape>, GraphError> {
        self.validate()
    }

    /// Shape of a named layer's (or the input's) output.
    pub fn shape_of(&self, shapes: &[Shape], name: &str) -> Shape {
        match self.index_of(name) {
            Some(i) => shapes[i],
            None => Shape::Map {
                c: self.input.channels,
                h: self.input.height,
                w: self.input.width,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes PyTorch's `MaxPool2d(..., ceil_mode=True)` gives.
    #[test]
    fn ceil_mode_rounds_up_but_never_starts_a_window_in_the_padding() {
        // (size, kernel, stride, padding) → (output, overhang)
        let cases = [
            ((112, 3, 2, 0), (56, 1)), // GoogLeNet's first pool at 224×224
            ((55, 3, 2, 0), (27, 0)),  // odd sizes that tile exactly
            ((5, 2, 2, 0), (3, 1)),
            ((4, 2, 3, 1), (2, 0)), // rounding up would start in the padding
            ((3, 3, 1, 0), (1, 0)),
        ];
        for ((size, k, s, p), want) in cases {
            assert_eq!(
                ceil_window_out(size, k, s, p),
                Some(want),
                "{size} {k} {s} {p}"
            );
        }
        assert_eq!(ceil_window_out(2, 3, 1, 0), None);
        assert_eq!(
            pool_padding([5, 4], [2, 2], [2, 2], [0, 0], true),
            Some([0, 1, 0, 0])
        );
        assert_eq!(
            pool_padding([5, 4], [2, 2], [2, 2], [0, 0], false),
            Some([0; 4])
        );
    }
}
