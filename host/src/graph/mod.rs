//! The model graph: a named-layer, topologically ordered graph of operations.
//!
//! The graph is pure description: no tensors live here. It is what learners
//! inspect and change, what the exporters translate and what the runtime
//! ([`crate::model`]) executes. Everything that can be derived from it (shapes,
//! MACs, parameters, coupling groups) is computed here, not stored.

mod cost;
mod coupling;
mod preprocessing;
mod quant;
mod shape;

pub use cost::{GraphCost, LayerCost};
pub use coupling::{CouplingGroup, CouplingMap};
pub use preprocessing::Preprocessing;
pub use quant::{LayerQuant, Quantizer};
pub use shape::{pool_padding, Shape};

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Name of the graph's single input, usable in a layer's `inputs`.
pub const INPUT: &str = "input";

/// A model graph: the input it expects and its layers in execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Human-readable name of the architecture (for example `resnet20`).
    pub name: String,
    /// Shape of one input sample, channels first.
    pub input: InputSpec,
    /// Layers in topological order; the last one is the output.
    pub layers: Vec<Layer>,
    /// The normalisation the model's inputs need, when it is the model's
    /// own (an imported model's); `None` for a model that is normalised
    /// with its data set's statistics, as every zoo model is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Preprocessing>,
}

/// Shape of one input sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Number of channels (1 for grey-scale, 3 for RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

/// One named layer of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Unique name; weights are stored as `<name>.weight` and so on.
    pub name: String,
    /// The operation this layer performs.
    pub op: Op,
    /// Names of the layers (or [`INPUT`]) whose outputs feed this layer.
    pub inputs: Vec<String>,
    /// Quantizers a learner attached to this layer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<LayerQuant>,
}

impl Layer {
    /// A plain layer with no compression state.
    pub fn new(name: impl Into<String>, op: Op, inputs: &[&str]) -> Self {
        Layer {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            quant: None,
        }
    }
}

/// An operation of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// 2-D convolution, NCHW, with square or rectangular kernels. `groups ==
    /// in_channels == out_channels` is a depthwise convolution.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel height and width.
        kernel: [usize; 2],
        /// Stride (rows, columns).
        stride: [usize; 2],
        /// Zero padding on each side (rows, columns).
        padding: [usize; 2],
        /// Channel groups.
        groups: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Batch normalisation over the channel dimension.
    BatchNorm {
        /// Number of channels.
        channels: usize,
        /// Added to the variance for numerical stability.
        eps: f64,
        /// Weight of the new batch statistic in the running averages.
        momentum: f64,
    },
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// The logistic function `1 / (1 + e^−x)`.
    Sigmoid,
    /// `max(0, min(1, alpha·x + beta))` (PyTorch's `Hardsigmoid` has alpha
    /// 1/6 and beta 1/2).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x · min(max(x + 3, 0), 6) / 6` (MobileNetV3's activation).
    HardSwish,
    /// Element-wise sum of two or more inputs of the same shape (residual add).
    Add,
    /// Element-wise product of two inputs: of the same shape, or a `C×1×1`
    /// map and a `C×H×W` one, the first broadcast over the second's
    /// positions (squeeze-and-excitation's channel gate). SiLU is
    /// `Mul(x, Sigmoid(x))`.
    Mul,
    /// Feature maps of the same height and width joined along the channels,
    /// in input order (Inception's branches, DenseNet's growing blocks).
    Concat,
    /// ShuffleNet's channel shuffle: the channels, seen as `groups` rows of
    /// `C / groups`, are read out by columns, so channel `i·(C/groups) + j`
    /// moves to `j·groups + i` (PyTorch's `view`, `transpose`, `view`).
    ChannelShuffle {
        /// Rows of the channel matrix; divides the channel count.
        groups: usize,
    },
    /// Channels `start .. start + len` of the input: one part of a `Split`
    /// (ShuffleNet's `chunk`).
    ChannelSlice {
        /// First channel kept.
        start: usize,
        /// Channels kept.
        len: usize,
    },
    /// Max pooling; padded positions never win.
    MaxPool {
        /// Window (rows, columns).
        kernel: [usize; 2],
        /// Stride (rows, columns).
        stride: [usize; 2],
        /// Padding on each side (rows, columns).
        padding: [usize; 2],
        /// Round the output size up, as PyTorch's and ONNX's `ceil_mode`:
        /// a last window that starts inside the input (or its leading
        /// padding) but runs past its end is kept, and what it overhangs
        /// counts as padding (see [`pool_padding`]).
        #[serde(default, skip_serializing_if = "is_false")]
        ceil_mode: bool,
    },
    /// Average pooling; padded positions are not counted in the average.
    AvgPool {
        /// Window (rows, columns).
        kernel: [usize; 2],
        /// Stride (rows, columns).
        stride: [usize; 2],
        /// Padding on each side (rows, columns).
        padding: [usize; 2],
        /// Round the output size up, as PyTorch's and ONNX's `ceil_mode`:
        /// a last window that starts inside the input (or its leading
        /// padding) but runs past its end is kept, and what it overhangs
        /// counts as padding (see [`pool_padding`]).
        #[serde(default, skip_serializing_if = "is_false")]
        ceil_mode: bool,
    },
    /// Mean over the spatial dimensions, giving `C×1×1`.
    GlobalAvgPool,
    /// Zero channels added before and after the existing ones (the
    /// parameter-free "option A" shortcut of CIFAR ResNets).
    PadChannels {
        /// Zero channels in front.
        before: usize,
        /// Zero channels behind.
        after: usize,
    },
    /// Flattens `C×H×W` into a vector of `C·H·W` features.
    Flatten,
    /// Fully connected layer.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Softmax over the features.
    Softmax,
}

impl Op {
    /// Short, stable name of the operation kind (as shown by `pf info`).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d {
                groups,
                in_channels,
                out_channels,
                ..
            } => {
                if *groups > 1 && groups == in_channels && in_channels == out_channels {
                    "dwconv2d"
                } else {
                    "conv2d"
                }
            }
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::Sigmoid => "sigmoid",
            Op::HardSigmoid { .. } => "hard_sigmoid",
            Op::HardSwish => "hard_swish",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Concat => "concat",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::ChannelSlice { .. } => "channel_slice",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::PadChannels { .. } => "pad_channels",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
            Op::Softmax => "softmax",
        }
    }

    /// Whether the op is a depthwise convolution (one filter per channel).
    pub fn is_depthwise(&self) -> bool {
        self.kind() == "dwconv2d"
    }

    /// Names and shapes of the trainable parameters this op owns, relative to
    /// the layer (`weight`, `bias`).
    pub fn parameters(&self) -> Vec<(&'static str, Vec<usize>)> {
        match self {
            Op::Conv2d {
                in_channels,
                out_channels,
                kernel,
                groups,
                bias,
                ..
            } => {
                let mut p = vec![(
                    "weight",
                    vec![*out_channels, in_channels / groups, kernel[0], kernel[1]],
                )];
                if *bias {
                    p.push(("bias", vec![*out_channels]));
                }
                p
            }
            Op::BatchNorm { channels, .. } => {
                vec![("weight", vec![*channels]), ("bias", vec![*channels])]
            }
            Op::Linear {
                in_features,
                out_features,
                bias,
            } => {
                let mut p = vec![("weight", vec![*out_features, *in_features])];
                if *bias {
                    p.push(("bias", vec![*out_features]));
                }
                p
            }
            _ => Vec::new(),
        }
    }

    /// Names and shapes of the non-trainable state this op keeps (batch-norm
    /// running statistics).
    pub fn buffers(&self) -> Vec<(&'static str, Vec<usize>)> {
        match self {
            Op::BatchNorm { channels, .. } => {
                vec![
                    ("running_mean", vec![*channels]),
                    ("running_var", vec![*channels]),
                ]
            }
            _ => Vec::new(),
        }
    }

    /// Whether this op has a weight that masks and quantizers apply to.
    pub fn has_weight(&self) -> bool {
        matches!(self, Op::Conv2d { .. } | Op::Linear { .. })
    }
}

/// Something wrong with a graph's structure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// Two layers share a name.
    #[error("layer name `{0}` is used twice; layer names must be unique")]
    DuplicateName(String),
    /// A layer reads from a layer that does not come before it.
    #[error("layer `{layer}` reads `{input}`, which is not the input or an earlier layer")]
    UnknownInput {
        /// The reading layer.
        layer: String,
        /// The missing input.
        input: String,
    },
    /// A layer has the wrong number of inputs.
    #[error("layer `{layer}` ({kind}) takes {expected} input(s) but lists {found}")]
    Arity {
        /// The layer.
        layer: String,
        /// Its op kind.
        kind: &'static str,
        /// What the op takes.
        expected: &'static str,
        /// What it lists.
        found: usize,
    },
    /// Shapes do not fit together.
    #[error("layer `{layer}`: {reason}")]
    Shape {
        /// The layer.
        layer: String,
        /// What does not fit.
        reason: String,
    },
    /// A layer's quantizer has invalid settings.
    #[error("layer `{layer}`: {reason}")]
    Quantizer {
        /// The layer.
        layer: String,
        /// What is wrong.
        reason: String,
    },
    /// The graph has no layers.
    #[error("the graph has no layers")]
    Empty,
    /// The input preprocessing does not fit the input.
    #[error("{0}")]
    Preprocessing(String),
}

impl Graph {
    /// Looks a layer up by name.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Position of a layer in execution order.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }

    /// Name of the output layer.
    pub fn output(&self) -> &str {
        self.layers.last().map(|l| l.name.as_str()).unwrap_or(INPUT)
    }

    /// Layers that read the output of `name`.
    pub fn consumers(&self, name: &str) -> Vec<&Layer> {
        self.layers
            .iter()
            .filter(|l| l.inputs.iter().any(|i| i == name))
            .collect()
    }

    /// The layer whose output is the output of `name`'s block: following
    /// the batch norm, then the ReLU or ReLU6, that alone read the previous
    /// output (and are not the graph's output). That is the tensor an
    /// integer kernel writes for a convolution or linear layer, with the
    /// batch norm folded and the activation fused.
    pub fn block_output<'a>(&'a self, name: &'a str) -> &'a str {
        let mut end = name;
        for step in [
            (|op: &Op| matches!(op, Op::BatchNorm { .. })) as fn(&Op) -> bool,
            |op: &Op| matches!(op, Op::Relu | Op::Relu6),
        ] {
            if end == self.output() {
                break;
            }
            if let [one] = self.consumers(end).as_slice() {
                if one.inputs.len() == 1 && step(&one.op) {
                    end = one.name.as_str();
                }
            }
        }
        end
    }

    /// Checks names, order, arity and shapes. A graph that passes can be run,
    /// costed and exported.
    pub fn validate(&self) -> Result<Vec<Shape>, GraphError> {
        if self.layers.is_empty() {
            return Err(GraphError::Empty);
        }
        if let Some(p) = &self.preprocessing {
            p.validate(self.input.channels)
                .map_err(GraphError::Preprocessing)?;
        }
        let mut seen: HashSet<&str> = HashSet::new();
        seen.insert(INPUT);
        for layer in &self.layers {
            if layer.name == INPUT || !seen.insert(layer.name.as_str()) {
                return Err(GraphError::DuplicateName(layer.name.clone()));
            }
        }
        let mut earlier: HashSet<&str> = HashSet::new();
        earlier.insert(INPUT);
        for layer in &self.layers {
            let (ok, expected) = match layer.op {
                Op::Add | Op::Concat => (layer.inputs.len() >= 2, "2 or more"),
                Op::Mul => (layer.inputs.len() == 2, "2"),
                _ => (layer.inputs.len() == 1, "1"),
            };
            if !ok {
                return Err(GraphError::Arity {
                    layer: layer.name.clone(),
                    kind: layer.op.kind(),
                    expected,
                    found: layer.inputs.len(),
                });
            }
            for input in &layer.inputs {
                if !earlier.contains(input.as_str()) {
                    return Err(GraphError::UnknownInput {
                        layer: layer.name.clone(),
                        input: input.clone(),
                    });
                }
            }
            earlier.insert(layer.name.as_str());
            for q in layer
                .quant
                .iter()
                .flat_map(|q| q.weight.iter().chain(q.activation.iter()))
            {
                q.validate().map_err(|reason| GraphError::Quantizer {
                    layer: layer.name.clone(),
                    reason,
                })?;
            }
        }
        self.infer_shapes()
    }
}
