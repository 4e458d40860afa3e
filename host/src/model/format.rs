//! The pf model format: one safetensors file whose header metadata holds the
//! graph as JSON. Weights, batch-norm statistics, activation ranges and masks
//! are its tensors. One file keeps the graph and its weights from ever
//! drifting apart, and any safetensors reader can open it.

use super::Model;
use crate::graph::Graph;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "pf-model";
/// Version of the format this pf writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// Serialises a model to the bytes of a pf model file.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    let graph = serde_json::to_string(&model.graph)?;
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), FORMAT_NAME.to_string());
    metadata.insert("version".to_string(), FORMAT_VERSION.to_string());
    metadata.insert("graph".to_string(), graph);
    tensors_to_bytes(&model.named_tensors(), metadata)
}

/// Serialises named f32 tensors with header metadata.
pub(crate) fn tensors_to_bytes(
    tensors: &BTreeMap<String, Tensor>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        data.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(n, s, b)| Ok((n.as_str(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// Reads named tensors and metadata from safetensors bytes.
pub(crate) fn tensors_from_bytes(
    bytes: &[u8],
    device: &Device,
    source: &str,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
        anyhow::anyhow!("{source} is not a pf model file (its safetensors header cannot be read: {e}); is it truncated?")
    })?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{source} is corrupt ({e}); is it truncated?"))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!(
                "{source}: tensor `{name}` is {:?}; pf model files store f32",
                view.dtype()
            );
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, Tensor::from_vec(values, view.shape(), device)?);
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Writes a model to `path` atomically.
pub fn save(model: &Model, path: &Path) -> Result<()> {
    crate::io::atomic_write(path, &to_bytes(model)?)
}

/// Loads a model file, with errors that name the file and what is wrong.
pub fn load(path: &Path, device: &Device) -> Result<Model> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {source}"))?;
    let (tensors, meta) = tensors_from_bytes(&bytes, device, &source)?;
    match meta.get("format").map(String::as_str) {
        Some(FORMAT_NAME) => {}
        _ => bail!("{source} is a safetensors file but not a pf model (no `format: {FORMAT_NAME}` metadata)"),
    }
    if meta.get("version").map(String::as_str) != Some(FORMAT_VERSION) {
        bail!(
            "{source} is pf model format version {}, this pf reads version {FORMAT_VERSION}",
            meta.get("version").map(String::as_str).unwrap_or("?")
        );
    }
    let json = meta
        .get("graph")
        .with_context(|| format!("{source} has no graph in its metadata"))?;
    let graph: Graph = serde_json::from_str(json)
        .with_context(|| format!("{source}: the graph JSON is malformed"))?;
    Model::from_tensors(graph, tensors, device, &source)
}
