//! ONNX → pf: maps an ONNX graph onto pf's model graph.
//!
//! The importer walks the nodes in their (topological) order and turns each
//! into a pf layer, reading every operator and attribute by ONNX's own
//! semantics:
//!
//! - `Conv` (groups included), `BatchNormalization`, `Relu`, `Clip` (as
//!   ReLU6 or ReLU), `Sigmoid`, `HardSigmoid`, `HardSwish`, `Add` and
//!   `Sum`, `Mul` of two computed tensors, `Concat` of feature maps along
//!   the channels, `MaxPool`, `AveragePool`,
//!   `GlobalAveragePool`, `Pad` of channels only (zero channels),
//!   `Flatten`, `Reshape` and `Squeeze` that flatten a map before a
//!   classifier, `Gemm` (either layout of B), `MatMul` (with a following
//!   `Add` of a constant as its bias), `Softmax`;
//! - `Identity` and inference-mode `Dropout` pass their input on, and
//!   `Constant` nodes and initializers become constants that the layers
//!   reading them take as weights.
//!
//! Anything else (an operator, an attribute, or an attribute value pf's
//! layers cannot express, such as dilation or asymmetric padding) is an
//! error that names the node, its operator and the opset, and says what pf
//! supports. Nodes whose outputs do not reach the graph's output are
//! dropped.

use super::proto::{
    self, tensor_proto::DataType, tensor_shape_proto, type_proto, ModelProto, NodeProto,
};
use crate::graph::{Graph, InputSpec, Layer, Op, Preprocessing, Shape, INPUT};
use crate::model::Model;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

mod constant;
mod external;
mod ops;

use constant::{constant, Constant};

/// The ONNX operators the importer maps, for messages.
pub const SUPPORTED_OPS: &str = "Conv, BatchNormalization, Relu, Clip (0..6 or 0..∞), Sigmoid, \
HardSigmoid, HardSwish, Add, Sum, Mul (of two computed tensors), Concat (of feature maps along channels), \
MaxPool, AveragePool, GlobalAveragePool, ReduceMean (spatial), Pad (channels only), Flatten, Reshape/Squeeze (to \
N×features), Split and Slice (of channels), Reshape-Transpose-Reshape (a channel shuffle), Gemm, MatMul, Softmax, Identity, Dropout, Constant, and Shape, Gather, Unsqueeze, \
Concat, Cast on shapes (for Reshape targets)";

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The shape of one input sample, for a model whose input has symbolic
    /// (dynamic) channels, height or width. A model with a fixed shape must
    /// agree with it.
    pub input_shape: Option<InputSpec>,
    /// The model's own input normalisation (`pf import --mean --std`),
    /// stored in its graph. One value serves every channel. Without it, a
    /// file that pf exported with a preprocessing gets it back from its
    /// metadata.
    pub preprocessing: Option<Preprocessing>,
}

/// An imported model and what the file said about itself.
pub struct Imported {
    /// The model, ready to train, evaluate, compress and export.
    pub model: Model,
    /// The default-domain opset the file declares.
    pub opset: i64,
    /// The program that wrote the file (`producer_name` and version).
    pub producer: String,
    /// Nodes that became no layer of their own (`Identity`, `Dropout`,
    /// `Constant`, biases folded into the layer before them, unused
    /// branches).
    pub folded: usize,
}

/// Imports an ONNX file.
pub fn import_file(path: &Path, opts: &ImportOptions, device: &Device) -> Result<Imported> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let source = path.display().to_string();
    let mut model = decode(&bytes, &source)?;
    external::resolve(&mut model, path)?;
    import_model(&model, &source, &stem, opts, device)
}

/// Imports an ONNX model from its bytes. `source` names them in errors;
/// `fallback_name` names the model when the graph has no name. Weights in
/// external data files are read only by [`import_file`], which knows the
/// model's folder.
pub fn import_bytes(
    bytes: &[u8],
    source: &str,
    fallback_name: &str,
    opts: &ImportOptions,
    device: &Device,
) -> Result<Imported> {
    import_model(&decode(bytes, source)?, source, fallback_name, opts, device)
}

fn decode(bytes: &[u8], source: &str) -> Result<ModelProto> {
    ModelProto::decode(bytes).map_err(|e| {
        anyhow!("{source} is not a valid ONNX file: the protobuf does not decode ({e}); the file is damaged or is not ONNX")
    })
}

fn import_model(
    model: &ModelProto,
    source: &str,
    fallback_name: &str,
    opts: &ImportOptions,
    device: &Device,
) -> Result<Imported> {
    let graph = model.graph.as_ref().ok_or_else(|| {
        anyhow!("{source} is not a valid ONNX file: it holds no graph; the file is damaged or is not ONNX")
    })?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain(), "" | "ai.onnx"))
        .map(|o| o.version())
        .ok_or_else(|| {
            anyhow!("{source} declares no version of the default ONNX operator set (opset_import); re-export it with an opset")
        })?;
    let producer = format!("{} {}", model.producer_name(), model.producer_version())
        .trim()
        .to_string();
    let name = match graph.name() {
        "" => fallback_name.to_string(),
        n => n.to_string(),
    };
    let mut im = Importer {
        source,
        opset,
        values: HashMap::new(),
        layers: Vec::new(),
        weights: HashMap::new(),
        names: HashSet::from([INPUT.to_string()]),
        shapes: HashMap::new(),
        readers: HashMap::new(),
        input: InputSpec {
            channels: 0,
            height: 0,
            width: 0,
        },
        name,
    };
    for t in &graph.initializer {
        let c = constant(t).with_context(|| format!("{source}: initializer `{}`", t.name()))?;
        im.values.insert(t.name().to_string(), Value::Constant(c));
    }
    im.input = im.read_input(graph, opts)?;
    for node in &graph.node {
        for i in &node.input {
            *im.readers.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *im.readers.entry(o.name().to_string()).or_default() += 1;
    }
    for node in &graph.node {
        im.node(node)?;
    }
    let [output] = graph.output.as_slice() else {
        bail!(
            "{source}: the graph has {} outputs; pf models have exactly one (the logits)",
            graph.output.len()
        );
    };
    let out = match im.values.get(output.name()) {
        Some(Value::Layer(l)) if l != INPUT => l.clone(),
        Some(_) => bail!(
            "{source}: the graph's output `{}` is a constant or the input itself, not a computed layer",
            output.name()
        ),
        None => bail!(
            "{source}: no node produces the graph's output `{}`",
            output.name()
        ),
    };
    im.keep_ancestors_of(&out);
    let folded = graph.node.len().saturating_sub(im.layers.len());
    let preprocessing = preprocessing(model, opts, im.input.channels, source)?;
    let graph = Graph {
        preprocessing,
        name: im.name.clone(),
        input: im.input,
        layers: im.layers,
    };
    let tensors: HashMap<String, Tensor> = im
        .weights
        .into_iter()
        .filter(|(k, _)| {
            let layer = k.rsplit_once('.').map(|(l, _)| l).unwrap_or(k);
            graph.layer(layer).is_some()
        })
        .map(|(k, (values, dims))| Ok((k, Tensor::from_vec(values, dims, device)?)))
        .collect::<Result<_>>()?;
    let model = Model::from_tensors(graph, tensors, device, source)?;
    Ok(Imported {
        model,
        opset,
        producer,
        folded,
    })
}

/// What an ONNX tensor name stands for while importing.
#[derive(Debug, Clone)]
enum Value {
    /// The output of a pf layer (or [`INPUT`]).
    Layer(String),
    /// A constant.
    Constant(Constant),
    /// Shape arithmetic (`Shape`, `Gather`, `Concat`, ... as exporters
    /// write for `x.view(x.size(0), -1)`): a 1-D integer tensor whose
    /// entries are known, or `None` where it is the dynamic batch size.
    Dims(Vec<Option<i64>>),
    /// A channel shuffle under way (ShuffleNet's `view`, `transpose`,
    /// `view`): `layer`'s map seen as `N × groups × C/groups × H × W`, after
    /// the `Transpose` of axes 1 and 2 once `transposed`. Only the closing
    /// `Reshape` back to `N × C × H × W` reads it.
    Shuffling {
        layer: String,
        groups: usize,
        transposed: bool,
    },
}

/// A layer name from a node: its name (or first output), with characters
/// other than letters, digits, `_`, `.` and `-` replaced by `_`.
fn clean_name(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_string()
}

struct Importer<'a> {
    source: &'a str,
    opset: i64,
    /// What every ONNX tensor name seen so far stands for.
    values: HashMap<String, Value>,
    layers: Vec<Layer>,
    /// Tensors of the layers, keyed `<layer>.<name>`: values and shape.
    weights: HashMap<String, (Vec<f32>, Vec<usize>)>,
    /// Layer names taken.
    names: HashSet<String>,
    /// Output shape of every layer (and the input).
    shapes: HashMap<String, Shape>,
    /// How many nodes (and graph outputs) read each ONNX tensor.
    readers: HashMap<String, usize>,
    input: InputSpec,
    name: String,
}

/// A node, for messages: "node `conv1` (Conv, opset 13)".
/// The model's preprocessing: the one given (one value broadcast to every
/// channel), else the one pf's ONNX export recorded in the metadata.
fn preprocessing(
    model: &ModelProto,
    opts: &ImportOptions,
    channels: usize,
    source: &str,
) -> Result<Option<Preprocessing>> {
    let p = match &opts.preprocessing {
        Some(p) => {
            let widen = |v: &Vec<f32>| match v.as_slice() {
                [one] => vec![*one; channels],
                _ => v.clone(),
            };
            let p = Preprocessing {
                mean: widen(&p.mean),
                std: widen(&p.std),
            };
            p.validate(channels)
                .map_err(|e| anyhow!("--mean/--std: {e}; give one value per channel of {source}'s input, or one for all"))?;
            return Ok(Some(p));
        }
        None => {
            let meta = |key: &str| {
                model
                    .metadata_props
                    .iter()
                    .find(|kv| kv.key() == key)
                    .map(|kv| kv.value())
            };
            let (Some(mean), Some(std)) = (meta(MEAN_KEY), meta(STD_KEY)) else {
                return Ok(None);
            };
            let list = |key: &str, v: &str| -> Result<Vec<f32>> {
                v.split(',')
                    .map(|x| x.trim().parse::<f32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| anyhow!("{source}: its metadata `{key}` is not a list of numbers"))
            };
            Preprocessing {
                mean: list(MEAN_KEY, mean)?,
                std: list(STD_KEY, std)?,
            }
        }
    };
    p.validate(channels)
        .map_err(|e| anyhow!("{source}: its metadata `{MEAN_KEY}`/`{STD_KEY}`: {e}"))?;
    Ok(Some(p))
}

/// The metadata keys under which pf's ONNX export records a model's own
/// input normalisation.
pub const MEAN_KEY: &str = "pf.input.mean";
/// See [`MEAN_KEY`].
pub const STD_KEY: &str = "pf.input.std";

fn describe(node: &NodeProto, opset: i64) -> String {
    let name = match node.name() {
        "" => format!("with output `{}`", node.output.first().map_or("", |s| s)),
        n => format!("`{n}`"),
    };
    format!("node {name} ({}, opset {opset})", node.op_type())
}

impl Importer<'_> {
    fn here(&self, node: &NodeProto) -> String {
        format!("{}: {}", self.source, describe(node, self.opset))
    }

    /// The one graph input that is not an initializer, as pf's input spec.
    fn read_input(&mut self, graph: &proto::GraphProto, opts: &ImportOptions) -> Result<InputSpec> {
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !self.values.contains_key(i.name()))
            .collect();
        let [input] = inputs.as_slice() else {
            bail!(
                "{}: the graph has {} inputs ({}); pf models take one image batch",
                self.source,
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => t,
            _ => bail!(
                "{}: the input `{}` is not a tensor",
                self.source,
                input.name()
            ),
        };
        if tensor.elem_type() != DataType::Float as i32 {
            bail!(
                "{}: the input `{}` has element type {}; pf imports models with float32 inputs",
                self.source,
                input.name(),
                DataType::try_from(tensor.elem_type())
                    .map(|d| d.as_str_name())
                    .unwrap_or("unknown")
            );
        }
        let dims: Vec<Option<usize>> = tensor
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => {
                            Some(v as usize)
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if dims.len() != 4 {
            bail!(
                "{}: the input `{}` has {} dimensions; pf imports image models whose input is N×C×H×W",
                self.source,
                input.name(),
                dims.len()
            );
        }
        let spec = match (dims[1], dims[2], dims[3], opts.input_shape) {
            (Some(c), Some(h), Some(w), given) => {
                let spec = InputSpec {
                    channels: c,
                    height: h,
                    width: w,
                };
                if let Some(g) = given.filter(|g| *g != spec) {
                    bail!(
                        "{}: --input-shape {}x{}x{} contradicts the model's fixed input {c}×{h}×{w}; leave it out",
                        self.source,
                        g.channels,
                        g.height,
                        g.width
                    );
                }
                spec
            }
            (c, h, w, Some(g)) => {
                for (fixed, given, what) in [
                    (c, g.channels, "channels"),
                    (h, g.height, "height"),
                    (w, g.width, "width"),
                ] {
                    if fixed.is_some_and(|f| f != given) {
                        bail!(
                            "{}: --input-shape gives {what} {given} but the model fixes it at {}",
                            self.source,
                            fixed.unwrap_or(0)
                        );
                    }
                }
                g
            }
            _ => {
                let shown: Vec<String> = tensor
                    .shape
                    .iter()
                    .flat_map(|s| &s.dim)
                    .map(|d| match &d.value {
                        Some(tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                            v.to_string()
                        }
                        Some(tensor_shape_proto::dimension::Value::DimParam(p))
                            if !p.is_empty() =>
                        {
                            p.clone()
                        }
                        _ => "?".into(),
                    })
                    .collect();
                bail!(
                    "{}: the input `{}` has a dynamic shape [{}]; pass the size of one sample with --input-shape CxHxW (for example --input-shape 3x32x32)",
                    self.source,
                    input.name(),
                    shown.join(", ")
                );
            }
        };
        self.values
            .insert(input.name().to_string(), Value::Layer(INPUT.into()));
        self.shapes.insert(
            INPUT.into(),
            Shape::Map {
                c: spec.channels,
                h: spec.height,
                w: spec.width,
            },
        );
        Ok(spec)
    }

    /// The layer or constant an input of `node` refers to.
    fn value(&self, node: &NodeProto, i: usize) -> Result<&Value> {
        let name = node
            .input
            .get(i)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow!("{}: input {i} is missing", self.here(node)))?;
        self.values.get(name).ok_or_else(|| {
            anyhow!(
                "{}: reads `{name}`, which no earlier node, initializer or graph input produces",
                self.here(node)
            )
        })
    }

    /// Whether `node` has a non-empty input `i`.
    fn has_input(node: &NodeProto, i: usize) -> bool {
        node.input.get(i).is_some_and(|n| !n.is_empty())
    }

    /// The pf layer input `i` of `node` is the output of.
    fn layer_input(&self, node: &NodeProto, i: usize) -> Result<String> {
        match self.value(node, i)? {
            Value::Layer(l) => Ok(l.clone()),
            Value::Constant(_) => bail!(
                "{}: input {i} (`{}`) is a constant where pf needs a computed tensor; pf folds constants only into weights",
                self.here(node),
                node.input[i]
            ),
            Value::Dims(_) => bail!(
                "{}: input {i} (`{}`) is computed from tensor shapes where pf needs a computed tensor; pf evaluates shape arithmetic only for Reshape targets",
                self.here(node),
                node.input[i]
            ),
            Value::Shuffling { .. } => bail!(
                "{}: input {i} (`{}`) is a 5-D view of a feature map; pf imports such a view only as part of a channel shuffle (Reshape to N×g×C/g×H×W, Transpose of axes 1 and 2, Reshape back to N×C×H×W, as ShuffleNet writes it)",
                self.here(node),
                node.input[i]
            ),
        }
    }

    /// Input `i` of `node` as integers that may include the dynamic batch
    /// size (`None`): a constant or shape arithmetic.
    fn dims_input(&self, node: &NodeProto, i: usize, what: &str) -> Result<Vec<Option<i64>>> {
        match self.value(node, i)? {
            Value::Dims(d) => Ok(d.clone()),
            Value::Constant(c) => c
                .ints()
                .map(|v| v.into_iter().map(Some).collect())
                .ok_or_else(|| anyhow!("{}: its {what} is not integers", self.here(node))),
            Value::Layer(_) | Value::Shuffling { .. } => bail!(
                "{}: its {what} (`{}`) is a computed tensor; pf evaluates {} only on shapes and constants",
                self.here(node),
                node.input[i],
                node.op_type()
            ),
        }
    }

    /// The constant input `i` of `node` is.
    fn constant_input(&self, node: &NodeProto, i: usize, what: &str) -> Result<Constant> {
        match self.value(node, i)? {
            Value::Constant(c) => Ok(c.clone()),
            Value::Dims(d) if d.iter().all(Option::is_some) => Ok(Constant {
                dims: vec![d.len()],
                values: constant::Values::Int(d.iter().map(|v| v.unwrap_or(0)).collect()),
            }),
            Value::Layer(_) | Value::Dims(_) | Value::Shuffling { .. } => bail!(
                "{}: its {what} (`{}`) is computed in the graph; pf needs it as an initializer or Constant",
                self.here(node),
                node.input[i]
            ),
        }
    }

    fn shape(&self, layer: &str) -> Shape {
        self.shapes[layer]
    }

    /// Refuses attributes outside `known`.
    fn check_attributes(&self, node: &NodeProto, known: &[&str]) -> Result<()> {
        if let Some(a) = node.attribute.iter().find(|a| !known.contains(&a.name())) {
            bail!(
                "{}: attribute `{}` is not supported (pf reads {} here)",
                self.here(node),
                a.name(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        Ok(())
    }

    fn unsupported_value(&self, node: &NodeProto, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}: {what}", self.here(node))
    }

    /// Adds a layer for `node`, named after it, and maps the node's first
    /// output to it. Checks its shape at once, so errors name the node.
    fn push(&mut self, node: &NodeProto, op: Op, inputs: Vec<String>) -> Result<String> {
        let base = match clean_name(node.name()) {
            n if !n.is_empty() => n,
            _ => match clean_name(node.output.first().map_or("", |s| s)) {
                n if !n.is_empty() => n,
                _ => node.op_type().to_ascii_lowercase(),
            },
        };
        let output = node.output.first().cloned();
        self.push_named(node, base, op, inputs, output)
    }

    /// Adds a layer for `node` named `base` (or `base_K` when taken) and
    /// maps `output` to it, as [`Importer::push`] does.
    fn push_named(
        &mut self,
        node: &NodeProto,
        base: String,
        op: Op,
        inputs: Vec<String>,
        output: Option<String>,
    ) -> Result<String> {
        let mut name = base.clone();
        let mut k = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        let layer = Layer {
            name: name.clone(),
            op,
            inputs,
            quant: None,
        };
        // The new layer's shape, checked by the graph's own rules, so that
        // every error names this node.
        let ins: Vec<Shape> = layer.inputs.iter().map(|i| self.shape(i)).collect();
        let shape = layer
            .output_shape(&ins)
            .map_err(|e| anyhow!("{}: {e}", self.here(node)))?;
        self.shapes.insert(name.clone(), shape);
        self.names.insert(name.clone());
        self.layers.push(layer);
        if let Some(out) = output {
            self.values.insert(out, Value::Layer(name.clone()));
        }
        Ok(name)
    }

    fn weight(&mut self, layer: &str, key: &str, values: Vec<f32>, dims: Vec<usize>) {
        self.weights
            .insert(format!("{layer}.{key}"), (values, dims));
    }

    /// Drops the layers the output does not depend on.
    fn keep_ancestors_of(&mut self, output: &str) {
        let mut needed: HashSet<String> = HashSet::from([output.to_string()]);
        for layer in self.layers.iter().rev() {
            if needed.contains(&layer.name) {
                needed.extend(layer.inputs.iter().cloned());
            }
        }
        // The layers are in topological order, so the output stays last.
        self.layers.retain(|l| needed.contains(&l.name));
    }
}
