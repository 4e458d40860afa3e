//! The coupling map: which layers' channels must be pruned together.
//!
//! Every edge of the graph carries a set of channels. Layers that keep the
//! channel count (batch norm, activations, pooling, depthwise convolutions)
//! pass their input's channels through; a residual add ties all its inputs'
//! channels into one set. A *group* is such a set: removing channel `k` of a
//! group removes output channel `k` from every producer, channel `k` from every
//! follower (batch norms, depthwise convs) and input channel `k` from every
//! consumer.

use super::{Graph, GraphError, Op, INPUT};
use serde::Serialize;
use std::collections::HashMap;

/// A set of channels that must be pruned together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouplingGroup {
    /// Number of channels.
    pub channels: usize,
    /// Convolutions and linear layers whose output channels form the group.
    pub producers: Vec<String>,
    /// Batch norms and depthwise convolutions that carry the channels through.
    pub followers: Vec<String>,
    /// Convolutions and linear layers that read the channels as input.
    pub consumers: Vec<String>,
    /// Whether the group can be pruned; if not, `reason` says why.
    pub prunable: bool,
    /// Why the group cannot be pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// All coupling groups of a graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouplingMap {
    /// The groups, in order of first appearance.
    pub groups: Vec<CouplingGroup>,
    /// For each layer, the index of the group its output belongs to.
    pub layer_group: HashMap<String, usize>,
}

impl CouplingMap {
    /// The group a layer's output channels belong to.
    pub fn group_of(&self, layer: &str) -> Option<&CouplingGroup> {
        self.layer_group.get(layer).map(|&g| &self.groups[g])
    }
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn add(&mut self) -> usize {
        self.0.push(self.0.len());
        self.0.len() - 1
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[b.max(a)] = a.min(b);
        }
    }
}

impl Graph {
    /// Computes which layers' channels are coupled.
    pub fn coupling(&self) -> Result<CouplingMap, GraphError> {
        let shapes = self.validate()?;
        let mut uf = UnionFind(Vec::new());
        let mut node_of: HashMap<&str, usize> = HashMap::new();
        // Per node: (role, layer) entries and blocking reasons, merged later.
        let mut roles: Vec<(usize, u8, &str)> = Vec::new();
        let mut blocked: Vec<(usize, String)> = Vec::new();
        let input = uf.add();
        node_of.insert(INPUT, input);
        blocked.push((
            input,
            "the model's input channels are fixed by the data".into(),
        ));
        const PRODUCER: u8 = 0;
        const FOLLOWER: u8 = 1;
        const CONSUMER: u8 = 2;
        for layer in &self.layers {
            let name = layer.name.as_str();
            let src = node_of[layer.inputs[0].as_str()];
            let node = match &layer.op {
                Op::Conv2d { groups, .. } if layer.op.is_depthwise() || *groups == 1 => {
                    if layer.op.is_depthwise() {
                        roles.push((src, FOLLOWER, name));
                        src
                    } else {
                        roles.push((src, CONSUMER, name));
                        let n = uf.add();
                        roles.push((n, PRODUCER, name));
                        n
                    }
                }
                Op::Conv2d { groups, .. } => {
                    roles.push((src, CONSUMER, name));
                    blocked.push((
                        src,
                        format!("read by grouped convolution `{name}` ({groups} groups)"),
                    ));
                    let n = uf.add();
                    roles.push((n, PRODUCER, name));
                    blocked.push((
                        n,
                        format!("produced by grouped convolution `{name}` ({groups} groups)"),
                    ));
                    n
                }
                Op::Linear { .. } => {
                    roles.push((src, CONSUMER, name));
                    let n = uf.add();
                    roles.push((n, PRODUCER, name));
                    n
                }
                Op::BatchNorm { .. } => {
                    roles.push((src, FOLLOWER, name));
                    src
                }
                // A product couples its inputs' channels as a sum does
                // (a squeeze-and-excitation gate follows its map's channels).
                Op::Add | Op::Mul => {
                    for other in &layer.inputs[1..] {
                        uf.union(src, node_of[other.as_str()]);
                    }
                    src
                }
                // The joined channels come from several layers: a consumer's
                // input channel k belongs to one of them, by position. pf
                // does not prune through that yet, so the inputs and the
                // result are blocked.
                Op::Concat => {
                    for input in &layer.inputs {
                        blocked.push((
                            node_of[input.as_str()],
                            format!(
                                "concatenated by `{name}`, which pf does not prune through yet"
                            ),
                        ));
                    }
                    let n = uf.add();
                    blocked.push((n, format!("joined from several layers by `{name}`")));
                    n
                }
                // A shuffle moves channels and a slice takes some of them:
                // pruning would have to follow their positions.
                Op::ChannelShuffle { .. } | Op::ChannelSlice { .. } => {
                    let what = match layer.op {
                        Op::ChannelShuffle { .. } => "shuffled",
                        _ => "split",
                    };
                    blocked.push((
                        src,
                        format!("{what} by `{name}`, which pf does not prune through yet"),
                    ));
                    let n = uf.add();
                    blocked.push((
                        n,
                        format!("{what} by `{name}` from another layer's channels"),
                    ));
                    n
                }
                Op::PadChannels { .. } => {
                    blocked.push((
                        src,
                        format!("zero-padded by `{name}`, which fixes channel positions"),
                    ));
                    let n = uf.add();
                    blocked.push((n, format!("holds zero channels added by `{name}`")));
                    n
                }
                Op::Relu
                | Op::Relu6
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Flatten
                | Op::Softmax => src,
            };
            node_of.insert(name, node);
        }
        blocked.push((
            node_of[self.output()],
            "the model's output is fixed by the number of classes".into(),
        ));

        let mut root_index: HashMap<usize, usize> = HashMap::new();
        let mut groups: Vec<CouplingGroup> = Vec::new();
        let mut layer_group = HashMap::new();
        let group_for = |uf: &mut UnionFind,
                         node: usize,
                         channels: usize,
                         groups: &mut Vec<CouplingGroup>,
                         root_index: &mut HashMap<usize, usize>| {
            let root = uf.find(node);
            *root_index.entry(root).or_insert_with(|| {
                groups.push(CouplingGroup {
                    channels,
                    producers: vec![],
                    followers: vec![],
                    consumers: vec![],
                    prunable: true,
                    reason: None,
                });
                groups.len() - 1
            })
        };
        let input_channels = self.input.channels;
        group_for(&mut uf, input, input_channels, &mut groups, &mut root_index);
        for (layer, shape) in self.layers.iter().zip(&shapes) {
            let node = node_of[layer.name.as_str()];
            // A flatten joins its input's group, which already exists, so the
            // group keeps counting channels rather than flattened features.
            let g = group_for(
                &mut uf,
                node,
                shape.channels(),
                &mut groups,
                &mut root_index,
            );
            layer_group.insert(layer.name.clone(), g);
        }
        for (node, role, name) in roles {
            let g = root_index[&uf.find(node)];
            let list = match role {
                PRODUCER => &mut groups[g].producers,
                FOLLOWER => &mut groups[g].followers,
                _ => &mut groups[g].consumers,
            };
            list.push(name.to_string());
        }
        for (node, reason) in blocked {
            let g = root_index[&uf.find(node)];
            if groups[g].prunable {
                groups[g].prunable = false;
                groups[g].reason = Some(reason);
            }
        }
        Ok(CouplingMap {
            groups,
            layer_group,
        })
    }
}
