//! Multiply-accumulates, parameters and parameter bytes, per layer and in
//! total.
//!
//! MACs count the multiply-accumulates of convolutions and linear layers, the
//! convention of the published figures (ResNet, MobileNet). Element-wise ops,
//! batch norm and pooling count zero.

use super::{Graph, GraphError, Op, Shape};
use serde::Serialize;

/// Cost of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerCost {
    /// Layer name.
    pub name: String,
    /// Op kind.
    pub kind: &'static str,
    /// Output shape of one sample.
    pub output: Shape,
    /// Multiply-accumulates for one sample.
    pub macs: u64,
    /// Trainable parameters.
    pub params: u64,
    /// Bytes the parameters take when stored (32-bit floats unless the layer
    /// carries a quantizer).
    pub param_bytes: u64,
}

/// Cost of a whole graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphCost {
    /// Per-layer costs, in layer order.
    pub layers: Vec<LayerCost>,
    /// Total multiply-accumulates for one sample.
    pub macs: u64,
    /// Total trainable parameters.
    pub params: u64,
    /// Total parameter bytes.
    pub param_bytes: u64,
}

impl Graph {
    /// MACs, parameters and bytes of every layer and in total.
    pub fn cost(&self) -> Result<GraphCost, GraphError> {
        let shapes = self.validate()?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (layer, out) in self.layers.iter().zip(&shapes) {
            let macs = match &layer.op {
                Op::Conv2d {
                    in_channels,
                    kernel,
                    groups,
                    ..
                } => {
                    let spatial = match out {
                        Shape::Map { h, w, .. } => h * w,
                        Shape::Vector { .. } => 1,
                    };
                    (out.channels() * spatial * (in_channels / groups) * kernel[0] * kernel[1])
                        as u64
                }
                Op::Linear {
                    in_features,
                    out_features,
                    ..
                } => (in_features * out_features) as u64,
                _ => 0,
            };
            let params: u64 = layer
                .op
                .parameters()
                .iter()
                .map(|(_, s)| s.iter().product::<usize>() as u64)
                .sum();
            let param_bytes = layer.param_bytes();
            layers.push(LayerCost {
                name: layer.name.clone(),
                kind: layer.op.kind(),
                output: *out,
                macs,
                params,
                param_bytes,
            });
        }
        Ok(GraphCost {
            macs: layers.iter().map(|l| l.macs).sum(),
            params: layers.iter().map(|l| l.params).sum(),
            param_bytes: layers.iter().map(|l| l.param_bytes).sum(),
            layers,
        })
    }
}

impl super::Layer {
    /// Bytes this layer's parameters take when stored: 4 per value, except a
    /// quantized weight, which takes its bit width (plus its codebook).
    pub fn param_bytes(&self) -> u64 {
        self.op
            .parameters()
            .iter()
            .map(|(name, shape)| {
                let n = shape.iter().product::<usize>() as u64;
                match (&self.quant, *name) {
                    (Some(q), "weight") => match &q.weight {
                        Some(w) => (n * w.bits() as u64).div_ceil(8) + w.side_bytes(shape[0], n),
                        None => n * 4,
                    },
                    _ => n * 4,
                }
            })
            .sum()
    }
}
