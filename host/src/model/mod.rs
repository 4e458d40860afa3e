//! The runtime model: a [`Graph`] plus its tensors on a device, and the
//! forward pass that training, evaluation and the learners use.

mod footprint;
mod format;
mod forward;
mod init;
mod probe;
mod surgery;

pub use footprint::{zero_count, Footprint, Measure, Target};
pub use format::{from_bytes, load, save, to_bytes, FORMAT_NAME, FORMAT_VERSION};
pub(crate) use format::{
    tensors_from_bytes as format_tensors_from_bytes, tensors_to_bytes as format_tensors_to_bytes,
};
pub use forward::ForwardOutput;
pub use probe::FeatureSample;

use crate::graph::{Graph, Quantizer};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeMap, HashMap};

/// A graph with its parameters, buffers and masks.
pub struct Model {
    /// The architecture.
    pub graph: Graph,
    /// Trainable parameters, keyed `<layer>.weight` / `<layer>.bias`.
    pub params: BTreeMap<String, Var>,
    /// Non-trainable state: batch-norm running statistics
    /// (`<layer>.running_mean`, `<layer>.running_var`) and activation ranges
    /// (`<layer>.act_range`).
    pub buffers: BTreeMap<String, Tensor>,
    /// Weight masks (`<layer>` → 0/1 tensor shaped like the weight) that stay
    /// applied through training.
    pub masks: BTreeMap<String, Tensor>,
    device: Device,
}

impl Model {
    /// A freshly initialised model (He-normal convolutions, PyTorch-style
    /// linear layers, unit batch norms) from a seed.
    pub fn init(graph: Graph, seed: u64, device: &Device) -> Result<Self> {
        graph.validate()?;
        let mut params = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        for layer in &graph.layers {
            for (name, shape) in layer.op.parameters() {
                let key = format!("{}.{name}", layer.name);
                let values = init::parameter(&layer.op, name, &shape, seed, &key);
                let t = Tensor::from_vec(values, shape.as_slice(), device)?;
                params.insert(key, Var::from_tensor(&t)?);
            }
            for (name, shape) in layer.op.buffers() {
                let fill = if name == "running_var" { 1.0 } else { 0.0 };
                let t = (Tensor::ones(shape.as_slice(), DType::F32, device)? * fill)?;
                buffers.insert(format!("{}.{name}", layer.name), t);
            }
        }
        let mut model = Model {
            graph,
            params,
            buffers,
            masks: BTreeMap::new(),
            device: device.clone(),
        };
        model.ensure_quant_buffers()?;
        Ok(model)
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A deep copy whose tensors share nothing with this model.
    pub fn try_clone(&self) -> Result<Self> {
        let params = self
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), Var::from_tensor(&v.as_tensor().copy()?)?)))
            .collect::<Result<_>>()?;
        let copy = |m: &BTreeMap<String, Tensor>| -> Result<BTreeMap<String, Tensor>> {
            m.iter().map(|(k, v)| Ok((k.clone(), v.copy()?))).collect()
        };
        Ok(Model {
            graph: self.graph.clone(),
            params,
            buffers: copy(&self.buffers)?,
            masks: copy(&self.masks)?,
            device: self.device.clone(),
        })
    }

    /// Adds activation-range buffers for layers that gained a uniform
    /// activation quantizer.
    pub fn ensure_quant_buffers(&mut self) -> Result<()> {
        for layer in &self.graph.layers {
            if let Some(Quantizer::Uniform { .. }) =
                layer.quant.as_ref().and_then(|q| q.activation.as_ref())
            {
                let key = format!("{}.act_range", layer.name);
                if !self.buffers.contains_key(&key) {
                    self.buffers
                        .insert(key, Tensor::zeros(2, DType::F32, &self.device)?);
                }
            }
        }
        Ok(())
    }

    /// Sets (or replaces) the mask of a layer's weight. The mask must have the
    /// weight's shape and hold only zeros and ones.
    pub fn set_mask(&mut self, layer: &str, mask: Tensor) -> Result<()> {
        let w = self
            .params
            .get(&format!("{layer}.weight"))
            .with_context(|| format!("layer `{layer}` has no weight to mask"))?;
        if mask.dims() != w.dims() {
            bail!(
                "mask for `{layer}` has shape {:?} but the weight has {:?}",
                mask.dims(),
                w.dims()
            );
        }
        let mask = mask.to_dtype(DType::F32)?.to_device(&self.device)?;
        let not_binary = mask
            .ne(0f32)?
            .mul(&mask.ne(1f32)?)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()?;
        if not_binary > 0.0 {
            bail!("mask for `{layer}` holds values other than 0 and 1");
        }
        self.masks.insert(layer.to_string(), mask);
        self.apply_masks()
    }

    /// Multiplies every masked weight by its mask, so masked weights are
    /// exactly zero (called after each optimizer step).
    pub fn apply_masks(&self) -> Result<()> {
        for (layer, mask) in &self.masks {
            if let Some(w) = self.params.get(&format!("{layer}.weight")) {
                w.set(&w.as_tensor().mul(mask)?)?;
            }
        }
        Ok(())
    }

    /// Writes new buffer values returned by a training forward pass.
    pub fn apply_updates(&mut self, updates: Vec<(String, Tensor)>) {
        for (k, v) in updates {
            self.buffers.insert(k, v);
        }
    }

    /// Every tensor of the model by its stored name: parameters, buffers and
    /// masks (`<layer>.mask`).
    pub fn named_tensors(&self) -> BTreeMap<String, Tensor> {
        let mut all: BTreeMap<String, Tensor> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        all.extend(self.buffers.iter().map(|(k, v)| (k.clone(), v.clone())));
        all.extend(
            self.masks
                .iter()
                .map(|(k, v)| (format!("{k}.mask"), v.clone())),
        );
        all
    }

    /// SHA-256 over every tensor's name, shape and little-endian f32 bytes in
    /// name order: equal hashes mean bit-identical weights.
    pub fn weights_sha256(&self) -> Result<String> {
        let mut bytes = Vec::new();
        for (name, t) in self.named_tensors() {
            bytes.extend_from_slice(name.as_bytes());
            for d in t.dims() {
                bytes.extend_from_slice(&(*d as u64).to_le_bytes());
            }
            for v in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(crate::io::sha256_hex(&bytes))
    }

    /// Builds a model from a graph and named tensors, checking that every
    /// tensor the graph needs is present with the right shape and that no
    /// tensor is left over. `source` names where they came from, for errors.
    pub fn from_tensors(
        graph: Graph,
        mut tensors: HashMap<String, Tensor>,
        device: &Device,
        source: &str,
    ) -> Result<Self> {
        graph
            .validate()
            .with_context(|| format!("{source}: the model graph is invalid"))?;
        let mut take = |key: String, shape: &[usize], layer: &str| -> Result<Tensor> {
            let t = tensors.remove(&key).with_context(|| {
                format!("{source}: tensor `{key}` (shape {shape:?}) that layer `{layer}` needs is missing; the file is incomplete or was written for another graph")
            })?;
            if t.dims() != shape {
                bail!(
                    "{source}: tensor `{key}` has shape {:?} but layer `{layer}` needs {shape:?}",
                    t.dims()
                );
            }
            Ok(t.to_dtype(DType::F32)?.to_device(device)?)
        };
        let mut params = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        let mut masks = BTreeMap::new();
        for layer in &graph.layers {
            for (name, shape) in layer.op.parameters() {
                let key = format!("{}.{name}", layer.name);
                let t = take(key.clone(), &shape, &layer.name)?;
                params.insert(key, Var::from_tensor(&t)?);
            }
            for (name, shape) in layer.op.buffers() {
                let key = format!("{}.{name}", layer.name);
                buffers.insert(key.clone(), take(key, &shape, &layer.name)?);
            }
        }
        let leftover: Vec<String> = tensors.keys().cloned().collect();
        for key in leftover {
            let t = tensors.remove(&key).expect("key listed");
            if let Some(layer) = key.strip_suffix(".mask") {
                let w = params.get(&format!("{layer}.weight")).with_context(|| {
                    format!("{source}: mask `{key}` belongs to no layer with a weight")
                })?;
                if t.dims() != w.dims() {
                    bail!(
                        "{source}: mask `{key}` has shape {:?} but the weight has {:?}",
                        t.dims(),
                        w.dims()
                    );
                }
                masks.insert(
                    layer.to_string(),
                    t.to_dtype(DType::F32)?.to_device(device)?,
                );
            } else if let Some(layer) = key.strip_suffix(".act_range") {
                if graph.layer(layer).is_none() || t.dims() != [2] {
                    bail!(
                        "{source}: activation range `{key}` belongs to no layer or is not 2 values"
                    );
                }
                buffers.insert(key, t.to_dtype(DType::F32)?.to_device(device)?);
            } else {
                bail!("{source}: tensor `{key}` belongs to no layer of the graph");
            }
        }
        let mut model = Model {
            graph,
            params,
            buffers,
            masks,
            device: device.clone(),
        };
        model.ensure_quant_buffers()?;
        Ok(model)
    }
}
