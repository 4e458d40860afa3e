//! The channel groups a channel-pruning learner can prune.

use pf_sdk::prelude::*;

/// A channel group that channel pruning applies to.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The host's group id.
    pub id: u32,
    /// Channels in the group.
    pub channels: u32,
    /// The one layer that writes the channels.
    pub producer: LayerInfo,
    /// The layers that read them.
    pub consumers: Vec<LayerInfo>,
}

/// Whether the host can sample the features of `l`: an ungrouped
/// convolution or a linear layer.
fn samplable(l: &LayerInfo) -> bool {
    match l.kind {
        LayerKind::Linear => true,
        LayerKind::Conv2d => l.weight_shape.get(1).copied() == Some(l.in_channels()),
        LayerKind::DepthwiseConv2d => false,
    }
}

/// The groups channel pruning applies to (see the module docs), in model
/// order, and why each other group was left alone.
pub fn candidates(model: &Model, layers: &[LayerInfo]) -> (Vec<Candidate>, Vec<String>) {
    let find = |name: &String| layers.iter().find(|l| &l.name == name).cloned();
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for g in model.groups() {
        let what = format!("group {} ({})", g.id, g.producers.join(", "));
        if !g.prunable {
            let why = g.reason.clone().unwrap_or_else(|| "not prunable".into());
            skipped.push(format!("{what}: {why}"));
            continue;
        }
        if g.producers.len() != 1 {
            skipped.push(format!("{what}: tied across a residual add"));
            continue;
        }
        let Some(producer) = find(&g.producers[0]) else {
            continue;
        };
        if producer.kind == LayerKind::DepthwiseConv2d {
            skipped.push(format!("{what}: written by a depthwise convolution"));
            continue;
        }
        let consumers: Vec<LayerInfo> = g.consumers.iter().filter_map(find).collect();
        if consumers.is_empty() || consumers.len() != g.consumers.len() {
            skipped.push(format!("{what}: no weight layer reads it"));
            continue;
        }
        if let Some(c) = consumers
            .iter()
            .find(|c| !samplable(c) || !c.input_prunable)
        {
            skipped.push(format!(
                "{what}: read by `{}`, whose features cannot be sampled",
                c.name
            ));
            continue;
        }
        if g.channels < 2 {
            skipped.push(format!("{what}: one channel"));
            continue;
        }
        found.push(Candidate {
            id: g.id,
            channels: g.channels,
            producer,
            consumers,
        });
    }
    found.sort_by_key(|c| c.producer.index);
    (found, skipped)
}
